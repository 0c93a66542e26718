// The sender's rate control, as protocol/ratecontrol/ (sans-I/O): the listener's feedback in,
// a send plan out (layers, frames a packet, redundant copies, thinning). The same algorithm and
// constants, one class a Python module, so that web/test/rate.test.js can hold it to the
// decisions the Python RatePolicy makes on the same reports (tests/web/vectors.py writes them).
// docs/protocol.md has the measurements behind the thresholds; the comments here say only what
// the Python side's docstrings say at more length.

export const HEADER_BYTES = 8; // protocol/packets.py: what every packet pays
export const OVERHEAD_WEBRTC = 90; // IP, UDP, DTLS and SCTP headers on a data channel
export const OVERHEAD_WEBSOCKET = 50; // TCP/IP headers and websocket framing
export const MAX_REDUNDANT = 8;
const LEAP_QUEUE_MS = 25; // protocol/feedback.py

// wire.py
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
export const stagesForBps = (bps, bits, frameS) => Math.max(1, roundHalfEven((bps * frameS) / bits));
export function wireBps(layers, fpp, bits, frameS, overhead) {
  const payload = Math.ceil((layers * bits) / 8);
  const packet = overhead + HEADER_BYTES + fpp * (1 + payload);
  return (8 * packet) / (fpp * frameS);
}

// delivery.py: loss and received rates over a window of the receiver's cumulative counters.
const RECENT_S = 0.3;
const MAX_REPORTS = 128;

class DeliveryWindow {
  constructor(windowS, overhead) {
    this.windowS = windowS;
    this.overhead = overhead;
    this.loss = 0;
    this.residualLoss = 0;
    this.packets = 0; // the packets the loss is measured on
    this.reports = [];
  }

  // r: {t, highest_seq, received, received_bytes, recovered}; returns {receivedBps, recentBps}.
  onReport(r, fpp) {
    const now = r.t;
    this.reports.push(r);
    if (this.reports.length > MAX_REPORTS) this.reports.shift();
    while (this.reports.length > 2 && now - this.reports[1].t >= this.windowS) this.reports.shift();
    const first = this.reports[0];
    const expected = r.highest_seq - first.highest_seq;
    const got = r.received - first.received;
    if (expected > 0) {
      this.loss = Math.max(0, Math.min(1, 1 - got / expected));
      this.packets = expected;
      const lostFrames = (expected - got) * fpp;
      const residual = Math.max(0, lostFrames - (r.recovered - first.recovered));
      this.residualLoss = Math.min(1, residual / (expected * fpp));
    }
    let receivedBps = null;
    if (now > first.t && got > 0) receivedBps = (8 * (r.received_bytes - first.received_bytes + got * this.overhead)) / (now - first.t);
    let recentBps = receivedBps;
    let index = this.reports.findIndex((c) => c.t - now >= -RECENT_S);
    const recent = this.reports[index < 0 ? 0 : index];
    if (now - recent.t >= RECENT_S / 2 && r.received > recent.received) {
      recentBps = (8 * (r.received_bytes - recent.received_bytes + (r.received - recent.received) * this.overhead)) / (now - recent.t);
    }
    return { receivedBps, recentBps };
  }
}

// estimator.py: loss against the path's inherent loss, GCC's delay signal, our send backlog.
const LOSS_GROW_BELOW = 0.02; // loss above the inherent under which the estimate may grow
const LOSS_CUT_ABOVE = 0.05; // ... over which (and over half the inherent loss again) it is cut
const LOSS_CUT_SHARE = 0.95; // of the rate that arrived without the inherent loss, on a loss cut
const LOSS_NOISE_SDS = 4; // ... or over this many standard deviations of a window's binomial noise
const MAX_INHERENT_LOSS = 0.25;
const INHERENT_MEMORY_S = 10; // the average loss, the inherent loss's bound
const BACKLOG_OVERUSE_BYTES = 2000;
const OVERUSE_SHARE = 0.85;

