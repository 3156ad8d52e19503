"""Timbre descriptors: a fixed, model-free vector of how a sound sounds.

Query by example ("more like this kick") asks which items *sound* alike. The bundled CLAP is
small and was trained on renders; on real recordings its audio vectors place few neighbours in
the right family. Classic timbre statistics — MFCCs and their change over time, spectral
centroid, bandwidth, flatness, contrast, zero crossings, each as an energy-weighted mean and
spread, plus the envelope's length, attack and decay — need no training and no vocabulary, and
find the same family more often than the bundled model does on both our held-out sets
(``docs/design-notes.md``, "Timbre vectors"). Search fuses them with CLAP's audio ranking.

Every feature is standardised with one fixed mean and spread per feature (:class:`TimbreScale`,
fitted once on the training catalogs and shipped in ``index/models/timbre.json``), so a vector
never depends on what else is in the store and cosine similarity weighs the features alike. The
same file holds :class:`TimbrePrototypes`, a vector per family and named sound of the training
catalogs (what tells that sound from the others), which let a text prompt ("kick") search
timbre vectors too.

We compute the features with librosa instead of adding a feature library: each is one librosa
call, and their weighting is the only part of our own.

>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> low, high = np.sin(2 * np.pi * 110 * t), np.sign(np.sin(2 * np.pi * 3000 * t))
>>> timbre_features(low, sr).shape == (TIMBRE_DIM,)
True
>>> bool(timbre_features(high, sr)[N_MFCC * 2] > timbre_features(low, sr)[N_MFCC * 2])  # centroid
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

TIMBRE_SR = 22050  # timbre lives below 11 kHz; a quarter of the work of 44.1 kHz
N_FFT = 1024
HOP = 256
N_MELS = 64
N_MFCC = 20
MAX_SECONDS = 60.0  # a minute says all a descriptor can; longer stems are cut for speed
SPECTRAL_ROWS = 11  # log centroid, log bandwidth, log flatness, 7 contrast bands, zero crossings
# MFCC, spectral and MFCC-delta rows as weighted mean and spread, then 3 envelope numbers.
TIMBRE_DIM = 2 * (N_MFCC + SPECTRAL_ROWS + N_MFCC) + 3
TIMBRE_VERSION = "timbre-v1"  # a change to the features or the scale makes stored vectors stale
MODEL_FILE = Path(__file__).resolve().parent / "models" / "timbre.json"


def timbre_features(samples: np.ndarray, sr: int) -> np.ndarray:
    """The raw (unscaled) :data:`TIMBRE_DIM` timbre features of a mono clip at ``sr``.

    Loudness does not count (the clip is peak-normalised first); frames count by their energy,
    so silence before and after a hit changes nothing but the envelope numbers.
    """
    import librosa

    from audio.signal import resample

    y = np.asarray(samples, dtype=np.float32)[: int(MAX_SECONDS * sr)]  # cut before resampling
    y = resample(y, sr, TIMBRE_SR)
    seconds = y.size / TIMBRE_SR
    y = np.pad(y, (0, max(0, N_FFT - y.size)))
    peak = float(np.max(np.abs(y)))
    y = y / peak if peak > 0 else y
    spectrum = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    mel = librosa.feature.melspectrogram(S=spectrum**2, sr=TIMBRE_SR, n_mels=N_MELS)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    spectral = np.vstack(
        [
            np.log1p(librosa.feature.spectral_centroid(S=spectrum, sr=TIMBRE_SR)),
            np.log1p(librosa.feature.spectral_bandwidth(S=spectrum, sr=TIMBRE_SR)),
            np.log(librosa.feature.spectral_flatness(S=spectrum) + 1e-6),
            librosa.feature.spectral_contrast(S=spectrum, sr=TIMBRE_SR),
            librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP),
        ]
    )
    frames = min(mfcc.shape[1], spectral.shape[1])
    mfcc, spectral = mfcc[:, :frames], spectral[:, :frames]
    energy = librosa.feature.rms(S=spectrum, frame_length=N_FFT)[0, :frames]
    weights = energy / energy.sum() if energy.sum() > 0 else np.full(frames, 1.0 / frames)
    delta = np.diff(mfcc, axis=1, prepend=mfcc[:, :1])
    return np.concatenate(
        [
            weighted_stats(mfcc, weights),
            weighted_stats(spectral, weights),
            weighted_stats(delta, weights),
            envelope(energy, seconds),
        ]
    ).astype(np.float32)


def weighted_stats(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each row's weighted mean, then each row's weighted standard deviation.

    >>> weighted_stats(np.array([[1.0, 3.0]]), np.array([0.5, 0.5]))
    array([2., 1.])
    """
    mean = rows @ weights
    spread = np.sqrt(((rows - mean[:, None]) ** 2) @ weights)
    return np.concatenate([mean, spread])


def envelope(energy: np.ndarray, seconds: float) -> np.ndarray:
    """Log length, time of the loudest frame (s) and the share of frames after it still above
    a tenth of its energy (a hit decays at once, a pad sustains).

    >>> envelope(np.array([0.0, 1.0, 0.5, 0.01]), 1.0).round(3).tolist()
    [0.001, 0.012, 0.667]
    """
    loudest = int(np.argmax(energy))
    tail = energy[loudest:]
    sustain = float(np.mean(tail > 0.1 * energy[loudest])) if energy[loudest] > 0 else 0.0
    return np.array([np.log(seconds + 1e-3), loudest * HOP / TIMBRE_SR, sustain])


