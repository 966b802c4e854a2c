// The Jobs gallery: every job of the account, newest first, output previewed in place, status
// badges kept live, filters by status, capability and model, and infinite scroll on `next_cursor`.
import { listJobs, call } from "./api.js";
import { h, fill, when } from "./dom.js";
import { STATUSES, badge, preview, splitModel } from "./jobview.js";
import { follow, TERMINAL } from "./stream.js";

const PAGE = 24;
const CAPABILITIES = ["image", "video", "speech", "music", "transcription"];
// Streams an account may hold are capped server-side (GENGATE_SSE_MAX_STREAMS_PER_ACCOUNT, 20): the
// gallery follows at most this many active jobs live; the periodic refresh catches up the rest.
const MAX_STREAMS = 6;
// How often the first page is re-read, to show jobs created since (by any client) and statuses of
// active jobs beyond MAX_STREAMS.
const REFRESH_MS = 4000;

export function renderGallery(main) {
  const filters = { status: "", capability: "", model: "" };
  const cards = new Map();  // job_id -> {card, job}
  const streams = new Map();  // job_id -> stop()
  let cursor = null;
  let loading = false;
  let generation = 0;  // bumps when filters change: answers for older filters are dropped
  let disposed = false;

  // Not aria-live: cards are replaced as statuses change, which would read the list out each time.
  const list = h("ol", { class: "gallery", id: "gallery", "aria-label": "Jobs, newest first" });
  const status = h("p", { class: "list-status", role: "status" });
  const more = h("button", { type: "button", id: "load-more", hidden: true }, "Load more");
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });

  const select = (name, label, values) => {
    const el = h("select", { id: `filter-${name}`, name },
      h("option", { value: "" }, `Any ${label.toLowerCase()}`), values.map((v) => h("option", { value: v }, v)));
    el.addEventListener("change", () => { filters[name] = el.value; reload(); });
    return h("label", {}, h("span", {}, label), el);
  };
  const models = h("datalist", { id: "model-names" });
  const modelInput = h("input", { id: "filter-model", name: "model", list: "model-names", type: "search",
                                   placeholder: "e.g. flux-schnell", autocomplete: "off" });
  modelInput.addEventListener("change", () => { filters.model = modelInput.value.trim(); reload(); });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
    select("status", "Status", STATUSES), select("capability", "Capability", CAPABILITIES),
    h("label", {}, h("span", {}, "Model"), modelInput), models);
  form.addEventListener("submit", (e) => { e.preventDefault(); filters.model = modelInput.value.trim(); reload(); });

  fill(main, h("h1", {}, "Jobs"), form, status, list, sentinel, more);
  call("models").then((body) => fill(models, body.models.map((m) => h("option", { value: m.name }))))
    .catch(() => {});  // only suggestions: the filter works without them

  function card(job) {
    const [provider, name] = splitModel(job.model);
    const shown = preview(job, { thumbnail: true });
    return h("li", { class: "card", "data-job-id": job.job_id, "data-status": job.status },
      h("a", { href: `#/jobs/${encodeURIComponent(job.job_id)}`, class: "card-link",
               "aria-label": `Job ${job.job_id}, ${name}, ${job.status}` },
        h("div", { class: "card-media" }, shown || h("span", { class: "placeholder" }, job.status)),
        h("div", { class: "card-meta" },
          badge(job.status),
          h("span", { class: "model" }, name),
          h("span", { class: "provider" }, provider),
          h("time", { datetime: job.created_at, title: job.created_at }, when(job.created_at)))));
  }

  // Put `job` in the list: update its card if shown (only when something changed), else add it
  // at its place by created_at (newest first).
  function upsert(job, { atTop = false } = {}) {
    const known = cards.get(job.job_id);
    if (known) {
      if (known.job.status === job.status && JSON.stringify(known.job) === JSON.stringify(job)) return;
      const fresh = card(job);
      known.card.replaceWith(fresh);
      cards.set(job.job_id, { card: fresh, job });
    } else {
      if (!matches(job)) return;
      const fresh = card(job);
      if (atTop) {
        const after = [...cards.values()].find((c) => c.job.created_at < job.created_at);
        list.insertBefore(fresh, after ? after.card : null);
      } else {
        list.append(fresh);
      }
      cards.set(job.job_id, { card: fresh, job });
    }
    watch(job);
  }

  const matches = (job) => !filters.status || job.status === filters.status || cards.has(job.job_id);

  function watch(job) {
    if (TERMINAL.has(job.status)) {
      streams.get(job.job_id)?.();
      streams.delete(job.job_id);
      return;
    }
    if (streams.has(job.job_id) || streams.size >= MAX_STREAMS || disposed) return;
    streams.set(job.job_id, follow(job.job_id, (update) => upsert(update)));
  }

  async function loadPage() {
    if (loading || disposed) return;
    loading = true;
    const mine = generation;
    status.textContent = "Loading…";
    try {
      const page = await listJobs({ ...filters, limit: PAGE, cursor });
      if (mine !== generation) return;
      page.jobs.forEach((job) => upsert(job));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent = cards.size ? "" : (cursor ? "" : "No jobs yet.");
    } catch (error) {
      if (mine === generation) status.textContent = `Could not load jobs: ${error.message}`;
    } finally {
      loading = false;
    }
    // A filtered page may hold few jobs yet have more after it: keep reading while the end is in view.
    if (mine === generation && cursor && inView(sentinel)) loadPage();
  }

  function reload() {
    generation += 1;
    for (const stop of streams.values()) stop();
    streams.clear();
    cards.clear();
    list.replaceChildren();
    cursor = null;
    loading = false;
    loadPage();
  }

  async function refreshHead() {
    const mine = generation;
    try {
      const page = await listJobs({ ...filters, limit: PAGE });
      if (mine === generation && !disposed) page.jobs.forEach((job) => upsert(job, { atTop: true }));
    } catch { /* the next refresh tries again */ }
  }

  more.addEventListener("click", loadPage);
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && cursor) loadPage();
  }, { rootMargin: "400px" });
  observer.observe(sentinel);
  const timer = setInterval(refreshHead, REFRESH_MS);
  loadPage();

  return () => {
    disposed = true;
    clearInterval(timer);
    observer.disconnect();
    for (const stop of streams.values()) stop();
  };
}

function inView(el) {
  const box = el.getBoundingClientRect();
  return box.top < window.innerHeight + 400;
}
