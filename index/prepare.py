"""Per-file work of an index run — decode + analyse a stem, or parse + analyse + render a MIDI
pattern — kept free of torch so worker processes start light (they never embed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio.decode import Limits, UnusableFile, check_size, decode_audio
from audio.signal import resample
from index.analysis import analyse_audio, analyse_midi, parse_midi
from index.manifest import Entry


@dataclass(frozen=True)
class WorkItem:
    relative: str  # posix path relative to the catalog folder: the payload's `path`
    absolute: Path
    kind: str  # "stem" | "midi"
    sha256: str
    entry: Entry


@dataclass
class Prepared:
    """A work item after decode + analysis: what embedding and the payload need."""

    item: WorkItem
    clip: np.ndarray  # mono float32 at the embedder's rate
    analysis: dict[str, Any]


@dataclass
class Problem:
    path: str
    reason: str


def prepare(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared:
    """Decode and analyse one file; the clip comes back mono at ``clip_sr`` for embedding.
    Raises UnusableFile/ValueError with the reason."""
    if item.kind == "midi":
        return _prepare_midi(item, limits, clip_sr)
    audio = decode_audio(item.absolute, limits)
    tonal = False if item.entry.meta.instrument == "drums" else None
    analysis = analyse_audio(audio, tonal=tonal).to_payload()
    clip = resample(audio.mono(), audio.sr, clip_sr)
    return Prepared(item, clip, analysis)


def _prepare_midi(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared:
    from index.render import render_midi  # the SoundFont synth is only needed for MIDI

    check_size(item.absolute, limits)
    midi = parse_midi(item.absolute.read_bytes())
    analysis = analyse_midi(midi)
    if analysis.duration_s > limits.max_seconds:
        raise UnusableFile(f"too long: {analysis.duration_s:.0f} s > {limits.max_seconds:.0f} s")
    stereo = render_midi(midi, sr=clip_sr)
    return Prepared(item, stereo.mean(axis=0).astype(np.float32), analysis.to_payload())


def prepare_or_problem(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared | Problem:
    """:func:`prepare`, with any failure turned into a :class:`Problem` for the report."""
    try:
        return prepare(item, limits, clip_sr)
    except (UnusableFile, ValueError) as err:
        return Problem(item.relative, str(err))
    except Exception as err:  # a decoder or analysis bug must not stop the batch
        return Problem(item.relative, f"analysis error: {type(err).__name__}: {err}")
