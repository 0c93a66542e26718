// One call from the page: the Python caller's set-up (hello with token and model id; a
// WebRTC offer for a data channel negotiated as transport/webrtc.py does it: id 0, unordered,
// no retransmissions; the websocket when that fails), then both directions at once:
// microphone frames -> encoder -> packets; packets -> jitter buffer -> decoder -> speaker,
// with the 28-byte feedback every 100 ms so the listener's rate control sees this link. The
// listener's feedback drives this page's own rate control (rate.js, as the Python sender's):
// the layers, frames a packet and redundant copies of what it sends (packetizer.js).

import { Packetizer } from "./packetizer.js";
import * as wire from "./protocol.js";
import { OVERHEAD_WEBRTC, OVERHEAD_WEBSOCKET, RatePolicy } from "./rate.js";
import { JitterBuffer, ReceiveStats } from "./receive.js";

const HIGH_WATER_BYTES = 4 * wire.MAX_PACKET_BYTES; // as the Python sender: skip a frame beyond this
const FEEDBACK_INTERVAL_MS = 100;
const OPEN_TIMEOUT_MS = 5000; // the data channel, as WEBRTC_OPEN_TIMEOUT_S
const ANSWER_TIMEOUT_MS = 12000;
const GATHER_TIMEOUT_MS = 3000;
const MIN_FEEDBACK_GAP_MS = 10; // as transmitter.sender: reports closer than this are not taken
const WEBSOCKET_DRAIN_ABOVE_MS = 60; // as transport/websocket.py (a data channel never drains)
const MAX_PLANS_KEPT = 40;
// The speaker's FIFO starts three frames deep and grows a frame at each underrun (this page's
// thread was late: a loaded machine) up to eight: a stall then costs delay, not a gap.
const PLAYOUT_FIFO_SAMPLES = 960;
const PLAYOUT_FIFO_MAX_SAMPLES = 2560;
// Frames waiting for the encoder before the oldest is dropped: a stall of this page's thread (a
// loaded machine) is caught up by encoding the backlog at once; only beyond 0.5 s is audio lost.
const MAX_ENCODE_BACKLOG = 25;

// Bytes a second over the last `spanMs`.
class RateMeter {
  constructor(spanMs = 1000) {
    this.spanMs = spanMs;
    this.events = [];
  }
  add(now, bytes, layers = 0) {
    this.events.push([now, bytes, layers]);
    while (this.events.length && this.events[0][0] < now - this.spanMs) this.events.shift();
  }
  kbps(now) {
    while (this.events.length && this.events[0][0] < now - this.spanMs) this.events.shift();
    return (8 * this.events.reduce((s, e) => s + e[1], 0)) / this.spanMs;
  }
  meanLayers() {
    const withLayers = this.events.filter((e) => e[2] > 0);
    return withLayers.length ? withLayers.reduce((s, e) => s + e[2], 0) / withLayers.length : 0;
  }
}

export class Call {
  // options: {url, token, codec, audio: {context, capture, playback}, layers (the ceiling),
  //           adapt, protect (both on unless false, as the Python caller), webrtc, seconds, onState}
  constructor(options) {
    this.o = options;
    this.codec = options.codec;
    this.m = options.codec.manifest;
    this.state = "idle";
    this.reason = "";
    this.muted = false;
    this.media = "websocket";
    this.layers = options.layers || this.m.layers;
    this.adapt = options.adapt !== false;
    this.protect = options.protect !== false;
    this.policy = null; // the rate control, once the media path is known (its overhead)
    this.packetizer = new Packetizer(this.m.hop, this.m.bits_per_code);
    this.feedbackAt = -Infinity;
    this.feedbackTaken = 0; // reports the rate control read
    this.plans = []; // the plan's course: the first, then each change
    this.sentEos = false;
    this.remoteEnded = false;
    this.closed = false;
    this.captureQueue = []; // frames waiting for the encoder; null: a frame dropped there
    this.queuedGaps = 0;
    this.startSent = false;
    this.encoding = false;
    this.decoding = false;
    this.fifo = 0;
    this.fifoTarget = PLAYOUT_FIFO_SAMPLES;
    this.underruns = 0;
    this.underrunsSeen = 0;
    this.sendTimes = new Map(); // seq -> ms, for the RTT
    this.stats = new ReceiveStats(this.m.sample_rate);
    this.jitter = new JitterBuffer(this.m.hop, this.m.sample_rate);
    this.sentMeter = new RateMeter();
    this.receivedMeter = new RateMeter();
    this.receivedBytes = 0;
    this.layersReceived = 0;
    this.framesReceived = 0;
    this.highestArrival = 0;
    this.remote = null; // the last feedback about our direction
    this.rttMs = null;
    this.framesSent = 0;
    this.layersSent = 0; // summed over the frames sent, for the mean
    this.layersSentRange = [Infinity, 0];
    this.counts = { sent: 0, skipped: 0, drained: 0, droppedAtCapture: 0, received: 0, malformed: 0 };
    this.sentByPath = { webrtc: 0, websocket: 0 }; // media packets
    this.receivedByPath = { webrtc: 0, websocket: 0 };
    this.priorExpected = 0;
    this.priorReceived = 0;
    this.shownLoss = 0;
  }

