// The r1omni page: pick or drop a clip, play it locally, send it to /v1/predict, show the answer.
// Plain browser JavaScript, no build step. The server tags reasoning clauses as visual / audio
// evidence, so this file holds no word lists.
"use strict";

const $ = (id) => document.getElementById(id);
const MODALITY_NAMES = { video: "Video (frames)", audio: "Audio (voice)", both: "Video and audio" };
let currentFile = null;
let objectUrl = null;
let maxUploadBytes = null;
let busy = false;

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function formatContribution(value) {
  // Log-probability differences span many orders of magnitude; keep three significant digits.
  return Math.abs(value) >= 0.01 || value === 0 ? value.toFixed(3) : value.toExponential(2);
}

function formatBytes(size) {
  return size >= 1048576 ? `${(size / 1048576).toFixed(1)} MiB` : `${size} bytes`;
}

async function loadModel() {
  try {
    const response = await fetch("v1/model");
    const model = await response.json();
    maxUploadBytes = model.limits.max_upload_bytes;
    $("model-info").textContent =
      `Model ${model.name} (${model.family}) · labels: ${model.labels.join(", ")}`;
  } catch (err) {
    $("model-info").textContent = "Model information unavailable.";
  }
}

function isAudioFile(file) {
  return file.type.startsWith("audio/") || (!file.type && /\.(wav|mp3|flac|m4a|ogg|opus|aac)$/i.test(file.name));
}

function showPreview(file) {
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  const player = document.createElement(isAudioFile(file) ? "audio" : "video");
  player.id = "player";
  player.controls = true;
  player.preload = "metadata";
  player.src = objectUrl;
  const caption = document.createElement("p");
  caption.className = "caption";
  caption.textContent = `${file.name} · ${formatBytes(file.size)}`;
  $("preview").replaceChildren(player, caption);
}

function chooseFile(file) {
  if (!file) return;
  currentFile = file;
  showPreview(file);
  $("analyse").disabled = false;
  analyse();
}

const VERDICT_MARKS = { "supported": "✓", "contradicted": "✗", "not checkable": "?" };

function renderReasoning(segments) {
  const box = $("reasoning");
  box.replaceChildren();
  if (!segments.length) {
    box.textContent = "(the model gave no reasoning)";
    return;
  }
  for (const segment of segments) {
    const span = document.createElement("span");
    span.textContent = segment.text;
    const kind = segment.visual && segment.audio ? "both" : segment.visual ? "visual" : segment.audio ? "audio" : "";
    span.className = kind ? `seg seg-${kind}` : "seg";
    if (kind) {
      span.dataset.evidence = kind;
      span.title = kind === "both" ? "visual and audio evidence" : `${kind} evidence`;
    }
    box.append(span);
    for (const claim of segment.claims || []) {
      // One mark per cue claim: does the cue measured on the clip support it?
      const mark = document.createElement("span");
      mark.className = `verdict verdict-${claim.verdict.replace(" ", "-")}`;
      mark.dataset.verdict = claim.verdict;
      mark.textContent = VERDICT_MARKS[claim.verdict];
      mark.title = claim.measured ? `"${claim.phrase}": ${claim.verdict} (measured: ${claim.measured})`
        : `"${claim.phrase}": ${claim.verdict} (this cue is not measured)`;
      box.append(mark);
    }
  }
}

function renderAttribution(attribution) {
  const panel = $("attribution-panel");
  panel.hidden = !attribution;
  if (!attribution) return;
  const rows = attribution.modalities;
  const scale = Math.max(1e-9, ...rows.map((m) => Math.abs(m.answer_contribution)));
  const box = $("attribution");
  box.replaceChildren();
  for (const m of rows) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.modality = m.modality;
    const name = document.createElement("span");
    name.className = "bar-name";
    name.textContent = MODALITY_NAMES[m.modality] || m.modality;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = `bar-fill bar-${m.modality} ${m.answer_contribution < 0 ? "negative" : "positive"}`;
    // CSSOM writes are allowed by the page's Content-Security-Policy (inline style attributes are not).
    fill.style.width = `${(Math.abs(m.answer_contribution) / scale) * 50}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    let text = formatContribution(m.answer_contribution);
    if (!m.present) text += " · not in this clip";
    else if (m.flipped) text += ` · answer becomes ${m.label_without ?? "no emotion"}`;
    value.textContent = text;
    row.append(name, track, value);
    box.append(row);
  }
  $("decisive").textContent = `Decisive modality: ${attribution.decisive} (removal method: ${attribution.method}).`;
}

function renderTimings(timings, batchSize) {
  const table = $("timings");
  table.replaceChildren();
  const rows = Object.entries(timings).filter(([, v]) => v !== null);
  rows.push(["batch_size", batchSize]);
  for (const [key, value] of rows) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = key.replace(/_/g, " ");
    const td = document.createElement("td");
    td.textContent = key === "batch_size" ? String(value) : `${value.toFixed(3)} s`;
    tr.append(th, td);
    table.append(tr);
  }
}

function render(result) {
  const label = $("label");
  label.textContent = result.label ?? "no known emotion";
  label.dataset.label = result.label ?? "";
  label.classList.toggle("unknown", !result.label);
  $("answer").textContent = result.answer || "";
  const format = $("format");
  format.textContent = result.format_ok ? "well-formed" : "not in <think>/<answer> format";
  format.classList.toggle("bad", !result.format_ok);
  renderReasoning(result.reasoning);
  renderAttribution(result.attribution);
  $("raw").textContent = result.output;
  renderTimings(result.timings, result.batch_size);
  $("result").hidden = false;
}

async function analyse() {
  if (!currentFile || busy) return;
  if (maxUploadBytes !== null && currentFile.size > maxUploadBytes) {
    setStatus(`${currentFile.name} is ${formatBytes(currentFile.size)}; the limit is ${formatBytes(maxUploadBytes)}.`, true);
    return;
  }
  busy = true;
  $("analyse").disabled = true;
  $("result").hidden = true;
  const explain = $("explain").checked;
  setStatus(explain ? "Analysing and measuring each modality…" : "Analysing…");
  const form = new FormData();
  form.append("file", currentFile, currentFile.name);
  try {
    const response = await fetch(explain ? "v1/predict?explain=true" : "v1/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      setStatus(`Error ${response.status}: ${body && body.message ? body.message : response.statusText}`, true);
      return;
    }
    render(body);
    setStatus(`Answered in ${body.timings.total_seconds.toFixed(2)} s.`);
  } catch (err) {
    setStatus(`The request failed: ${err.message}`, true);
  } finally {
    busy = false;
    $("analyse").disabled = false;
  }
}

function setUp() {
  const input = $("file-input");
  const zone = $("drop-zone");
  input.addEventListener("change", () => chooseFile(input.files[0]));
  $("analyse").addEventListener("click", analyse);
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    chooseFile(event.dataTransfer.files[0]);
  });
  loadModel();
}

document.addEventListener("DOMContentLoaded", setUp);
