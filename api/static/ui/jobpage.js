// A job's page: everything /v1/jobs/{id} tells of it (status live over the stream, timings, cache,
// provider, output with download, error), cancel, and "copy as curl".
import { getJob, cancelJob, apiUrl, usageRecord } from "./api.js";
import { h, fill, when, seconds } from "./dom.js";
import { badge, preview, splitModel } from "./jobview.js";
import { follow, TERMINAL } from "./stream.js";

export function renderJob(main, jobId) {
  let stop = null;
  let disposed = false;
  const body = h("div", { class: "job" }, h("p", { role: "status" }, "Loading…"));
  fill(main, h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")), h("h1", {}, "Job ", h("code", {}, jobId)), body);

  function show(job) {
    if (disposed) return;
    fill(body, ...details(job));
    if (TERMINAL.has(job.status) && stop) { stop(); stop = null; }
    if (job.status === "completed") showPrice(job);
  }

  function details(job) {
    const [provider, name] = splitModel(job.model);
    const row = (label, ...value) => [h("dt", {}, label), h("dd", {}, ...value)];
    const cancel = TERMINAL.has(job.status) ? null : h("button", { type: "button", id: "cancel", class: "danger" },
      "Cancel job");
    cancel?.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await cancelJob(job.job_id);
        show(await getJob(job.job_id));
      } catch (error) {
        cancel.disabled = false;
        cancel.after(h("p", { class: "error", role: "alert" }, `Could not cancel: ${error.message}`));
      }
    });
    const output = job.output;
    return [
      h("div", { class: "job-head" }, h("span", { id: "job-status" }, badge(job.status)), cancel),
      job.error ? h("section", { class: "error-box", "aria-label": "Error" },
        h("h2", {}, "Error"), h("p", { id: "job-error", class: "error" }, job.error)) : null,
      output ? h("section", { class: "output", "aria-label": "Output" }, h("h2", {}, "Output"), preview(job),
        h("p", {}, h("a", { id: "download", href: output.url, download: "" }, "Download"), " ",
          h("span", { class: "muted" }, output.media_type))) : null,
      h("section", { "aria-label": "Details" }, h("h2", {}, "Details"), h("dl", { id: "job-details" },
        row("Job id", h("code", {}, job.job_id)),
        row("Model", name),
        row("Provider", provider || "—"),
        row("Created", h("time", { datetime: job.created_at }, when(job.created_at))),
        row("Finished", job.completed_at ? h("time", { datetime: job.completed_at }, when(job.completed_at)) : "—"),
        row("Took", seconds(job.created_at, job.completed_at) || "—"),
        row("Price", h("span", { id: "job-price" }, job.status === "completed" ? "…" : "—")),
        row("Cache", job.cache ? (job.cache.hit ? "hit" : "miss") : "—",
          job.cache?.key ? h("code", { class: "muted key" }, ` ${job.cache.key}`) : null),
        output?.metadata ? row("Output metadata", h("pre", {}, JSON.stringify(output.metadata, null, 2))) : null,
      )),
      h("section", { "aria-label": "Request" }, h("h2", {}, "Request"),
        h("p", { class: "muted", id: "job-request" },
          "The API does not return a job's request (prompt, parameters): GET /v1/jobs/{id} carries ",
          "the fields above.")),
      curlSection(job),
    ];
  }

  // The charged price, from the account's usage (a cache hit or BYOK job costs 0).
  async function showPrice(job) {
    let text = "—";
    try {
      const record = await usageRecord(job);
      if (record) text = `$${(record.cost_cents / 100).toFixed(2)}${record.cost_cents === 0 ? " (not charged)" : ""}`;
    } catch { /* the price is a detail: the page stands without it */ }
    const cell = body.querySelector("#job-price");
    if (cell && !disposed) cell.textContent = text;
  }

  getJob(jobId).then((job) => {
    show(job);
    if (!TERMINAL.has(job.status) && !disposed) stop = follow(jobId, show);
  }).catch((error) => {
    fill(body, h("p", { class: "error", role: "alert" },
      error.status === 404 ? "No such job in this account." : `Could not load the job: ${error.message}`));
  });

  return () => { disposed = true; stop?.(); };
}

// The key is never written into the page: the command reads it from $GENGATE_API_KEY, as the
// README's walk-through sets it, so a copied command or a screenshot does not leak it.
function curlSection(job) {
  const lines = [`curl -s "${apiUrl(`jobs/${job.job_id}`)}" \\\n  -H "Authorization: Bearer $GENGATE_API_KEY"`];
  if (job.output?.url) lines.push(`curl -s -o "${fileName(job.output.url)}" "${job.output.url}"`);
  if (!TERMINAL.has(job.status)) {
    lines.push(`curl -s -X DELETE "${apiUrl(`jobs/${job.job_id}`)}" \\\n  -H "Authorization: Bearer $GENGATE_API_KEY"`);
  }
  const text = lines.join("\n\n");
  const pre = h("pre", { id: "curl", tabindex: "0" }, text);
  const copy = h("button", { type: "button", id: "copy-curl" }, "Copy as curl");
  const done = h("span", { class: "muted", role: "status" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      done.textContent = "Copied.";
    } catch {
      // No clipboard permission (an http:// origin other than localhost): select it for Ctrl-C.
      getSelection().selectAllChildren(pre);
      done.textContent = "Selected: press Ctrl-C to copy.";
    }
  });
  return h("section", { "aria-label": "Copy as curl" }, h("h2", {}, "curl"), pre, h("p", {}, copy, " ", done));
}

function fileName(url) {
  try { return new URL(url).pathname.split("/").pop() || "output"; } catch { return "output"; }
}
