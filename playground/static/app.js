// The playground's page: pick models, send a prompt, draw each reply as its tokens arrive.
//
// The server streams one JSON object per line (see playground/columns.py for the events). Each token becomes a
// <span class="token">; hovering or clicking it shows the top 5 the model considered at that step. Model text is
// only ever put in the page as text (textContent), never as HTML.

"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  models: [],            // from /api/models
  limits: {},
  byId: new Map(),       // id -> model card
  selected: new Set(),   // ids ticked, in the list's order when drawn
  history: new Map(),    // id -> [{user, reply}]: an instruction-tuned model's conversation, as `chat` keeps it
  columns: new Map(),    // id -> {element, transcript, status, ...} of the columns on screen
  controller: null,      // AbortController of the generation running, if any
  pinned: null,          // the token whose top 5 stays open after a click
};

// ------------------------------------------------------------------ start

window.addEventListener("DOMContentLoaded", async () => {
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", stop);
  $("clear").addEventListener("click", clearAll);
  $("reuse-seed").addEventListener("click", () => { $("seed").value = $("reuse-seed").dataset.seed; });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  document.addEventListener("click", (e) => {
    if (!e.target.closest(".token") && !e.target.closest("#considered")) unpin();
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") unpin(); });
  try {
    const response = await fetch("/api/models");
    const info = await response.json();
    if (!response.ok) throw new Error(info.error || response.statusText);
    state.models = info.models;
    state.limits = info.limits;
    for (const m of info.models) state.byId.set(m.id, m);
    applyDefaults(info.defaults);
    drawModelList();
  } catch (err) {
    showError(`cannot read the list of models: ${err.message}`);
  }
});

function applyDefaults(defaults) {
  $("temperature").value = defaults.temperature;
  $("max-new-tokens").value = defaults.max_new_tokens;
  $("max-new-tokens").max = state.limits.max_new_tokens;
  $("prompt").maxLength = state.limits.max_prompt_chars;
}

function drawModelList() {
  const list = $("model-list");
  list.replaceChildren();
  const first = state.models.find((m) => !m.chat && !m.classifier) || state.models[0];
  for (const m of state.models) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = m.id;
    box.checked = m === first;
    if (box.checked) state.selected.add(m.id);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(m.id); else state.selected.delete(m.id);
      drawColumns();
    });
    const title = document.createElement("span");
    title.textContent = m.title;
    const where = document.createElement("span");
    where.className = "where";
    where.textContent = m.where;
    label.append(box, title, where);
    label.title = m.detail;
    list.append(label);
  }
  if (!state.models.length) list.textContent = "no models found";
  drawColumns();
}

// ------------------------------------------------------------------ columns

function selectedIds() {
  return state.models.map((m) => m.id).filter((id) => state.selected.has(id));
}

// One column per ticked model, in the list's order; a column kept on screen keeps its transcript.
function drawColumns() {
  const area = $("columns");
  const ids = selectedIds();
  for (const [id, column] of state.columns) {
    if (!ids.includes(id)) { column.element.remove(); state.columns.delete(id); }
  }
  for (const id of ids) {
    if (!state.columns.has(id)) state.columns.set(id, makeColumn(state.byId.get(id)));
    area.append(state.columns.get(id).element);  // append moves it: the order follows the list
  }
}

function makeColumn(model) {
  const element = document.createElement("article");
  element.className = "column";
  element.dataset.model = model.id;
  const head = document.createElement("h2");
  head.textContent = model.title;
  const where = document.createElement("p");
  where.className = "where";
  where.textContent = `${model.where} · ${model.detail}`;
  const transcript = document.createElement("div");
  transcript.className = "transcript";
  const status = document.createElement("p");
  status.className = "column-status";
  status.textContent = model.chat ? "an instruction-tuned model: your prompt is framed by its template, and the "
    + "conversation is kept" : model.classifier ? "a classifier: it labels your prompt instead of continuing it"
    : "continues your prompt";
  element.append(head, where, transcript, status);
  return {element, transcript, status, model, reply: null, pieces: []};
}

function clearAll() {
  if (state.controller) return;
  for (const column of state.columns.values()) {
    column.transcript.replaceChildren();
    column.status.textContent = "";
  }
  state.history.clear();
  unpin();
  setStatus("");
}

// ------------------------------------------------------------------ a generation

function numberOrNull(id, parse) {
  const text = $(id).value.trim();
  return text === "" ? null : parse(text);
}

function readSettings() {
  return {
    max_new_tokens: numberOrNull("max-new-tokens", (t) => parseInt(t, 10)),
    temperature: numberOrNull("temperature", parseFloat),
    top_k: numberOrNull("top-k", (t) => parseInt(t, 10)),
    top_p: numberOrNull("top-p", parseFloat),
    seed: numberOrNull("seed", (t) => parseInt(t, 10)),
  };
}

