// The call's wire format, as protocol/packets.py, protocol/feedback.py and protocol/messages.py
// define it: media packets, the 28-byte binary feedback, and the JSON control messages.
// Pure functions on bytes (no DOM), so that `node --test` checks them against the test vectors
// the Python side writes (web/test/vectors.json, tests/web/vectors.py).

export const VERSION = 1;
export const PROTOCOL_VERSION = 1;
export const FLAG_DENOISE = 0x1;
export const FLAG_REDUNDANCY = 0x2;
export const FLAG_TALKSPURT = 0x4;
export const FLAG_QUIET = 0x8;
const KNOWN_FLAGS = 0xf;
export const MAX_FRAMES = 6;
export const MAX_REDUNDANT = 8;
export const MAX_PACKET_BYTES = 1100;
export const MAX_MESSAGE_BYTES = 8192;
export const SEQ_MODULO = 1 << 16;
export const TS_MODULO = 2 ** 32;
const HEADER_BYTES = 8;
export const FEEDBACK_MAGIC = 0xf1;
export const FEEDBACK_BYTES = 28;
const MAX_MS = 60000;

export class PacketError extends Error {}
export class MessageError extends Error {}

export function payloadBytes(layers, bits) {
  return Math.floor((layers * bits + 7) / 8);
}

// One frame's codes (coarse first), `bits` bits each, MSB first, zero-padded to a byte.
export function packFrame(codes, bits, out = new Uint8Array(payloadBytes(codes.length, bits)), offset = 0) {
  if (codes.length === 0) throw new PacketError("a frame needs at least one layer of codes");
  out.fill(0, offset, offset + payloadBytes(codes.length, bits));
  let bit = 0;
  for (const code of codes) {
    if (!(code >= 0 && code < 1 << bits)) throw new PacketError(`code out of range for ${bits}-bit codebooks`);
    for (let b = bits - 1; b >= 0; b--, bit++) {
      if ((code >> b) & 1) out[offset + (bit >> 3)] |= 0x80 >> (bit & 7);
    }
  }
  return out;
}

export function unpackFrame(data, offset, layers, bits) {
  const codes = new Int32Array(layers);
  let bit = 0;
  for (let k = 0; k < layers; k++) {
    let code = 0;
    for (let b = 0; b < bits; b++, bit++) code = (code << 1) | ((data[offset + (bit >> 3)] >> (7 - (bit & 7))) & 1);
    codes[k] = code;
  }
  return codes;
}

// packet: {seq, timestamp, frames: [codes], denoise, talkspurt, quiet, redundancy: [{back, codes}]}
export function encodePacket(packet, bits) {
  const frames = packet.frames;
  const redundancy = packet.redundancy || [];
  if (frames.length < 1 || frames.length > MAX_FRAMES) throw new PacketError(`a packet carries 1..${MAX_FRAMES} frames`);
  if (redundancy.length > MAX_REDUNDANT) throw new PacketError(`at most ${MAX_REDUNDANT} redundant frames`);
  let size = HEADER_BYTES + frames.length;
  for (const f of frames) size += payloadBytes(f.length, bits);
  if (redundancy.length) size += 1 + 2 * redundancy.length;
  for (const r of redundancy) size += payloadBytes(r.codes.length, bits);
  if (size > MAX_PACKET_BYTES) throw new PacketError(`packet of ${size} bytes exceeds ${MAX_PACKET_BYTES}`);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  const flags =
    (packet.denoise ? FLAG_DENOISE : 0) | (packet.talkspurt ? FLAG_TALKSPURT : 0) | (packet.quiet ? FLAG_QUIET : 0) | (redundancy.length ? FLAG_REDUNDANCY : 0);
  view.setUint8(0, (VERSION << 4) | flags);
  view.setUint16(1, ((packet.seq % SEQ_MODULO) + SEQ_MODULO) % SEQ_MODULO);
  view.setUint32(3, ((packet.timestamp % TS_MODULO) + TS_MODULO) % TS_MODULO);
  view.setUint8(7, frames.length);
  let pos = HEADER_BYTES;
  for (const f of frames) {
    if (f.length > 255) throw new PacketError("at most 255 layers a frame");
    out[pos++] = f.length;
  }
  for (const f of frames) {
    packFrame(f, bits, out, pos);
    pos += payloadBytes(f.length, bits);
  }
  if (redundancy.length) {
    out[pos++] = redundancy.length;
    for (const r of redundancy) {
      if (!(r.back >= 1 && r.back <= 255)) throw new PacketError("a redundant frame must lie 1..255 frames back");
      out[pos++] = r.back;
      out[pos++] = r.codes.length;
    }
    for (const r of redundancy) {
      packFrame(r.codes, bits, out, pos);
      pos += payloadBytes(r.codes.length, bits);
    }
  }
  return out;
}