@dataclass(frozen=True)
class TimbreScale:
    """Per-feature mean and spread that standardise :func:`timbre_features`."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> TimbreScale:
        """The scale of a (clips × features) array; constant features keep a spread of 1."""
        std = features.std(axis=0)
        return cls(features.mean(axis=0), np.where(std > 1e-9, std, 1.0))

    def apply(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)


@dataclass(frozen=True)
class TimbrePrototypes:
    """A unit vector per instrument family and per named sound ("kick", "violin") of the
    training catalogs: what a word sounds like, so a prompt that names a sound can search the
    timbre vectors of files nobody named or captioned. Each is the label's weight vector in a
    logistic regression over unit timbre vectors (:mod:`audiorag.training.fit_timbre`), so
    ranking items by cosine with it ranks them by that label's logit."""

    families: dict[str, np.ndarray]
    sounds: dict[str, np.ndarray]

    def for_label(self, family: str, sound: str) -> np.ndarray | None:
        """The prototype of ``sound`` when there is one, else of ``family``, else None. A family
        word ("strings": sound and family alike) takes the family's: the sound "strings" was
        fitted against "violin" and "cello", so its weights say "named strings, not a violin".

        >>> sounds = {"kick": np.zeros(2), "drums": -np.ones(2)}
        >>> protos = TimbrePrototypes({"drums": np.ones(2)}, sounds)
        >>> protos.for_label("drums", "kick").tolist(), protos.for_label("drums", "tom").tolist()
        ([0.0, 0.0], [1.0, 1.0])
        >>> protos.for_label("drums", "drums").tolist()
        [1.0, 1.0]
        """
        if sound in self.sounds and (sound != family or family not in self.families):
            return self.sounds[sound]
        return self.families.get(family)


@dataclass(frozen=True)
class TimbreModel:
    """The shipped, fitted parts of the timbre side: the scale, the prototypes and the metric
    a reference clip's vector is queried with.

    ``query_metric`` (features × k, or None) are the discriminant directions of the named
    sounds of the training catalogs (a shrinkage LDA, :mod:`audiorag.training.fit_timbre`). A
    reference clip searches with ``W Wᵀ q`` instead of ``q``: the stored vectors stay as they
    are, and the ranking weighs what tells sounds apart (a flute from a violin) over what every
    note varies in (pitch, loudness, room). Stored vectors need no re-indexing when it changes.
    """

    scale: TimbreScale
    prototypes: TimbrePrototypes
    fitted_on: tuple[str, ...] = ()
    query_metric: np.ndarray | None = None

    def example_query(self, vector: np.ndarray) -> np.ndarray:
        """The query vector for "sounds like this clip" from the clip's timbre vector.

        >>> scale = TimbreScale(np.zeros(3), np.ones(3))
        >>> model = TimbreModel(scale, TimbrePrototypes({}, {}), (), np.array([[1.0], [0], [0]]))
        >>> model.example_query(np.array([2.0, 5.0, 1.0])).tolist()
        [2.0, 0.0, 0.0]
        """
        if self.query_metric is None:
            return np.asarray(vector, np.float32)
        metric = self.query_metric
        return (np.asarray(vector, np.float32) @ metric @ metric.T).astype(np.float32)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> TimbreModel:
        record = json.loads(Path(path).read_text())
        if record.get("version") != TIMBRE_VERSION or len(record["mean"]) != TIMBRE_DIM:
            raise ValueError(f"{path} holds a {record.get('version')} timbre model; this code "
                             f"makes {TIMBRE_VERSION} ({TIMBRE_DIM} features)")  # fmt: skip

        def vectors(table: dict[str, list[float]]) -> dict[str, np.ndarray]:
            return {name: np.asarray(v, np.float32) for name, v in table.items()}

        metric = record.get("query_metric")  # absent in models fitted before it existed
        return cls(
            TimbreScale(
                np.asarray(record["mean"], np.float32), np.asarray(record["std"], np.float32)
            ),
            TimbrePrototypes(vectors(record["families"]), vectors(record["sounds"])),
            tuple(record.get("fitted_on", ())),
            None if metric is None else np.asarray(metric, np.float32).reshape(TIMBRE_DIM, -1),
        )

    def save(self, path: Path) -> None:
        def floats(v: np.ndarray) -> list[float]:
            return [round(float(x), 5) for x in v]

        record = {
            "version": TIMBRE_VERSION,
            "fitted_on": list(self.fitted_on),
            "mean": floats(self.scale.mean),
            "std": floats(self.scale.std),
            "families": {k: floats(v) for k, v in sorted(self.prototypes.families.items())},
            "sounds": {k: floats(v) for k, v in sorted(self.prototypes.sounds.items())},
        }
        if self.query_metric is not None:
            record["query_metric"] = [floats(row) for row in self.query_metric]
        Path(path).write_text(json.dumps(record) + "\n")


@cache
def shipped_model() -> TimbreModel:
    """The bundled timbre model (``index/models/timbre.json``), loaded once per process."""
    return TimbreModel.load()


def timbre_vector(samples: np.ndarray, sr: int, scale: TimbreScale | None = None) -> np.ndarray:
    """The standardised timbre vector of a mono clip: what the store's ``timbre`` vectors hold.
    ``scale`` defaults to the shipped one."""
    return (scale or shipped_model().scale).apply(timbre_features(samples, sr))
