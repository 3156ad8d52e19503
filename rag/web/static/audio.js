// Audio on the page: authenticated blobs, WebAudio decoding, waveform peaks, a log-frequency
// spectrogram, and one shared player with a playhead.

import { api } from "./api.js";

const cache = new Map(); // path -> Promise<{blob, url, buffer}>
let decoder = null;

function audioContext() {
  // An OfflineAudioContext decodes without a user gesture (autoplay policy does not apply).
  if (!decoder) decoder = new OfflineAudioContext(1, 1, 44100);
  return decoder;
}

/** Fetch (with the API key) and decode an audio resource once; later calls share the result. */
export function loadAudio(path) {
  if (!cache.has(path)) {
    const p = (async () => {
      const blob = await api.blob(path);
      const url = URL.createObjectURL(blob);
      let buffer = null;
      try {
        buffer = await audioContext().decodeAudioData(await blob.arrayBuffer());
      } catch { /* undecodable here (e.g. FLAC in an old browser): play it, no waveform */ }
      return { blob, url, buffer };
    })();
    p.catch(() => cache.delete(path));
    cache.set(path, p);
  }
  return cache.get(path);
}

export function forget(path) {
  const p = cache.get(path);
  cache.delete(path);
  p?.then((a) => URL.revokeObjectURL(a.url)).catch(() => {});
}

/** Peak pairs (min, max) per column of the mono mix. */
export function peaks(buffer, columns) {
  const n = buffer.length;
  const chans = [];
  for (let c = 0; c < buffer.numberOfChannels; c++) chans.push(buffer.getChannelData(c));
  const out = new Float32Array(columns * 2);
  const per = n / columns;
  for (let i = 0; i < columns; i++) {
    const a = Math.floor(i * per), b = Math.max(a + 1, Math.floor((i + 1) * per));
    let lo = 0, hi = 0;
    const step = Math.max(1, Math.floor((b - a) / 256));
    for (let j = a; j < b && j < n; j += step) {
      let v = 0;
      for (const ch of chans) v += ch[j];
      v /= chans.length;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    out[2 * i] = lo; out[2 * i + 1] = hi;
  }
  return out;
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

/** Draw a waveform; `progress` in [0, 1] colours the played part; `selection` = [a, b] fractions. */
export function drawWave(canvas, buffer, { progress = 0, selection = null } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  if (selection) {
    const [a, b] = selection;
    g.fillStyle = css("--sel") || "rgba(255,180,84,.18)";
    g.fillRect(Math.min(a, b) * w, 0, Math.abs(b - a) * w, h);
  }
  g.fillStyle = css("--line") || "#333";
  g.fillRect(0, Math.floor(h / 2), w, 1);
  if (!buffer) return;
  const bar = Math.max(1, Math.round(2 * dpr)), gap = Math.max(1, Math.round(dpr));
  const cols = Math.floor(w / (bar + gap));
  if (!canvas._peaks || canvas._peaks.length !== cols * 2) canvas._peaks = peaks(buffer, cols);
  const pk = canvas._peaks;
  let max = 0.0001;
  for (const v of pk) max = Math.max(max, Math.abs(v));
  const scale = (h / 2 - dpr) / max;
  const played = css("--wave-played") || "#ffb454", rest = css("--wave") || "#6b7785";
  for (let i = 0; i < cols; i++) {
    const x = i * (bar + gap);
    const top = h / 2 - pk[2 * i + 1] * scale, bottom = h / 2 - pk[2 * i] * scale;
    g.fillStyle = x / w < progress ? played : rest;
    g.fillRect(x, top, bar, Math.max(dpr, bottom - top));
  }
  if (progress > 0 && progress < 1) {
    g.fillStyle = css("--text") || "#fff";
    g.fillRect(Math.round(progress * w), 0, Math.max(1, dpr), h);
  }
}

// --- spectrogram (the API has no route for the take's spectrogram.png: computed here) --------

function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) { [re[i], re[j]] = [re[j], re[i]]; [im[i], im[j]] = [im[j], im[i]]; }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = -2 * Math.PI / len, wr = Math.cos(ang), wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1, ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k, b = a + len / 2;
        const xr = re[b] * cr - im[b] * ci, xi = re[b] * ci + im[b] * cr;
        re[b] = re[a] - xr; im[b] = im[a] - xi; re[a] += xr; im[a] += xi;
        const t = cr * wr - ci * wi; ci = cr * wi + ci * wr; cr = t;
      }
    }
  }
}