function readFrames(data, pos, counts, bits, maxLayers) {
  const frames = [];
  for (const layers of counts) {
    if (layers < 1 || layers > maxLayers) throw new PacketError(`layer count ${layers} outside 1..${maxLayers}`);
    const size = payloadBytes(layers, bits);
    if (pos + size > data.length) throw new PacketError("truncated frame payload");
    frames.push(unpackFrame(data, pos, layers, bits));
    pos += size;
  }
  return [frames, pos];
}

// Strict, as decode_packet: any inconsistency throws PacketError (and nothing else).
export function decodePacket(bytes, bits, maxLayers) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (data.length > MAX_PACKET_BYTES) throw new PacketError(`packet of ${data.length} bytes exceeds ${MAX_PACKET_BYTES}`);
  if (data.length < HEADER_BYTES) throw new PacketError("truncated header");
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const first = view.getUint8(0);
  if (first >> 4 !== VERSION) throw new PacketError(`packet version ${first >> 4}, expected ${VERSION}`);
  const flags = first & 0x0f;
  if (flags & ~KNOWN_FLAGS) throw new PacketError(`unknown flags 0x${flags.toString(16)}`);
  const n = view.getUint8(7);
  if (n < 1 || n > MAX_FRAMES) throw new PacketError(`frame count ${n} outside 1..${MAX_FRAMES}`);
  let pos = HEADER_BYTES;
  if (pos + n > data.length) throw new PacketError("truncated layer counts");
  const counts = Array.from(data.subarray(pos, pos + n));
  let frames;
  [frames, pos] = readFrames(data, pos + n, counts, bits, maxLayers);
  const redundancy = [];
  if (flags & FLAG_REDUNDANCY) {
    if (pos >= data.length) throw new PacketError("truncated redundancy block");
    const r = data[pos++];
    if (r < 1 || r > MAX_REDUNDANT) throw new PacketError(`redundant frame count ${r} outside 1..${MAX_REDUNDANT}`);
    if (pos + 2 * r > data.length) throw new PacketError("truncated redundancy headers");
    const backs = [];
    const redCounts = [];
    for (let i = 0; i < r; i++) {
      backs.push(data[pos + 2 * i]);
      redCounts.push(data[pos + 2 * i + 1]);
    }
    pos += 2 * r;
    if (Math.min(...backs) < 1) throw new PacketError("a redundant frame must lie at least one frame back");
    let redFrames;
    [redFrames, pos] = readFrames(data, pos, redCounts, bits, maxLayers);
    for (let i = 0; i < r; i++) redundancy.push({ back: backs[i], codes: redFrames[i] });
  }
  if (pos !== data.length) throw new PacketError(`${data.length - pos} trailing bytes`);
  return {
    seq: view.getUint16(1),
    timestamp: view.getUint32(3),
    frames,
    denoise: !!(flags & FLAG_DENOISE),
    talkspurt: !!(flags & FLAG_TALKSPURT),
    quiet: !!(flags & FLAG_QUIET),
    redundancy,
  };
}

// a - b on a wrapping counter, in (-modulo/2, modulo/2].
export function seqDiff(a, b, modulo = SEQ_MODULO) {
  const d = (((a - b) % modulo) + modulo) % modulo;
  return d > modulo / 2 ? d - modulo : d;
}

