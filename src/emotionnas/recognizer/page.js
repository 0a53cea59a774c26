// Data from the server (labels, file names, errors) is only ever inserted as text:
// textContent and DOM nodes, never innerHTML (the page is served with a Content-Security-Policy).
const COLORS = ["#3478f6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad", "#c92a2a", "#5c940d"];
const $ = (id) => document.getElementById(id);
let labels = [];

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function authHeaders() {
  const key = $("apikey").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function loadHealth() {
  fetch("/health", { headers: authHeaders() }).then(async r => {
    if (r.status === 401) { $("auth").hidden = false; status("this service needs an API key", true); return; }
    const h = await r.json();
    labels = h.labels;
    const m = h.model || {};
    let text = "Model: " + labels.length + " emotions (" + labels.join(", ") + ")";
    if (m.corpus) text += "; trained on " + m.corpus + (m.synthetic ? " (SYNTHETIC demo data)" : "");
    if (m.trained_speakers) text += ", " + m.trained_speakers + " speakers";
    if (typeof m.expected_ua === "number") text += "; expected UA " + m.expected_ua.toFixed(1) + " % (cross-validated)";
    $("model").textContent = text;
  }).catch(e => status("service unreachable: " + e, true));
}
loadHealth();
$("apikey").addEventListener("change", loadHealth);

function color(label) { const i = labels.indexOf(label); return COLORS[(i < 0 ? 0 : i) % COLORS.length]; }

function status(text, isError) { $("status").textContent = text; $("status").className = isError ? "error" : ""; }

async function send(blob, name) {
  status("Listening to " + name + " …");
  const form = new FormData();
  form.append("file", blob, name);
  try {
    const r = await fetch("/predict?segments=vad", { method: "POST", body: form, headers: authHeaders() });
    const body = await r.json();
    if (!r.ok) { status(body.error || ("error " + r.status), true); return; }
    status("");
    show(body);
  } catch (e) { status("request failed: " + e, true); }
}

function show(res) {
  $("result").hidden = false;
  const bars = $("bars");
  bars.replaceChildren();
  if (!res.speech) {
    $("label").textContent = "no speech (" + res.duration.toFixed(1) + " s)";
  } else {
    $("label").textContent = res.label + " (" + res.duration.toFixed(1) + " s)";
    for (const [lab, p] of Object.entries(res.probs)) {
      const row = el("div", "row bar");
      row.dataset.label = lab;
      const track = el("span", "track"), fill = el("span", "fill");
      fill.style.width = (100 * p).toFixed(1) + "%";
      fill.style.display = "block";
      fill.style.background = color(lab);
      track.appendChild(fill);
      row.append(el("span", "name", lab), track, el("span", "value", (100 * p).toFixed(1) + " %"));
      bars.appendChild(row);
    }
  }
  const tl = $("timeline");
  const spans = (res.segments && res.segments.length) ? res.segments : (res.windows || []);
  tl.hidden = !spans.length;
  if (tl.hidden) return;
  const svg = tl.querySelector("svg"), total = res.duration;
  svg.setAttribute("viewBox", "0 0 1000 " + SVG_HEIGHT);
  // the whole file in grey first: what no segment covers is no speech, as the legend says
  svg.replaceChildren(bar(0, 1000, NO_SPEECH, "track nospeech", "no speech"));
  const n = spans.length, segs = spans === res.segments;
  spans.forEach((w, i) => {
    // a window owns the span up to the next window's start (hop); a speech segment its own span
    const end = !segs && i + 1 < n ? spans[i + 1].start : w.end;
    const rect = bar(1000 * w.start / total, Math.max(1, 1000 * (end - w.start) / total),
                     w.speech ? color(w.label) : NO_SPEECH, w.speech ? "segment" : "segment nospeech",
                     `${w.start.toFixed(1)}–${w.end.toFixed(1)} s: ${w.speech ? w.label : "no speech"}`);
    svg.appendChild(rect);
  });
  svg.appendChild(timeAxis(total));
  const legend = tl.querySelector(".legend");
  legend.replaceChildren(...labels.map(l => legendItem(color(l), l)), legendItem(NO_SPEECH, "no speech"));
}

const SVG = "http://www.w3.org/2000/svg", NO_SPEECH = "#ccc", SVG_HEIGHT = 80;

function bar(x, width, fill, cls, tip) {
  const rect = document.createElementNS(SVG, "rect");
  rect.setAttribute("x", x); rect.setAttribute("width", width);
  rect.setAttribute("y", 10); rect.setAttribute("height", 40);
  rect.setAttribute("fill", fill); rect.setAttribute("class", cls);
  const title = document.createElementNS(SVG, "title");
  title.textContent = tip;
  rect.appendChild(title);
  return rect;
}

function legendItem(fill, text) {
  const item = el("span"), swatch = el("i");
  swatch.style.background = fill;
  item.append(swatch, document.createTextNode(text));
  return item;
}

// A time axis under a timeline of `total` seconds drawn 1000 units wide: a baseline and at most
// about ten ticks at a round step, each labelled in seconds.
function timeAxis(total) {
  const g = document.createElementNS(SVG, "g");
  g.setAttribute("class", "axis");
  const line = document.createElementNS(SVG, "line");
  line.setAttribute("x1", 0); line.setAttribute("x2", 1000); line.setAttribute("y1", 55); line.setAttribute("y2", 55);
  g.appendChild(line);
  const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].find(s => total / s <= 10) || 7200;
  for (let t = 0; t <= total + 1e-9; t += step) {
    const x = 1000 * t / total;
    const tick = document.createElementNS(SVG, "line");
    tick.setAttribute("x1", x); tick.setAttribute("x2", x); tick.setAttribute("y1", 55); tick.setAttribute("y2", 60);
    tick.setAttribute("class", "tick");
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", x); label.setAttribute("y", 74);
    label.setAttribute("text-anchor", t === 0 ? "start" : (x > 960 ? "end" : "middle"));
    label.textContent = (Number.isInteger(t) ? t : t.toFixed(1)) + " s";
    g.append(tick, label);
  }
  return g;
}