// A perceptual dark→hot colour map (approximately "magma").
const STOPS = [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100], [251, 135, 97], [254, 194, 135], [252, 253, 191]];
function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  const a = STOPS[i], b = STOPS[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** A log-frequency power spectrogram (dB, 80 dB range) of the mono mix onto a canvas. */
export function drawSpectrogram(canvas, buffer) {
  const w = canvas.width = 480, h = canvas.height = 120;
  const g = canvas.getContext("2d");
  if (!buffer) { g.fillStyle = "#000"; g.fillRect(0, 0, w, h); return; }
  const N = 1024, sr = buffer.sampleRate;
  const x = buffer.getChannelData(0);
  const y = buffer.numberOfChannels > 1 ? buffer.getChannelData(1) : null;
  const hop = Math.max(1, Math.floor((x.length - N) / w));
  const win = new Float32Array(N).map((_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (N - 1)));
  const fmin = 30, fmax = Math.min(sr / 2, 16000);
  const rowBin = new Float32Array(h).map((_, r) => (fmin * Math.pow(fmax / fmin, 1 - r / (h - 1))) * N / sr);
  const db = new Float32Array(w * h);
  let top = -Infinity;
  const re = new Float32Array(N), im = new Float32Array(N);
  for (let c = 0; c < w; c++) {
    const s = c * hop;
    for (let i = 0; i < N; i++) {
      const v = s + i < x.length ? (y ? (x[s + i] + y[s + i]) / 2 : x[s + i]) : 0;
      re[i] = v * win[i]; im[i] = 0;
    }
    fft(re, im);
    for (let r = 0; r < h; r++) {
      const k = Math.min(N / 2 - 1, Math.max(1, Math.round(rowBin[r])));
      const p = re[k] * re[k] + im[k] * im[k];
      const d = 10 * Math.log10(p + 1e-12);
      db[r * w + c] = d;
      if (d > top) top = d;
    }
  }
  const img = g.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const [r, gg, b] = colour((db[i] - (top - 80)) / 80);
    img.data[4 * i] = r; img.data[4 * i + 1] = gg; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  g.putImageData(img, 0, 0);
}

// --- one shared player ---------------------------------------------------------------------

const listeners = new Set();
let current = null; // {key, canvas, buffer}

export const player = {
  el: null,
  init(el) {
    this.el = el;
    const tick = () => {
      if (current && current.canvas && !this.el.paused) {
        const d = this.el.duration || current.buffer?.duration || 1;
        current.canvas._progress = this.el.currentTime / d;
        drawWave(current.canvas, current.buffer, { progress: current.canvas._progress, selection: current.canvas._selection });
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    el.addEventListener("ended", () => this.stop());
  },
  get key() { return current && !this.el.paused ? current.key : null; },
  async play(key, path, canvas, at = 0) {
    this.stop();
    const audio = await loadAudio(path);
    current = { key, canvas, buffer: audio.buffer };
    this.el.src = audio.url;
    this.el.currentTime = at;
    try { await this.el.play(); } catch (err) { current = null; throw err; }
    emit();
  },
  stop() {
    if (!this.el) return;
    this.el.pause();
    if (current?.canvas) {
      current.canvas._progress = 0;
      drawWave(current.canvas, current.buffer, { selection: current.canvas._selection });
    }
    current = null;
    emit();
  },
  onChange(fn) { listeners.add(fn); },
};

function emit() { for (const fn of listeners) fn(player.key); }