class BandwidthEstimator {
  constructor(initialBps, maxBps, minBps = 4000, overuseMs = 60, underuseMs = 20, growthPerS = 0.25, appLimit = 2, lossWindowS = 1) {
    this.estimate = initialBps;
    this.minBps = minBps;
    this.maxBps = maxBps;
    this.overuseS = overuseMs / 1000;
    this.underuseS = underuseMs / 1000;
    this.growth = growthPerS;
    this.appLimit = appLimit;
    this.lossWindowS = lossWindowS;
    this.persisting = 0; // the most loss that persisted after a loss cut
    this.meanLoss = [0, 0]; // the loss's average: [weighted sum, weight], no prior
    this.last = null;
    this.lossCut = null; // [when, the loss that cut, its packets] until a window at the new rate
  }

  onFeedback(now, loss, queueDelayMs, receivedBps, sendBufferBytes = 0, packets = 0) {
    const dt = this.last === null ? 0.1 : Math.max(0, Math.min(1, now - this.last));
    this.last = now;
    const queueS = queueDelayMs / 1000;
    const overuse = queueS > this.overuseS || sendBufferBytes > BACKLOG_OVERUSE_BYTES;
    this.learnInherentLoss(now, dt, loss, overuse);
    if (this.lossCut === null && loss > this.lossCutAbove(packets)) this.cutOnLoss(now, loss, receivedBps, packets);
    if (overuse) {
      const measured = receivedBps !== null ? receivedBps : this.estimate;
      this.estimate = Math.min(this.estimate, OVERUSE_SHARE * measured);
    } else if (
      this.lossCut === null &&
      loss < this.inherentLoss + LOSS_GROW_BELOW &&
      queueS < this.underuseS &&
      (receivedBps === null || this.estimate < this.appLimit * receivedBps)
    ) {
      this.estimate *= (1 + this.growth) ** dt;
    }
    this.clamp();
    return this.estimate;
  }

  // The path's own loss, which cutting does not reduce.
  get inherentLoss() {
    const [total, weight] = this.meanLoss;
    return Math.min(this.persisting, weight ? total / weight : 0);
  }

  // Clearly above the inherent loss: its windows scatter more the fewer packets they hold.
  lossCutAbove(packets = 0) {
    const p = this.inherentLoss;
    const q = Math.max(p, LOSS_CUT_ABOVE);
    const noise = packets ? LOSS_NOISE_SDS * Math.sqrt((q * (1 - q)) / packets) : 0;
    return p + Math.max(LOSS_CUT_ABOVE + p / 2, noise);
  }

  cutOnLoss(now, loss, receivedBps, packets) {
    if (receivedBps !== null) this.estimate = Math.min(this.estimate, (LOSS_CUT_SHARE * receivedBps) / (1 - this.inherentLoss));
    else this.estimate *= 1 - (loss - this.inherentLoss) / 2;
    this.lossCut = [now, loss, packets];
  }

  // Loss that persists a window after a loss cut (no more than the loss that cut, within its
  // noise) is the path's own, never more than the average loss.
  learnInherentLoss(now, dt, loss, overuse) {
    if (overuse) {
      this.lossCut = null;
      return;
    }
    const [total, weight] = this.meanLoss;
    const keep = Math.exp(-dt / INHERENT_MEMORY_S);
    this.meanLoss = [total * keep + (1 - keep) * loss, weight * keep + (1 - keep)];
    if (this.lossCut !== null && now - this.lossCut[0] >= this.lossWindowS) {
      const [, cutLoss, cutPackets] = this.lossCut;
      this.lossCut = null;
      if (loss <= cutLoss + (cutPackets ? Math.sqrt((cutLoss * (1 - cutLoss)) / cutPackets) : 0)) {
        this.persisting = Math.max(this.persisting, Math.min(loss, MAX_INHERENT_LOSS));
      }
    }
  }

  clamp() {
    this.estimate = Math.max(this.minBps, Math.min(this.maxBps, this.estimate));
  }
}

// layers.py: the estimate as (layers, frames a packet), down at once, up one probe at a time.
const PROBE_FAIL_S = 2;
const PROBE_ABORT_MS = LEAP_QUEUE_MS;
const MIN_FPP_BACKOFF_S = 10;
const MAX_FPP_BACKOFF_S = 60;
const MAX_UP_BPS = 1500;
const UP_MARGIN = 1.15;
const UNBLOCK_RISE = 1.2;
const FLOOR_FRAMES_PER_PACKET = 6;

