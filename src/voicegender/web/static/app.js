// voicegender page: upload or record audio, POST it to api/predict?explain=1, show the answer.
// Plain JS, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const LABELS = { female: "Female", male: "Male", no_speech: "No speech", error: "Error" };
let maxUploadBytes = 25e6;
let playerUrl = null;
let busy = false;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- access token ------------------------------------------------------------------------------------
// A server started with --token wants "Authorization: Bearer <token>" on API requests. Open the page once as
// /?token=<token>: the token is kept in this browser's localStorage (for this server's address only) and removed
// from the address bar; /?token= (empty) forgets it. A 401 answer forgets it too.
const TOKEN_KEY = "voicegender-token";

function storage(action) {
  try { return action(window.localStorage); } catch { return null; } // storage disabled: no token kept
}

function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  if (!url.searchParams.has("token")) return;
  const token = url.searchParams.get("token").trim();
  storage((s) => (token ? s.setItem(TOKEN_KEY, token) : s.removeItem(TOKEN_KEY)));
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
}

function authHeaders() {
  const token = storage((s) => s.getItem(TOKEN_KEY));
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "n/a";
  if (s < 60) return `${s.toFixed(2)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${(s - 60 * m).toFixed(1)} s`;
}

function setStatus(text, spinning = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("spinning", spinning);
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function setBusy(on) {
  busy = on;
  $("record").disabled = on;
  $("file-input").disabled = on;
  $("drop").classList.toggle("disabled", on);
}

let childFlag = 0.8; // p_child at or above this: warn that the voice may be a child's (server's value wins)

async function loadHealth() {
  try {
    const r = await fetch("api/health");
    const h = await r.json();
    maxUploadBytes = h.max_upload_mb * 1e6;
    if (typeof h.child_flag === "number") childFlag = h.child_flag;
    $("model-info").textContent = `Model: ${h.model} (v${h.version}) · uploads up to ${h.max_upload_mb} MB`;
    if (h.token_required && !authHeaders().Authorization) {
      showError("This server needs its access token: open the page once as /?token=<token>.");
    }
  } catch (e) {
    $("model-info").textContent = "The server is not answering.";
  }
}

// ---- sending audio -----------------------------------------------------------------------------------
async function analyse(blob, filename) {
  if (busy) return;
  showError("");
  if (blob.size === 0) { showError(`${filename}: the file is empty.`); return; }
  if (blob.size > maxUploadBytes) {
    showError(`${filename} is ${(blob.size / 1e6).toFixed(1)} MB: the limit is ${maxUploadBytes / 1e6} MB.`);
    return;
  }
  setBusy(true);
  setStatus(`Analysing ${filename}…`, true);
  const form = new FormData();
  form.append("file", blob, filename);
  try {
    const speakers = $("num-speakers").value; // "" (find out) or how many the user says there are
    const query = speakers ? `?explain=1&speakers=${encodeURIComponent(speakers)}` : "?explain=1";
    const r = await fetch(`api/predict${query}`, { method: "POST", body: form, headers: authHeaders() });
    if (r.status === 401) storage((s) => s.removeItem(TOKEN_KEY)); // wrong or old token: ask for it again
    let data;
    try { data = await r.json(); } catch { data = {}; }
    if (!r.ok) {
      const detail = typeof data.detail === "string" ? data.detail : `${r.status} ${r.statusText}`;
      throw new Error(detail);
    }
    showResult(data, blob);
    setStatus("");
  } catch (e) {
    setStatus("");
    $("result").hidden = true;
    showError(e instanceof TypeError ? "Could not reach the server." : e.message);
  } finally {
    setBusy(false);
  }
}

// ---- showing the answer ------------------------------------------------------------------------------
function showResult(d, blob) {
  const label = $("label");
  label.textContent = LABELS[d.label] || d.label;
  label.dataset.label = d.label;
  label.className = `label-chip ${d.label}`;
  $("result-file").textContent = d.path;

  const bar = $("p-bar");
  const fill = $("p-fill");
  if (d.p_female === null || d.p_female === undefined) {
    fill.style.width = "0";
    $("p-female-text").textContent = "n/a";
    bar.setAttribute("aria-valuenow", "0");
    bar.setAttribute("aria-valuetext", "not applicable: no speech");
    bar.classList.add("empty");
  } else {
    fill.style.width = `${(100 * d.p_female).toFixed(1)}%`;
    fill.className = `bar-fill ${d.p_female >= 0.5 ? "female" : "male"}`;
    $("p-female-text").textContent = `${(100 * d.p_female).toFixed(1)} %`;
    bar.setAttribute("aria-valuenow", d.p_female.toFixed(3));
    bar.setAttribute("aria-valuetext", `${(100 * d.p_female).toFixed(1)} percent`);
    bar.classList.remove("empty");
  }
  // children's voices: gender from voice is unreliable for them, so say so next to the answer
  const child = typeof d.p_child === "number" && d.p_child >= childFlag;
  $("child").hidden = !child;
  if (child) {
    $("child-p").textContent = `${Math.round(100 * d.p_child)} %`;
  }
  $("p-child").textContent = typeof d.p_child === "number" ? `${(100 * d.p_child).toFixed(0)} %` : "n/a";
  $("duration").textContent = fmtSeconds(d.duration_s);
  const share = d.duration_s > 0 ? ` (${Math.round((100 * d.speech_s) / d.duration_s)} %)` : "";
  // female_s / male_s split speech_s by who speaks (segment's windows); worth showing only when both speak
  const both = d.female_s > 0 && d.male_s > 0;
  const split = both ? `: female ${fmtSeconds(d.female_s)}, male ${fmtSeconds(d.male_s)}` : "";
  // no_speech with some speech found: too little to answer (predict needs 0.15 s), say so rather than look odd
  const tooLittle = d.label === "no_speech" && d.speech_s > 0 ? " \u2014 too little to tell" : "";
  $("speech").textContent = fmtSeconds(d.speech_s) + share + split + tooLittle;

  const fig = $("overlay-figure");
  if (d.overlay_png) {
    const img = $("overlay");
    img.src = `data:image/png;base64,${d.overlay_png}`;
    // the alt text says what the picture shows: which stretch, and whose answer the map explains
    const [from, to] = d.overlay_span_s || [0, d.duration_s];
    const stretch = `Log-mel spectrogram of the recording from ${fmtSeconds(from)} to ${fmtSeconds(to)}`;
    img.alt = d.cam ? `${stretch}, with the map of what pushed the model to its answer (${LABELS[d.label] || d.label})`
                    : stretch;
    $("caption-cam").hidden = !d.cam;
    $("caption-plain").hidden = d.cam;
    const span = d.overlay_span_s || [0, d.duration_s];
    const part = span[1] - span[0] < d.duration_s - 0.05;
    $("caption-span").hidden = !part;
    $("caption-span").textContent = part
      ? `It shows ${fmtSeconds(span[0])} to ${fmtSeconds(span[1])}, the loudest ${Math.round(span[1] - span[0])} s ` +
        "of the recording (its time axis starts at 0)."
      : "";
    fig.hidden = false;
  } else {
    fig.hidden = true;
  }
  $("explain-note").hidden = !d.explain_note;
  $("explain-note-text").textContent = d.explain_note || "";
  $("explain-note-summary").textContent = d.cam ? "What this map explains" : "No attribution map this time \u2014 why?";

  showTimeline(d.timeline, d.duration_s, d.speakers, d.overlaps);
  showSpeakers(d.timeline && d.timeline.length ? d.summary : null, d.speakers);
  $("timeline-note").hidden = !d.timeline_note;
  $("timeline-note").textContent = d.timeline_note || "";
  const said = new Set((d.timeline || []).map((seg) => seg.label));
  $("mixed").hidden = !(said.has("female") && said.has("male"));

  if (playerUrl) URL.revokeObjectURL(playerUrl);
  playerUrl = URL.createObjectURL(blob);
  $("player").src = playerUrl;
  $("result").hidden = false;
}

// Speakers get shades of their gender's colour, in order of appearance within that gender (CSS: .shade-0 ...), so
// that two women (or two men) side by side are told apart; every block and table row also says the speaker's id.
const SHADES = 4;

function speakerShades(speakers) {
  const shades = {};
  const seen = { female: 0, male: 0 };
  for (const s of speakers || []) {
    shades[s.speaker] = (seen[s.label] = (seen[s.label] || 0) + 1) - 1;
  }
  return shades;
}

const pct = (x) => `${Math.round(100 * x)} %`;

function showTimeline(segments, duration, speakers, overlaps) {
  const block = $("timeline-block");
  const tl = $("timeline");
  tl.replaceChildren();
  $("overlaps").replaceChildren();
  if (!segments || segments.length === 0) { block.hidden = true; return; }
  const total = duration || segments[segments.length - 1].end_s;
  const shades = speakerShades(speakers);
  const summary = [];
  for (const s of segments) {
    const len = Math.max(0, s.end_s - s.start_s);
    const div = document.createElement("div");
    const shade = s.speaker && s.speaker in shades ? ` shade-${shades[s.speaker] % SHADES}` : "";
    div.className = `seg${shade} ${s.label}`; // the label stays the last class
    div.style.flexGrow = String(len);
    const who = s.speaker ? `${s.speaker} (${LABELS[s.label] || s.label})` : LABELS[s.label] || s.label;
    const when = `${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)} s`;
    div.title = `${who}: ${when}`;
    if (s.speaker) {
      div.dataset.speaker = s.speaker;
      const name = document.createElement("span");
      name.className = "seg-name";
      name.textContent = s.speaker;
      div.appendChild(name);
    }
    tl.appendChild(div);
    summary.push(`${who} from ${s.start_s.toFixed(1)} to ${s.end_s.toFixed(1)} s`);
  }
  tl.setAttribute("aria-label", `Timeline: ${summary.join("; ")}`);
  showOverlaps(overlaps, total);
  drawAxis(total);
  block.hidden = false;
}

// The summary under the timeline: speakers by gender, women's share of the speaking time and of the speakers, and a
// row per speaker (its time and turns). Without speakers, the speaking time alone.
function showSpeakers(summary, speakers) {
  const block = $("speakers-block");
  if (!summary) { block.hidden = true; return; }
  const list = speakers || [];
  const parts = [];
  if (list.length) {
    const women = summary.female_speakers;
    const men = summary.male_speakers;
    parts.push(`${list.length} speaker${list.length === 1 ? "" : "s"}: ${women} ${women === 1 ? "woman" : "women"}, ` +
               `${men} ${men === 1 ? "man" : "men"}.`);
  }
  if (summary.speech_s > 0) {
    const ofSpeakers = list.length && summary.female_speaker_share !== null
      ? ` and ${pct(summary.female_speaker_share)} of the speakers` : "";
    parts.push(`Women: ${pct(summary.female_share)} of the speaking time${ofSpeakers}.`);
  } else {
    parts.push("No speech in the timeline.");
  }
  $("speaker-summary").textContent = parts.join(" ");

  const body = $("speaker-rows");
  body.replaceChildren();
  const shades = speakerShades(list);
  const speech = list.reduce((sum, s) => sum + s.speech_s, 0);
  for (const s of list) {
    const row = document.createElement("tr");
    row.dataset.speaker = s.speaker;
    const name = document.createElement("th");
    name.scope = "row";
    const swatch = document.createElement("span");
    swatch.className = `swatch shade-${shades[s.speaker] % SHADES} ${s.label}`;
    swatch.setAttribute("aria-hidden", "true");
    name.append(swatch, s.speaker);
    const child = typeof s.p_child === "number" && s.p_child >= childFlag ? " (possibly a child)" : "";
    const cells = [LABELS[s.label] + child, `${(100 * s.p_female).toFixed(1)} %`, fmtSeconds(s.speech_s),
                   speech > 0 ? pct(s.speech_s / speech) : "", String(s.turns)];
    row.appendChild(name);
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    }
    body.appendChild(row);
  }
  $("speaker-table").hidden = list.length === 0;
  block.hidden = false;
}

