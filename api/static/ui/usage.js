// The Usage page (#/usage): the balance; for a period of UTC days, its spend per day (a chart and a
// table), per model, its total checked against the records, and every record as a CSV file. All of
// it from GET /v1/balance and GET /v1/usage, read a page of 1,000 records at a time.
import { call } from "./api.js";
import { h, fill } from "./dom.js";
import { splitModel } from "./jobview.js";
import { spendChart } from "./chart.js";
import { saveText, toCsv } from "./csv.js";

const PAGE = 1000;  // the API's largest page
// The most records the page holds (~8 MB of JSON): a longer period is shown up to here, and says so.
const MAX_RECORDS = 50_000;
// The longest period: one bar per day stays readable, and the API sums a closed range of up to 366
// days field by field.
const MAX_DAYS = 366;
const DEFAULT_DAYS = 30;
const DAY_MS = 86_400_000;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

// --- UTC days, as "YYYY-MM-DD" (the API's days are UTC, whatever the reader's time zone) ---------

const today = () => new Date().toISOString().slice(0, 10);
const addDays = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
const dayCount = (from, to) => Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS) + 1;

/** Every day from `from` to `to`, both included. */
function daysOf(from, to) {
  const out = [];
  for (let day = from; day <= to; day = addDays(day, 1)) out.push(day);
  return out;
}

/** The UTC day a record counts on: when its job ended (`completed_at`, the day the API's period
 *  and totals go by), else, for a record from before gengate wrote that field, when it was created;
 *  null if the time does not parse. */
function recordDay(record) {
  const time = Date.parse(String(record.completed_at || record.created_at || ""));
  return Number.isNaN(time) ? null : new Date(time).toISOString().slice(0, 10);
}

// --- amounts -------------------------------------------------------------------------------------

const dollars = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
/** Cents as dollars, "$1,234.56" ("-$0.50" when below zero). */
const money = (cents) => dollars.format(cents / 100);
const count = (n) => n.toLocaleString("en-US");

// --- reading -------------------------------------------------------------------------------------

/** The period's records, page after page until `next_cursor` is null (or MAX_RECORDS are read),
 *  and its total. The total is the last page's: each page carries the whole period's, read with
 *  that page, so the last one also counts jobs completed while the earlier pages were read. */
async function readPeriod(from, to, signal, progress) {
  const records = [];
  let cursor = null;
  let total = 0;
  do {
    const page = await call("usage", { params: { from, to, limit: PAGE, cursor }, signal });
    for (const record of page.usage) records.push(record);
    total = page.total_cents;
    cursor = page.next_cursor;
    progress(records.length);
  } while (cursor && records.length < MAX_RECORDS);
  return { records, total, capped: Boolean(cursor) };
}

/** Per day (every day of the period, 0 when nothing was spent) and per model. */
function summarise(records, days) {
  const perDay = new Map(days.map((day) => [day, { day, cents: 0, jobs: 0 }]));
  const perModel = new Map();
  let sum = 0;
  let early = 0;
  for (const r of records) {
    const cents = Number(r.cost_cents) || 0;
    sum += cents;
    // Charted on the day it counts on. Only an older record without `completed_at`, charted by its
    // creation, can fall before the period (created before, completed in it): on its first day.
    let day = recordDay(r) || days[0];
    if (day < days[0]) { early += 1; day = days[0]; }
    if (day > days[days.length - 1]) day = days[days.length - 1];  // a clock ahead of UTC: still counted
    const slot = perDay.get(day);
    if (slot) { slot.cents += cents; slot.jobs += 1; }
    const model = perModel.get(r.model) || { model: r.model, capability: r.capability, jobs: 0, cents: 0, hits: 0, free: 0 };
    model.jobs += 1;
    model.cents += cents;
    if (r.cache_hit) model.hits += 1;
    else if (cents === 0) model.free += 1;
    perModel.set(r.model, model);
  }
  const models = [...perModel.values()].sort((a, b) => b.cents - a.cents || b.jobs - a.jobs
    || String(a.model).localeCompare(String(b.model)));
  return { perDay: [...perDay.values()], models, sum, early };
}

// --- the page ------------------------------------------------------------------------------------

