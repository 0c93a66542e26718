// The page's protocol against the vectors the Python protocol writes (tests/web/vectors.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as wire from "../static/protocol.js";

const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const bytes = (text) => new Uint8Array(Buffer.from(text, "hex"));

test("packets decode to the fields Python wrote, and encode to the same bytes", () => {
  for (const c of vectors.packets) {
    const p = wire.decodePacket(bytes(c.hex), vectors.bits, vectors.max_layers);
    assert.deepEqual([p.seq, p.timestamp, p.quiet, p.talkspurt, p.denoise], [c.seq, c.timestamp, c.quiet, c.talkspurt, c.denoise]);
    assert.deepEqual(p.frames.map((f) => Array.from(f)), c.frames);
    assert.deepEqual(p.redundancy.map((r) => ({ back: r.back, codes: Array.from(r.codes) })), c.redundancy);
    assert.equal(hex(wire.encodePacket(c, vectors.bits)), c.hex);
  }
});

test("malformed packets are refused with a PacketError, as in Python", () => {
  for (const bad of vectors.malformed) {
    assert.throws(() => wire.decodePacket(bytes(bad), vectors.bits, vectors.max_layers), wire.PacketError, bad.slice(0, 40));
  }
});

test("feedback: the same 28 bytes from the same report, the same report from the bytes", () => {
  for (const c of vectors.feedback) {
    assert.equal(hex(wire.encodeFeedback(c.given)), c.hex);
    const decoded = wire.decodeFeedback(bytes(c.hex));
    for (const [field, value] of Object.entries(c.decoded)) assert.ok(Math.abs(decoded[field] - value) < 1e-9, field);
    assert.equal(hex(wire.encodeFeedback(decoded)), c.hex);
    assert.ok(wire.isFeedback(bytes(c.hex)));
  }
  assert.throws(() => wire.decodeFeedback(bytes(vectors.feedback[0].hex).subarray(0, 27)), wire.PacketError);
});

test("the page's hello is byte for byte the vector the listener parses; its replies parse here", () => {
  const m = vectors.messages;
  const hello = wire.hello({
    modelId: "soundstream16k-lyra2x-c95c1ead19",
    sampleRate: 16000,
    frameMs: 20,
    maxLayers: 80,
    bitsPerStage: 4,
    token: "s3cret",
    media: "webrtc",
  });
  assert.equal(hello, m.page_hello);
  assert.deepEqual(JSON.parse(hello), JSON.parse(m.hello));
  for (const name of ["accept", "reject", "answer", "empty_answer", "start", "eos", "bye"]) assert.equal(wire.parseMessage(m[name]).type, JSON.parse(m[name]).type);
  assert.deepEqual(JSON.parse(wire.start(1700000000.25)), JSON.parse(m.start));
  assert.deepEqual(JSON.parse(wire.bye("hang-up")), JSON.parse(m.bye));
  assert.deepEqual(JSON.parse(wire.offer("v=0\r\n")), JSON.parse(m.offer));
  assert.throws(() => wire.parseMessage('{"type":"accept","model_id":3}'), wire.MessageError);
  assert.throws(() => wire.parseMessage("x".repeat(9000)), wire.MessageError);
});

test("sequence differences wrap as protocol.packets.seq_diff", () => {
  assert.equal(wire.seqDiff(0, 65535), 1);
  assert.equal(wire.seqDiff(65535, 0), -1);
  assert.equal(wire.seqDiff(32768, 0), 32768);
});