const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) send(f, f.name);
});
$("file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) send(f, f.name); });

// Live microphone: raw PCM from the microphone; every second the last WINDOW seconds are
// encoded as a 16-bit WAV (no codec on the server) and sent; each answer becomes one second
// of the live timeline. Stop sends the whole recording for one overall result.
const WINDOW = 3, STEP = 1;
let rec = null;
$("record").addEventListener("click", async () => {
  if (rec) { rec.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const src = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    let samples = 0, inFlight = false;
    node.onaudioprocess = (e) => { const c = new Float32Array(e.inputBuffer.getChannelData(0)); chunks.push(c); samples += c.length; };
    src.connect(node); node.connect(ctx.destination);
    $("record").textContent = "Stop";
    status("Listening live …");
    startLive();
    const timer = setInterval(async () => {
      if (inFlight || samples < ctx.sampleRate * 0.5) return;
      inFlight = true;
      const now = samples / ctx.sampleRate;
      const wav = encodeWav(lastSeconds(chunks, Math.round(WINDOW * ctx.sampleRate)), ctx.sampleRate);
      try {
        const r = await fetch("/predict", { method: "POST", body: formOf(wav, "live.wav"), headers: authHeaders() });
        const body = await r.json();
        if (r.ok) addLive(Math.max(0, now - STEP), now, body);
      } catch (e) { status("request failed: " + e, true); }
      inFlight = false;
    }, STEP * 1000);
    rec = { stop: () => {
      clearInterval(timer);
      node.disconnect(); src.disconnect(); stream.getTracks().forEach(t => t.stop());
      const wav = encodeWav(chunks, ctx.sampleRate); ctx.close();
      rec = null; $("record").textContent = "Record";
      send(wav, "recording.wav");
    } };
  } catch (e) { status("no microphone: " + e, true); }
});

function formOf(blob, name) { const f = new FormData(); f.append("file", blob, name); return f; }

function lastSeconds(chunks, n) {
  const out = [];
  let have = 0;
  for (let i = chunks.length - 1; i >= 0 && have < n; i--) { out.unshift(chunks[i]); have += chunks[i].length; }
  return out;
}

let live = [];
function startLive() {
  live = [];
  $("live").hidden = false;
  $("live").querySelector("svg").replaceChildren();
  $("livelabel").textContent = "";
}

function addLive(start, end, res) {
  live.push({ start, end, label: res.label, speech: res.speech });
  $("livelabel").textContent = res.speech ? "now: " + res.label : "now: no speech";
  const svg = $("live").querySelector("svg"), total = Math.max(10, end);
  svg.setAttribute("viewBox", "0 0 1000 " + SVG_HEIGHT);
  svg.replaceChildren(...live.map(w => {
    const rect = bar(1000 * w.start / total, Math.max(1, 1000 * (w.end - w.start) / total),
                     w.speech ? color(w.label) : NO_SPEECH, w.speech ? "live speech" : "live nospeech",
                     `${w.start.toFixed(0)}–${w.end.toFixed(0)} s: ${w.speech ? w.label : "no speech"}`);
    rect.dataset.label = w.speech ? w.label : "";
    return rect;
  }), timeAxis(total));
}

function encodeWav(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  str(36, "data"); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (const x of c) { v.setInt16(o, Math.max(-1, Math.min(1, x)) * 32767, true); o += 2; }
  return new Blob([buf], { type: "audio/wav" });
}
