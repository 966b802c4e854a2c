// Following a job's SSE stream (/v1/jobs/{id}/stream). EventSource cannot send an Authorization
// header, so this reads the stream with fetch() and parses the text/event-stream lines itself.
// On a dropped connection (or the server's time cap) it reconnects with Last-Event-ID, so the server
// replays only what came after the last event seen; it stops at a terminal status or on stop().
import { apiUrl, authHeaders } from "./api.js";

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const RETRY_MS = [1000, 2000, 5000, 10000];

/** Calls onJob(job) for each `status` event; returns stop(). */
export function follow(jobId, onJob) {
  const abort = new AbortController();
  let lastId = null;
  let failures = 0;

  async function connect() {
    while (!abort.signal.aborted) {
      let ended = false;
      try {
        const headers = authHeaders(undefined, { Accept: "text/event-stream" });
        if (lastId) headers["Last-Event-ID"] = lastId;
        const answer = await fetch(apiUrl(`jobs/${encodeURIComponent(jobId)}/stream`),
          { headers, signal: abort.signal, cache: "no-store" });
        // 4xx other than 429 (too many streams): retrying will not help (gone, signed out).
        if (!answer.ok && answer.status !== 429 && answer.status < 500) return;
        if (answer.ok) {
          failures = 0;
          ended = await read(answer.body, (event) => {
            if (event.id) lastId = event.id;
            if (event.type !== "status") return false;
            const job = JSON.parse(event.data);
            onJob(job);
            return TERMINAL.has(job.status);
          });
        }
      } catch (error) {
        if (abort.signal.aborted) return;
      }
      if (ended) return;
      await sleep(RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)], abort.signal);
    }
  }

  connect();
  return () => abort.abort();
}

/** Reads events until the stream ends or `handle` returns true; resolves to whether it did. */
async function read(body, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", id: null, data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      // Lines end in \n, \r\n or \r (the SSE spec); the last piece may be incomplete.
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {  // a blank line dispatches the event
          if (event.data.length) {
            if (handle({ type: event.type, id: event.id, data: event.data.join("\n") })) return true;
          }
          event = { type: "message", id: event.id, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;  // a comment: the keepalive
        const colon = line.indexOf(":");
        const name = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (name === "event") event.type = value;
        else if (name === "data") event.data.push(value);
        else if (name === "id") event.id = value;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