const decision = (layers, fpp, wire) => ({ layers, fpp, wire });
const isTrial = (d) => d.fpp !== Math.trunc(d.fpp);

class LayerController {
  constructor(maxLayers, bits, frameS, overhead, maxFpp = 3, minLayers = 1) {
    this.maxLayers = maxLayers;
    this.minLayers = Math.max(1, Math.min(minLayers, maxLayers));
    this.bits = bits;
    this.frameS = frameS;
    this.overhead = overhead;
    this.maxFpp = maxFpp;
    this.floorFpp = Math.max(FLOOR_FRAMES_PER_PACKET, maxFpp);
    this.upHoldS = 1;
    this.maxUpLayers = stagesForBps(MAX_UP_BPS, bits, frameS);
    this.current = null;
    this.upSince = null;
    this.fppBackoffS = 0;
    this.probeT = null;
    this.probeBps = 0;
    this.beforeProbe = null;
    this.refusedBps = Infinity;
    this.refusedFpp = 0;
    this.blockedUntil = -Infinity;
  }

  cost(layers, fpp) {
    return wireBps(layers, fpp, this.bits, this.frameS, this.overhead);
  }

  // Most layers that fit; fewest frames a packet among equals; below that, more frames a packet.
  bestFit(budget, maxFpp = null) {
    const top = Math.min(this.maxFpp, maxFpp || this.maxFpp);
    const least = this.minLayers;
    let best = decision(least, top, this.cost(least, top));
    for (let fpp = 1; fpp <= top; fpp++) {
      for (let layers = this.maxLayers; layers >= least; layers--) {
        if (this.cost(layers, fpp) <= budget) {
          if (layers > best.layers || (layers === best.layers && fpp < best.fpp)) best = decision(layers, fpp, this.cost(layers, fpp));
          break;
        }
      }
    }
    if (best.wire > budget && maxFpp === null) {
      let fpp = this.floorFpp;
      for (let f = top + 1; f <= this.floorFpp; f++) {
        if (this.cost(least, f) <= budget) {
          fpp = f;
          break;
        }
      }
      best = decision(least, fpp, this.cost(least, fpp));
    }
    return best;
  }

  atPacking(budget, fpp) {
    let layers = this.minLayers;
    for (let n = this.maxLayers; n >= this.minLayers; n--) {
      if (this.cost(n, fpp) <= budget) {
        layers = n;
        break;
      }
    }
    return decision(layers, fpp, this.cost(layers, fpp));
  }

  onTrial(now, before, estimateBps) {
    this.beforeProbe = before;
    this.probeT = now;
    this.probeBps = estimateBps;
  }

  leapRefused(now, queueMs) {
    const probing = this.probeT !== null && now - this.probeT <= PROBE_FAIL_S;
    return probing && queueMs > PROBE_ABORT_MS && this.beforeProbe !== null;
  }

  update(now, estimateBps, maxFpp = null, queueMs = 0) {
    let fit = this.bestFit(estimateBps, maxFpp);
    if (this.leapRefused(now, queueMs) && this.beforeProbe.wire < fit.wire) fit = this.beforeProbe;
    this.settleTrial(now);
    const current = this.current;
    if (current === null) this.current = fit;
    else if (fit.wire < current.wire || fit.layers < current.layers || (maxFpp && current.fpp > maxFpp)) this.goDown(now, fit);
    else if (fit.layers > current.layers || fit.fpp < current.fpp) this.goUp(now, estimateBps, maxFpp);
    return this.current;
  }

  settleTrial(now) {
    if (this.probeT !== null && now - this.probeT > PROBE_FAIL_S) {
      if (this.current !== null && this.current.fpp <= this.refusedFpp) {
        this.fppBackoffS = 0;
        this.refusedFpp = 0;
      }
      this.probeT = null;
    }
  }

