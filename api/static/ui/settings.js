// Keys & settings (#/settings): the account's API keys (list, create: shown once, revoke), webhook
// secret rotation (shown once), saved provider keys (set, replace, delete: never shown back), and
// the operator's admin key for the Operators page (kept in this tab only).
//
// Secrets shown once live only in the DOM of this view: never in storage, never logged, gone when
// the view is left. A revoke or rotation asks for a second click on the same row, in the page (no
// window.confirm, which is modal and cannot be styled or tested as a page element).
import { call } from "./api.js";
import { h, fill, when, copyControl, table } from "./dom.js";
import { adminKey, setAdminKey, signOut } from "./session.js";

export function renderSettings(main) {
  const keys = h("section", { id: "api-keys", "aria-labelledby": "keys-title" });
  const secret = h("section", { id: "webhook-secret", "aria-labelledby": "secret-title" });
  const providers = h("section", { id: "provider-keys", "aria-labelledby": "providers-title" });
  fill(main, h("h1", {}, "Keys & settings"), keys, secret, providers, adminSection());
  showKeys(keys);
  showSecret(secret);
  showProviderKeys(providers);
  return () => {};
}

function problem(where, error) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, error.message));
}

/** A secret shown once, with its copy button and the warning that it cannot be shown again. */
function shownOnce(id, label, value) {
  const code = h("code", { id, class: "secret" }, value);
  return h("div", { class: "shown-once", role: "status" },
    h("p", {}, h("strong", {}, label), " — copy it now: it is not shown again."),
    h("p", {}, code), copyControl(code, "Copy", `${id}-copy`));
}

/** A button that asks for a second click before it acts. */
function confirmed(label, question, act, attrs = {}) {
  const button = h("button", { type: "button", class: "danger", ...attrs }, label);
  const box = h("span", { class: "confirm" }, button);
  button.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger" }, `Yes, ${label.toLowerCase()}`);
    const no = h("button", { type: "button" }, "Keep");
    const status = h("span", { class: "error", role: "alert" });
    fill(box, h("span", {}, question, " "), yes, " ", no, " ", status);
    no.addEventListener("click", () => { fill(box, button); button.focus(); });
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        await act();
      } catch (error) {
        status.textContent = error.message;
        yes.disabled = no.disabled = false;
      }
    });
    yes.focus();
  });
  return box;
}

// -- API keys --------------------------------------------------------------------------------------

async function showKeys(section, created = null) {
  const create = h("button", { type: "button", id: "create-key" }, "Create a key");
  const status = h("div", { id: "new-key" });
  fill(section, h("h2", { id: "keys-title" }, "API keys"),
    h("p", { class: "muted" }, "Each key acts for the whole account. gengate keeps only a hash of it: ",
      "a new key is shown once, when it is created."), h("p", {}, create), status);
  if (created) status.append(shownOnce("created-key", "New key", created.key));
  create.addEventListener("click", async () => {
    create.disabled = true;
    try {
      showKeys(section, await call("keys", { method: "POST" }));
    } catch (error) {
      create.disabled = false;
      problem(status, error);
    }
  });
  try {
    const { keys } = await call("keys");
    section.append(table(["Key", "Created", "Status", ""], keys.map((k) => keyRow(section, k)), { id: "keys-table" }));
  } catch (error) {
    section.append(h("p", { class: "error", role: "alert" }, error.message));
  }
}

function keyRow(section, key) {
  const status = key.revoked ? `revoked ${when(key.revoked_at)}` : key.current ? "active (this tab)" : "active";
  const revoke = key.revoked ? "" : confirmed("Revoke", key.current
    ? "This tab uses this key: you will be signed out." : `Revoke ${key.key_id}?`, async () => {
    await call(`keys/${encodeURIComponent(key.key_id)}`, { method: "DELETE" });
    if (key.current) { signOut(); location.reload(); } else showKeys(section);
  }, { "data-key-id": key.key_id, "aria-label": `Revoke key ${key.key_id}` });
  return [h("code", { "data-key-id": key.key_id }, `gg_live_${key.key_id}_…`), when(key.created_at), status, revoke];
}

