// Operators (#/operators): the whole gateway at a glance, from GET /v1/admin/overview with the admin
// key set on the settings page: workers alive, queue depths, each provider's circuit, call success
// and latency, its jobs and error rate,
// and the last failed jobs of every account. Refreshed every REFRESH_MS while the view is open.
import { call } from "./api.js";
import { h, fill, when, table } from "./dom.js";
import { adminKey } from "./session.js";

const REFRESH_MS = 5000;

export function renderOperators(main) {
  const body = h("div", { id: "operators" }, h("p", { role: "status" }, "Loading…"));
  const stamp = h("p", { class: "muted", id: "operators-updated", "aria-live": "off" });
  fill(main, h("h1", {}, "Operators"), stamp, body);
  if (!adminKey()) {
    fill(body, h("p", { id: "operators-locked" }, "This page needs the operator's admin key: set it on ",
      h("a", { href: "#/settings" }, "Keys & settings"), "."));
    return () => {};
  }
  let timer = null;
  let disposed = false;
  async function refresh() {
    try {
      const view = await call("admin/overview", { key: adminKey() });
      if (disposed) return;
      fill(body, ...sections(view));
      stamp.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (disposed) return;
      fill(body, h("p", { class: "error", role: "alert", id: "operators-error" }, error.status === 401
        ? `The admin key was refused: ${error.message}` : `Could not load the overview: ${error.message}`));
    }
    if (!disposed) timer = setTimeout(refresh, REFRESH_MS);
  }
  refresh();
  return () => { disposed = true; clearTimeout(timer); };
}

function sections(view) {
  const percent = (rate) => (rate === null ? "—" : `${(rate * 100).toFixed(1)} %`);
  return [
    h("section", { "aria-labelledby": "ops-workers" },
      h("h2", { id: "ops-workers" }, `Workers: ${view.workers_alive} alive`),
      table(["Worker", "Last seen", "State"], view.workers.map((w) => [
        h("code", {}, w.name), `${w.seen_seconds_ago} s ago`, w.alive ? "alive" : "gone"]), { id: "ops-workers-table" })),
    h("section", { "aria-labelledby": "ops-queues" },
      h("h2", { id: "ops-queues" }, "Queues"),
      table(["Queue", "Waiting"], view.queues.map((q) => [q.queue, String(q.depth)]), { id: "ops-queues-table" }),
      h("p", { class: "muted" }, `${view.unacked} taken by workers, ${view.scheduled} in the sweeper's schedule, `,
        `${view.webhooks_pending} webhook deliveries pending.`)),
    h("section", { "aria-labelledby": "ops-providers" },
      h("h2", { id: "ops-providers" }, "Providers"),
      table(["Provider", "Circuit", "Calls OK", "p50", "Jobs", "Completed", "Failed", "Cancelled", "Error rate"],
        view.providers.map((p) => [
          p.provider, h("span", { class: `circuit circuit-${p.circuit}` }, p.circuit.replace("_", "-")),
          percent(p.success_rate), p.latency_p50_ms === null ? "—" : `${Math.round(p.latency_p50_ms)} ms`,
          String(p.created), String(p.completed), String(p.failed), String(p.cancelled), percent(p.error_rate)]),
        { id: "ops-providers-table" }),
      h("p", { class: "muted" }, "Circuit: closed (calls go), open (new jobs go to the model's next provider), ",
        "half-open (one probe call). Calls OK and p50: the provider's last 100 calls.")),
    h("section", { "aria-labelledby": "ops-failures" },
      h("h2", { id: "ops-failures" }, "Recent failures"),
      view.recent_failures.length ? table(["When", "Job", "Model", "Account", "Error"], view.recent_failures.map((f) => [
        when(f.updated_at || f.created_at), h("code", {}, f.job_id), f.model, h("code", {}, f.account),
        h("span", { class: "error" }, f.error || f.code || "")]), { id: "ops-failures-table" })
        : h("p", { class: "muted" }, "No failed jobs.")),
  ];
}
