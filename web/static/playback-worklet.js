// Decoded frames -> the speaker: a FIFO the page's thread fills, read at the audio clock;
// silence when it runs dry. It reports what it played (the page keeps the FIFO a few frames
// deep), and with `record` it sends back every sample it output: what the page played.
const CAPACITY = 16000 * 4;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.ring = new Float32Array(CAPACITY);
    this.read = 0;
    this.write = 0;
    this.consumed = 0;
    this.underruns = 0;
    this.record = !!options.processorOptions.record;
    this.recorded = new Float32Array(4000);
    this.recordedFill = 0;
    this.port.onmessage = (event) => {
      const samples = event.data.samples;
      if (samples) {
        for (let i = 0; i < samples.length; i++) this.ring[(this.write + i) % CAPACITY] = samples[i];
        this.write += samples.length;
      }
      if (event.data.flush && this.record && this.recordedFill) {
        this.port.postMessage({ recorded: this.recorded.slice(0, this.recordedFill) });
        this.recordedFill = 0;
      }
    };
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const available = this.write - this.read;
    const n = Math.min(available, out.length);
    for (let i = 0; i < n; i++) out[i] = this.ring[(this.read + i) % CAPACITY];
    out.fill(0, n);
    this.read += n;
    if (n < out.length && this.write > 0) this.underruns += 1;
    this.consumed += out.length;
    if (this.record && this.write > 0) {
      this.recorded.set(out, this.recordedFill);
      this.recordedFill += out.length;
      if (this.recordedFill + out.length > this.recorded.length) {
        this.port.postMessage({ recorded: this.recorded.slice(0, this.recordedFill) });
        this.recordedFill = 0;
      }
    }
    this.port.postMessage({ queued: this.write - this.read, underruns: this.underruns });
    return true;
  }
}

registerProcessor("ssvoip-playback", PlaybackProcessor);
