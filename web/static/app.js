// The page: load the codec, take the token (typed, or from the URL's fragment, which the
// browser never sends to the server), and run one call at a time; the status refreshes
// twice a second. Fragment options: #token=T&autostart=1 (call at once) &aec=0 (the
// browser's echo cancellation, noise suppression and gain control off) &record=1 (keep what
// was played, for the test) &seconds=S (send S seconds, then end our stream) &webrtc=0
// &layers=N (the send ceiling) &adapt=0 (send at the ceiling: no rate control) &protect=0 (no
// redundant copies) &ice=URL,URL (STUN/TURN servers for the offer; the listener's
// --ice-server list, from /config.json, otherwise).

import { Call } from "./call.js";
import { PageCodec } from "./codec.js";

const params = new URLSearchParams(location.hash.slice(1));
const $ = (id) => document.getElementById(id);
const recorded = []; // what the speaker played (with record=1)
const captured = []; // the microphone's frames as they were encoded (with record=1)
const page = { state: "loading", call: null, codec: null, error: null, iceServers: [] };
window.ssvoip = page; // what the headless test reads

const pct = (x) => (x === null || x === undefined ? "-" : `${(100 * x).toFixed(1)} %`);
const num = (x, digits = 1) => (x === null || x === undefined ? "-" : x.toFixed(digits));

function show() {
  const call = page.call;
  if (!call) return;
  const s = call.snapshot();
  $("state").textContent = s.state;
  $("reason").textContent = s.reason;
  $("media").textContent = s.media;
  $("out-kbps").textContent = num(s.sent.kbps);
  $("out-layers").textContent = `${s.sent.layers} of ${s.sent.max_layers}`;
  $("out-loss").textContent = pct(s.sent.loss);
  const [copies, copyLayers] = s.sent.redundant;
  const estimate = s.sent.adapt ? `estimate ${num(s.sent.estimate_kbps)} kbit/s, ` : "fixed rate, ";
  const redundancy = copies ? `, ${copies} redundant ${copies > 1 ? "copies" : "copy"} of ${copyLayers} layers` : "";
  $("out-other").textContent = `rtt ${num(s.sent.rtt_ms, 0)} ms, ${estimate}${s.sent.frames_per_packet} frames a packet${redundancy}`;
  $("in-kbps").textContent = num(s.received.kbps);
  $("in-layers").textContent = num(s.received.layers);
  $("in-loss").textContent = pct(s.received.loss);
  $("in-other").textContent = `jitter ${num(s.received.jitter_ms)} ms, buffer ${num(s.received.buffer_ms, 0)} ms, concealed ${pct(s.received.concealed)}`;
  const t = s.timings;
  $("timing").textContent = `per 20 ms frame in this page (wasm): encoder ${num(t.encode.mean_ms, 2)} ms, decoder ${num(t.decode.mean_ms, 2)} ms`;
}

async function audioGraph(hop, sampleRate) {
  const aec = params.get("aec") !== "0";
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: aec, noiseSuppression: aec, autoGainControl: aec },
  });
  // The codec's rate: the browser resamples the microphone and the output for us.
  const context = new AudioContext({ sampleRate, latencyHint: "interactive" });
  await context.audioWorklet.addModule("/static/capture-worklet.js");
  await context.audioWorklet.addModule("/static/playback-worklet.js");
  const capture = new AudioWorkletNode(context, "ssvoip-capture", { processorOptions: { hop } });
  const playback = new AudioWorkletNode(context, "ssvoip-playback", { processorOptions: { record: params.get("record") === "1" }, outputChannelCount: [1] });
  context.createMediaStreamSource(stream).connect(capture);
  capture.connect(context.destination); // silent: it only needs pulling
  playback.connect(context.destination);
  await context.resume();
  return { context, capture, playback, stream };
}

async function startCall() {
  $("call").disabled = true;
  const codec = page.codec;
  const m = codec.manifest;
  const audio = await audioGraph(m.hop, m.sample_rate);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const call = new Call({
    url: `${scheme}://${location.host}/`,
    token: $("token").value,
    codec,
    audio,
    layers: params.get("layers") ? Number(params.get("layers")) : undefined,
    adapt: params.get("adapt") !== "0",
    protect: params.get("protect") !== "0",
    webrtc: params.get("webrtc") !== "0",
    iceServers: page.iceServers.map((url) => ({ urls: url })),
    seconds: params.get("seconds") ? Number(params.get("seconds")) : undefined,
    onRecorded: (chunk) => recorded.push(chunk),
    trace: params.get("record") === "1" ? (page.trace = []) : undefined,
    onCaptured: params.get("record") === "1" ? (frame) => captured.push(frame) : undefined,
    onState: (state) => {
      page.state = state;
      $("mute").disabled = $("hangup").disabled = state === "ended";
      if (state === "ended") {
        audio.stream.getTracks().forEach((t) => t.stop());
        $("call").disabled = false;
      }
      show();
    },
  });
  page.call = call;
  $("mute").onclick = () => {
    call.muted = !call.muted;
    $("mute").textContent = call.muted ? "unmute" : "mute";
  };
  $("hangup").onclick = () => call.hangUp();
  $("mute").disabled = $("hangup").disabled = false;
  await call.start();
}

async function main() {
  $("token").value = params.get("token") || "";
  history.replaceState(null, "", location.pathname); // the token leaves the address bar
  page.iceServers = params.has("ice") ? params.get("ice").split(",").filter(Boolean) : await listenerIceServers();
  page.codec = await PageCodec.load();
  const m = page.codec.manifest;
  $("model").textContent = `codec ${m.model_id}, ${m.sample_rate} Hz, ${m.layers} layers (${((m.layers * m.bits_per_code * 1000) / m.frame_ms / 1000).toFixed(1)} kbit/s), ${page.codec.concealment} concealment`;
  page.state = "ready";
  $("call").disabled = false;
  $("dial").onsubmit = (event) => {
    event.preventDefault();
    startCall().catch(fail);
  };
  setInterval(show, 500);
  if (params.get("autostart") === "1") await startCall();
}

// The listener's STUN/TURN URLs (its --ice-server list); none when it serves no config.
async function listenerIceServers() {
  try {
    const response = await fetch("/config.json");
    return response.ok ? (await response.json()).ice_servers || [] : [];
  } catch {
    return [];
  }
}

function fail(error) {
  page.error = String(error && error.stack ? error.stack : error);
  page.state = "failed";
  $("state").textContent = "failed";
  $("reason").textContent = String(error);
}

main().catch(fail);

// The browser's own measurement hooks (the test reads them through window.ssvoip).
page.snapshot = () => (page.call ? page.call.snapshot() : null);
page.timings = () => (page.codec ? page.codec.timings() : null);
function joined(chunks) {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Float32Array(n);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return Array.from(out);
}
page.recording = () => joined(recorded);
page.captured = () => joined(captured);