async function generate() {
  if (state.controller) return;
  const ids = selectedIds();
  const prompt = $("prompt").value;
  if (!ids.length) { showError("tick at least one model"); return; }
  if (!prompt) { showError("type a prompt first"); return; }
  const settings = readSettings();
  for (const key of Object.keys(settings)) {
    if (settings[key] === null || Number.isNaN(settings[key])) delete settings[key];  // the server's default
  }
  const body = {
    prompt,
    columns: ids.map((id) => ({model: id, history: state.history.get(id) || []})),
    ...settings,
  };
  showError("");
  unpin();
  state.controller = new AbortController();
  setRunning(true);
  setStatus("generating…");
  let run = null;
  try {
    const response = await fetch("/api/generate", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) {
      const answer = await response.json().catch(() => ({error: response.statusText}));
      throw new Error(answer.error || `HTTP ${response.status}`);
    }
    run = {ids, prompt, settings: null, columns: ids.map((id) => state.columns.get(id))};
    await readEvents(response, (event) => handle(run, event));
  } catch (err) {
    if (err.name === "AbortError") {
      finishStopped(run);
    } else {
      showError(err.message);
      setStatus("");
    }
  } finally {
    state.controller = null;
    setRunning(false);
  }
}

function stop() {
  if (state.controller) state.controller.abort();  // the server sees the connection close and stops sampling
}

// Read a response of JSON lines, calling `onEvent` for each as soon as its line is complete.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) onEvent(JSON.parse(line));
    }
  }
}

function handle(run, event) {
  switch (event.type) {
    case "start":
      run.seed = event.seed;
      run.settings = event.settings;
      setStatus(`seed ${event.seed}`, event.seed);
      break;
    case "column":
      startColumn(run, run.columns[event.column], event);
      break;
    case "token":
      addToken(run, run.columns[event.column], event);
      break;
    case "label":
      showLabel(run.columns[event.column], event);
      break;
    case "done":
      finishColumn(run, run.columns[event.column], event);
      break;
    case "end":
      setStatus(`seed ${run.seed} · ${event.stopped ? "stopped" : "done"}: the same seed, settings and prompt `
        + "give the same reply", run.seed);
      break;
    case "error":
      showError(event.message);
      break;
  }
}

// A column's part of the run: the user's message (a chat) or the prompt in grey (the others), then the reply.
function startColumn(run, column, event) {
  const m = column.model;
  if (!m.chat) column.transcript.replaceChildren();
  column.pieces = [];
  column.done = false;
  if (m.chat) {
    const user = document.createElement("div");
    user.className = "turn user";
    user.textContent = run.prompt;
    column.transcript.append(user);
  }
  const turn = document.createElement("div");
  turn.className = m.chat ? "turn model" : "turn";
  if (!m.chat && !m.classifier) {
    const shown = document.createElement("span");
    shown.className = "prompt-text";
    shown.textContent = run.prompt;
    turn.append(shown);
  }
  column.reply = turn;
  const extras = document.createElement("div");
  if (event.notes.length) {
    const notes = document.createElement("p");
    notes.className = "notes";
    notes.textContent = event.notes.join("; ");
    extras.append(notes);
  }
  const sees = document.createElement("details");
  sees.className = "sees";
  const summary = document.createElement("summary");
  summary.textContent = "what the model is given";
  const pre = document.createElement("pre");
  pre.textContent = event.sees;
  sees.append(summary, pre);
  extras.append(sees);
  column.transcript.append(extras, turn);
  column.status.textContent = m.classifier ? "classifying…" : "generating…";
}

function addToken(run, column, event) {
  const span = document.createElement("span");
  span.className = "token";
  if (event.end_of_text) {
    span.classList.add("eot");
    span.textContent = "end";
    span.title = "<|endoftext|>: the model ended its answer here";
  } else if (event.text === "") {
    span.classList.add("partial");
    span.textContent = "\u200b";
    span.title = "part of a character: the next token completes it";
  } else {
    span.textContent = event.text;
  }
  span.dataset.step = event.step;
  span.considered = {top: event.top, step: event.step, settings: run.settings, model: column.model};
  span.addEventListener("mouseenter", () => { if (!state.pinned) showConsidered(span); });
  span.addEventListener("mouseleave", () => { if (!state.pinned) hideConsidered(); });
  span.addEventListener("click", (e) => { e.stopPropagation(); pin(span); });
  column.reply.append(span);
  column.pieces.push(event.text);
  column.status.textContent = `${event.step} ${column.model.unit}${event.step === 1 ? "" : "s"}…`;
  const t = column.transcript;
  if (t.scrollHeight - t.scrollTop - t.clientHeight < 60) t.scrollTop = t.scrollHeight;
}

