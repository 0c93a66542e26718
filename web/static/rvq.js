// The residual vector quantizer the soundstream family runs outside its ONNX graphs
// (codec/onnx_runtime.py does it in NumPy): codebooks [stages * size, dim] float32, stage by
// stage. Each stage picks the code nearest the residual, argmax(r . c - |c|^2 / 2), and
// subtracts it; decoding sums the chosen codes of the layers a frame carries.

export class ResidualVQ {
  constructor(table, stages, size, dim) {
    if (table.length !== stages * size * dim) throw new Error("codebook table size does not match its shape");
    this.table = table;
    this.stages = stages;
    this.size = size;
    this.dim = dim;
    this.halfNorms = new Float32Array(stages * size);
    for (let i = 0; i < stages * size; i++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += table[i * dim + d] * table[i * dim + d];
      this.halfNorms[i] = 0.5 * s;
    }
    this.residual = new Float32Array(dim);
  }

  // latent [dim] -> codes [layers] (into `out`, reused across frames).
  encode(latent, layers, out = new Int32Array(layers)) {
    const { table, size, dim, residual, halfNorms } = this;
    residual.set(latent.subarray(0, dim));
    for (let k = 0; k < layers; k++) {
      let best = 0;
      let bestScore = -Infinity;
      for (let c = 0; c < size; c++) {
        const row = (k * size + c) * dim;
        let s = 0;
        for (let d = 0; d < dim; d++) s += residual[d] * table[row + d];
        s -= halfNorms[k * size + c];
        if (s > bestScore) {
          bestScore = s;
          best = c;
        }
      }
      out[k] = best;
      const row = (k * size + best) * dim;
      for (let d = 0; d < dim; d++) residual[d] -= table[row + d];
    }
    return out;
  }

  // codes [layers] -> latent [dim] (into `out`).
  decode(codes, out = new Float32Array(this.dim)) {
    const { table, size, dim } = this;
    out.fill(0);
    for (let k = 0; k < codes.length; k++) {
      const row = (k * size + codes[k]) * dim;
      for (let d = 0; d < dim; d++) out[d] += table[row + d];
    }
    return out;
  }
}