export function renderUsage(main) {
  let controller = null;  // the period being read: aborted when another is asked for, or on leaving
  let resize = null;
  const balance = h("p", { class: "balance" }, h("span", { class: "muted" }, "Balance "),
    h("strong", { id: "balance" }, "…"));
  const fromInput = h("input", { id: "usage-from", name: "from", type: "date", required: true });
  const toInput = h("input", { id: "usage-to", name: "to", type: "date", required: true });
  toInput.value = today();
  fromInput.value = addDays(toInput.value, 1 - DEFAULT_DAYS);
  const problem = h("p", { class: "error", role: "alert", id: "usage-error" });
  const form = h("form", { class: "filters period", id: "usage-period", "aria-label": "Period" },
    h("label", { for: "usage-from" }, h("span", {}, "From (UTC day)"), fromInput),
    h("label", { for: "usage-to" }, h("span", {}, "To (UTC day, included)"), toInput),
    h("button", { type: "submit" }, "Show"));
  const status = h("p", { class: "list-status", role: "status", id: "usage-status" });
  const results = h("div", { id: "usage-results", class: "usage-results" });
  fill(main, h("h1", {}, "Usage"), balance, form, problem, status, results);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });

  async function showBalance() {
    const cell = balance.querySelector("#balance");
    try {
      const body = await call("balance");
      cell.textContent = money(body.balance_cents);
      cell.dataset.cents = body.balance_cents;
    } catch (error) {
      if (error.name !== "AbortError") cell.textContent = `unavailable (${error.message})`;
    }
  }

  /** The period the form asks for, or null after saying what is wrong with it. */
  function period() {
    const from = fromInput.value;
    const to = toInput.value;
    let wrong = "";
    if (!DAY.test(from) || !DAY.test(to)) wrong = "Choose both days of the period.";
    else if (to < from) wrong = "The period must end on or after the day it starts.";
    else if (dayCount(from, to) > MAX_DAYS) wrong = `Choose at most ${MAX_DAYS} days.`;
    problem.textContent = wrong;
    for (const input of [fromInput, toInput]) {
      if (wrong) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
    return wrong ? null : { from, to };
  }

  async function load() {
    const asked = period();
    if (!asked) return;
    controller?.abort();
    const mine = (controller = new AbortController());
    resize?.disconnect();
    fill(results);
    status.textContent = "Loading…";
    showBalance();
    try {
      const read = await readPeriod(asked.from, asked.to, mine.signal, (n) => {
        if (n >= PAGE) status.textContent = `Reading usage records… ${count(n)} so far.`;
      });
      if (mine.signal.aborted) return;
      status.textContent = "";
      show(asked, read);
    } catch (error) {
      if (error.name === "AbortError" || mine.signal.aborted) return;
      status.textContent = "";
      fill(results, h("p", { class: "error", role: "alert" }, `Could not load usage: ${error.message}`));
    }
  }

  function show({ from, to }, { records, total, capped }) {
    const days = daysOf(from, to);
    const summary = summarise(records, days);
    const notes = checks(summary, total, records.length, capped);
    const head = h("section", { class: "period-summary", "aria-label": "Period total" },
      h("p", {}, "Total ", h("strong", { id: "period-total", "data-cents": total }, money(total)),
        ` for ${count(records.length)} job${records.length === 1 ? "" : "s"}, ${from} to ${to} (UTC).`),
      ...notes);
    if (!records.length) {
      fill(results, head, h("p", { class: "empty", id: "usage-empty" }, `No completed jobs between ${from} and ${to}.`));
      return;
    }
    const chartBox = h("div", { class: "chart-box", id: "spend-chart" });
    fill(results, head, exportButton(from, to, records),
      h("section", { "aria-labelledby": "per-day-title" }, h("h2", { id: "per-day-title" }, "Spend per day (UTC)"),
        chartBox, dayTable(summary.perDay)),
      h("section", { "aria-labelledby": "per-model-title" }, h("h2", { id: "per-model-title" }, "By model"),
        modelTable(summary.models, summary.sum, records.length),
        h("p", { class: "muted note" }, "Not charged: jobs that cost nothing without being cache hits ",
          "(run with your own provider key, or sharing another job's provider call).")));
    drawChart(chartBox, summary.perDay, from, to, summary.sum);
  }

  // The chart is drawn at its box's width in pixels (so its text stays legible at any width) and
  // again when that width changes.
  function drawChart(box, perDay, from, to, sum) {
    const label = chartLabel(perDay, from, to, sum);
    let drawn = 0;
    const draw = () => {
      const width = Math.floor(box.clientWidth);
      if (!width || width === drawn) return;
      drawn = width;
      fill(box, spendChart(perDay, { width, money, label }));
    };
    resize = new ResizeObserver(draw);
    resize.observe(box);
    draw();
  }

  load();  // the default period, and the balance with it
  return () => { controller?.abort(); resize?.disconnect(); };
}

