// The latent predictor of the receiver's neural concealer (codec/concealment.py,
// StreamingPredictor.step and refine): one GRU layer over the normalised latent and a "this was
// predicted" flag, and a linear head that adds its correction to the input; optionally a
// refiner (one GELU layer) that turns a guess into the latent decoded, given a later frame and
// its distance. The weights come from the listener as one float32 array
// (codec/web_export.py, pack_predictor); the buffers are made once, a step or a refinement
// allocates nothing but its result.

const sigmoid = (v) => 1 / (1 + Math.exp(-v));

export class LatentPredictor {
  constructor(weights, dim, hidden, refiner = 0, reach = 4) {
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
    this.refiner = refiner;
    this.reach = reach;
    if (refiner > 0) {
      this.wState = take(refiner * hidden);
      this.wGuess = take(refiner * dim);
      this.wLater = take(refiner * dim);
      this.wWhere = take(refiner * (reach + 1));
      this.bInner = take(refiner);
      this.wRefined = take(dim * refiner);
      this.bRefined = take(dim);
      this.pre = new Float32Array(refiner);
      this.g = new Float32Array(dim);
      this.l = new Float32Array(dim);
    }
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

  // The latent to decode for a lost frame: `guess` [dim] from `step`, `later` [dim] the latent of
  // a buffered frame `distance` frames on (null, or beyond the reach: none). Without a refiner
  // the straight path to it (1 / (distance + 1) of the way); with one, that plus its correction.
  refine(guess, later = null, distance = 0) {
    const D = this.dim;
    if (later === null || !(distance > 0 && distance <= this.reach)) {
      later = null;
      distance = 0;
    }
    const out = Float32Array.from(guess);
    if (this.refiner === 0) {
      if (later !== null) for (let d = 0; d < D; d++) out[d] += (later[d] - guess[d]) / (distance + 1);
      return out;
    }
    const { refiner: R, hidden: H, pre, g, l, state: h } = this;
    const W = this.reach + 1;
    for (let d = 0; d < D; d++) {
      g[d] = (guess[d] - this.mean[d]) / this.scale[d];
      l[d] = later === null ? 0 : (later[d] - this.mean[d]) / this.scale[d];
    }
    for (let r = 0; r < R; r++) {
      let a = this.bInner[r] + this.wWhere[r * W + distance];
      for (let k = 0, row = r * H; k < H; k++) a += this.wState[row + k] * h[k];
      for (let d = 0, row = r * D; d < D; d++) a += this.wGuess[row + d] * g[d] + this.wLater[row + d] * l[d];
      pre[r] = 0.5 * a * (1 + Math.tanh(0.7978845608028654 * (a + 0.044715 * a * a * a))); // GELU, tanh form
    }
    for (let d = 0; d < D; d++) {
      let a = g[d] + this.bRefined[d];
      if (later !== null) a += (l[d] - g[d]) / (distance + 1);
      for (let r = 0, row = d * R; r < R; r++) a += this.wRefined[row + r] * pre[r];
      out[d] = a * this.scale[d] + this.mean[d];
    }
    return out;
  }
}
