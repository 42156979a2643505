// The r1omni page: pick or drop a clip, play it locally, send it to /v1/predict, show the answer;
// or, for a long recording, send it to /v1/timeline and draw the answers under the player as they
// stream in. Plain browser JavaScript, no build step. The server tags reasoning clauses as visual /
// audio evidence, so this file holds no word lists.
"use strict";

const $ = (id) => document.getElementById(id);
const MODALITY_NAMES = { video: "Video (frames)", audio: "Audio (voice)", both: "Video and audio" };
const LABEL_COLOURS = ["#1d4ed8", "#c2410c", "#15803d", "#b91c1c", "#6d28d9", "#0e7490", "#a16207", "#be185d",
                       "#4d7c0f", "#334155", "#9333ea"];
let currentFile = null;
let objectUrl = null;
let maxUploadBytes = null;
let modelLabels = [];
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
    modelLabels = model.labels;
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
  player.addEventListener("timeupdate", markPlaying);
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

function renderNotes(result) {
  const notes = [];
  if (result.face_crop) {
    notes.push(result.face_crop.face_found
      ? `Face found in ${result.face_crop.face_frames} of ${result.face_crop.frames} frames; the model saw the face.`
      : "No face found: the model saw the whole frame.");
  }
  if (result.transcript) {
    notes.push(result.transcript.text ? `Heard: “${result.transcript.text}”` : "No speech heard.");
  }
  $("notes").textContent = notes.join(" ");
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
  renderNotes(result);
  renderReasoning(result.reasoning);
  renderAttribution(result.attribution);
  $("raw").textContent = result.output;
  renderTimings(result.timings, result.batch_size);
  $("result").hidden = false;
}

function labelColour(label) {
  const index = modelLabels.indexOf(label);
  return index < 0 ? "#9ca3af" : LABEL_COLOURS[index % LABEL_COLOURS.length];
}

function player() {
  return $("player");
}

function addWindow(row, duration) {
  // One button per window, placed on the recording's time axis; a click plays from its start.
  const button = document.createElement("button");
  button.type = "button";
  button.className = row.error ? "window failed" : "window";
  button.dataset.start = row.start_seconds;
  button.dataset.end = row.end_seconds;
  button.dataset.label = row.label ?? "";
  button.style.left = `${(100 * row.start_seconds) / duration}%`;
  button.style.width = `${(100 * (row.end_seconds - row.start_seconds)) / duration}%`;
  if (!row.error) button.style.background = labelColour(row.label);
  button.textContent = row.label ?? "";
  const said = row.transcript ? ` · heard: “${row.transcript}”` : "";
  button.title = row.error
    ? `${row.start_seconds.toFixed(1)}–${row.end_seconds.toFixed(1)} s: ${row.error}`
    : `${row.start_seconds.toFixed(1)}–${row.end_seconds.toFixed(1)} s: ${row.label ?? "no known emotion"}${said}`;
  button.addEventListener("click", () => {
    const media = player();
    if (!media) return;
    media.currentTime = row.start_seconds;
    media.play().catch(() => {});
  });
  $("timeline").append(button);
}

function markPlaying() {
  const media = player();
  if (!media) return;
  for (const button of $("timeline").children) {
    const inside = media.currentTime >= Number(button.dataset.start) && media.currentTime < Number(button.dataset.end);
    button.classList.toggle("playing", inside);
  }
}

function renderSummary(summary) {
  const shares = Object.entries(summary.share_of_time).map(([label, share]) => `${label} ${Math.round(share * 100)}%`);
  const changes = summary.changes.length === 1 ? "1 change" : `${summary.changes.length} changes`;
  $("timeline-summary").textContent = `${shares.join(" · ")} — ${changes} of emotion over ${summary.windows} windows` +
    (summary.failed ? ` (${summary.failed} could not be read)` : "");
}

async function readLines(response, onLine) {
  // The timeline streams one JSON object per line; a line may arrive in pieces.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    pending += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, cut).trim();
      pending = pending.slice(cut + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (done) return;
  }
}

async function analyseTimeline(form, query) {
  const seconds = Number($("segment-seconds").value) || 4;
  query.set("segment_seconds", String(seconds));
  const progress = $("timeline-progress");
  progress.removeAttribute("value");   // indeterminate until the first window says how many there are
  $("timeline").replaceChildren();
  $("timeline-summary").textContent = "";
  $("timeline-panel").hidden = false;
  setStatus("Reading the recording…");
  const response = await fetch(`v1/timeline?${query}`, { method: "POST", body: form });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    setStatus(`Error ${response.status}: ${body && body.message ? body.message : response.statusText}`, true);
    return;
  }
  let duration = 1;
  const started = performance.now();
  await readLines(response, (line) => {
    if (line.type === "start") {
      duration = line.duration_seconds || (player() && player().duration) || 1;
    } else if (line.type === "window") {
      addWindow(line, duration);
      progress.max = line.total;
      progress.value = line.done;
      setStatus(`Answered ${line.done} of ${line.total} windows…`);
    } else if (line.type === "summary") {
      renderSummary(line.summary);
      setStatus(`Timeline of ${line.summary.windows} windows in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    } else if (line.type === "error") {
      setStatus(`Error: ${line.message}`, true);
    }
  });
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
  $("timeline-panel").hidden = true;
  const query = new URLSearchParams();
  for (const [id, name] of [["face-crop", "face_crop"], ["transcribe", "transcribe"]]) {
    if ($(id).checked) query.set(name, "true");
  }
  const form = new FormData();
  form.append("file", currentFile, currentFile.name);
  try {
    if ($("timeline-mode").checked) {
      await analyseTimeline(form, query);
      return;
    }
    const explain = $("explain").checked;
    if (explain) query.set("explain", "true");
    setStatus(explain ? "Analysing and measuring each modality…" : "Analysing…");
    const response = await fetch(`v1/predict?${query}`, { method: "POST", body: form });
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
