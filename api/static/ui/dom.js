// Building the DOM. The rule: every string lands as a text node (textContent), never as markup.
// Prompts, errors, model names and ids come from users or providers; parsed as HTML they would be
// script. The page's CSP also forbids string-to-HTML sinks (require-trusted-types-for), so one
// slipped in anywhere would throw instead of rendering.

/** An element: `h("a", {href: url, class: "x"}, "text", child, ...)`; attributes set with
 *  setAttribute (no on* handlers as strings), `null`/`undefined`/`false` children skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) throw new Error(`set ${name} with addEventListener`);
    el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A date as the reader's local time, with the ISO string as the tooltip. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Seconds between two ISO times, like "3.2 s"; "" when either is missing. */
export function seconds(fromIso, toIso) {
  if (!fromIso || !toIso) return "";
  const ms = new Date(toIso) - new Date(fromIso);
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "";
}

/** A "copy" button and its status line for the text of `target` (a <pre> or <code>). Without
 *  clipboard permission (an http:// origin other than localhost) it selects the text for Ctrl-C. */
export function copyControl(target, label, id) {
  const button = h("button", { type: "button", id }, label);
  const done = h("span", { class: "muted", role: "status" });
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(target.textContent);
      done.textContent = "Copied.";
    } catch {
      getSelection().selectAllChildren(target);
      done.textContent = "Selected: press Ctrl-C to copy.";
    }
  });
  return h("span", { class: "copy" }, button, " ", done);
}

/** A table: `columns` are header texts, `rows` arrays of cells (strings or nodes). Scrolls sideways
 *  in its own box at phone width instead of widening the page. */
export function table(columns, rows, attrs = {}) {
  return h("div", { class: "table-scroll" }, h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c)))))));
}
