// The codec in the page: the project's ONNX streaming graphs in onnxruntime-web (wasm, one
// thread), their state carried from step to step as the native engine does
// (codec/onnx_runtime.py), and the residual VQ in JavaScript (rvq.js). The graphs, the
// codebooks and the manifest come from the listener (`/model/`, codec/web_export.py).
/* global ort */

import { NeuralConcealer, RepeatConcealer } from "./conceal.js";
import { LatentPredictor } from "./predictor.js";
import { ResidualVQ } from "./rvq.js";

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: ${response.status}`);
  return response;
}

// Milliseconds per frame, kept as a running sum and a small reservoir for the median.
class Timing {
  constructor() {
    this.count = 0;
    this.sum = 0;
    this.recent = [];
  }
  add(ms) {
    this.count += 1;
    this.sum += ms;
    this.recent.push(ms);
    if (this.recent.length > 500) this.recent.shift();
  }
  summary() {
    const sorted = [...this.recent].sort((a, b) => a - b);
    return { frames: this.count, mean_ms: this.count ? this.sum / this.count : null, p50_ms: sorted.length ? sorted[sorted.length >> 1] : null };
  }
}

class StreamingGraph {
  constructor(session, stateShapes, inputShape) {
    this.session = session;
    this.inputShape = inputShape;
    this.stateShapes = stateShapes;
    this.reset();
  }
  reset() {
    this.states = this.stateShapes.map((shape) => new ort.Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
  }
  async step(x) {
    const feeds = { x: new ort.Tensor("float32", x, this.inputShape) };
    this.states.forEach((s, i) => (feeds[`state${i}`] = s));
    const out = await this.session.run(feeds);
    this.states = this.states.map((_, i) => out[`new_state${i}`]);
    return out.y.data;
  }
}

export class PageCodec {
  static async load(base = "/model/") {
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed (no cross-origin isolation)
    ort.env.wasm.wasmPaths = "/ort/";
    const manifest = await (await fetchOk(`${base}manifest.json`)).json();
    const [encoderBytes, decoderBytes, table] = await Promise.all(
      ["encoder.onnx", "decoder.onnx", "codebooks.bin"].map(async (name) => new Uint8Array(await (await fetchOk(base + name)).arrayBuffer())),
    );
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const encoder = await ort.InferenceSession.create(encoderBytes, options);
    const decoder = await ort.InferenceSession.create(decoderBytes, options);
    const codebooks = new Float32Array(table.buffer, table.byteOffset, table.byteLength / 4);
    // The listener's concealer: its latent predictor when it has one, else a fading repeat.
    const predictor = manifest.predictor ? new Float32Array(await (await fetchOk(`${base}predictor.bin`)).arrayBuffer()) : null;
    const codec = new PageCodec(manifest, encoder, decoder, codebooks, predictor);
    await codec.warmUp();
    return codec;
  }

  // A session's first runs allocate and tier up the wasm: done here, not on the call's first
  // frames (which would then leave in a burst). The states start from zero again afterwards.
  async warmUp(steps = 3) {
    for (let i = 0; i < steps; i++) {
      await this.encoder.step(new Float32Array(this.hop));
      await this.decoder.step(new Float32Array(this.manifest.latent_dim));
    }
    this.encoder.reset();
    this.decoder.reset();
  }

  constructor(manifest, encoder, decoder, codebooks, predictorWeights = null) {
    const m = manifest;
    this.manifest = m;
    this.hop = m.hop;
    this.rvq = new ResidualVQ(codebooks, m.n_quantizers, m.codebook_size, m.latent_dim);
    this.encoder = new StreamingGraph(encoder, m.encoder_states, [1, m.hop]);
    this.decoder = new StreamingGraph(decoder, m.decoder_states, [1, 1, m.latent_dim]);
    this.encodeTiming = new Timing();
    this.decodeTiming = new Timing();
    this.decodeLatent = (latent) => this.decoder.step(latent);
    const p = m.predictor;
    this.concealment = predictorWeights ? "neural" : "repeat";
    this.concealer = predictorWeights
      ? new NeuralConcealer(new LatentPredictor(predictorWeights, m.latent_dim, p.hidden, p.refiner ?? 0, p.reach ?? 4), m.hop, { fade: p.fade, hold: p.hold })
      : new RepeatConcealer(m.latent_dim);
  }

  // samples [hop] -> codes [layers]
  async encode(samples, layers) {
    const t0 = performance.now();
    const latent = await this.encoder.step(samples);
    const codes = this.rvq.encode(latent, layers);
    this.encodeTiming.add(performance.now() - t0);
    return codes;
  }

  // codes [layers] -> samples [hop]
  async decode(codes) {
    const t0 = performance.now();
    const y = await this.concealer.received(this.decodeLatent, this.rvq.decode(codes));
    this.decodeTiming.add(performance.now() - t0);
    return y;
  }

  // A missing frame (conceal.js); `following`: the codes of a later frame the jitter buffer
  // already holds, `distance` frames on. Through the decoder, so that its state runs on and the
  // next real frame joins without a click.
  async conceal(following = null, distance = 1) {
    return this.concealer.missing(this.decodeLatent, following ? this.rvq.decode(following) : null, distance);
  }

  timings() {
    return { encode: this.encodeTiming.summary(), decode: this.decodeTiming.summary() };
  }
}