  goDown(now, fit) {
    if (this.probeT !== null && fit.fpp > this.current.fpp) {
      this.fppBackoffS = Math.min(MAX_FPP_BACKOFF_S, Math.max(MIN_FPP_BACKOFF_S, 2 * this.fppBackoffS));
      this.refusedFpp = Math.max(this.refusedFpp, this.current.fpp);
      this.refusedBps = this.probeBps;
      this.blockedUntil = now + this.fppBackoffS;
      this.probeT = null;
    }
    this.current = fit;
    this.upSince = null;
  }

  goUp(now, estimateBps, maxFpp) {
    const current = this.current;
    let roomy = this.bestFit(estimateBps / UP_MARGIN, maxFpp);
    const blocked = now < this.blockedUntil && estimateBps < UNBLOCK_RISE * this.refusedBps;
    if (roomy.fpp <= this.refusedFpp && this.refusedFpp < current.fpp && blocked) {
      roomy = this.atPacking(estimateBps / UP_MARGIN, Math.floor(this.refusedFpp) + 1);
    }
    if (!(roomy.layers > current.layers || roomy.fpp < current.fpp)) {
      this.upSince = null; // it fits, but not with room to spare: the hold starts over
      return;
    }
    if (this.upSince === null) this.upSince = now;
    if (now - this.upSince >= this.upHoldS) {
      this.current = this.stepToward(now, roomy, estimateBps);
      this.upSince = null;
    }
  }

  stepToward(now, roomy, estimateBps) {
    const current = this.current;
    if (roomy.fpp === current.fpp && roomy.layers > current.layers + this.maxUpLayers) {
      const layers = current.layers + this.maxUpLayers; // a probe, not a leap
      return decision(layers, roomy.fpp, this.cost(layers, roomy.fpp));
    }
    if (roomy.fpp < current.fpp) {
      // Half a frame a packet at a time (a frame at a time above maxFpp, with the fewest layers).
      const floor = current.fpp > this.maxFpp;
      const step = Math.max(roomy.fpp, current.fpp - (floor ? 1 : 0.5));
      const layers = floor ? this.minLayers : roomy.layers;
      if (!isTrial(current)) this.beforeProbe = current;
      this.probeT = now;
      this.probeBps = estimateBps;
      return decision(layers, step, this.cost(layers, step));
    }
    return roomy;
  }
}

// protection.py: earlier frames' coarse layers carried again, at the held loss.
const REDUNDANT_BPS = 2000;
const ONE_FRAME_MIN_BPS = 2000;
const PROTECT_ABOVE = 0.02;
const PROTECT_TWO_ABOVE = 0.08;
const MEMORY_S = 5;
const BURST_HORIZON_FRAMES = 8; // plan.py

class Protection {
  constructor(enabled, maxLayers, bits, frameS) {
    this.enabled = enabled;
    this.bits = bits;
    this.frameS = frameS;
    this.redLayers = Math.min(stagesForBps(REDUNDANT_BPS, bits, frameS), maxLayers);
    this.minLayersOneFrame = Math.min(stagesForBps(ONE_FRAME_MIN_BPS, bits, frameS), maxLayers);
    this.heldLoss = 0;
    this.heldT = null;
  }

  get heavyLoss() {
    return this.enabled && this.heldLoss > PROTECT_TWO_ABOVE;
  }

  hold(now, loss) {
    const decay = this.heldT === null ? 0 : Math.exp(-(now - this.heldT) / MEMORY_S);
    this.heldLoss = Math.max(loss, this.heldLoss * decay);
    this.heldT = now;
  }

  redundancyBps(frames, fpp, layers = null) {
    if (frames === 0) return 0;
    const perFrame = 2 + Math.ceil(((layers || this.redLayers) * this.bits) / 8);
    return (8 * (1 + frames * perFrame)) / (fpp * this.frameS);
  }

  // [frames, layers] of redundancy at the held loss, within a third of the budget.
  choose(budget, fpp) {
    if (!this.enabled) return [0, 0];
    let frames = this.heavyLoss ? MAX_REDUNDANT : this.heldLoss > PROTECT_ABOVE ? 1 : 0;
    for (; frames > 0; frames--) {
      const fewest = frames <= 3 ? 1 : Math.min(2, this.redLayers);
      for (let layers = this.redLayers; layers >= fewest; layers--) {
        if (this.redundancyBps(frames, fpp, layers) <= budget / 3) return [frames, layers];
      }
    }
    return [0, 0];
  }
}

