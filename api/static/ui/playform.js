// One capability's form in the Playground, built from GET /v1/models: a model picker showing each
// model's modes and price, then only the fields the chosen model and mode take (its aspect ratios,
// its durations, its input files, a voice from GET /v1/voices). `request()` is the exact request
// Submit sends, and the one the curl and Python snippets print: one function, so they cannot differ.
import { h, fill } from "./dom.js";
import { fileField } from "./upload.js";
import { priceText, estimate } from "./pricing.js";

const FILE_LABELS = { image: "Image", video: "Video", audio: "Audio", visual: "Image or video" };
// The longest prompt (speech: text) each endpoint takes (api/schemas.py); a model may take less.
const TEXT_LIMITS = { image: 20000, video: 20000, music: 5000, speech: 50000 };

/** A field the form cannot turn into a request yet (a missing file, options that are not JSON). */
export class FormProblem extends Error {}

export function capabilityForm(capability, models, voices) {
  const choices = models.filter((m) => m.capability === capability);
  const model = select("pg-model", "model", choices.map((m) => [m.name, modelLabel(m)]));
  const mode = select("pg-mode", "mode", []);
  const provider = select("pg-provider", "provider", []);
  const providerRow = row("pg-provider", "Provider", provider);
  const modeRow = row("pg-mode", "Mode", mode);
  const info = h("p", { id: "pg-model-info", class: "muted" });
  const speech = capability === "speech";
  const prompt = h("textarea", { id: "pg-prompt", name: speech ? "text" : "prompt", rows: 4, required: true });
  const promptRow = row("pg-prompt", speech ? "Text" : "Prompt", prompt);
  const voice = select("pg-voice", "voice", voices.map((v) => [v.voice_id, v.name]));
  const language = h("input", { id: "pg-language", name: "language", maxlength: 16, autocomplete: "off",
                                placeholder: "e.g. en (optional)" });
  const options = h("textarea", { id: "pg-options", name: "provider_options", rows: 2, spellcheck: "false",
                                  placeholder: '{"sim": {"latency": 3}}' });
  const optionsHint = h("span", { class: "muted", id: "pg-options-hint" });
  const advanced = h("details", { class: "pg-advanced" }, h("summary", {}, "Provider options (JSON)"),
    h("label", { for: "pg-options" }, "provider_options, passed to the provider as they are."), optionsHint, options);
  const params = h("div", { class: "pg-params" });
  const price = h("p", { id: "pg-price", class: "pg-price" });
  let fields = { ratio: null, duration: null, files: [] };

  const spec = () => choices.find((m) => m.name === model.value) || choices[0];
  const rules = () => spec().parameters[mode.value] || Object.values(spec().parameters)[0];

  // Model or mode changed: the fields that depend on them are made anew for what the mode takes.
  function rebuild() {
    const m = spec();
    const r = rules();
    info.textContent = `${m.provider} · modes: ${m.modes.join(", ")} · ${priceText(m.pricing)} · ` +
      `default request ${estimate(m.pricing, null)}${m.legacy ? " · legacy" : ""}` +
      `${m.delisted ? " · delisted by its provider: it may stop working" : ""}`;
    promptRow.hidden = !r.prompt || capability === "transcription";
    prompt.required = !promptRow.hidden && !m.prompt_optional.includes(mode.value);
    prompt.maxLength = r.max_text_characters || TEXT_LIMITS[capability] || 20000;
    fields = { ratio: ratioField(r), duration: durationField(capability, m, r), files: fileFields(capability, m, mode.value) };
    // Options a mode cannot run without (a remix's video_id) are said, and their field shown.
    const needed = r.required_provider_options;
    optionsHint.textContent = needed.length ? ` This mode requires: ${needed.join(", ")}.` : "";
    if (needed.length) advanced.open = true;
    fill(params, fields.ratio && row("pg-aspect-ratio", "Aspect ratio", fields.ratio),
      fields.duration && row("pg-duration", "Duration (seconds)", fields.duration),
      fields.files.map((f) => f.element));
    showPrice();
  }

  function chooseModel() {
    const modes = spec().modes;
    fill(mode, modes.map((name) => h("option", { value: name }, `${name}${fileHint(spec().inputs[name])}`)));
    modeRow.hidden = modes.length < 2;
    // A model on several providers: automatic (the gateway's routing, with fallback), or one first.
    const routes = spec().providers || [];
    fill(provider, [["", "Automatic (the gateway's routing, with fallback)"],
      ...routes.map((r) => [r.provider, `${r.provider} first — ${priceText(r.pricing)}`])]
      .map(([value, label]) => h("option", { value }, label)));
    providerRow.hidden = routes.length < 2;
    rebuild();
  }

  // The pricing of the route that runs first: the chosen provider's, else the model's first route's.
  const pricing = () => (spec().providers || []).find((r) => r.provider === provider.value)?.pricing || spec().pricing;

  function showPrice() {
    const rate = pricing();
    const units = rate.unit === "character" ? [...prompt.value].length
      : rate.unit === "second" && fields.duration?.value ? Number(fields.duration.value) : null;
    price.textContent = `Price of this request: ${estimate(rate, units)} (${priceText(rate)})`;
  }

  function request() {
    const json = { model: spec().name };
    if (speech) {
      json.text = prompt.value;
      json.voice = voice.value;
    } else if (capability === "transcription") {
      json.audio_url = needUrl(fields.files[0]);
      if (language.value.trim()) json.language = language.value.trim();
    } else {
      json.prompt = promptRow.hidden ? "" : prompt.value;  // a mode without a prompt is sent an empty one
      if (fields.ratio?.value) json.aspect_ratio = fields.ratio.value;
      if (fields.duration?.value) json.duration = Number(fields.duration.value);
      if (fields.files.length) json.files = fields.files.map((f) => ({ url: needUrl(f) }));
    }
    const extra = providerOptions(options.value);
    if (extra !== undefined) json.provider_options = extra;
    if (provider.value) {  // that provider first, the others after it as fallbacks
      json.provider_order = [provider.value, ...spec().providers.map((r) => r.provider).filter((p) => p !== provider.value)];
    }
    return { method: "POST", path: capability, json };
  }

  model.addEventListener("change", chooseModel);
  mode.addEventListener("change", rebuild);
  provider.addEventListener("change", showPrice);
  const form = h("form", { class: "pg-form", id: "pg-form", "aria-label": `${capability} request` },
    row("pg-model", "Model", model), info, providerRow, modeRow, promptRow,
    speech ? row("pg-voice", "Voice", voice) : null,
    capability === "transcription" ? row("pg-language", "Language", language) : null,
    params,
    advanced, price,
    h("p", { class: "pg-actions" }, h("button", { type: "submit", id: "pg-submit" }, "Generate")),
    h("p", { class: "error", id: "pg-error", role: "alert" }));
  form.addEventListener("input", showPrice);
  chooseModel();
  return { form, request };
}

