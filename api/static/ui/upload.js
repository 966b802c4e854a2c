// An input file of a request: a URL field, filled in by uploading a file through POST /v1/files
// (chosen with the file input, or dropped on the zone) or typed by hand. The request carries the
// URL only, as any client's would: the upload is a separate call whose answer names the file.
import { call } from "./api.js";
import { h } from "./dom.js";

// What the file picker offers for each kind of input a mode takes (config/catalog.py MODE_FILES).
const ACCEPT = { image: "image/*", video: "video/*", audio: "audio/*", visual: "image/*,video/*" };

/** A file field: `{element, url()}`. `id` prefixes its controls' ids; a finished upload fires an
 *  `input` event from the URL field (it bubbles), so the form sees the change as it sees typing. */
export function fileField(id, label, kind) {
  const picker = h("input", { type: "file", id: `${id}-file`, accept: ACCEPT[kind] || null, class: "pg-file" });
  const url = h("input", { type: "url", id: `${id}-url`, name: `${id}-url`, inputmode: "url", autocomplete: "off",
                           placeholder: "https://… (or upload a file)", class: "pg-url" });
  const status = h("p", { class: "pg-upload-status muted", id: `${id}-status`, role: "status" });
  const zone = h("div", { class: "pg-drop", id: `${id}-drop`, "data-kind": kind },
    h("label", { for: `${id}-file` }, label),
    picker,
    h("span", { class: "muted" }, "or drop a file here"),
    h("label", { for: `${id}-url`, class: "pg-sublabel" }, `${label}: URL`),
    url, status);

  async function upload(file) {
    status.classList.remove("error");
    status.textContent = `Uploading ${file.name} (${size(file.size)})…`;
    try {
      // The raw bytes as the body, their type as Content-Type: api/routes/files.py streams it.
      const answer = await call("files", { method: "POST", body: file,
                                           headers: { "Content-Type": file.type || "application/octet-stream" } });
      url.value = answer.url;
      url.dispatchEvent(new Event("input", { bubbles: true }));
      status.textContent = `Uploaded ${file.name} as ${answer.file_id}${answer.deduplicated ? " (already stored)" : ""}.`;
      zone.dataset.fileId = answer.file_id;
    } catch (error) {
      status.classList.add("error");
      status.textContent = `Could not upload ${file.name}: ${error.message}`;
    }
  }

  picker.addEventListener("change", () => { if (picker.files.length) upload(picker.files[0]); });
  // dragover must be cancelled for the zone to accept a drop; the drop's default (opening the file
  // in the tab, leaving the dashboard) is cancelled too.
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("pg-over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("pg-over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("pg-over");
    const file = event.dataTransfer?.files?.[0];
    if (file) upload(file);
  });
  return { element: zone, url: () => url.value.trim() };
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