const burstSpacing = (copies) => (copies <= 1 ? 1 : Math.max(1, Math.floor((BURST_HORIZON_FRAMES - 1) / (copies - 1))));

// draining.py: thinning our packets out to empty a queue our own excess left.
const SENT_RATIO = 1.5;
const MIN_SHARE = 0.25;
const REPORT_S = 0.1;
const SENT_LAG_S = 0.2;
const DRAIN_S = 0.3;
const MAX_SEND_EVERY = 6;
const MAX_DRAIN_S = 1.5;
const DRAIN_WINDOW_S = 10;

class Drainer {
  constructor(drainAboveMs) {
    this.drainAboveS = drainAboveMs === null ? Infinity : drainAboveMs / 1000;
    this.active = false;
    this.drained = [];
    this.sent = []; // [time, planned wire bps], rates decreasing: the peak is the first
  }

  onReport(now, plannedBps, queueS, recentBps) {
    while (this.sent.length && this.sent[this.sent.length - 1][1] <= plannedBps) this.sent.pop();
    this.sent.push([now, plannedBps]);
    if (this.sent.length > MAX_REPORTS) this.sent.shift();
    while (now - this.sent[0][0] > RECENT_S + SENT_LAG_S) this.sent.shift();
    let over;
    if (recentBps === null || queueS < this.drainAboveS / 2) over = false;
    else if (this.active) over = true;
    else over = queueS > this.drainAboveS && recentBps < this.sent[0][1] / SENT_RATIO;
    while (this.drained.length && now - this.drained[0] > DRAIN_WINDOW_S) this.drained.shift();
    this.active = over && this.drained.length * REPORT_S < MAX_DRAIN_S;
    if (this.active) this.drained.push(now);
    return this.active;
  }

  budget(estimateBps, queueS, recentBps) {
    const share = Math.max(MIN_SHARE, 1 - (queueS - this.drainAboveS / 2) / DRAIN_S);
    return Math.min(estimateBps, share * recentBps);
  }

  sendEvery(wire, budget) {
    return Math.min(MAX_SEND_EVERY, Math.ceil(wire / budget));
  }
}

// policy.py: all of the above for each feedback report.
const START_BPS = 24000;
const START_ONE_FRAME_BPS = 32000;
const MIN_CEILING_BPS = 8000;

// A plan: {layers, fpp, redundantFrames, redundantLayers, wireBps, estimateBps, sendEvery, redundantSpacing}.
export function redundantBacks(plan) {
  return Array.from({ length: plan.redundantFrames }, (_, i) => 1 + i * plan.redundantSpacing);
}

export class RatePolicy {
  // options: {bits, frameS, overhead, adapt, protect, minLayers, drainAboveMs}, as RatePolicy's.
  constructor(maxLayers, { bits, frameS, overhead = OVERHEAD_WEBRTC, adapt = true, protect = true, minLayers = 1, drainAboveMs = null, windowS = 1 }) {
    this.maxLayers = maxLayers;
    this.adapt = adapt;
    this.protection = new Protection(protect, maxLayers, bits, frameS);
    this.drain = new Drainer(drainAboveMs);
    this.delivery = new DeliveryWindow(windowS, overhead);
    this.controller = new LayerController(maxLayers, bits, frameS, overhead, 3, minLayers);
    const top = this.controller.cost(maxLayers, 1);
    const ceiling = top + (protect ? this.protection.redundancyBps(MAX_REDUNDANT, 1, this.protection.redLayers) : 0);
    const start = START_BPS < top && top <= START_ONE_FRAME_BPS && adapt ? top : Math.min(top, START_BPS);
    this.estimator = new BandwidthEstimator(start, Math.max(1.2 * ceiling, MIN_CEILING_BPS), 4000, 60, 20, 0.25, 2, windowS);
    this.startTrial = start > START_BPS ? this.controller.bestFit(START_BPS) : null;
    this.plan = adapt ? this.adaptivePlan(this.estimator.estimate, { now: 0, queueMs: 0, queueing: false, draining: false }) : this.fixedPlan();
  }