// -- webhook secret --------------------------------------------------------------------------------

function showSecret(section) {
  const shown = h("div", { id: "new-secret" });
  fill(section, h("h2", { id: "secret-title" }, "Webhook signing secret"),
    h("p", { class: "muted" }, "Deliveries carry Standard Webhooks signatures made with this secret. ",
      "Rotating it makes a new one, shown once; the old one stops verifying at once."),
    h("p", {}, confirmed("Rotate", "Receivers that verify with the old secret will refuse deliveries.", async () => {
      const { secret } = await call("webhook-secret", { method: "POST" });
      showSecret(section);
      section.querySelector("#new-secret").append(shownOnce("webhook-secret-value", "New signing secret", secret));
    }, { id: "rotate-secret" })), shown);
}

// -- saved provider keys ---------------------------------------------------------------------------

async function showProviderKeys(section) {
  fill(section, h("h2", { id: "providers-title" }, "Saved provider keys"),
    h("p", { class: "muted" }, "Jobs use a saved key when their request sends no X-Provider-Key header: ",
      "they run on your provider account and cost nothing here. Saved keys are sealed and never shown back."));
  try {
    const { provider_keys: list } = await call("provider-keys");
    section.append(h("ul", { class: "provider-keys" }, list.map((p) => providerRow(section, p))));
  } catch (error) {
    section.append(h("p", { class: "error", role: "alert" }, error.message));
  }
}

function providerRow(section, info) {
  const id = `provider-key-${info.provider}`;
  const input = h("input", { id, type: "password", autocomplete: "off", spellcheck: "false", required: true,
                             placeholder: info.saved ? "a new key replaces the saved one" : "paste the key" });
  const status = h("span", { class: "error", role: "alert" });
  const form = h("form", { class: "provider-key", "data-provider": info.provider },
    h("label", { for: id }, h("strong", {}, info.provider), " ",
      h("span", { class: "muted", "data-state": info.saved ? "saved" : "none" },
        info.saved ? `saved ${when(info.saved_at)}` : "not saved")),
    h("span", { class: "row" }, input, h("button", { type: "submit" }, info.saved ? "Replace" : "Save"),
      info.saved ? confirmed("Delete", `Delete the saved ${info.provider} key?`, async () => {
        await call(`provider-keys/${info.provider}`, { method: "DELETE" });
        showProviderKeys(section);
      }, { "aria-label": `Delete the saved ${info.provider} key` }) : null),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "";
    try {
      await call(`provider-keys/${info.provider}`, { method: "PUT", json: { key: input.value } });
      input.value = "";  // out of the page as soon as it is saved
      showProviderKeys(section);
    } catch (error) {
      status.textContent = error.message;
    }
  });
  return h("li", {}, form);
}

// -- the operator's admin key ----------------------------------------------------------------------

function adminSection() {
  const input = h("input", { id: "admin-key", type: "password", autocomplete: "off", spellcheck: "false" });
  const state = h("p", { class: "muted", id: "admin-state", role: "status" });
  const show = () => { state.textContent = adminKey() ? "An admin key is set for this tab." : "No admin key set."; };
  const form = h("form", { id: "admin-form" }, h("label", { for: "admin-key" }, "Admin key"),
    h("span", { class: "row" }, input, h("button", { type: "submit" }, "Use for this tab"),
      h("button", { type: "button", id: "admin-clear" }, "Forget")), state);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setAdminKey(input.value.trim());
    input.value = "";
    show();
  });
  form.querySelector("#admin-clear").addEventListener("click", () => { setAdminKey(null); show(); });
  show();
  return h("section", { id: "operator-access", "aria-labelledby": "admin-title" },
    h("h2", { id: "admin-title" }, "Operator access"),
    h("p", { class: "muted" }, "The Operators page shows the whole gateway and needs the operator's key ",
      "(GENGATE_ADMIN_KEY on the server). It is kept in this tab only, like your API key."), form);
}
