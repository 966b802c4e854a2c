// A submitted job followed live: its status from the job's SSE stream (stream.js), the time since
// it was sent, each status it went through and when, then its output previewed (jobview.js) or its
// error, as text. Completed media can be processed further right there (mediatools.js).
import { h, fill } from "./dom.js";
import { badge, preview } from "./jobview.js";
import { follow, TERMINAL } from "./stream.js";
import { processSection } from "./mediatools.js";

const TICK_MS = 200;

/** Renders `job` (the 202 answer) into `host` and keeps it current; returns stop(). Times count
 *  from `started` (performance.now() when the request left), the moment the user pressed Generate. */
export function trackJob(host, job, sentText, started) {
  const elapsed = h("span", { id: "pg-elapsed", class: "muted" }, "0.0 s");
  const status = h("span", { id: "pg-status", role: "status" });
  const steps = h("ol", { id: "pg-steps", class: "pg-steps", "aria-label": "Statuses so far" });
  const outcome = h("div", { id: "pg-outcome", class: "output" });
  const seen = new Set();
  let stop = null;
  fill(host,
    h("h2", { id: "pg-result-title" }, "Result"),
    h("p", { class: "pg-job-line" }, "Job ", h("a", { href: `#/jobs/${encodeURIComponent(job.job_id)}`, id: "pg-job-link" },
      job.job_id), " ", status, " ", elapsed),
    sentText ? h("p", { class: "pg-sent" }, h("span", { class: "muted" }, "Sent: "), h("q", { id: "pg-sent" }, sentText)) : null,
    steps, outcome);

  const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  const timer = setInterval(() => { elapsed.textContent = seconds(); }, TICK_MS);

  function show(update) {
    fill(status, badge(update.status));
    if (!seen.has(update.status)) {
      seen.add(update.status);
      steps.append(h("li", { "data-status": update.status }, `${update.status} at ${seconds()}`));
    }
    if (!TERMINAL.has(update.status)) return;
    clearInterval(timer);
    elapsed.textContent = `took ${seconds()}`;
    stop?.();
    fill(outcome, ...result(update));
  }

  show(job);
  if (!TERMINAL.has(job.status)) stop = follow(job.job_id, show);
  return () => { clearInterval(timer); stop?.(); };
}

function result(job) {
  if (job.status === "failed") {
    return [h("p", { class: "error", id: "pg-job-error" }, job.error || "The job failed.")];
  }
  if (job.status !== "completed" || !job.output) return [h("p", { class: "muted" }, `The job was ${job.status}.`)];
  const shown = preview(job);
  const text = isText(job.output.media_type) ? h("pre", { id: "pg-text-output", tabindex: "0" }, "Loading…") : null;
  if (text) showText(job.output.url, text);
  return [shown && !text ? shown : null, text,
    h("p", {}, h("a", { href: job.output.url, download: "", id: "pg-download" }, "Download"), " ",
      h("span", { class: "muted" }, job.output.media_type)),
    processSection(job)];
}

const isText = (mediaType) => /^(text\/|application\/json)/.test(String(mediaType || ""));

// A transcription's text (JSON or plain), fetched from the output URL and shown as text. With
// outputs on another origin (GENGATE_STORAGE_PUBLIC_URL) the page's CSP allows no fetch there:
// the download link stays.
async function showText(url, pre) {
  try {
    if (new URL(url, location.href).origin !== location.origin) throw new Error("another origin");
    const answer = await fetch(url);
    const body = await answer.text();
    let shown = body;
    try {
      const parsed = JSON.parse(body);
      shown = typeof parsed.text === "string" ? parsed.text : JSON.stringify(parsed, null, 2);
    } catch { /* plain text */ }
    pre.textContent = shown;
  } catch {
    pre.textContent = "The text could not be read here: use the download link.";
  }
}
