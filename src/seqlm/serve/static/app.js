// seqlm serve: the page. Scores a text under every served model (/api/logprobs), colours each token
// by its surprisal (-log2 p, in bits) and continues a prompt (/api/generate). Talks only to the
// server that sent it; API data is put on the page as text, never as HTML.
"use strict";

// Colour stops from "expected" to "surprising": every channel falls (or stays) from one stop to
// the next, so a token with more surprisal never gets a lighter colour.
const STOPS = [
  [255, 255, 204],
  [254, 217, 118],
  [253, 141, 60],
  [240, 59, 32],
  [177, 0, 28],
];
const HOT = 0.6; // past this share of the scale, tokens are written in white
const TOP = 5; // alternatives shown per token

const state = { models: [], limits: null, maxBits: 8 };

const $ = (id) => document.getElementById(id);

// --- the colour scale ---------------------------------------------------------------------------

/** Surprisal in bits of a natural-log probability. */
function bitsOf(logprob) {
  return -logprob / Math.LN2;
}

/** Position of `bits` on the scale, from 0 (expected) to 1 (as surprising as the scale goes). */
function shareOf(bits) {
  return Math.min(Math.max(bits / state.maxBits, 0), 1);
}

/** [r, g, b] of a position on the scale, interpolated between the stops. */
function colourAt(share) {
  const x = share * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
}

function rgb(channels) {
  return `rgb(${channels.join(", ")})`;
}

/** The scale's top: the surprisal of a uniform guess over the largest vocabulary, in whole bits. */
function scaleTop(models) {
  const sizes = models.map((m) => m.vocab_size).filter((v) => v > 1);
  return sizes.length ? Math.max(1, Math.ceil(Math.log2(Math.max(...sizes)))) : 8;
}

function drawLegend() {
  const stops = [0, 0.25, 0.5, 0.75, 1].map((s) => `${rgb(colourAt(s))} ${s * 100}%`);
  $("legend-bar").style.setProperty("background", `linear-gradient(to right, ${stops.join(", ")})`);
  const ticks = $("legend-ticks");
  ticks.replaceChildren();
  const step = state.maxBits <= 6 ? 1 : Math.ceil(state.maxBits / 6);
  for (let b = 0; b <= state.maxBits; b += step) {
    const tick = document.createElement("span");
    tick.textContent = b === state.maxBits ? `${b}+` : String(b);
    tick.style.setProperty("left", `${(b / state.maxBits) * 100}%`);
    ticks.append(tick);
  }
  $("legend").hidden = false;
}

// --- talking to the server ----------------------------------------------------------------------

/** POST a JSON body; the answer's JSON, or an Error carrying the server's message. */
async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (e) {
    answer = null;
  }
  if (!response.ok) {
    const message = answer && answer.error ? answer.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return answer;
}

// --- tokens as the page shows them --------------------------------------------------------------

/** How a token reads on the page: line ends as arrows, everything else as it is. */
function shown(token) {
  if (token === "\n" || token === "<eos>") return "\u21b5";
  return token;
}

/** How a token reads in the tooltip, where a bare space would be invisible. */
function named(token) {
  if (token === " ") return "\u2423";
  return shown(token);
}

