// The receiving half's bookkeeping, sans-I/O (times in seconds are passed in), as the Python
// receiver's: RFC 3550 statistics (protocol/stats.py), a jitter buffer with concealment (a
// small cousin of protocol/playout.py), and the 100 ms feedback report the sender's rate
// control reads (protocol/feedback.py). No DOM, so `node --test` runs it.

import { SEQ_MODULO, TS_MODULO, seqDiff } from "./protocol.js";

const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;

export class ReceiveStats {
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    this.baseSeq = null;
    this.maxSeq = 0;
    this.cycles = 0;
    this.received = 0;
    this.jitter = 0; // timestamp units (RFC 3550's J)
    this.lastTransit = null;
    this.expectedPrior = 0;
    this.receivedPrior = 0;
  }

  get extendedMax() {
    return this.cycles + this.maxSeq;
  }

  get expected() {
    return this.baseSeq === null ? 0 : this.extendedMax - this.baseSeq + 1;
  }

  get jitterMs() {
    return (1000 * this.jitter) / this.sampleRate;
  }

  // Returns false for a packet far out of order (not counted), as ReceiveStats.on_packet.
  onPacket(seq, timestamp, arrival) {
    if (this.baseSeq === null) {
      this.baseSeq = seq;
      this.maxSeq = seq;
    } else {
      const delta = seqDiff(seq, this.maxSeq);
      if (delta > 0 && delta < MAX_DROPOUT) {
        if (seq < this.maxSeq) this.cycles += SEQ_MODULO;
        this.maxSeq = seq;
      } else if (!(delta <= 0 && -delta <= MAX_MISORDER)) {
        return false;
      }
    }
    this.received += 1;
    const transit = arrival * this.sampleRate - timestamp;
    if (this.lastTransit !== null) {
      let d = transit - this.lastTransit;
      if (d > TS_MODULO / 2) d -= TS_MODULO;
      else if (d < -TS_MODULO / 2) d += TS_MODULO;
      this.jitter += (Math.abs(d) - this.jitter) / 16;
    }
    this.lastTransit = transit;
    return true;
  }

  // Loss fraction since the previous call (A.3).
  intervalLoss() {
    const expected = this.expected - this.expectedPrior;
    const received = this.received - this.receivedPrior;
    this.expectedPrior = this.expected;
    this.receivedPrior = this.received;
    return expected > 0 ? Math.max(0, (expected - received) / expected) : 0;
  }
}

const FOLLOWING_REACH = 4; // frames past a lost one searched for a frame to aim at

const tsAhead = (a, b) => seqDiff(a, b, TS_MODULO); // a - b in samples, on the wrapping clock

// Playout decisions: {action: "wait" | "play" | "conceal" | "expand", codes, skipped: [codes]};
// a "conceal" also carries `following`, the codes of the nearest later frame already here (or
// null), `followingDistance` frames after the lost one.
// The target level covers the recent arrivals' spread (p95 of each frame's delay above the
// fastest of the last `windowS`), plus what the packing costs, plus a margin.
export class JitterBuffer {
  constructor(hop, sampleRate, { minDelayS = 0.06, maxDelayS = 0.5, marginS = 0.01, windowS = 10, relaxS = 5 } = {}) {
    this.hop = hop;
    this.sampleRate = sampleRate;
    this.frameS = hop / sampleRate;
    this.minDelayS = minDelayS;
    this.relaxS = relaxS;
    this.extraS = 0;
    this.extraSince = 0;
    this.maxDelayS = maxDelayS;
    this.marginS = marginS;
    this.windowS = windowS;
    this.frames = new Map(); // timestamp -> {codes, redundant, quiet}
    this.next = null; // timestamp of the next frame to play
    this.newest = null; // timestamp of the newest frame held or played
    this.firstTs = null;
    this.unwrapped = 0; // the newest timestamp, unwrapped, relative to the first
    this.delays = []; // [arrival, delay] of recent primary frames
    this.packing = 1;
    this.started = false;
    this.refilling = true;
    this.draining = false;
    this.stats = { played: 0, recovered: 0, concealed: 0, expanded: 0, skipped: 0, late: 0, duplicate: 0 };
  }

  // Seconds of media held from the next frame to the newest one.
  get levelS() {
    if (this.next === null || this.newest === null) return 0;
    return Math.max(0, tsAhead(this.newest, this.next) / this.sampleRate + this.frameS);
  }

  get bufferedFrames() {
    return this.frames.size;
  }

  // Each stretch after the start (the buffer ran dry: a late arrival, or this page's thread
  // stalled on a loaded machine) raises the floor by a frame, up to `maxDelayS`; it falls back
  // a frame for every `relaxS` without one.
  floorS(now) {
    while (this.extraS > 0 && now - this.extraSince > this.relaxS) {
      this.extraS = Math.max(0, this.extraS - this.frameS);
      this.extraSince += this.relaxS;
    }
    return this.minDelayS + this.extraS;
  }

