"""Make a clean SoundFont render sound recorded: a room, an EQ, a compressor, noise, a codec.

Users' libraries were recorded in rooms through microphones and converters, mixed, compressed
and often stored as MP3 or OGG; our training audio comes straight out of a synth. Each function
here imitates one link of that chain on mono float audio, from a seeded ``rng``;
:func:`recording_chain` applies a random selection of them. All are waveform operations (the
training loop calls them once per cached view, not per step).
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from scipy import signal

from audio.signal import fit_length, resample

# Probability of each link in recording_chain.
CHAIN_PROBABILITIES: dict[str, float] = {
    "speed": 0.5,
    "room": 0.6,
    "eq": 0.7,
    "compress": 0.5,
    "noise": 0.5,
    "codec": 0.4,
}


def room_impulse_response(sr: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: a few early reflections, then exponentially decaying noise (RT60
    0.15–1.2 s) darkened over time as real rooms absorb highs; the direct sound is 1.0.

    >>> ir = room_impulse_response(48_000, np.random.default_rng(0))
    >>> float(ir[0]), bool(np.abs(ir[1:]).max() < 1.0)
    (1.0, True)
    """
    rt60 = float(rng.uniform(0.15, 1.2))
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)  # -60 dB at rt60
    # Highs die faster: low-pass the second half of the tail.
    b, a = signal.butter(1, min(0.99, float(rng.uniform(2000, 8000)) / (sr / 2)))
    tail = np.where(t > rt60 / 4, signal.lfilter(b, a, tail), tail)
    predelay = int(sr * rng.uniform(0.005, 0.03))
    ir = np.zeros(n + predelay)
    ir[predelay:] = tail * 10 ** (rng.uniform(-22, -10) / 20)
    for _ in range(int(rng.integers(2, 6))):  # early reflections
        ir[int(rng.integers(1, predelay + sr // 50))] += rng.uniform(-0.5, 0.5)
    ir[0] = 1.0
    return ir.astype(np.float32)


def add_room(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` played in a synthetic room (the reverb tail is cut at ``x``'s length)."""
    return signal.fftconvolve(x, room_impulse_response(sr, rng))[: x.size].astype(np.float32)


def random_eq(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two to four peaking bands (±9 dB, 60 Hz – 12 kHz) and a high-pass (20–150 Hz): another
    microphone, desk or mix."""
    y = x.astype(np.float64)
    for _ in range(int(rng.integers(2, 5))):
        freq = float(np.exp(rng.uniform(np.log(60), np.log(min(12000, sr / 2.5)))))
        y = peaking(y, sr, freq, gain_db=float(rng.uniform(-9, 9)), q=float(rng.uniform(0.5, 2)))
    b, a = signal.butter(2, float(rng.uniform(20, 150)) / (sr / 2), btype="highpass")
    return signal.lfilter(b, a, y).astype(np.float32)


def peaking(x: np.ndarray, sr: int, freq: float, *, gain_db: float, q: float) -> np.ndarray:
    """The RBJ cookbook peaking biquad."""
    amp, w0 = 10 ** (gain_db / 40), 2 * np.pi * freq / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp])
    a = np.array([1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp])
    return signal.lfilter(b / a[0], a / a[0], x)


def compress(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A feed-forward compressor (ratio 2–8, threshold 6–30 dB under the peak, 1–20 ms attack
    smoothing of the level) with make-up gain back to the input's peak."""
    peak = float(np.abs(x).max()) or 1.0
    threshold = 20 * np.log10(peak) - float(rng.uniform(6, 30))
    ratio = float(rng.uniform(2, 8))
    smooth = np.exp(-1.0 / (sr * float(rng.uniform(0.001, 0.02))))
    level = signal.lfilter([1 - smooth], [1, -smooth], np.abs(x))
    level_db = 20 * np.log10(np.maximum(level, 1e-9))
    gain_db = np.minimum(0.0, (threshold - level_db) * (1 - 1 / ratio))
    y = x * 10 ** (gain_db / 20)
    return (y * peak / (float(np.abs(y).max()) or 1.0)).astype(np.float32)


def add_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White or pink-ish noise 25–60 dB under the signal's RMS (a preamp, a room, tape)."""
    rms = float(np.sqrt(np.mean(x**2))) or 1e-3
    noise = rng.standard_normal(x.size)
    if rng.random() < 0.5:  # pink-ish: one-pole low-pass
        noise = signal.lfilter([0.1], [1, -0.9], noise)
    noise *= rms * 10 ** (-float(rng.uniform(25, 60)) / 20) / (np.sqrt(np.mean(noise**2)) or 1.0)
    return (x + noise).astype(np.float32)


def codec_round_trip(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Encode to MP3 or OGG/Vorbis in memory at a random quality and decode back (libsndfile ≥
    1.1 writes both); the result is fitted back to ``x``'s length (codecs pad)."""
    fmt = "MP3" if rng.random() < 0.5 else "OGG"
    subtype = "MPEG_LAYER_III" if fmt == "MP3" else "VORBIS"
    buffer = io.BytesIO()
    peak = float(np.abs(x).max())
    safe = x * (0.95 / peak) if peak > 0.95 else x
    level = float(rng.uniform(0.3, 0.9))  # the bit rate falls as it rises
    with sf.SoundFile(
        buffer, "w", sr, 1, format=fmt, subtype=subtype, compression_level=level
    ) as out:
        out.write(safe.astype(np.float32))
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32")
    return fit_length(decoded.reshape(1, -1), x.size)[0] * (peak / 0.95 if peak > 0.95 else 1.0)


def speed_jitter(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Play ``x`` up to 6 % faster or slower (pitch and tempo move together, like a tape or a
    sampler's varispeed); the length changes with it."""
    factor = float(rng.uniform(0.94, 1.06))
    return resample(x.astype(np.float32), round(sr * factor), sr).astype(np.float32)


def recording_chain(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A random recording chain on mono ``x``: each link of :data:`CHAIN_PROBABILITIES` with its
    probability, in signal order (speed, room, EQ, compressor, noise, codec), then brought
    back to ``x``'s peak level.

    >>> x = np.sin(np.linspace(0, 2000, 48_000)).astype(np.float32)
    >>> y = recording_chain(x, 48_000, np.random.default_rng(1))
    >>> y.dtype, bool(np.isfinite(y).all())
    (dtype('float32'), True)
    """
    y = np.asarray(x, dtype=np.float32)
    peak = float(np.abs(y).max())
    draws = {name: rng.random() < p for name, p in CHAIN_PROBABILITIES.items()}
    if draws["speed"]:
        y = speed_jitter(y, sr, rng)
    if draws["room"]:
        y = add_room(y, sr, rng)
    if draws["eq"]:
        y = random_eq(y, sr, rng)
    if draws["compress"]:
        y = compress(y, sr, rng)
    if draws["noise"]:
        y = add_noise(y, rng)
    y = np.nan_to_num(y) * (peak / (float(np.abs(y).max()) or 1.0))
    if draws["codec"]:
        y = codec_round_trip(y, sr, rng)
    return y.astype(np.float32)