function percent(p) {
  if (p >= 0.1) return `${(p * 100).toFixed(0)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  return p.toExponential(1);
}

function formatNumber(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

// --- scoring ------------------------------------------------------------------------------------

function makeColumns() {
  const columns = $("columns");
  columns.replaceChildren();
  for (const model of state.models) {
    const column = document.createElement("article");
    column.className = "column";
    column.dataset.model = model.name;
    const title = document.createElement("h3");
    title.textContent = model.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    const about = [model.kind, model.title].filter((x, i, all) => x !== model.name && all.indexOf(x) === i);
    kind.textContent = about.length ? ` \u00b7 ${about.join(", ")}` : "";
    title.append(kind);
    const summary = document.createElement("p");
    summary.className = "summary";
    summary.textContent = `${model.vocab_size} ${model.token} tokens`;
    const tokens = document.createElement("div");
    tokens.className = "tokens";
    column.append(title, summary, tokens);
    columns.append(column);
  }
}

/** Fill a model's column with its tokens, each coloured by its surprisal. */
function fillColumn(column, model, answer) {
  const total = answer.total;
  column.querySelector(".summary").textContent =
    `${total.tokens} tokens \u00b7 perplexity ${formatNumber(total.perplexity, 2)} \u00b7 ` +
    `${formatNumber(total.bits_per_char, 3)} bits/char \u00b7 ${total.oov} unknown`;
  const box = column.querySelector(".tokens");
  box.replaceChildren();
  column.records = answer.tokens;
  const words = model.token === "word";
  answer.tokens.forEach((record, i) => {
    const bits = bitsOf(record.logprob);
    const share = shareOf(bits);
    const span = document.createElement("span");
    span.className = "tok";
    if (share > HOT) span.classList.add("hot");
    if (record.oov) span.classList.add("oov");
    span.dataset.index = String(i);
    span.dataset.token = record.token;
    span.dataset.logprob = String(record.logprob);
    span.dataset.bits = bits.toFixed(4);
    span.dataset.oov = String(record.oov);
    span.textContent = shown(record.token);
    span.style.setProperty("background-color", rgb(colourAt(share)));
    const lineEnd = record.token === "\n" || record.token === "<eos>";
    if (words && i > 0 && box.lastChild.nodeName !== "BR") box.append(" ");
    box.append(span);
    if (lineEnd) box.append(document.createElement("br"));
  });
}

function failColumn(column, message) {
  const summary = column.querySelector(".summary");
  summary.textContent = message;
  summary.classList.add("error");
  column.querySelector(".tokens").replaceChildren();
  column.records = [];
}

async function score(event) {
  event.preventDefault();
  const text = $("text").value;
  const button = $("score-button");
  const status = $("score-status");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = "Scoring\u2026";
  hideTip();
  const start = performance.now();
  const jobs = state.models.map(async (model) => {
    const column = document.querySelector(`.column[data-model="${CSS.escape(model.name)}"]`);
    column.querySelector(".summary").classList.remove("error");
    try {
      fillColumn(column, model, await post("/api/logprobs", { model: model.name, text, top: TOP }));
      return null;
    } catch (e) {
      failColumn(column, e.message);
      return e.message;
    }
  });
  const failures = (await Promise.all(jobs)).filter((m) => m !== null);
  button.disabled = false;
  if (failures.length) {
    status.textContent = failures[0];
    status.classList.add("error");
  } else {
    status.textContent = `Scored in ${Math.round(performance.now() - start)} ms.`;
  }
  document.body.dataset.scored = String(Date.now());
}

// --- the tooltip --------------------------------------------------------------------------------

let active = null;

function showTip(span) {
  const column = span.closest(".column");
  const record = column && column.records ? column.records[Number(span.dataset.index)] : null;
  if (!record) return;
  if (active) active.classList.remove("active");
  active = span;
  span.classList.add("active");
  const tip = $("tooltip");
  tip.replaceChildren();
  const head = document.createElement("div");
  const token = document.createElement("span");
  token.className = "tip-token";
  token.textContent = `\u201c${named(record.token)}\u201d`;
  const prob = document.createElement("span");
  prob.className = "tip-prob";
  const bits = bitsOf(record.logprob);
  prob.textContent = `  p = ${percent(Math.exp(record.logprob))} \u00b7 ${bits.toFixed(2)} bits`;
  head.append(token, prob);
  tip.append(head);
  if (record.oov) {
    const oov = document.createElement("div");
    oov.className = "tip-oov";
    oov.textContent = "not in the vocabulary: scored as <unk>";
    tip.append(oov);
  }
  const alternatives = record.alternatives || [];
  if (alternatives.length) {
    const title = document.createElement("div");
    title.className = "tip-head";
    title.textContent = `${column.dataset.model} expected`;
    const list = document.createElement("ol");
    list.className = "tip-alts";
    const actual = record.oov ? "<unk>" : record.token;
    for (const alt of alternatives) {
      const p = Math.exp(alt.logprob);
      const item = document.createElement("li");
      item.dataset.token = alt.token;
      item.dataset.logprob = String(alt.logprob);
      if (alt.token === actual) item.classList.add("actual");
      const name = document.createElement("span");
      name.className = "alt-token";
      name.textContent = named(alt.token);
      const bar = document.createElement("span");
      bar.className = "alt-bar";
      const fill = document.createElement("span");
      fill.style.setProperty("width", `${Math.max(p * 100, 1)}%`);
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "alt-p";
      value.textContent = percent(p);
      item.append(name, bar, value);
      list.append(item);
    }
    tip.append(title, list);
  }
  tip.hidden = false;
  const rect = span.getBoundingClientRect();
  const width = tip.offsetWidth;
  const left = Math.min(rect.left, document.documentElement.clientWidth - width - 8);
  tip.style.setProperty("left", `${Math.max(8, left) + window.scrollX}px`);
  tip.style.setProperty("top", `${rect.bottom + window.scrollY + 6}px`);
}

function hideTip() {
  if (active) active.classList.remove("active");
  active = null;
  $("tooltip").hidden = true;
}

// --- generation ---------------------------------------------------------------------------------

function numberField(id) {
  const value = $(id).valueAsNumber;
  return Number.isFinite(value) ? value : undefined;
}

async function generate(event) {
  event.preventDefault();
  const button = $("generate-button");
  const status = $("generate-status");
  const out = $("generation");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = "Generating\u2026";
  const body = {
    model: $("gen-model").value,
    prompt: $("prompt").value,
    max_tokens: numberField("max-tokens"),
    temperature: numberField("temperature"),
    seed: numberField("seed"),
    beam: numberField("beam"),
  };
  try {
    const answer = await post("/api/generate", body);
    out.querySelector(".gen-prompt").textContent = answer.prompt;
    out.querySelector(".gen-text").textContent = answer.text;
    out.dataset.truncated = String(answer.truncated);
    out.hidden = false;
    status.textContent =
      `${answer.tokens.length} tokens in ${answer.seconds.toFixed(2)} s` +
      (answer.truncated ? ` \u2014 ${answer.note}` : ".");
  } catch (e) {
    status.textContent = e.message;
    status.classList.add("error");
  } finally {
    button.disabled = false;
  }
}

// --- start --------------------------------------------------------------------------------------

async function start() {
  const served = $("served");
  try {
    const response = await fetch("/api/models");
    const info = await response.json();
    state.models = info.models;
    state.limits = info.limits;
  } catch (e) {
    served.textContent = `Could not list the models: ${e.message}`;
    served.classList.add("error");
    return;
  }
  state.maxBits = scaleTop(state.models);
  served.textContent =
    `Models: ${state.models.map((m) => `${m.name} (${m.kind})`).join(", ")}. ` +
    `Texts up to ${state.limits.max_chars.toLocaleString("en")} characters; ` +
    `generations up to ${state.limits.max_tokens} tokens and ${state.limits.timeout} s.`;
  $("text").maxLength = state.limits.max_chars;
  $("prompt").maxLength = state.limits.max_chars;
  $("max-tokens").max = String(state.limits.max_tokens);
  const select = $("gen-model");
  for (const model of state.models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = `${model.name} (${model.kind})`;
    select.append(option);
  }
  makeColumns();
  drawLegend();
  $("score-form").addEventListener("submit", score);
  $("generate-form").addEventListener("submit", generate);
  const columns = $("columns");
  columns.addEventListener("mouseover", (event) => {
    const span = event.target.closest(".tok");
    if (span) showTip(span);
  });
  columns.addEventListener("mouseout", (event) => {
    const span = event.target.closest(".tok");
    if (span && !span.contains(event.relatedTarget)) hideTip();
  });
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