  targetS(now = 0) {
    const floor = this.floorS(now);
    if (this.delays.length === 0) return floor;
    const values = this.delays.map((d) => d[1]).sort((a, b) => a - b);
    const spread = values[Math.min(values.length - 1, Math.floor(0.95 * values.length))] - values[0];
    const target = spread + (this.packing - 1) * this.frameS + this.marginS;
    return Math.min(this.maxDelayS, Math.max(floor, target));
  }

  // How far the newest packet arrived above the fastest path of the window (ms): a queue.
  queueDelayMs() {
    if (this.delays.length === 0) return 0;
    let low = Infinity;
    for (const d of this.delays) low = Math.min(low, d[1]);
    return 1000 * Math.max(0, this.delays[this.delays.length - 1][1] - low);
  }

  push(timestamp, codes, arrival, { redundant = false, quiet = false, packetFrames = 1, last = true } = {}) {
    if (this.firstTs === null) {
      this.firstTs = timestamp;
      this.newest = timestamp;
    }
    if (this.next !== null && tsAhead(timestamp, this.next) < 0) {
      if (!redundant) this.stats.late += 1;
      return;
    }
    const held = this.frames.get(timestamp);
    if (held !== undefined) {
      if (!redundant && held.redundant) this.frames.set(timestamp, { codes, redundant, quiet });
      else if (!redundant) this.stats.duplicate += 1;
      return;
    }
    this.frames.set(timestamp, { codes, redundant, quiet });
    if (redundant) return;
    const ahead = tsAhead(timestamp, this.newest);
    if (ahead > 0) {
      this.unwrapped += ahead;
      this.newest = timestamp;
    }
    if (last) {
      // The packet's last frame: its media time against its arrival.
      const media = (this.unwrapped + tsAhead(timestamp, this.newest)) / this.sampleRate;
      this.delays.push([arrival, arrival - media]);
      while (this.delays.length && this.delays[0][0] < arrival - this.windowS) this.delays.shift();
      this.packing = packetFrames;
    }
  }

  // Whether `pop` would stretch (nothing to play yet): the caller may rather wait while its
  // output still holds audio, so that packets held up behind a stall come first.
  wouldStretch(now) {
    if (this.next === null) return true;
    if (this.refilling && !this.draining && this.levelS < this.targetS(now)) return true;
    return this.frames.size === 0;
  }

  pop(now) {
    if (this.next === null) {
      if (this.frames.size === 0) return { action: "wait", skipped: [] };
      let first = null;
      for (const ts of this.frames.keys()) if (first === null || tsAhead(ts, first) < 0) first = ts;
      this.next = first;
    }
    const target = this.targetS(now);
    if (this.refilling && !this.draining) {
      if (this.levelS < target) return this.started ? this.conceal("expand", false) : { action: "wait", skipped: [] };
      this.refilling = false;
      this.started = true;
    }
    const skipped = [];
    // Too much held: skip quiet frames beyond target + 3 frames, any frame beyond 200 ms over.
    while (this.levelS > target + 3 * this.frameS) {
      const frame = this.frames.get(this.next);
      const far = this.levelS > target + 0.2;
      if (!far && !(frame && frame.quiet)) break;
      if (frame) skipped.push(frame.codes);
      this.frames.delete(this.next);
      this.advance();
      this.stats.skipped += 1;
    }
    const frame = this.frames.get(this.next);
    if (frame !== undefined) {
      this.frames.delete(this.next);
      this.advance();
      this.stats.played += 1;
      if (frame.redundant) this.stats.recovered += 1;
      return { action: "play", codes: frame.codes, skipped };
    }
    if (this.frames.size > 0) {
      const concealed = this.conceal("conceal", true);
      // The nearest later frame already here, within FOLLOWING_REACH (as protocol/playout.py).
      for (let distance = 1; distance <= FOLLOWING_REACH; distance++) {
        const later = this.frames.get((this.next + (distance - 1) * this.hop) % TS_MODULO);
        if (later !== undefined) return { ...concealed, following: later.codes, followingDistance: distance, skipped };
      }
      return { ...concealed, following: null, followingDistance: 0, skipped };
    }
    this.refilling = true;
    if (!this.draining) {
      this.extraS = Math.min(this.maxDelayS - this.minDelayS, this.extraS + this.frameS);
      this.extraSince = now;
    }
    return { ...this.conceal("expand", false), skipped };
  }

  conceal(action, advance) {
    if (advance) {
      this.advance();
      this.stats.concealed += 1;
    } else {
      this.stats.expanded += 1;
    }
    return { action, skipped: [] };
  }

  advance() {
    this.next = (this.next + this.hop) % TS_MODULO;
  }

  get concealedFraction() {
    const s = this.stats;
    const total = s.played + s.concealed + s.expanded;
    return total ? (s.concealed + s.expanded) / total : 0;
  }
}