// Ticks at a round step (1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10 min ...) giving at most ~8 labels.
// Under the timeline, a thin strip marks where two voices speak at once, named with the speakers heard there.
function showOverlaps(overlaps, total) {
  const strip = $("overlaps");
  const list = overlaps || [];
  strip.hidden = list.length === 0;
  $("overlap-legend").hidden = list.length === 0;
  const said = [];
  for (const o of list) {
    const mark = document.createElement("div");
    mark.className = "overlap";
    mark.style.left = `${(100 * o.start_s) / total}%`;
    mark.style.width = `${(100 * (o.end_s - o.start_s)) / total}%`;
    const who = o.speakers.length > 1 ? o.speakers.join(" and ") : `${o.speakers[0]} and another voice`;
    mark.title = `${who} at once: ${o.start_s.toFixed(1)}–${o.end_s.toFixed(1)} s`;
    strip.appendChild(mark);
    said.push(`${who} from ${o.start_s.toFixed(1)} to ${o.end_s.toFixed(1)} s`);
  }
  strip.setAttribute("aria-label", list.length ? `Two voices at once: ${said.join("; ")}` : "");
}

function drawAxis(total) {
  const axis = $("timeline-axis");
  axis.replaceChildren();
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  const step = steps.find((s) => total / s <= 8) || Math.ceil(total / 8 / 3600) * 3600;
  const label = (t) => (step >= 60 ? `${Math.round(t / 60)} min` : `${t} s`);
  const add = (t, text, cls) => {
    const span = document.createElement("span");
    span.className = `tick ${cls}`;
    span.style.left = `${(100 * t) / total}%`;
    span.textContent = text;
    axis.appendChild(span);
  };
  add(0, "0 s", "first");
  for (let t = step; t < total - 0.6 * step; t += step) add(t, label(t), "");
  add(total, total < 60 ? `${total.toFixed(1)} s` : fmtSeconds(total), "last");
}