export function isFeedback(bytes) {
  return bytes.length > 0 && bytes[0] === FEEDBACK_MAGIC;
}

// Python's round(): half to even, so that both sides write the same byte for the same value.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function sat(value, top) {
  return Math.max(0, Math.min(top, roundHalfEven(value)));
}

// fb: {highest_seq, received, loss_fraction, jitter_ms, hold_ms, buffer_ms, concealed_fraction,
//      received_bytes, recovered, queue_delay_ms}, as protocol.messages.Feedback.
export function encodeFeedback(fb) {
  const out = new Uint8Array(FEEDBACK_BYTES);
  const v = new DataView(out.buffer);
  v.setUint8(0, FEEDBACK_MAGIC);
  v.setUint32(1, sat(fb.highest_seq, 0xffffffff));
  v.setUint32(5, sat(fb.received, 0xffffffff));
  v.setUint8(9, sat(fb.loss_fraction * 255, 255));
  v.setUint16(10, sat(fb.jitter_ms * 10, 0xffff));
  v.setUint16(12, sat(fb.hold_ms, MAX_MS));
  v.setUint16(14, sat(fb.buffer_ms, MAX_MS));
  v.setUint16(16, sat(fb.concealed_fraction * 65535, 0xffff));
  v.setUint32(18, sat(fb.received_bytes, 0xffffffff));
  v.setUint32(22, sat(fb.recovered, 0xffffffff));
  v.setUint16(26, sat(fb.queue_delay_ms, MAX_MS));
  return out;
}

export function decodeFeedback(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (data.length !== FEEDBACK_BYTES || data[0] !== FEEDBACK_MAGIC) throw new PacketError("a feedback packet is 28 bytes starting with 0xF1");
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return {
    highest_seq: v.getUint32(1),
    received: v.getUint32(5),
    loss_fraction: v.getUint8(9) / 255,
    jitter_ms: v.getUint16(10) / 10,
    hold_ms: Math.min(v.getUint16(12), MAX_MS),
    buffer_ms: Math.min(v.getUint16(14), MAX_MS),
    concealed_fraction: v.getUint16(16) / 65535,
    received_bytes: v.getUint32(18),
    recovered: v.getUint32(22),
    queue_delay_ms: Math.min(v.getUint16(26), MAX_MS),
  };
}

// ---- control messages (JSON text), field order as pydantic writes them -------------------------

export function hello({ modelId, sampleRate, frameMs, maxLayers, bitsPerStage, token, media }) {
  return JSON.stringify({
    type: "hello",
    protocol_version: PROTOCOL_VERSION,
    model_id: modelId,
    sample_rate: sampleRate,
    frame_ms: frameMs,
    max_layers: maxLayers,
    bits_per_stage: bitsPerStage,
    token,
    media,
  });
}

export const offer = (sdp) => JSON.stringify({ type: "offer", sdp });
export const start = (captureEpoch) => JSON.stringify({ type: "start", capture_epoch: captureEpoch });
export const eos = () => JSON.stringify({ type: "eos" });
export const bye = (reason = "") => JSON.stringify({ type: "bye", reason });

// What the page acts on, with the fields it reads checked; anything else is a MessageError.
const SHAPES = {
  accept: { protocol_version: "number", model_id: "string", max_layers: "number" },
  reject: { reason: "string" },
  answer: { sdp: "string" },
  start: {},
  eos: {},
  bye: {},
};

export function parseMessage(text) {
  if (typeof text !== "string" || text.length > MAX_MESSAGE_BYTES) throw new MessageError("oversized or binary control message");
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    throw new MessageError("control message is not JSON");
  }
  if (message === null || typeof message !== "object" || Array.isArray(message)) throw new MessageError("control message is not an object");
  const shape = SHAPES[message.type];
  if (shape === undefined) throw new MessageError(`unexpected control message ${JSON.stringify(message.type)}`);
  for (const [field, kind] of Object.entries(shape)) {
    if (typeof message[field] !== kind) throw new MessageError(`invalid control message (${field})`);
  }
  return message;
}
