"""Fit the bundled timbre model (``index/models/timbre.json``) on training catalogs.

    audiorag train timbre --catalog data/train/demo --catalog data/train/oneshots \
        --catalog data/train/samples

Every audio file under each catalog folder is decoded and described (:mod:`index.timbre`). The
scale is the per-feature mean and spread over all of them; the prototypes are the mean
standardised vector of each instrument family (the manifest's ``instrument``) and of each sound
the file names state (:func:`index.names.name_label`, as the indexer reads them) with at least
:data:`MIN_EXAMPLES` files. Fit it on what we train on, never on a held-out set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from audio.decode import STEM_EXTENSIONS, decode_audio
from index.manifest import find_manifest, load_manifest
from index.names import name_label
from index.timbre import TimbreModel, TimbrePrototypes, TimbreScale, timbre_features

MIN_EXAMPLES = 5  # fewer files make a prototype of one recording, not of a sound


def audio_files(catalogs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(catalog, file) for every stem-format file under the catalog folders, in a stable order."""
    return [
        (Path(catalog), path)
        for catalog in catalogs
        for path in sorted(Path(catalog).rglob("*"))
        if path.is_file() and path.suffix.lower() in STEM_EXTENSIONS
    ]


def file_labels(
    catalog: Path, path: Path, families: dict[str, str]
) -> tuple[str | None, str | None]:
    """(family, sound) of one training file: the manifest's instrument, and the sound its name
    states when that agrees with the family."""
    relative = path.relative_to(catalog).as_posix()
    named = name_label(relative)
    family = families.get(relative) or (named.family if named else None)
    sound = named.sound if named is not None and named.family == family else None
    return family, sound


def prototypes(vectors: np.ndarray, labels: Sequence[str | None]) -> dict[str, np.ndarray]:
    """The unit-length mean of the unit vectors of each label with enough examples.

    >>> sorted(prototypes(np.eye(2)[[0] * 5 + [1]], ["a"] * 5 + ["b"]))
    ['a']
    """
    rows: dict[str, list[int]] = defaultdict(list)
    for n, label in enumerate(labels):
        if label:
            rows[label].append(n)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    out = {}
    for label, members in rows.items():
        if len(members) >= MIN_EXAMPLES:
            mean = unit[members].mean(axis=0)
            out[label] = mean / max(float(np.linalg.norm(mean)), 1e-9)
    return out


def fit_timbre_model(
    catalogs: Sequence[Path],
    out: Path,
    *,
    on_file: Callable[[Path, str | None], None] = lambda path, error: None,
) -> tuple[TimbreModel, int]:
    """Describe every audio file of ``catalogs``, fit the scale and prototypes and save them to
    ``out``; returns the model and how many files it was fitted on. ``on_file(path, error)`` is
    called after each file (error: why it was skipped, else None), for progress."""
    families: dict[Path, dict[str, str]] = {}
    for catalog in map(Path, catalogs):
        manifest = find_manifest(catalog)
        entries = load_manifest(manifest).entries if manifest else {}
        families[catalog] = {p: e.meta.instrument for p, e in entries.items() if e.meta.instrument}
    rows, family_of, sound_of = [], [], []
    for catalog, path in audio_files(catalogs):
        try:
            audio = decode_audio(path)
            rows.append(timbre_features(audio.mono(), audio.sr))
        except ValueError as err:  # undecodable, empty, too long: skipped, named
            on_file(path, str(err))
            continue
        family, sound = file_labels(catalog, path, families[catalog])
        family_of.append(family)
        sound_of.append(sound)
        on_file(path, None)
    if not rows:
        raise ValueError(f"no decodable audio under {', '.join(map(str, catalogs))}")
    scale = TimbreScale.fit(np.stack(rows))
    vectors = scale.apply(np.stack(rows))
    model = TimbreModel(
        scale,
        TimbrePrototypes(prototypes(vectors, family_of), prototypes(vectors, sound_of)),
        tuple(Path(c).name for c in catalogs),
    )
    model.save(out)
    return model, len(rows)