  setState(state, reason = "") {
    this.state = state;
    if (reason) this.reason = reason;
    if (this.o.onState) this.o.onState(state, this.reason);
  }

  // ---- set-up ----------------------------------------------------------------------------------
  async start() {
    this.setState("connecting");
    // Taken from now on (a port holds its messages until it has a handler): the frames
    // captured during set-up are dropped, not sent in a burst once the call is established.
    this.o.audio.capture.port.onmessage = (event) => this.onCapture(event.data);
    this.o.audio.playback.port.onmessage = (event) => this.onPlayback(event.data);
    this.ws = new WebSocket(this.o.url);
    this.ws.binaryType = "arraybuffer";
    this.inbox = [];
    this.waiter = null;
    this.ws.onmessage = (event) => this.onSignal(event.data);
    this.ws.onclose = (event) => this.end(event.reason || "link closed", false);
    await new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error(`cannot connect to ${this.o.url}`));
    });
    const webrtc = this.o.webrtc !== false && typeof RTCPeerConnection !== "undefined";
    this.ws.send(
      wire.hello({
        modelId: this.m.model_id,
        sampleRate: this.m.sample_rate,
        frameMs: this.m.frame_ms,
        maxLayers: this.m.n_quantizers,
        bitsPerStage: this.m.bits_per_code,
        token: this.o.token,
        media: webrtc ? "webrtc" : "websocket",
      }),
    );
    this.setState("hello sent");
    const reply = await this.nextControl(ANSWER_TIMEOUT_MS, "no answer to hello");
    if (reply.type === "reject") return this.end(`refused: ${reply.reason}`, false);
    if (reply.type !== "accept") return this.end(`expected an accept, got ${reply.type}`, true);
    this.layers = Math.min(this.layers, reply.max_layers);
    if (webrtc) await this.negotiate();
    if (this.closed) return;
    if (this.adapt || this.protect) {
      const dataChannel = this.media === "webrtc";
      this.policy = new RatePolicy(this.layers, {
        bits: this.m.bits_per_code,
        frameS: this.m.hop / this.m.sample_rate,
        overhead: dataChannel ? OVERHEAD_WEBRTC : OVERHEAD_WEBSOCKET,
        adapt: this.adapt,
        protect: this.protect,
        minLayers: this.m.min_useful_stages || 1,
        drainAboveMs: dataChannel ? null : WEBSOCKET_DRAIN_ABOVE_MS,
      });
      const p = this.policy.plan;
      this.plans.push([0, p.layers, p.fpp, p.redundantFrames, p.sendEvery]);
    }
    this.establishedAt = performance.now();
    this.setState("established");
    this.feedbackTimer = setInterval(() => this.sendFeedback(), FEEDBACK_INTERVAL_MS);
  }

  // Offer a data channel, take the answer, wait for the channel: media on it, else the websocket.
  async negotiate() {
    this.setState("offering");
    this.pc = new RTCPeerConnection({ iceServers: this.o.iceServers || [] });
    this.dc = this.pc.createDataChannel("media", { ordered: false, maxRetransmits: 0, negotiated: true, id: 0 });
    this.dc.binaryType = "arraybuffer";
    this.dc.onmessage = (event) => this.onBinary(event.data, "webrtc");
    this.dc.onclose = () => {
      if (!this.closed) this.media = "websocket"; // mid-call: media falls back (the listener takes it from either path)
    };
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await this.gathered();
    this.ws.send(wire.offer(this.pc.localDescription.sdp)); // candidates included: no trickle, as aiortc
    const answer = await this.nextControl(ANSWER_TIMEOUT_MS, "no answer to the WebRTC offer");
    if (answer.type !== "answer") return this.end(`expected an answer, got ${answer.type}`, true);
    if (!answer.sdp) return; // the listener does not do WebRTC: media on the websocket
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    const opened = await new Promise((resolve) => {
      if (this.dc.readyState === "open") return resolve(true);
      const timer = setTimeout(() => resolve(false), OPEN_TIMEOUT_MS);
      this.dc.onopen = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    this.media = opened ? "webrtc" : "websocket";
  }

  gathered() {
    return new Promise((resolve) => {
      if (this.pc.iceGatheringState === "complete") return resolve();
      const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
      this.pc.addEventListener("icegatheringstatechange", () => {
        if (this.pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  nextControl(timeoutMs, why) {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.end(why, true);
        resolve({ type: "timeout" });
      }, timeoutMs);
      this.waiter = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  }

  // ---- what comes in -------------------------------------------------------------------------------
  onSignal(data) {
    if (typeof data !== "string") return this.onBinary(data, "websocket");
    let message;
    try {
      message = wire.parseMessage(data);
    } catch (error) {
      console.warn(error.message);
      return;
    }
    if (this.state !== "established") {
      if (this.waiter) {
        const waiter = this.waiter;
        this.waiter = null;
        waiter(message);
      } else this.inbox.push(message);
      return;
    }
    if (message.type === "eos") {
      this.remoteEnded = true;
      this.jitter.draining = true;
    } else if (message.type === "bye") {
      this.remoteEnded = true;
      this.jitter.draining = true;
      this.end(message.reason || "the other side hung up", false);
    }
  }

  onBinary(data, path) {
    const bytes = new Uint8Array(data);
    const now = performance.now();
    if (wire.isFeedback(bytes)) {
      try {
        this.onFeedback(wire.decodeFeedback(bytes), now);
      } catch {
        this.counts.malformed += 1;
      }
      return;
    }
    let packet;
    try {
      packet = wire.decodePacket(bytes, this.m.bits_per_code, this.m.n_quantizers);
    } catch {
      this.counts.malformed += 1;
      return;
    }
    const arrival = now / 1000;
    const highest = this.stats.extendedMax;
    if (!this.stats.onPacket(packet.seq, packet.timestamp, arrival)) return;
    if (this.stats.extendedMax !== highest || this.stats.received === 1) this.highestArrival = now;
    this.counts.received += 1;
    this.receivedByPath[path] += 1;
    this.receivedBytes += bytes.length;
    this.receivedMeter.add(now, bytes.length, packet.frames[0].length);
    for (const f of packet.frames) {
      this.layersReceived += f.length;
      this.framesReceived += 1;
    }
    const hop = this.m.hop;
    const n = packet.frames.length;
    packet.frames.forEach((codes, i) =>
      this.jitter.push((packet.timestamp + i * hop) % wire.TS_MODULO, codes, arrival, { quiet: packet.quiet, packetFrames: n, last: i === n - 1 }),
    );
    for (const r of packet.redundancy) {
      this.jitter.push((packet.timestamp - r.back * hop + wire.TS_MODULO) % wire.TS_MODULO, r.codes, arrival, { redundant: true });
    }
  }

  onFeedback(fb, now) {
    if (now - this.feedbackAt < MIN_FEEDBACK_GAP_MS) return;
    this.feedbackAt = now;
    this.remote = fb;
    const sentAt = this.sendTimes.get(fb.highest_seq % wire.SEQ_MODULO);
    if (sentAt !== undefined) this.rttMs = Math.max(0, now - sentAt - fb.hold_ms);
    if (!this.policy) return;
    const plan = this.policy.onFeedback(now / 1000, fb, this.bufferedBytes());
    this.feedbackTaken += 1;
    // The plan's course (bounded): [ms into the call, layers, frames a packet, redundant copies, send every].
    const entry = [Math.round(now - this.establishedAt), plan.layers, plan.fpp, plan.redundantFrames, plan.sendEvery];
    const last = this.plans[this.plans.length - 1];
    if (!last || entry.slice(1).some((v, i) => v !== last[i + 1])) this.plans.push(entry);
    if (this.plans.length > MAX_PLANS_KEPT) this.plans.splice(1, 1);
  }

  // ---- sending ----------------------------------------------------------------------------------
  onCapture(message) {
    if (this.state !== "established" || this.sentEos) return;
    if (this.firstCaptureEpoch === undefined) this.firstCaptureEpoch = Date.now() / 1000 - this.m.frame_ms / 1000;
    this.captureQueue.push(message.frame);
    if (this.captureQueue.length - this.queuedGaps > MAX_ENCODE_BACKLOG) {
      // The oldest waiting frame becomes a hole in its place (null): the timeline goes on, and
      // the receiver conceals it.
      this.captureQueue[this.captureQueue.findIndex((f) => f !== null)] = null;
      this.queuedGaps += 1;
      this.counts.droppedAtCapture += 1;
    }
    if (!this.encoding) this.encodeQueued();
  }

  async encodeQueued() {
    this.encoding = true;
    try {
      while (this.captureQueue.length && !this.closed && !this.sentEos) {
        const frame = this.captureQueue.shift();
        if (frame === null) {
          this.queuedGaps -= 1;
          this.send(this.packetizer.gap(this.plan(), this.bufferedBytes()));
          continue;
        }
        if (this.o.onCaptured) this.o.onCaptured(frame.slice()); // what was encoded (the test's reference input)
        if (this.muted) frame.fill(0);
        let energy = 0;
        for (let i = 0; i < frame.length; i++) energy += frame[i] * frame[i];
        const rms = Math.sqrt(energy / frame.length);
        const plan = this.plan(); // read once a frame: a report between frames takes effect on the next
        const codes = await this.codec.encode(frame, plan ? plan.layers : this.layers);
        if (!this.startSent) this.ws.send(wire.start(this.firstCaptureEpoch));
        this.startSent = true;
        this.framesSent += 1;
        this.layersSent += codes.length;
        this.layersSentRange = [Math.min(this.layersSentRange[0], codes.length), Math.max(this.layersSentRange[1], codes.length)];
        this.send(this.packetizer.push(codes, rms, plan, this.bufferedBytes()));
        if (this.o.seconds && this.packetizer.frames * this.m.frame_ms >= 1000 * this.o.seconds) this.endOfStream();
      }
    } finally {
      this.encoding = false;
    }
  }

  plan() {
    return this.policy ? this.policy.plan : null;
  }

  bufferedBytes() {
    const link = this.dc && this.dc.readyState === "open" ? this.dc : this.ws;
    return link ? link.bufferedAmount : 0;
  }

  // What the packetizer made of a frame: a packet to send, a skip, or nothing yet.
  send(out) {
    if (out === null) return;
    if (out.skip) {
      this.counts[out.skip === "drained" ? "drained" : "skipped"] += 1;
      return;
    }
    const seq = this.packetizer.seq % wire.SEQ_MODULO;
    if (this.sendMedia(out.data)) {
      this.packetizer.sent();
      this.sendTimes.set(seq, performance.now());
      this.sendTimes.delete((seq - 1000 + wire.SEQ_MODULO) % wire.SEQ_MODULO);
      this.counts.sent += 1;
      this.sentByPath[this.media] += 1;
      this.sentMeter.add(performance.now(), out.data.length, out.layers);
    } else this.counts.skipped += 1; // the link's queue is full
  }

  sendMedia(bytes) {
    if (this.dc && this.dc.readyState === "open") {
      if (this.dc.bufferedAmount > HIGH_WATER_BYTES) return false;
      this.dc.send(bytes);
      this.media = "webrtc";
      return true;
    }
    this.media = "websocket";
    if (this.ws.readyState !== WebSocket.OPEN || this.ws.bufferedAmount > HIGH_WATER_BYTES) return false;
    this.ws.send(bytes);
    return true;
  }

  endOfStream() {
    if (this.sentEos || this.closed) return;
    this.send(this.packetizer.flush(this.plan(), this.bufferedBytes())); // the frames still pending
    this.sentEos = true;
    this.ws.send(wire.eos());
  }

  sendFeedback() {
    if (this.stats.received === 0 || this.closed) return;
    const now = performance.now();
    const report = wire.encodeFeedback({
      highest_seq: Math.max(0, this.stats.extendedMax),
      received: this.stats.received,
      loss_fraction: Math.min(1, this.stats.intervalLoss()),
      jitter_ms: Math.min(60000, this.stats.jitterMs),
      hold_ms: Math.max(0, now - this.highestArrival),
      buffer_ms: 1000 * this.jitter.levelS,
      concealed_fraction: this.jitter.concealedFraction,
      received_bytes: this.receivedBytes,
      recovered: this.jitter.stats.recovered,
      queue_delay_ms: this.jitter.queueDelayMs(),
    });
    this.sendMedia(report);
  }

  // ---- playing ----------------------------------------------------------------------------------
  onPlayback(message) {
    if (message.recorded && this.o.onRecorded) {
      this.o.onRecorded(message.recorded);
      if (this.flushed) this.recordingDone = true;
    }
    if (message.queued === undefined) return;
    this.fifo = message.queued;
    if (!this.playoutDrained()) {
      // Each underrun of a stream still playing (not the end's) deepens the FIFO by a frame.
      if (message.underruns > this.underrunsSeen) {
        this.underruns += 1;
        this.fifoTarget = Math.min(PLAYOUT_FIFO_MAX_SAMPLES, this.fifoTarget + this.m.hop);
      }
    }
    this.underrunsSeen = message.underruns;
    if (this.playoutDrained() && this.fifo === 0 && !this.flushed) {
      this.flushed = true; // what is still recorded in the worklet comes back, then recordingDone
      this.o.audio.playback.port.postMessage({ flush: true });
    }
    if (!this.decoding && this.fifo < this.fifoTarget) this.playNext();
  }

  async playNext() {
    this.decoding = true;
    try {
      while (this.fifo < this.fifoTarget && !this.playoutDrained()) {
        if (this.fifo >= this.m.hop && this.jitter.wouldStretch(performance.now() / 1000)) break; // stretch only to avoid a gap
        const decision = this.jitter.pop(performance.now() / 1000);
        if (this.o.trace && decision.action !== "play") this.o.trace.push([Math.round(performance.now()), decision.action, Math.round(1000 * this.jitter.levelS), Math.round(1000 * this.jitter.targetS(performance.now() / 1000)), this.fifo]);
        if (decision.action === "wait") break;
        for (const codes of decision.skipped) await this.codec.decode(codes); // the decoder's state runs on
        const samples = decision.action === "play" ? await this.codec.decode(decision.codes) : await this.codec.conceal(decision.following, decision.followingDistance);
        this.o.audio.playback.port.postMessage({ samples });
        this.fifo += samples.length;
      }
      // Both streams done (our eos said, theirs played out): the side that finishes last says bye.
      if (this.playoutDrained() && this.sentEos && !this.closed) this.end("call ended", true);
    } finally {
      this.decoding = false;
    }
  }

  playoutDrained() {
    return this.stopPlayout || (this.remoteEnded && this.jitter.bufferedFrames === 0);
  }

  // ---- the end ----------------------------------------------------------------------------------
  hangUp() {
    this.stopPlayout = true;
    this.end("hang-up", true);
  }

  // The link closes at once; what is buffered still plays (unless we hung up).
  end(reason, sayBye) {
    if (this.closed) return;
    this.closed = true;
    this.remoteEnded = true;
    this.jitter.draining = true;
    clearInterval(this.feedbackTimer);
    if (sayBye && this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(wire.bye(reason));
    if (this.ws) this.ws.close(1000);
    if (this.pc) this.pc.close();
    this.setState("ended", reason);
  }

  // What the page shows, and what the test reads.
  snapshot() {
    const now = performance.now();
    const plan = this.plan();
    const expected = this.stats.expected;
    const received = this.stats.received;
    if (expected - this.priorExpected >= 25) {
      this.shownLoss = Math.max(0, (expected - this.priorExpected - (received - this.priorReceived)) / (expected - this.priorExpected));
      this.priorExpected = expected;
      this.priorReceived = received;
    }
    return {
      state: this.state,
      reason: this.reason,
      recording_done: !!this.recordingDone,
      media: this.media,
      muted: this.muted,
      sent: {
        kbps: this.sentMeter.kbps(now),
        layers: plan ? plan.layers : this.layers, // what the next frame is encoded with
        layers_mean: this.framesSent ? this.layersSent / this.framesSent : 0, // over the call
        layers_range: this.framesSent ? this.layersSentRange : null,
        max_layers: this.layers, // the ceiling: the listener's, or #layers=N
        frames_per_packet: plan ? plan.fpp : 1,
        redundant: plan ? [plan.redundantFrames, plan.redundantLayers] : [0, 0], // copies a packet, their layers
        estimate_kbps: plan && this.adapt ? plan.estimateBps / 1000 : null,
        adapt: !!(this.policy && this.adapt),
        feedback_taken: this.feedbackTaken,
        plans: this.plans,
        loss: this.remote ? this.remote.loss_fraction : null,
        rtt_ms: this.rttMs,
        ...this.counts,
        by_path: this.sentByPath,
      },
      received: {
        kbps: this.receivedMeter.kbps(now),
        layers: this.receivedMeter.meanLayers(), // over the last second
        layers_mean: this.framesReceived ? this.layersReceived / this.framesReceived : 0, // over the call
        loss: this.shownLoss,
        jitter_ms: this.stats.jitterMs,
        buffer_ms: 1000 * this.jitter.levelS,
        concealed: this.jitter.concealedFraction,
        concealment: this.codec.concealment, // "neural" (the listener's predictor) or "repeat"
        packets: received,
        by_path: this.receivedByPath,
        expected,
        underruns: this.underruns,
        fifo_ms: (1000 * this.fifoTarget) / this.m.sample_rate,
        ...this.jitter.stats,
      },
      timings: this.codec.timings(),
    };
  }
}
