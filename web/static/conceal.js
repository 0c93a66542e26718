// What the page plays for a frame that did not arrive, as receiver/concealment.py does:
// - NeuralConcealer: the latent predictor's guess for the missing frame (aimed at a later
//   frame when the jitter buffer already holds one), decoded so that the decoder's state
//   runs on, fed back to the predictor; over a burst faded towards comfort noise by `fade` a
//   frame after `hold` frames, the decoder no longer fed once the fade is inaudible; gains
//   move as ramps inside a frame, so neither a gap nor the return clicks.
// - RepeatConcealer: the last latent again, faded by 0.7 a frame (without a predictor).
// Both work on latents: `decode(latent)` is the decoder's step (async), the caller looks codes up.

const SILENT_GAIN = 0.01; // below this the guess is not worth decoding: comfort noise only
const COMFORT_LEVEL = 1e-3; // -60 dBFS

function gaussian(random) {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export class NeuralConcealer {
  constructor(predictor, hop, { fade = 0.9, hold = 0, random = Math.random } = {}) {
    this.predictor = predictor;
    this.hop = hop;
    this.fade = fade;
    this.hold = hold;
    this.random = random;
    this.run = 0;
    this.guess = null; // the next frame's predicted latent
    this.gain = 1; // at the end of the last frame played
    predictor.reset();
  }

  async received(decode, latent) {
    this.guess = this.predictor.step(latent, false);
    this.run = 0;
    return this.ramped(await decode(latent), 1);
  }

  // `following`: the latent of a later frame already here (or null), `distance` frames on: the
  // predictor's refinement aims the guess at it (predictor.js `refine`).
  async missing(decode, following, distance = 1) {
    this.run += 1;
    const gain = Math.pow(this.fade, Math.max(0, this.run - this.hold));
    if (this.guess === null || Math.max(gain, this.gain) < SILENT_GAIN) {
      this.gain = 0; // nothing to continue from, or faded out: a return ramps up from silence
      return this.comfortNoise(1);
    }
    const guess = this.predictor.refine(this.guess, following, following ? distance : 0);
    const audio = await decode(guess);
    this.guess = this.predictor.step(guess, true);
    const out = this.ramped(audio, gain);
    const noise = this.comfortNoise(1 - gain);
    for (let i = 0; i < out.length; i++) out[i] += noise[i];
    return out;
  }

  ramped(audio, gain) {
    const start = this.gain;
    this.gain = gain;
    if (start === 1 && gain === 1) return audio;
    const out = new Float32Array(audio.length);
    for (let i = 0; i < audio.length; i++) out[i] = audio[i] * (start + ((gain - start) * (i + 1)) / audio.length);
    return out;
  }

  comfortNoise(level) {
    const out = new Float32Array(this.hop);
    for (let i = 0; i < out.length; i++) out[i] = level * COMFORT_LEVEL * gaussian(this.random);
    return out;
  }
}

export class RepeatConcealer {
  constructor(dim, fade = 0.7) {
    this.fade = fade;
    this.last = new Float32Array(dim);
    this.run = 0;
  }

  async received(decode, latent) {
    this.last.set(latent);
    this.run = 0;
    return decode(latent);
  }

  async missing(decode) {
    this.run += 1;
    const gain = Math.pow(this.fade, this.run);
    return decode(this.last.map((v) => v * gain));
  }
}
