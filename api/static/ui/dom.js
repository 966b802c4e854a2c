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