// ---- file input and drag-and-drop --------------------------------------------------------------------
function setupFileInput() {
  const input = $("file-input");
  const drop = $("drop");
  input.addEventListener("change", () => {
    if (input.files.length) analyse(input.files[0], input.files[0].name);
    input.value = ""; // choosing the same file again fires change again
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer.files[0];
    if (file) analyse(file, file.name);
  });
  // A file dropped next to the target would otherwise make the browser navigate away to it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ---- microphone: 3-2-1, "Speak now!", N seconds --------------------------------------------------------
let stopEarly = null;

function recordingExtension(mime) {
  if (mime.includes("ogg")) return "ogg";
  if (mime.includes("mp4") || mime.includes("aac")) return "m4a";
  return "webm";
}

async function record() {
  if (busy) return;
  showError("");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
    showError("This browser cannot record audio here (recording needs http://localhost or https).");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    showError(`No microphone: ${e.message || e.name}. Allow microphone access, or upload a file instead.`);
    return;
  }
  const seconds = Number($("seconds").value);
  const box = $("countdown");
  const text = $("countdown-text");
  const fill = $("rec-progress-fill");
  let blob = null;
  let mime = "audio/webm";
  setBusy(true);
  try {
    box.hidden = false;
    box.classList.remove("live");
    fill.style.width = "0";
    for (const n of [3, 2, 1]) {
      text.textContent = String(n);
      await sleep(1000);
    }
    const chunks = [];
    const recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
    const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
    recorder.start();
    box.classList.add("live");
    $("stop").hidden = false;
    const start = performance.now();
    await new Promise((resolve) => {
      stopEarly = resolve;
      const tick = () => {
        const elapsed = (performance.now() - start) / 1000;
        const left = Math.max(0, seconds - elapsed);
        text.textContent = `Speak now! ${Math.ceil(left)} s`;
        fill.style.width = `${Math.min(100, (100 * elapsed) / seconds)}%`;
        if (left <= 0) resolve(); else setTimeout(tick, 100);
      };
      tick();
    });
    recorder.stop();
    await stopped;
    mime = recorder.mimeType || mime;
    blob = new Blob(chunks, { type: mime });
  } catch (e) {
    // MediaRecorder can refuse the stream or the format: say so, and give the page back
    showError(`Recording failed: ${e.message || e.name}. Upload a file instead.`);
  } finally {
    stopEarly = null;
    stream.getTracks().forEach((t) => t.stop()); // the microphone is released whatever happened
    $("stop").hidden = true;
    box.hidden = true;
    setBusy(false);
  }
  if (blob) await analyse(blob, `recording.${recordingExtension(mime)}`);
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromUrl();
  setupFileInput();
  $("record").addEventListener("click", record);
  $("stop").addEventListener("click", () => { if (stopEarly) stopEarly(); });
  loadHealth();
});
