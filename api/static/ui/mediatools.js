// "Process": a completed job's output trimmed, resized, sliced (each a new media job, /v1/ffmpeg/...)
// or probed (answered at once). Which operations show depends on the output's kind: trim takes
// video or audio, resize video or an image, slice video, probe any media (api/routes/media.py).
import { call } from "./api.js";
import { h, fill } from "./dom.js";
import { badge } from "./jobview.js";
import { follow, TERMINAL } from "./stream.js";

const number = (name, label, attrs = {}) => ({ name, label, control: () =>
  h("input", { type: "number", name, step: "any", min: 0, inputmode: "decimal", ...attrs }) });
const choice = (name, label, values) => ({ name, label, control: () =>
  h("select", { name }, values.map(([value, text]) => h("option", { value }, text))) });
const flag = (name, label) => ({ name, label, control: () => h("input", { type: "checkbox", name }) });

// Each operation: the output kinds it takes, its fields, and its request body from the values read.
// Bodies follow api/schemas.py TrimRequest, ResizeRequest, SliceRequest and ProbeRequest.
const OPERATIONS = [
  { op: "trim", label: "Trim", kinds: ["video", "audio"],
    fields: [number("start", "Start (s)", { value: 0, required: true }), number("end", "End (s), empty: to the end"),
             flag("precise", "Frame-exact (re-encode)")],
    body: (url, v) => ({ url, start: v.start ?? 0, ...(v.end !== null && { end: v.end }), precise: v.precise }) },
  { op: "resize", label: "Resize", kinds: ["video", "image"],
    fields: [number("width", "Width (px)", { min: 1, max: 7680, step: 1, required: true }),
             number("height", "Height (px)", { min: 1, max: 7680, step: 1, required: true }),
             choice("fit", "Fit", [["contain", "contain (letterbox)"], ["cover", "cover (crop)"], ["stretch", "stretch"]])],
    body: (url, v) => ({ url, width: v.width, height: v.height, fit: v.fit }) },
  { op: "slice", label: "Slice", kinds: ["video"],
    fields: [choice("by", "Cut", [["every", "every N seconds"], ["count", "into N equal parts"]]),
             number("n", "N", { min: 0.1, required: true, value: 2 })],
    body: (url, v) => ({ video_url: url, [v.by]: v.by === "count" ? Math.round(v.n) : v.n }) },
  { op: "probe", label: "Probe", kinds: ["video", "audio", "image"], fields: [], body: (url) => ({ url }) },
];

/** The Process section of a completed job with a media output; null for any other job. */
export function processSection(job) {
  const kind = String(job.output?.media_type || "").split("/")[0];
  const ops = job.status === "completed" ? OPERATIONS.filter((o) => o.kinds.includes(kind)) : [];
  if (!ops.length) return null;
  const picker = h("select", { id: "process-op", name: "op" }, ops.map((o) => h("option", { value: o.op }, o.label)));
  const form = h("form", { id: "process-form", class: "process-form" });
  const outcome = h("div", { id: "process-result", role: "status" });
  const section = h("section", { class: "process", "aria-labelledby": "process-title" },
    h("h2", { id: "process-title" }, "Process"),
    h("p", { class: "muted" }, "Trim, resize or slice this output into a new job, or probe it."),
    h("div", { class: "pg-row" }, h("label", { for: "process-op" }, "Operation"), picker), form, outcome);

  const current = () => ops.find((o) => o.op === picker.value);
  const build = () => fill(form, ...current().fields.map((f) => fieldRow(f)),
    h("button", { type: "submit", id: "process-submit" }, current().label));
  picker.addEventListener("change", () => { build(); fill(outcome); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const operation = current();
    const button = form.querySelector("button");
    button.disabled = true;
    fill(outcome, h("p", { class: "muted" }, `${operation.label}: sending…`));
    try {
      const answer = await call(`ffmpeg/${operation.op}`, { method: "POST", json: operation.body(job.output.url, values(form)) });
      fill(outcome, ...(operation.op === "probe" ? probed(answer) : started(answer, section)));
    } catch (error) {
      fill(outcome, h("p", { class: "error", role: "alert" }, `${operation.label} refused: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  });
  build();
  return section;
}

function fieldRow(field) {
  const control = field.control();
  control.id = `process-${field.name}`;
  return control.type === "checkbox"
    ? h("div", { class: "pg-check" }, control, h("label", { for: control.id }, field.label))
    : h("div", { class: "pg-row" }, h("label", { for: control.id }, field.label), control);
}

// The form's values: numbers as numbers (an empty one as null), checkboxes as booleans.
function values(form) {
  const read = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") read[el.name] = el.checked;
    else if (el.type === "number") read[el.name] = el.value === "" ? null : Number(el.value);
    else read[el.name] = el.value;
  }
  return read;
}

function probed(figures) {
  return [h("h3", {}, "Probe"), h("pre", { id: "probe-output", tabindex: "0" }, JSON.stringify(figures, null, 2))];
}

// The new job, linked, its status kept live while the section is on the page. The job page that
// holds the section re-renders without telling it, so the stream stops itself once the section is
// gone (checked on each event and every second).
function started(job, section) {
  const status = h("span", { id: "process-status" }, badge(job.status));
  let stop = null;
  const check = setInterval(() => { if (!section.isConnected) end(); }, 1000);
  function end() { clearInterval(check); stop?.(); }
  if (TERMINAL.has(job.status)) end();
  else {
    stop = follow(job.job_id, (update) => {
      fill(status, badge(update.status));
      if (TERMINAL.has(update.status) || !section.isConnected) end();
    });
  }
  return [h("p", {}, "New job ", h("a", { id: "process-job", href: `#/jobs/${encodeURIComponent(job.job_id)}` },
    job.job_id), " ", status)];
}
