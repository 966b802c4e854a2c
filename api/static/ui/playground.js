// The Playground (#/playground): one form per capability built from GET /v1/models (playform.js),
// submitted as any client would (POST /v1/<capability>, 202 with the job), the job followed live
// and its result previewed (progress.js), and the form's request as curl and as Python
// (snippets.js): the same request object is sent and printed, so the code shown is what was sent.
import { call } from "./api.js";
import { h, fill, copyControl } from "./dom.js";
import { capabilityForm, FormProblem } from "./playform.js";
import { trackJob } from "./progress.js";
import { curlCommand, pythonCode } from "./snippets.js";

const CAPABILITIES = [["image", "Image"], ["video", "Video"], ["speech", "Speech"], ["music", "Music"],
                      ["transcription", "Transcription"]];

export function renderPlayground(main) {
  let disposed = false;
  let stopJob = () => {};
  const picker = h("fieldset", { class: "pg-capabilities", id: "pg-capabilities" },
    h("legend", {}, "Capability"),
    CAPABILITIES.map(([value, label], i) => h("span", { class: "pg-capability" },
      h("input", { type: "radio", name: "capability", id: `pg-cap-${value}`, value, checked: i === 0 }),
      h("label", { for: `pg-cap-${value}` }, label))));
  const formHost = h("div", { class: "pg-form-host" }, h("p", { role: "status" }, "Loading models…"));
  const curl = h("pre", { id: "pg-curl", tabindex: "0", "aria-label": "This request as curl" });
  const python = h("pre", { id: "pg-python", tabindex: "0", "aria-label": "This request as Python" });
  const result = h("section", { id: "pg-result", class: "pg-result", "aria-labelledby": "pg-result-title", hidden: true });
  fill(main, h("h1", {}, "Playground"), picker,
    h("div", { class: "pg-layout" },
      h("div", { class: "pg-main" }, formHost, result),
      h("section", { class: "pg-code", "aria-labelledby": "pg-code-title" },
        h("h2", { id: "pg-code-title" }, "This request as code"),
        h("p", { class: "muted" }, "Generate sends exactly this request. The key is read from $GENGATE_API_KEY."),
        h("h3", {}, "curl"), curl, h("p", {}, copyControl(curl, "Copy", "pg-copy-curl")),
        h("h3", {}, "Python (gengate.client)"), python, h("p", {}, copyControl(python, "Copy", "pg-copy-python")))));

  let catalog = null;
  let current = null;

  function showForm(capability) {
    current = capabilityForm(capability, catalog.models, catalog.voices);
    current.form.addEventListener("input", showCode);
    current.form.addEventListener("change", showCode);
    current.form.addEventListener("submit", (event) => { event.preventDefault(); submit(current); });
    fill(formHost, current.form);
    showCode();
  }

  function showCode() {
    try {
      const request = current.request();
      curl.textContent = curlCommand(request);
      python.textContent = pythonCode(request);
    } catch (error) {
      if (!(error instanceof FormProblem)) throw error;
      curl.textContent = python.textContent = `(not yet a request: ${error.message})`;
    }
  }

  async function submit(shown) {
    const problem = shown.form.querySelector("#pg-error");
    const button = shown.form.querySelector("#pg-submit");
    problem.textContent = "";
    let request;
    try { request = shown.request(); } catch (error) {
      problem.textContent = error.message;
      return;
    }
    button.disabled = true;
    const sentAt = performance.now();
    try {
      const job = await call(request.path, { method: request.method, json: request.json });
      if (disposed) return;
      stopJob();
      result.hidden = false;
      stopJob = trackJob(result, job, request.json.prompt ?? request.json.text ?? "", sentAt);
    } catch (error) {
      problem.textContent = `Refused: ${error.message}${error.body?.field ? ` (field: ${error.body.field})` : ""}`;
    } finally {
      button.disabled = false;
    }
  }

  picker.addEventListener("change", (event) => { if (catalog) showForm(event.target.value); });
  Promise.all([call("models"), call("voices")]).then(([models, voices]) => {
    if (disposed) return;
    catalog = { models: models.models, voices: voices.voices };
    showForm(picker.querySelector("input:checked").value);
  }).catch((error) => {
    fill(formHost, h("p", { class: "error", role: "alert" }, `Could not load the models: ${error.message}`));
  });

  return () => { disposed = true; stopJob(); };
}
