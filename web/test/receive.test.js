// The page's RVQ and receiving half: the vector's codes, RFC 3550 counting, the jitter buffer's decisions.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { JitterBuffer, ReceiveStats } from "../static/receive.js";
import { ResidualVQ } from "../static/rvq.js";

const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));

test("the residual VQ picks the codes NumPy picked and sums them back", () => {
  const v = vectors.rvq;
  const rvq = new ResidualVQ(Float32Array.from(v.table.flat()), v.stages, v.size, v.dim);
  assert.deepEqual(Array.from(rvq.encode(Float32Array.from(v.latent), v.stages)), v.codes);
  const decoded = rvq.decode(Int32Array.from(v.codes));
  v.decoded.forEach((x, i) => assert.ok(Math.abs(decoded[i] - x) < 1e-5));
});

test("receive statistics: wrap, reordering, duplicates and interval loss as RFC 3550", () => {
  const s = new ReceiveStats(16000);
  [65534, 65535, 1, 0, 1, 3].forEach((seq, i) => assert.ok(s.onPacket(seq, i * 320, i * 0.02)));
  assert.equal(s.extendedMax, 65536 + 3);
  assert.equal(s.expected, 6);
  assert.equal(s.received, 6); // a duplicate counts, as in RFC 3550
  assert.equal(s.intervalLoss(), 0);
  assert.ok(s.onPacket(5, 7 * 320, 0.14));
  assert.ok(Math.abs(s.intervalLoss() - 0.5) < 1e-9); // 4 and 5 expected, 5 came
  assert.equal(s.onPacket(30000, 0, 0.2), false); // far off: not counted
});

function feed(buffer, frames, hop = 320) {
  for (const [index, arrival] of frames) buffer.push(index * hop, Int32Array.of(index % 16), arrival);
}

test("the jitter buffer waits for its target, plays in order, conceals a loss and stretches when dry", () => {
  const b = new JitterBuffer(320, 16000, { minDelayS: 0.04 });
  assert.equal(b.pop(0).action, "wait");
  feed(b, [[0, 0.0]]);
  assert.equal(b.pop(0.0).action, "wait"); // 20 ms held, 40 ms wanted
  feed(b, [[2, 0.04], [1, 0.041]]); // reordered
  const played = [b.pop(0.05), b.pop(0.07), b.pop(0.09)].map((d) => [d.action, d.codes[0]]);
  assert.deepEqual(played, [["play", 0], ["play", 1], ["play", 2]]);
  feed(b, [[4, 0.1], [5, 0.12]]); // 3 is lost
  const lost = b.pop(0.11);
  assert.equal(lost.action, "conceal");
  assert.equal(lost.following[0], 4); // the frame after it is here: the concealer may aim at it
  assert.equal(lost.followingDistance, 1);
  assert.deepEqual([b.pop(0.13).codes[0], b.pop(0.15).codes[0]], [4, 5]);
  assert.equal(b.pop(0.17).action, "expand");
  assert.equal(b.stats.concealed, 1);
  assert.equal(b.stats.expanded, 1);
  feed(b, [[1, 0.2]]);
  assert.equal(b.stats.late, 1);
});

test("a concealed frame is handed the nearest later frame within reach, and its distance", () => {
  const b = new JitterBuffer(320, 16000, { minDelayS: 0.1 });
  feed(b, [[0, 0.0], [1, 0.02], [4, 0.08], [5, 0.1], [6, 0.12]]); // 2 and 3 lost
  const got = [0.12, 0.14, 0.16, 0.18].map((t) => b.pop(t));
  assert.deepEqual(got.map((d) => d.action), ["play", "play", "conceal", "conceal"]);
  assert.deepEqual([got[2].following[0], got[2].followingDistance], [4, 2]);
  assert.deepEqual([got[3].following[0], got[3].followingDistance], [4, 1]);
});

test("a redundant copy stands in for a lost frame, and the primary wins over a copy", () => {
  const b = new JitterBuffer(320, 16000, { minDelayS: 0.02 });
  feed(b, [[0, 0]]);
  b.push(320, Int32Array.of(9), 0.02, { redundant: true });
  b.push(640, Int32Array.of(2), 0.04);
  b.push(640, Int32Array.of(7), 0.04, { redundant: true });
  const codes = [b.pop(0.05), b.pop(0.07), b.pop(0.09)].map((d) => d.codes[0]);
  assert.deepEqual(codes, [0, 9, 2]);
  assert.equal(b.stats.recovered, 1);
});

test("the target follows the arrivals' spread, and the queue delay is the newest above the fastest", () => {
  const b = new JitterBuffer(320, 16000, { minDelayS: 0.02, marginS: 0.005 });
  for (let i = 0; i < 100; i++) b.push(i * 320, Int32Array.of(1), i * 0.02 + (i % 10 === 0 ? 0.1 : 0));
  assert.ok(b.targetS(2) >= 0.1, `target ${b.targetS(2)}`);
  b.push(100 * 320, Int32Array.of(1), 100 * 0.02 + 0.05);
  assert.ok(Math.abs(b.queueDelayMs() - 50) < 1);
});

test("too much held: quiet frames are skipped down toward the target", () => {
  const b = new JitterBuffer(320, 16000, { minDelayS: 0.04 });
  for (let i = 0; i < 20; i++) b.push(i * 320, Int32Array.of(i % 16), i * 0.02, { quiet: true }); // a steady path, played late
  const first = b.pop(0.4);
  assert.equal(first.action, "play");
  assert.ok(first.skipped.length >= 10, `skipped ${first.skipped.length}`);
});
