// A job's page: everything /v1/jobs/{id} tells of it (status live over the stream, timings, cache,
// provider, request, price, output with download, error), cancel, and "copy as curl".
import { getJob, cancelJob, apiUrl } from "./api.js";
import { h, fill, when, seconds, copyControl } from "./dom.js";
import { badge, preview, splitModel } from "./jobview.js";
import { follow, TERMINAL } from "./stream.js";
import { processSection } from "./mediatools.js";
import { dollars } from "./pricing.js";

export function renderJob(main, jobId) {
  let stop = null;
  let disposed = false;
  const body = h("div", { class: "job" }, h("p", { role: "status" }, "Loading…"));
  fill(main, h("p", {}, h("a", { href: "#/jobs" }, "← All jobs")), h("h1", {}, "Job ", h("code", {}, jobId)), body);

  function show(job) {
    if (disposed) return;
    fill(body, ...details(job));
    if (TERMINAL.has(job.status) && stop) { stop(); stop = null; }
  }

  function details(job) {
    const [, name] = splitModel(job.model);
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
        row("Provider", h("span", { id: "job-provider" }, job.provider || "—"),
          job.byok ? h("span", { class: "muted" }, " (your own key)") : null),
        job.mode ? row("Mode", job.mode) : null,
        job.attempts?.length > 1 ? row("Attempts", h("ol", { id: "job-attempts", class: "attempts" },
          job.attempts.map((a) => h("li", {}, `${a.provider}: ${a.outcome}`,
            a.status ? ` (HTTP ${a.status})` : "", a.message && a.outcome !== job.status ? ` — ${a.message}` : "")))) : null,
        job.routes?.length ? row("Falls back to", job.routes.join(", ")) : null,
        row("Created", h("time", { datetime: job.created_at }, when(job.created_at))),
        row("Finished", job.completed_at ? h("time", { datetime: job.completed_at }, when(job.completed_at)) : "—"),
        row("Took", seconds(job.created_at, job.completed_at) || "—"),
        row("Price", h("span", { id: "job-price" }, price(job))),
        row("Cache", job.cache ? (job.cache.hit ? "hit" : "miss") : "—",
          job.cache?.key ? h("code", { class: "muted key" }, ` ${job.cache.key}`) : null),
        output?.metadata ? row("Output metadata", h("pre", {}, JSON.stringify(output.metadata, null, 2))) : null,
      )),
      job.request ? h("section", { "aria-label": "Request" }, h("h2", {}, "Request"),
        h("pre", { id: "job-request", tabindex: "0" }, JSON.stringify(job.request, null, 2))) : null,
      processSection(job),
      curlSection(job),
    ];
  }

  // The stream's events are the spec's job, without GET's details (request, provider, price): an
  // event is laid over the last full read, and the end is read again for what it was charged.
  let last = null;
  const seen = (job) => { last = job; show(job); };
  const update = (event) => {
    show({ ...last, ...event });
    // (A terminal event and the record's change are one Redis transition, so the read after it is
    // terminal too; one that is not is not shown over the event.)
    if (TERMINAL.has(event.status)) getJob(jobId).then((job) => TERMINAL.has(job.status) && seen(job)).catch(() => {});
  };
  getJob(jobId).then((job) => {
    seen(job);
    if (!TERMINAL.has(job.status) && !disposed) stop = follow(jobId, update);
  }).catch((error) => {
    fill(body, h("p", { class: "error", role: "alert" },
      error.status === 404 ? "No such job in this account." : `Could not load the job: ${error.message}`));
  });

  return () => { disposed = true; stop?.(); };
}

// What the job costs: once settled, what was charged (0: a cache hit, BYOK, or released because it
// failed or was cancelled before the provider ran); before that, the price held from the balance.
function price(job) {
  if (job.charged_cents === null || job.charged_cents === undefined) {
    return job.price_cents ? `${dollars(job.price_cents)} held` : "—";
  }
  if (job.charged_cents > 0) return dollars(job.charged_cents);
  return job.price_cents ? `$0.00 (${dollars(job.price_cents)} released)` : "$0.00 (not charged)";
}

// The key is never written into the page: the command reads it from $GENGATE_API_KEY, as the
// README's walk-through sets it, so a copied command or a screenshot does not leak it.
function curlSection(job) {
  const lines = [`curl -s "${apiUrl(`jobs/${job.job_id}`)}" \\\n  -H "Authorization: Bearer $GENGATE_API_KEY"`];
  if (job.output?.url) lines.push(`curl -s -o "${fileName(job.output.url)}" "${job.output.url}"`);
  if (!TERMINAL.has(job.status)) {
    lines.push(`curl -s -X DELETE "${apiUrl(`jobs/${job.job_id}`)}" \\\n  -H "Authorization: Bearer $GENGATE_API_KEY"`);
  }
  const pre = h("pre", { id: "curl", tabindex: "0" }, lines.join("\n\n"));
  return h("section", { "aria-label": "Copy as curl" }, h("h2", {}, "curl"), pre,
    h("p", {}, copyControl(pre, "Copy as curl", "copy-curl")));
}

function fileName(url) {
  try { return new URL(url).pathname.split("/").pop() || "output"; } catch { return "output"; }
}