function modelLabel(m) {
  const flags = `${m.legacy ? " (legacy)" : ""}${m.delisted ? " (delisted)" : ""}`;
  return `${m.name}${flags} — ${m.modes.join(", ")} — ${priceText(m.pricing)}`;
}

function fileHint(kinds) {
  return kinds.length ? ` (${kinds.map((k) => FILE_LABELS[k].toLowerCase()).join(" + ")})` : "";
}

function ratioField(rules) {
  if (!rules.aspect_ratios.length) return null;
  return select("pg-aspect-ratio", "aspect_ratio", [["", "The model's default"], ...rules.aspect_ratios.map((r) => [r, r])]);
}

// Listed durations are the only ones the mode takes: a picker. Otherwise any number of seconds
// (music: 3 to 600, api/schemas.py MusicRequest).
function durationField(capability, m, rules) {
  if (!rules.duration) return null;
  const fallback = m.pricing.unit === "second" ? `The default (${m.pricing.default_units} s)` : "The model's default";
  if (rules.durations.length) {
    return select("pg-duration", "duration", [["", fallback], ...rules.durations.map((d) => [String(d), `${d} s`])]);
  }
  return h("input", { id: "pg-duration", name: "duration", type: "number", min: capability === "music" ? 3 : 1,
                      max: 600, step: "any", inputmode: "decimal", placeholder: fallback });
}

function fileFields(capability, m, mode) {
  if (capability === "transcription") return [fileField("pg-file-0", "Audio", "audio")];
  const kinds = m.inputs[mode] || [];
  return kinds.map((kind, i) => fileField(`pg-file-${i}`,
    `${FILE_LABELS[kind]}${kinds.filter((k) => k === kind).length > 1 ? ` ${i + 1}` : ""}`, kind));
}

function needUrl(field) {
  const url = field.url();
  if (!url) throw new FormProblem("Upload each input file, or give its URL.");
  return url;
}

// Empty: no provider_options. Otherwise a JSON object, as the API takes.
function providerOptions(text) {
  if (!text.trim()) return undefined;
  let value;
  try { value = JSON.parse(text); } catch (error) {
    throw new FormProblem(`Provider options are not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FormProblem("Provider options must be a JSON object, like {\"key\": \"value\"}.");
  }
  return value;
}

function select(id, name, pairs) {
  return h("select", { id, name }, pairs.map(([value, label]) => h("option", { value }, label)));
}

function row(id, label, control) {
  return h("div", { class: "pg-row" }, h("label", { for: id }, label), control);
}
