"""Timbre vectors: what an item sounds like, heard by the timbre net.

Query by example ("more like this kick") asks which items *sound* alike, and a prompt that names
a sound ("violin") asks which items sound like it. The bundled CLAP is small and was trained on
captions of renders; on real recordings its audio vectors place few neighbours in the right
family. Every item therefore also gets a **timbre vector**: the embedding of the timbre net
(:mod:`index.timbre_net`, a 0.3 M-weight CNN trained to tell instrument families and named
sounds apart, under recording-chain augmentations), standardised with one fixed mean and spread
per dimension (:class:`TimbreScale`, fitted once on the training catalogs and shipped in
``index/models/timbre.json``), so a vector never depends on what else is in the store. Search
fuses the timbre rankings with CLAP's. The same file holds :class:`TimbrePrototypes`, a vector per
family and named sound of the training catalogs, which let a text prompt search timbre vectors.

Before timbre-v2 the vector was 105 hand-made statistics (MFCCs, spectral shape, envelope);
the net finds the asked family among real recordings in 0.70 of the top 10 where they found
0.53 (``index/models/timbre-net/TRAINING.md``). A store of timbre-v1 vectors must be re-indexed.

>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> timbre_features(np.sin(2 * np.pi * 220 * t), sr).shape == (TIMBRE_DIM,)
True
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from index.timbre_net import EMBED_DIM, net_fingerprint, net_folder, shipped_net

TIMBRE_DIM = EMBED_DIM
TIMBRE_VERSION = "timbre-v2"  # a change to the net or the scale makes stored vectors stale
MODEL_FILE = Path(__file__).resolve().parent / "models" / "timbre.json"  # the bundled model
MODEL_ENV = "AUDIORAG_TIMBRE_MODEL"  # a timbre.json `audiorag train timbre --out` wrote


def model_file() -> Path:
    """The timbre model in use: the file ``$AUDIORAG_TIMBRE_MODEL`` names, else the bundled
    ``index/models/timbre.json``. Like the net (:func:`index.timbre_net.net_folder`) it is read
    from the environment, so indexing workers and search agree."""
    named = os.environ.get(MODEL_ENV)
    if not named:
        return MODEL_FILE
    if not Path(named).is_file():
        raise FileNotFoundError(f"{MODEL_ENV}={named}: no such timbre model file")
    return Path(named)


def timbre_features(samples: np.ndarray, sr: int) -> np.ndarray:
    """The raw (unscaled) :data:`TIMBRE_DIM` timbre features of a mono clip at ``sr``: the
    timbre net in use's embedding (:meth:`index.timbre_net.TimbreNet.embed_clip`). Loudness
    does not count; silence before the first sound does not either."""
    return shipped_net().embed_clip(samples, sr)


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
    net: str = ""  # net_fingerprint of the timbre net whose embedding it was fitted on

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
    def load(cls, path: Path | None = None) -> TimbreModel:
        """The model saved at ``path`` (default: :func:`model_file`)."""
        path = Path(path) if path is not None else model_file()
        record = json.loads(path.read_text())
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
            record.get("net", ""),
        )

    def save(self, path: Path) -> None:
        def floats(v: np.ndarray) -> list[float]:
            return [round(float(x), 5) for x in v]

        record = {
            "version": TIMBRE_VERSION,
            "fitted_on": list(self.fitted_on),
            "net": self.net,
            "mean": floats(self.scale.mean),
            "std": floats(self.scale.std),
            "families": {k: floats(v) for k, v in sorted(self.prototypes.families.items())},
            "sounds": {k: floats(v) for k, v in sorted(self.prototypes.sounds.items())},
        }
        if self.query_metric is not None:
            record["query_metric"] = [floats(row) for row in self.query_metric]
        Path(path).write_text(json.dumps(record) + "\n")


def shipped_model() -> TimbreModel:
    """The timbre model in use (:func:`model_file`: the bundled one unless
    ``$AUDIORAG_TIMBRE_MODEL`` names another), loaded once per process and file."""
    path = model_file()
    return on_shipped_net(_loaded_model(path), path)


@cache
def _loaded_model(path: Path) -> TimbreModel:
    return TimbreModel.load(path)


def on_shipped_net(model: TimbreModel, path: Path) -> TimbreModel:
    """``model``, or a clear error when it was fitted on another timbre net than the one in
    use (the net retrained, the prototypes not refitted; or only one of
    ``$AUDIORAG_TIMBRE_NET`` / ``$AUDIORAG_TIMBRE_MODEL`` set): its scale and prototypes would
    measure another net's embedding."""
    if model.net != net_fingerprint():
        raise ValueError(
            f"{path} was fitted on timbre net {model.net or '(unrecorded)'}, the net in use "
            f"({net_folder()}) is {net_fingerprint()}: refit it on that net with "
            "`audiorag train timbre --catalog …`, or set AUDIORAG_TIMBRE_NET and "
            "AUDIORAG_TIMBRE_MODEL to a matching pair"
        )
    return model


def timbre_vector(samples: np.ndarray, sr: int, scale: TimbreScale | None = None) -> np.ndarray:
    """The standardised timbre vector of a mono clip: what the store's ``timbre`` vectors hold.
    ``scale`` defaults to the shipped one."""
    return (scale or shipped_model().scale).apply(timbre_features(samples, sr))


def timbre_id() -> str:
    """What makes the stored timbre vectors: the version, the net's weights and the scale. A
    store records it and refuses vectors of another (a retrained net or a refitted scale), as it
    refuses another embedder's; prototypes refitted with the scale kept leave it unchanged."""
    scale = shipped_model().scale
    digest = hashlib.sha256(net_fingerprint().encode() + scale.mean.tobytes() + scale.std.tobytes())
    return f"{TIMBRE_VERSION}@{digest.hexdigest()[:12]}"
