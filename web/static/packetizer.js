// The send path's packet logic, as protocol/packetizer.py: frames and the rate policy's plan in,
// a packet to send (or a skip) out. Packets take PacketSizer's share of frames (1.5 frames a
// packet: 2, 1, 2, 1, ...), coarse copies of earlier frames when the plan protects, every
// `sendEvery`-th packet while the policy drains, and none while our own unsent bytes would take
// longer than MAX_BACKLOG_S to leave at the plan's rate (the receiver conceals it instead).
// Sequence numbers advance only for packets the transport took (`sent`).

import { encodePacket } from "./protocol.js";
import { redundantBacks } from "./rate.js";

export const QUIET_RMS = 10 ** (-45 / 20); // frames below -45 dBFS are marked quiet
const HISTORY = 16; // frames kept for redundancy
const MAX_BACKLOG_S = 0.1;

export class PacketSizer {
  constructor() {
    this.owed = 0; // frames the packets so far fell short of the packing (within +/- 0.5)
  }
  nextSize(fpp) {
    this.owed += fpp;
    const size = Math.max(1, Math.floor(this.owed + 0.5));
    this.owed -= size;
    return size;
  }
}

export class Packetizer {
  constructor(hop, bits) {
    this.hop = hop;
    this.bits = bits;
    this.seq = 0; // packets sent: the next packet's sequence number
    this.frames = 0; // frames pushed (or lost before the encoder): the next frame's index
    this.packets = 0; // packets formed by push
    this.pending = [];
    this.history = []; // the last frames formed, newest last
    this.sizer = new PacketSizer();
    this.packetFrames = 1;
    this.quiet = true;
  }

  // One frame's codes and level; {data, frames} to send, {skip: reason, frames}, or null.
  push(codes, rms, plan, backlogBytes = 0) {
    this.pending.push(codes);
    this.frames += 1;
    this.quiet = this.quiet && rms < QUIET_RMS;
    if (this.pending.length === 1) this.packetFrames = plan ? this.sizer.nextSize(plan.fpp) : 1;
    if (this.pending.length < this.packetFrames) return null;
    this.packets += 1;
    const out = !plan || this.packets % plan.sendEvery === 0 ? this.packet(plan, backlogBytes) : { skip: "drained", frames: this.pending.length };
    this.remember();
    return out;
  }

  // The stream ended: what is pending leaves in a packet of its own (never drained).
  flush(plan, backlogBytes = 0) {
    if (!this.pending.length) return null;
    const out = this.packet(plan, backlogBytes);
    this.pending = [];
    this.quiet = true;
    return out;
  }

  // A frame lost before the encoder (the page's thread fell behind): what is pending leaves
  // first, and the timeline goes on past the hole, which the receiver conceals.
  gap(plan, backlogBytes = 0) {
    const out = this.flush(plan, backlogBytes);
    this.frames += 1;
    return out;
  }

  remember() {
    this.history.push(...this.pending);
    if (this.history.length > HISTORY) this.history.splice(0, this.history.length - HISTORY);
    this.pending = [];
    this.quiet = true;
  }

  packet(plan, backlogBytes) {
    const frames = this.pending;
    const redundancy = [];
    if (plan && plan.redundantFrames) {
      for (const back of redundantBacks(plan)) {
        if (back <= this.history.length) redundancy.push({ back, codes: this.history[this.history.length - back].slice(0, plan.redundantLayers) });
      }
    }
    const packet = { seq: this.seq, timestamp: (this.frames - frames.length) * this.hop, frames: [...frames], talkspurt: this.seq === 0, quiet: this.quiet, redundancy };
    const data = encodePacket(packet, this.bits);
    if (plan && backlogBytes && 8 * backlogBytes > plan.wireBps * MAX_BACKLOG_S) return { skip: "backlog", frames: frames.length };
    return { data, frames: frames.length, layers: frames[0].length };
  }

  // The transport took the packet: the next one takes the next number.
  sent() {
    this.seq += 1;
  }
}
