// Microphone -> 20 ms frames. Runs in an AudioContext created at the codec's rate (16 kHz):
// the browser resamples the microphone to it. Each full frame goes to the page's thread.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.hop = options.processorOptions.hop;
    this.frame = new Float32Array(this.hop);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.frame[this.filled++] = input[i];
      if (this.filled === this.hop) {
        this.port.postMessage({ frame: this.frame, at: currentTime }, [this.frame.buffer]);
        this.frame = new Float32Array(this.hop);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("ssvoip-capture", CaptureProcessor);
