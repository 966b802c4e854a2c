// CSV of usage records, and saving text as a file. The CSV is RFC 4180: a header row, CRLF line
// ends, a field quoted (its quotes doubled) when it holds a comma, a quote or a line break.
import { h } from "./dom.js";

// The fields of a usage record (api/schemas.py UsageRecord), in the API's order. A field a newer
// gateway adds comes after them, so an export never drops what the API sent.
const KNOWN_FIELDS = ["job_id", "model", "capability", "cost_cents", "cache_hit", "created_at", "completed_at"];

/** The columns of `records`: the known fields, then any other field in the order first seen. */
export function columnsOf(records) {
  const columns = [...KNOWN_FIELDS];
  const seen = new Set(columns);
  for (const record of records) {
    for (const name of Object.keys(record)) {
      if (!seen.has(name)) { seen.add(name); columns.push(name); }
    }
  }
  return columns;
}

/** Text a spreadsheet would run as a formula (it starts with = + - @, or a tab or carriage return
 *  that some strip first) gets a leading apostrophe, which spreadsheets show as text. Only strings:
 *  a number such as a negative amount stays a number. */
export function neutralise(text) {
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

/** One field: strings neutralised, booleans and numbers as JSON spells them, anything nested as
 *  JSON, missing as empty; quoted when RFC 4180 requires it. */
export function csvField(value) {
  let text;
  if (value === null || value === undefined) text = "";
  else if (typeof value === "string") text = neutralise(value);
  else if (typeof value === "object") text = neutralise(JSON.stringify(value));
  else text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The whole file: the header row, then one row per record, every line ended by CRLF. */
export function toCsv(records, columns = columnsOf(records)) {
  const rows = [columns.map(csvField).join(",")];
  for (const record of records) rows.push(columns.map((name) => csvField(record[name])).join(","));
  return rows.join("\r\n") + "\r\n";
}

// How long an object URL outlives the click that downloads it: the browser reads the Blob after
// the click returns (some browsers only then), and the URL is revoked so the Blob can be freed.
const REVOKE_AFTER_MS = 1000;

/** Saves `text` as a file named `name`: a Blob behind an object URL, clicked through a
 *  detached-after-use <a download>. No server round trip: the data is what the page already read. */
export function saveText(text, name, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);  // some browsers download only from a link in the document
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER_MS);
}