  get loss() {
    return this.delivery.loss;
  }

  // One feedback report (protocol.js's decodeFeedback fields) at the sender's time `now` (s).
  onFeedback(now, fb, sendBufferBytes = 0) {
    if (this.startTrial !== null) {
      this.controller.onTrial(now, this.startTrial, this.estimator.estimate);
      this.startTrial = null;
    }
    const report = { t: now, highest_seq: fb.highest_seq, received: fb.received, received_bytes: fb.received_bytes, recovered: fb.recovered };
    const delivered = this.delivery.onReport(report, this.plan.fpp);
    this.protection.hold(now, this.delivery.loss);
    const backlogMs = (1000 * 8 * sendBufferBytes) / Math.max(this.plan.wireBps, 1);
    const queueMs = Math.max(fb.queue_delay_ms, backlogMs);
    const queueing = queueMs > 1000 * this.estimator.overuseS;
    if (!this.adapt) return (this.plan = this.fixedPlan());
    let estimate;
    if (this.plan.sendEvery > 1) estimate = this.estimator.estimate; // our own thinning shows, not the path: hold
    else estimate = this.estimator.onFeedback(now, this.heardLoss(queueMs, queueing), queueMs, delivered.receivedBps, 0, this.delivery.packets);
    const queueS = queueMs / 1000;
    const draining = this.drain.onReport(now, this.plan.wireBps * this.plan.sendEvery, queueS, delivered.recentBps);
    if (draining) {
      const e = this.estimator;
      e.estimate = Math.max(e.minBps, Math.min(e.estimate, OVERUSE_SHARE * delivered.recentBps));
      estimate = this.drain.budget(e.estimate, queueS, delivered.recentBps);
    }
    this.plan = this.adaptivePlan(estimate, { now, queueMs, queueing, draining });
    return this.plan;
  }

  heardLoss(queueMs, queueing) {
    if (!this.protection.enabled) return this.delivery.loss;
    let heard = this.delivery.residualLoss;
    if (!queueing && queueMs < 1000 * this.estimator.underuseS) heard = Math.min(heard, this.estimator.lossCutAbove(this.delivery.packets)); // hold, never cut
    return heard;
  }

  fixedPlan() {
    const d = decision(this.maxLayers, 1, this.controller.cost(this.maxLayers, 1));
    const [frames, layers] = this.protection.choose(Infinity, d.fpp);
    return this.sendPlan(d, frames, layers, 1);
  }

  adaptivePlan(budget, report) {
    const protection = this.protection;
    let maxFpp = null;
    if (protection.heavyLoss && this.controller.cost(protection.minLayersOneFrame, 1) <= (budget * 2) / 3) maxFpp = 1;
    const fpp = this.controller.bestFit(budget, maxFpp).fpp;
    let [frames, layers] = protection.choose(budget, fpp);
    const d = this.controller.update(report.now, budget - protection.redundancyBps(frames, fpp, layers), maxFpp, report.queueMs);
    [frames, layers] = protection.choose(budget, d.fpp);
    if (report.queueing || d.wire + protection.redundancyBps(frames, d.fpp, layers) > budget) [frames, layers] = [0, 0];
    let every = 1;
    if (report.draining && d.wire > budget && budget > 0) every = this.drain.sendEvery(d.wire, budget);
    return this.sendPlan(d, frames, layers, every);
  }

  sendPlan(d, frames, layers, every) {
    const red = this.protection.redundancyBps(frames, d.fpp, layers);
    const spacing = frames > 1 && this.protection.heavyLoss ? burstSpacing(frames) : 1;
    return {
      layers: d.layers,
      fpp: d.fpp,
      redundantFrames: frames,
      redundantLayers: layers,
      wireBps: (d.wire + red) / every,
      estimateBps: this.estimator.estimate,
      sendEvery: every,
      redundantSpacing: spacing,
    };
  }
}
