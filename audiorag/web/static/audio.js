// Audio on the page: authenticated fetches decoded with WebAudio for waveform peaks, and one
// shared player with a playhead. Audio whose waveform is drawn is already downloaded: it plays
// from that copy. Anything else streams from a short-lived signed URL (the API's `links`), so the
// browser uses range requests instead of downloading the whole file first.

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

// --- one shared player ---------------------------------------------------------------------

const listeners = new Set();
let current = null; // {key, canvas, buffer}

export const player = {
  el: null,
  init(el) {
    this.el = el;
    const tick = () => {
      if (current && current.canvas && !this.el.paused) {
        const d = (Number.isFinite(this.el.duration) && this.el.duration) || current.buffer?.duration || 1;
        current.canvas._progress = this.el.currentTime / d;
        drawWave(current.canvas, current.buffer, { progress: current.canvas._progress, selection: current.canvas._selection });
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    el.addEventListener("ended", () => this.stop());
  },
  get key() { return current && !this.el.paused ? current.key : null; },
  /**
   * Play `src` (a signed URL: streams with range requests). `path` is the authenticated path of
   * the same audio: its decoded waveform drives the playhead, and it is the fallback when the
   * signed URL has expired.
   */
  async play(key, { src, path }, canvas, at = 0) {
    this.stop();
    current = { key, canvas, buffer: canvas?._buffer || null };
    const mine = current;
    if (!current.buffer && path) {
      loadAudio(path).then((a) => { if (current === mine) mine.buffer = a.buffer; }).catch(() => {});
    }
    const start = async (url) => {
      this.el.src = url;
      if (at) {
        await new Promise((resolve) => {
          if (this.el.readyState >= 1) resolve();
          else { this.el.addEventListener("loadedmetadata", resolve, { once: true }); this.el.addEventListener("error", resolve, { once: true }); }
        });
        this.el.currentTime = at;
      }
      await this.el.play();
    };
    // the copy fetched for the waveform, when it is there: no second download
    const local = current.buffer && path && cache.has(path) ? (await loadAudio(path)).url : null;
    try {
      try {
        if (!local && !src) throw new Error("no signed URL");
        await start(local || src);
      } catch (err) {
        if (current !== mine || !path || err?.name === "AbortError") throw err;
        await start((await loadAudio(path)).url); // e.g. the signed URL expired
      }
    } catch (err) { if (current === mine) current = null; throw err; }
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
