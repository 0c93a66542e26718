// The page's rate control and packetizer against the Python RatePolicy's and Packetizer's
// decisions on the same reports and frames (tests/web/rate_vectors.py writes them).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Packetizer } from "../static/packetizer.js";
import { RatePolicy } from "../static/rate.js";

const vectors = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));
const hex = (bytes) => Buffer.from(bytes).toString("hex");

// A row of named values (the vectors write a step as one list) as an object.
const named = (fields, values) => Object.fromEntries(fields.map((f, i) => [f, values[i]]));

// A Python plan (snake_case) as the page's plan.
const pagePlan = (p) => ({
  layers: p.layers,
  fpp: p.fpp,
  redundantFrames: p.redundant_frames,
  redundantLayers: p.redundant_layers,
  redundantSpacing: p.redundant_spacing,
  sendEvery: p.send_every,
  wireBps: p.wire_bps,
  estimateBps: p.estimate_bps,
});

function assertSamePlan(got, want, where) {
  const discrete = ["layers", "fpp", "redundantFrames", "redundantLayers", "redundantSpacing", "sendEvery"];
  assert.deepEqual(
    Object.fromEntries(discrete.map((k) => [k, got[k]])),
    Object.fromEntries(discrete.map((k) => [k, want[k]])),
    where,
  );
  for (const k of ["wireBps", "estimateBps"]) assert.ok(Math.abs(got[k] - want[k]) <= 1e-6 * want[k], `${where}: ${k} ${got[k]} != ${want[k]}`);
}

test("the rate controller makes the Python RatePolicy's plan from every report", () => {
  for (const s of vectors.rate_control) {
    const policy = new RatePolicy(s.max_layers, { bits: s.bits, frameS: s.frame_s, overhead: s.overhead, drainAboveMs: s.drain_above_ms, adapt: s.adapt, protect: s.protect });
    const planFields = s.fields.slice(s.fields.indexOf("layers"));
    assertSamePlan(policy.plan, pagePlan(named(planFields, s.initial)), `${s.name}: the initial plan`);
    const seen = new Set();
    for (const step of s.steps) {
      const report = named(s.fields, step);
      const plan = named(planFields, step.slice(s.fields.indexOf("layers")));
      const got = policy.onFeedback(report.t, report, report.send_buffer_bytes);
      assertSamePlan(got, pagePlan(plan), `${s.name} at ${report.t} s`);
      seen.add(`${got.layers}/${got.fpp}/${got.redundantFrames}/${got.sendEvery}`);
    }
    assert.ok(seen.size >= 3, `${s.name}: the vectors exercise only ${seen.size} plans`);
  }
});

test("the packetizer forms the Python Packetizer's packets, redundancy, drains and skips", () => {
  const v = vectors.packetizer;
  const packetizer = new Packetizer(v.hop, vectors.bits);
  for (const [i, push] of v.pushes.entries()) {
    const out = packetizer.push(Int32Array.from(push.codes), push.rms, pagePlan(named(v.plan_fields, push.plan)), push.backlog);
    if (out && out.data) packetizer.sent();
    const got = out === null ? null : out.data ? { hex: hex(out.data) } : { skip: out.skip, frames: out.frames };
    assert.deepEqual(got, push.out, `push ${i}`);
  }
});
