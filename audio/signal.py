"""Pure array helpers for (channels, samples) audio: length, rate, channel count, splicing.

No files and no models here: every layer (indexing, generation, retrieval) shares them.
"""

from __future__ import annotations

import numpy as np
import soxr

CROSSFADE_S = 0.02  # splice: the ramp from the kept audio into the new range


def fit_length(audio: np.ndarray, samples: int) -> np.ndarray:
    """(channels, samples) audio trimmed or zero-padded to exactly ``samples``.

    >>> fit_length(np.ones((2, 3)), 5).tolist()
    [[1.0, 1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]]
    """
    if audio.shape[1] >= samples:
        return audio[:, :samples]
    return np.pad(audio, ((0, 0), (0, samples - audio.shape[1])))


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis (soxr, high quality).

    >>> resample(np.zeros(44_100, np.float32), 44_100, 48_000).shape
    (48000,)
    """
    if sr_in == sr_out:
        return y.astype(np.float32, copy=False)
    if y.ndim == 1:
        return soxr.resample(y, sr_in, sr_out, quality="HQ").astype(np.float32)
    # soxr wants (frames, channels)
    return soxr.resample(y.T, sr_in, sr_out, quality="HQ").T.astype(np.float32).copy()


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(channels, samples) audio with the wanted channel count (mono ↔ stereo).

    >>> match_channels(np.ones(4, dtype=np.float32), 2).shape
    (2, 4)
    """
    if audio.ndim == 1:
        audio = audio[None]
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio.mean(axis=0, keepdims=True), channels, axis=0)


def splice(
    original: np.ndarray, generated: np.ndarray, range_s: tuple[float, float], sample_rate: int
) -> np.ndarray:
    """The original outside ``range_s``, the generated audio inside, short ramps inside the range.

    The ramps sit inside the regenerated range, so every kept sample is the original's, exactly.

    >>> a, b = np.zeros((1, 100), np.float32), np.ones((1, 100), np.float32)
    >>> out = splice(a, b, (0.2, 0.6), 100)
    >>> float(out[0, :20].max()), float(out[0, 60:].max()), float(out[0, 40])
    (0.0, 0.0, 1.0)
    """
    samples = original.shape[1]
    weight = np.zeros(samples, dtype=np.float32)
    first, last = round(range_s[0] * sample_rate), min(samples, round(range_s[1] * sample_rate))
    weight[first:last] = 1.0
    ramp = min(round(CROSSFADE_S * sample_rate), (last - first) // 2)
    if ramp > 0:
        fade = np.linspace(0.0, 1.0, ramp + 2, dtype=np.float32)[1:-1]
        weight[first : first + ramp] = fade
        weight[last - ramp : last] = fade[::-1]
    return original * (1.0 - weight) + generated[:, :samples] * weight