/** Notes under the total: whether the records add up to it, and why not when they do not. */
function checks(summary, total, n, capped) {
  const notes = [];
  if (capped) {
    notes.push(h("p", { class: "warning", id: "usage-capped" }, `This period holds more than ${count(MAX_RECORDS)} `,
      `records: the chart, the tables and the CSV show the first ${count(n)} (oldest first). Choose fewer days `,
      "to see all of it."));
  }
  if (summary.sum === total) {
    notes.push(h("p", { class: "muted", id: "total-check", "data-ok": "true" },
      "The records add up to this total."));
  } else if (!capped) {
    notes.push(h("p", { class: "warning", id: "total-check", "data-ok": "false" },
      `The records add up to ${money(summary.sum)}, not the ${money(total)} the gateway totals for the period. `,
      "Reload to read it again; if it stays, tell your operator."));
  }
  if (summary.early) {
    notes.push(h("p", { class: "muted", id: "usage-early" },
      `${count(summary.early)} job${summary.early === 1 ? " was" : "s were"} created before the period and `,
      "completed in it: charted on its first day."));
  }
  return notes;
}

function chartLabel(perDay, from, to, sum) {
  const top = perDay.reduce((best, d) => (d.cents > best.cents ? d : best), perDay[0]);
  const spent = perDay.filter((d) => d.cents > 0).length;
  const most = top.cents > 0 ? ` Highest: ${money(top.cents)} on ${top.day}.` : "";
  return `Spend per UTC day from ${from} to ${to}: ${money(sum)} over ${perDay.length} days, ` +
    `${spent} with spend.${most} The table below lists every day.`;
}

function exportButton(from, to, records) {
  const button = h("button", { type: "button", id: "export-csv" }, "Export CSV");
  const done = h("span", { class: "muted", role: "status" });
  button.addEventListener("click", () => {
    saveText(toCsv(records), `gengate-usage-${from}-to-${to}.csv`);
    done.textContent = `Saved ${count(records.length)} record${records.length === 1 ? "" : "s"}.`;
  });
  return h("p", { class: "export" }, button, " ", done);
}

/** A table in its own horizontally scrolling box (focusable, so the keyboard can scroll it). */
function scrollBox(label, table) {
  return h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

function dayTable(perDay) {
  const rows = perDay.map((d) => h("tr", { "data-day": d.day },
    h("th", { scope: "row" }, d.day), h("td", { class: "num" }, count(d.jobs)), h("td", { class: "num" }, money(d.cents))));
  return h("details", { class: "per-day" }, h("summary", {}, "Spend per day as a table"),
    scrollBox("Spend per day", h("table", { id: "day-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Day (UTC)"), h("th", { scope: "col", class: "num" }, "Jobs"),
        h("th", { scope: "col", class: "num" }, "Spend"))),
      h("tbody", {}, rows))));
}

function modelTable(models, sum, jobs) {
  const num = (value) => h("td", { class: "num" }, value);
  const rows = models.map((m) => {
    const [provider, name] = splitModel(m.model);
    return h("tr", { "data-model": m.model },
      h("th", { scope: "row" }, name), h("td", {}, provider || "—"), h("td", {}, m.capability || "—"),
      num(count(m.jobs)), num(money(m.cents)), num(count(m.hits)), num(count(m.free)));
  });
  const col = (text, numeric) => h("th", { scope: "col", class: numeric ? "num" : null }, text);
  return scrollBox("Usage by model", h("table", { id: "model-table" },
    h("thead", {}, h("tr", {}, col("Model"), col("Provider"), col("Capability"), col("Jobs", true),
      col("Spend", true), col("Cache hits", true), col("Not charged", true))),
    h("tbody", {}, rows),
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3" }, "All models"), num(count(jobs)), num(money(sum)),
      num(count(models.reduce((n, m) => n + m.hits, 0))), num(count(models.reduce((n, m) => n + m.free, 0)))))));
}