function showLabel(column, event) {
  const label = document.createElement("p");
  label.className = "label";
  label.textContent = event.label;
  column.reply.append(label);
  for (const {label: name, p} of event.probs) {
    const row = document.createElement("div");
    row.className = "class-row";
    const text = document.createElement("span");
    text.textContent = name;
    row.append(text, bar(p), percent(p));
    column.reply.append(row);
  }
}

function finishColumn(run, column, event) {
  column.done = true;
  column.status.textContent = `seed ${run.seed} · ${event.tokens ? `${event.tokens} ${column.model.unit}s · ` : ""}`
    + event.reason;
  if (column.model.chat) remember(column.model.id, run.prompt, event.reply);
}

// Stop: every column still going keeps what it has; a chat keeps the part of the answer it saw.
function finishStopped(run) {
  if (!run) { setStatus("stopped"); return; }
  for (const column of run.columns) {
    if (column.done || !column.reply) continue;
    column.done = true;
    column.status.textContent = `seed ${run.seed} · stopped after ${column.pieces.length} ${column.model.unit}s`;
    if (column.model.chat) remember(column.model.id, run.prompt, column.pieces.join("").trim());
  }
  setStatus(`seed ${run.seed} · stopped`, run.seed);
}

function remember(id, user, reply) {
  if (!state.history.has(id)) state.history.set(id, []);
  state.history.get(id).push({user, reply});
}

// ------------------------------------------------------------------ what the model considered

// How a token's text reads in the list: spaces and line breaks made visible.
function visible(text) {
  if (text === "") return "(nothing)";
  return text.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");
}

function describeSettings(s) {
  if (!s) return "";
  if (s.temperature === 0) {
    return "Temperature 0: the most likely token is always taken; these are the model's own probabilities "
      + "(temperature 1).";
  }
  const parts = [`temperature ${s.temperature}`];
  if (s.top_k !== null) parts.push(`top-k ${s.top_k}`);
  if (s.top_p !== null) parts.push(`top-p ${s.top_p}`);
  return `The probabilities it was drawn with, after ${parts.join(", ")}.`;
}

function showConsidered(span) {
  const info = span.considered;
  const panel = $("considered");
  panel.querySelector(".considered-head").textContent =
    `step ${info.step}: the ${info.model.unit}s it considered`;
  const rows = panel.querySelector(".considered-rows");
  rows.replaceChildren();
  for (const row of info.top) {
    const li = document.createElement("li");
    if (row.chosen) li.className = "chosen";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `${row.rank}.`;
    const tok = document.createElement("span");
    tok.className = "tok";
    tok.textContent = visible(row.text);
    tok.title = `token ${row.id}`;
    li.append(rank, tok, bar(row.p), percent(row.p));
    if (row.chosen) li.title = "the token sampled at this step";
    rows.append(li);
  }
  panel.querySelector(".considered-note").textContent =
    `Highlighted: the one chosen. ${describeSettings(info.settings)}`;
  panel.hidden = false;
  const box = span.getBoundingClientRect();
  const width = panel.offsetWidth;
  const height = panel.offsetHeight;
  let left = Math.min(box.left, window.innerWidth - width - 8);
  let top = box.bottom + 6;
  if (top + height > window.innerHeight - 8) top = Math.max(8, box.top - height - 6);
  panel.style.left = `${Math.max(8, left)}px`;
  panel.style.top = `${top}px`;
  document.querySelectorAll(".token.open").forEach((t) => t.classList.remove("open"));
  span.classList.add("open");
}

function hideConsidered() {
  $("considered").hidden = true;
  document.querySelectorAll(".token.open").forEach((t) => t.classList.remove("open"));
}

function pin(span) {
  state.pinned = span;
  showConsidered(span);
}

function unpin() {
  state.pinned = null;
  hideConsidered();
}

// ------------------------------------------------------------------ small pieces

function bar(p) {
  const outer = document.createElement("span");
  outer.className = "bar";
  const inner = document.createElement("span");
  inner.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
  outer.append(inner);
  return outer;
}

function percent(p) {
  const span = document.createElement("span");
  span.className = "p";
  span.textContent = p >= 0.001 || p === 0 ? `${(p * 100).toFixed(1)}%` : "<0.1%";
  return span;
}

function setRunning(running) {
  $("generate").disabled = running;
  $("stop").disabled = !running;
  $("clear").disabled = running;
  document.querySelectorAll("#model-list input").forEach((box) => { box.disabled = running; });
}

function setStatus(text, seed) {
  $("status").textContent = text;
  const reuse = $("reuse-seed");
  reuse.hidden = seed === undefined;
  if (seed !== undefined) reuse.dataset.seed = seed;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}
