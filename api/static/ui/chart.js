// A bar chart of spend per day, drawn as SVG elements (no library, no canvas). As dom.js's h(),
// every string lands as a text node and every attribute through setAttribute: nothing is parsed.
// The chart is one image to assistive technology (role="img", a summary as its label); the
// numbers behind it are in the page's per-day table.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
// Room around the plot: the y axis's dollar labels on the left, the day labels below.
const MARGIN = { top: 12, right: 8, bottom: 28, left: 60 };
// Day labels are at least this many pixels apart, so they never overlap ("MM-DD" is ~36 px).
const LABEL_SPACING = 52;

/** An SVG element: `svg("rect", {x: 1, class: "bar"}, child, "text", ...)`. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (name.startsWith("on")) throw new Error(`set ${name} with addEventListener`);
    el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The y axis's ticks in whole cents, 0 up to at least `max`: steps of 1, 2 or 5 × 10^k cents,
 *  about four of them, so labels read as round amounts. */
export function ticks(max) {
  const raw = Math.max(max, 1) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].find((m) => raw <= m * power) * power);
  const out = [0];
  while (out[out.length - 1] < max || out.length < 2) out.push(out[out.length - 1] + step);
  return out;
}

/** The chart of `days` ([{day: "2026-12-04", cents, jobs}], one per day, in order) at `width` px.
 *  `money(cents)` formats amounts; `label` is the summary assistive technology reads. */
export function spendChart(days, { width, money, label }) {
  const plotWidth = Math.max(width - MARGIN.left - MARGIN.right, 40);
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const scale = ticks(Math.max(0, ...days.map((d) => d.cents)));
  const top = scale[scale.length - 1];
  const slot = plotWidth / Math.max(days.length, 1);
  const y = (cents) => MARGIN.top + plotHeight - (cents / top) * plotHeight;
  const chart = svg("svg", { class: "chart", role: "img", "aria-label": label, width: MARGIN.left + plotWidth + MARGIN.right,
                             height: HEIGHT, viewBox: `0 0 ${MARGIN.left + plotWidth + MARGIN.right} ${HEIGHT}` });
  chart.append(yAxis(scale, y, plotWidth, money), xAxis(days, slot, plotHeight));
  const bars = svg("g", { class: "bars" });
  days.forEach((d, i) => bars.append(bar(d, i, slot, y, plotHeight, money)));
  chart.append(bars);
  return chart;
}

function yAxis(scale, y, plotWidth, money) {
  const axis = svg("g", { class: "axis axis-y" });
  for (const cents of scale) {
    axis.append(svg("line", { class: cents === 0 ? "baseline" : "grid", x1: MARGIN.left, x2: MARGIN.left + plotWidth,
                              y1: y(cents), y2: y(cents) }),
                svg("text", { x: MARGIN.left - 6, y: y(cents), "text-anchor": "end", "dominant-baseline": "middle" },
                    money(cents)));
  }
  return axis;
}

function xAxis(days, slot, plotHeight) {
  const axis = svg("g", { class: "axis axis-x" });
  const every = Math.max(1, Math.ceil(LABEL_SPACING / slot));
  days.forEach((d, i) => {
    if (i % every !== 0) return;
    axis.append(svg("text", { x: MARGIN.left + (i + 0.5) * slot, y: MARGIN.top + plotHeight + 18,
                              "text-anchor": "middle" }, d.day.slice(5)));
  });
  return axis;
}

// One day: a bar as tall as its spend (0 high on a day without any) and, behind it, a column the
// height of the plot, so a day's tooltip (<title>) shows on hover even when its bar is empty.
function bar(d, i, slot, y, plotHeight, money) {
  const x = MARGIN.left + i * slot;
  const gap = slot > 4 ? slot * 0.15 : 0;
  const jobs = `${d.jobs} job${d.jobs === 1 ? "" : "s"}`;
  return svg("g", { class: "day", "data-day": d.day },
    svg("title", {}, `${d.day}: ${money(d.cents)}, ${jobs}`),
    svg("rect", { class: "column", x, y: MARGIN.top, width: slot, height: plotHeight }),
    svg("rect", { class: "bar", "data-day": d.day, "data-cents": d.cents, x: x + gap, y: y(d.cents),
                  width: Math.max(slot - 2 * gap, 0.5), height: MARGIN.top + plotHeight - y(d.cents) }));
}
