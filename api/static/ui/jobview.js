// Pieces of a job shared by the gallery and the job page: its status badge and its output preview.
import { h } from "./dom.js";

export const STATUSES = ["queued", "processing", "completed", "failed", "cancelled"];

/** The status badge; `data-status` carries the value for styling and for tests. */
export function badge(status) {
  return h("span", { class: `badge badge-${STATUSES.includes(status) ? status : "unknown"}`, "data-status": status },
    status);
}

/** The output shown in place, by its media type: image, video or audio player, else a link.
 *  Output URLs are public capability URLs (/o/...): the elements load them directly. */
export function preview(job, { thumbnail = false } = {}) {
  const output = job.output;
  if (!output || !output.url) return null;
  const kind = String(output.media_type || "").split("/")[0];
  const label = `Output of ${job.job_id}`;
  if (kind === "image") {
    return h("img", { src: output.url, alt: label, loading: "lazy", class: thumbnail ? "thumb" : "full" });
  }
  if (kind === "video") {
    return h("video", { src: output.url, controls: true, preload: "metadata", "aria-label": label,
                        class: thumbnail ? "thumb" : "full" });
  }
  if (kind === "audio") {
    return h("audio", { src: output.url, controls: true, preload: "none", "aria-label": label });
  }
  return h("a", { href: output.url, class: "file" }, output.media_type || "output");
}

/** "fal:flux-schnell" → ["fal", "flux-schnell"]. */
export function splitModel(model) {
  const text = String(model || "");
  const colon = text.indexOf(":");
  return colon === -1 ? ["", text] : [text.slice(0, colon), text.slice(colon + 1)];
}
