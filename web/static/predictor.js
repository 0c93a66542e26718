// The latent predictor of the receiver's neural concealer (codec/concealment.py,
// StreamingPredictor.step): one GRU layer over the normalised latent and a "this was predicted"
// flag, and a linear head that adds its correction to the input. The weights come from the
// listener as one float32 array (codec/web_export.py, pack_predictor); the buffers are made
// once, a step allocates nothing but its result.

const sigmoid = (v) => 1 / (1 + Math.exp(-v));

export class LatentPredictor {
  constructor(weights, dim, hidden) {
    const H3 = 3 * hidden;
    let at = 0;
    const take = (n) => {
      const part = weights.subarray(at, at + n);
      at += n;
      return part;
    };
    this.dim = dim;
    this.hidden = hidden;
    this.mean = take(dim);
    this.scale = take(dim);
    this.wLatent = take(H3 * dim);
    this.wFlag = take(H3);
    this.bIh = take(H3);
    this.wHh = take(H3 * hidden);
    this.bHh = take(H3);
    this.wOut = take(dim * hidden);
    this.bOut = take(dim);
    if (at !== weights.length) throw new Error(`predictor weights: ${weights.length} floats, expected ${at}`);
    this.state = new Float32Array(hidden);
    this.x = new Float32Array(dim);
    this.gi = new Float32Array(H3);
    this.gh = new Float32Array(H3);
  }

  reset() {
    this.state.fill(0);
  }

  // latent [dim] played (received, or the last prediction when `predicted`) -> the next frame's latent [dim]
  step(latent, predicted) {
    const { dim: D, hidden: H, x, gi, gh, state: h } = this;
    for (let d = 0; d < D; d++) x[d] = (latent[d] - this.mean[d]) / this.scale[d];
    for (let j = 0; j < 3 * H; j++) {
      let a = this.bIh[j] + (predicted ? this.wFlag[j] : 0);
      for (let d = 0, row = j * D; d < D; d++) a += this.wLatent[row + d] * x[d];
      gi[j] = a;
      let b = this.bHh[j];
      for (let k = 0, row = j * H; k < H; k++) b += this.wHh[row + k] * h[k];
      gh[j] = b;
    }
    for (let j = 0; j < H; j++) {
      const reset = sigmoid(gi[j] + gh[j]);
      const update = sigmoid(gi[H + j] + gh[H + j]);
      const candidate = Math.tanh(gi[2 * H + j] + reset * gh[2 * H + j]);
      h[j] = (1 - update) * candidate + update * h[j];
    }
    const next = new Float32Array(D);
    for (let d = 0; d < D; d++) {
      let a = x[d] + this.bOut[d];
      for (let k = 0, row = d * H; k < H; k++) a += this.wOut[row + k] * h[k];
      next[d] = a * this.scale[d] + this.mean[d];
    }
    return next;
  }
}
