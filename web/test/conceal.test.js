// The page's concealment: its latent predictor against the Python receiver's step on the shared
// vectors (tests/web/vectors.py), and the neural concealer's decisions as
// tests/receiver/test_concealment.py checks the Python one's.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { NeuralConcealer } from "../static/conceal.js";
import { LatentPredictor } from "../static/predictor.js";

const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));
const HOP = 8;

function predictor() {
  const v = vectors.predictor;
  return new LatentPredictor(Float32Array.from(v.weights), v.dim, v.hidden);
}

// Decodes a latent to twos and records what it was given.
function fakeDecoder() {
  const fed = [];
  const decode = async (latent) => {
    fed.push(Float32Array.from(latent));
    return new Float32Array(HOP).fill(2);
  };
  return { fed, decode };
}

test("the predictor steps as the Python receiver's, predictions fed back included", () => {
  const p = predictor();
  for (const s of vectors.predictor.steps) {
    const next = p.step(Float32Array.from(s.latent), s.predicted);
    s.next.forEach((x, d) => assert.ok(Math.abs(next[d] - x) < 1e-4 * Math.max(1, Math.abs(x)), `${next[d]} != ${x}`));
  }
  assert.throws(() => new LatentPredictor(new Float32Array(10), 5, 7), /expected/);
});

test("the refiner refines as the Python receiver's: no later frame, within reach, beyond it", () => {
  const v = vectors.refined_predictor;
  const p = new LatentPredictor(Float32Array.from(v.weights), v.dim, v.hidden, v.refiner, v.reach);
  for (const c of v.cases) {
    const guess = p.step(Float32Array.from(c.latent), false);
    c.guess.forEach((x, d) => assert.ok(Math.abs(guess[d] - x) < 1e-4 * Math.max(1, Math.abs(x))));
    const refined = p.refine(guess, c.later === null ? null : Float32Array.from(c.later), c.distance);
    c.refined.forEach((x, d) => assert.ok(Math.abs(refined[d] - x) < 1e-4 * Math.max(1, Math.abs(x)), `${c.distance}: ${refined[d]} != ${x}`));
  }
  assert.throws(() => new LatentPredictor(Float32Array.from(v.weights), v.dim, v.hidden), /expected/);
});

test("a lost frame decodes the prediction, aimed along the straight path at a later frame", async () => {
  const latent = Float32Array.of(0.5, -1, 2, 0, 1);
  const c = new NeuralConcealer(predictor(), HOP, { fade: 0.9, hold: 1 });
  const d = fakeDecoder();
  await c.received(d.decode, latent);
  const guess = Float32Array.from(c.guess);
  const later = Float32Array.of(1, 1, 1, 1, 1);
  await c.missing(d.decode, later, 3); // three frames on: a quarter of the way
  guess.forEach((g, i) => assert.ok(Math.abs(d.fed.at(-1)[i] - (g + (later[i] - g) / 4)) < 1e-6));
});

test("a lost frame decodes the prediction, aimed halfway at the next frame when it is here", async () => {
  const latent = Float32Array.of(0.5, -1, 2, 0, 1);
  const plain = new NeuralConcealer(predictor(), HOP, { fade: 0.9, hold: 1 });
  const aimed = new NeuralConcealer(predictor(), HOP, { fade: 0.9, hold: 1 });
  const a = fakeDecoder();
  const b = fakeDecoder();
  await plain.received(a.decode, latent);
  await aimed.received(b.decode, latent);
  const guess = Float32Array.from(plain.guess);
  const out = await plain.missing(a.decode, null);
  const following = Float32Array.of(1, 1, 1, 1, 1);
  await aimed.missing(b.decode, following);
  guess.forEach((g, d) => {
    assert.ok(Math.abs(a.fed.at(-1)[d] - g) < 1e-6);
    assert.ok(Math.abs(b.fed.at(-1)[d] - 0.5 * (g + following[d])) < 1e-6);
  });
  out.forEach((x) => assert.ok(Math.abs(x - 2) < 0.01)); // held at full gain (hold 1)
});

test("over a burst it fades, stops decoding once silent, and the return ramps up from silence", async () => {
  const c = new NeuralConcealer(predictor(), HOP, { fade: 0.5, hold: 1 });
  const d = fakeDecoder();
  await c.received(d.decode, Float32Array.of(1, 2, 3, 4, 5));
  const levels = [];
  for (let i = 0; i < 12; i++) levels.push(Math.max(...(await c.missing(d.decode, null)).map(Math.abs)));
  const audible = levels.filter((v) => v > 0.02);
  assert.ok(audible.length >= 3);
  audible.slice(1).forEach((v, i) => assert.ok(v <= audible[i] + 1e-6)); // never louder within a burst
  assert.ok(levels.at(-1) < 0.01); // comfort noise
  assert.ok(d.fed.length < 13); // the decoder is not fed once the fade is inaudible
  const back = await c.received(d.decode, Float32Array.of(1, 2, 3, 4, 5));
  assert.ok(Math.abs(back[0]) < 0.5 && Math.abs(back[HOP - 1] - 2) < 1e-6);
});

test("before any frame, a loss is comfort noise and the decoder is not fed", async () => {
  const d = fakeDecoder();
  const out = await new NeuralConcealer(predictor(), HOP).missing(d.decode, null);
  assert.ok(Math.max(...out.map(Math.abs)) < 0.01 && d.fed.length === 0);
});
