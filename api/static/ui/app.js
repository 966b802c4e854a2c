// The dashboard's entry: sign-in gate and the router. Each view is a function that renders into
// <main> (given the route's match) and returns its dispose(), which stops its streams and timers.
import { me } from "./api.js";
import { h, fill } from "./dom.js";
import { apiKey, signIn, signOut } from "./session.js";
import { renderGallery } from "./gallery.js";
import { renderJob } from "./jobpage.js";
import { renderPlayground } from "./playground.js";
import { renderUsage } from "./usage.js";
import { renderSettings } from "./settings.js";
import { renderOperators } from "./operators.js";

// The views, by the URL's fragment: the first whose pattern matches renders; `nav` is the
// navigation link (data-nav) marked as the current page. Unknown fragments show the gallery.
const ROUTES = [
  { pattern: /^#\/usage$/, nav: "usage", render: (main) => renderUsage(main) },
  { pattern: /^#\/settings$/, nav: "settings", render: (main) => renderSettings(main) },
  { pattern: /^#\/operators$/, nav: "operators", render: (main) => renderOperators(main) },
  { pattern: /^#\/playground$/, nav: "playground", render: (main) => renderPlayground(main) },
  { pattern: /^#\/jobs\/([^/?]+)$/, nav: "jobs", render: (main, m) => renderJob(main, decodeURIComponent(m[1])) },
  { pattern: /^#\/jobs(?:\?.*)?$/, nav: "jobs", render: (main) => renderGallery(main) },
];
const FALLBACK = ROUTES[ROUTES.length - 1];

const main = document.getElementById("main");
const who = document.getElementById("who");
const account = document.getElementById("account");
let dispose = () => {};

function signInView() {
  who.hidden = true;
  const input = h("input", { id: "api-key", name: "api-key", type: "password", required: true,
                             autocomplete: "off", spellcheck: "false", placeholder: "gg_live_…" });
  const problem = h("p", { class: "error", role: "alert", id: "sign-in-error" });
  const form = h("form", { class: "sign-in", id: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("label", { for: "api-key" }, "API key"), input,
    h("p", { class: "muted" }, "The key stays in this tab (session storage) and is gone when the tab closes."),
    h("button", { type: "submit" }, "Sign in"), problem);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const key = input.value.trim();
    try {
      await me(key);  // checks the key before keeping it
    } catch (error) {
      problem.textContent = error.status === 401 ? "That key is not valid." : `Could not sign in: ${error.message}`;
      return;
    }
    signIn(key);
    if (ROUTES.some((r) => r.pattern.test(location.hash))) route(); else location.hash = "#/jobs";
  });
  fill(main, form);
  input.focus();
  return () => {};
}

async function showAccount() {
  try {
    const user = await me();
    account.textContent = user.email || user.userId;
    who.hidden = false;
  } catch (error) {
    if (error.status === 401) { signOut(); route(); }  // revoked since: back to sign-in
  }
}

function route() {
  dispose();
  if (!apiKey()) { dispose = signInView(); return; }
  showAccount();
  let match = null;
  const view = ROUTES.find((r) => (match = r.pattern.exec(location.hash))) || FALLBACK;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === view.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  dispose = view.render(main, match) || (() => {});
  main.focus({ preventScroll: true });
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  account.textContent = "";
  route();
});
window.addEventListener("hashchange", route);
route();
