"""Per-file work of an index run — decode + analyse a stem, or parse + analyse + render a MIDI
pattern — kept free of torch so worker processes start light (they never embed)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from audio.decode import Limits, UnusableFile, check_size, decode_audio
from audio.signal import resample
from index.analysis import ONE_SHOT_MAX_SECONDS, analyse_audio, analyse_midi, parse_midi
from index.manifest import Entry
from index.timbre import timbre_vector

# Test-only: a worker process whose item path contains this text kills itself with SIGSEGV, as a
# crashing native decoder would. Never set outside tests; ignored in the main process.
CRASH_HOOK_ENV = "AUDIORAG_TEST_CRASH_ON"

# One-shots are zero-padded to this length before embedding: CLAP repeat-pads short windows, and
# a 40 ms hit repeated back to back would sound like a buzz, not a hit.
ONE_SHOT_PAD_SECONDS = 1.0


class ProblemReason(StrEnum):
    """Why a file was skipped, failed, removed, or noted: for programs (the report's ``code``);
    the human message next to it says the same with the details."""

    # skipped while planning
    UNSUPPORTED_TYPE = "unsupported_type"
    NO_LICENCE = "no_licence"
    DUPLICATE = "duplicate"
    OUTSIDE_CATALOG = "outside_catalog"  # a symlink that resolves outside the catalog folder
    BROKEN_LINK = "broken_link"  # a dangling symlink or a symlink loop
    BAD_NAME = "bad_name"  # a file name that is not valid UTF-8
    # failed: the file is not usable
    UNREADABLE = "unreadable"  # permissions, I/O error
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    UNDECODABLE = "undecodable"
    TRUNCATED = "truncated"
    NON_FINITE = "non_finite"
    SILENT = "silent"
    NO_NOTES = "no_notes"
    # failed: our side
    ANALYSIS_ERROR = "analysis_error"
    EMBEDDING_ERROR = "embedding_error"
    WORKER_CRASHED = "worker_crashed"
    # removed from the store
    LICENCE_REMOVED = "licence_removed"
    REPLACED = "replaced"
    FILE_GONE = "file_gone"
    # notes: indexed, but worth knowing
    CONTAINER_MISMATCH = "container_mismatch"
    NO_TIMBRE = "no_timbre"  # indexed without a timbre vector: query by example uses CLAP only


@dataclass(frozen=True)
class WorkItem:
    relative: str  # posix path relative to the catalog folder: the payload's `path`
    absolute: Path
    kind: str  # "stem" | "midi"
    sha256: str
    entry: Entry


@dataclass
class Problem:
    path: str
    reason: str  # the human message
    code: ProblemReason = ProblemReason.ANALYSIS_ERROR


@dataclass
class Prepared:
    """A work item after decode + analysis: what embedding and the payload need."""

    item: WorkItem
    clip: np.ndarray  # mono float32 at the embedder's rate
    analysis: dict[str, Any]
    timbre: np.ndarray | None = None  # index.timbre vector; None when it could not be made
    notes: list[Problem] = field(default_factory=list)  # indexed, but worth a line in the report
    seconds: dict[str, float] = field(default_factory=dict)  # time per stage (see STAGES)


# The stages of an item's work, in order; ``Prepared.seconds`` and the report's ``stage_seconds``
# use these names (decode/analysis/render here, embed/upsert where the batch is embedded).
STAGES = ("decode", "analysis", "render", "embed", "upsert")


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the time spent inside to ``seconds[stage]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started


# What each extension should hold (libsndfile's format names); anything else is noted.
EXPECTED_CONTAINER = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}


def prepare(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared:
    """Decode and analyse one file; the clip comes back mono at ``clip_sr`` for embedding.
    Raises UnusableFile/ValueError with the reason."""
    if item.kind == "midi":
        return _prepare_midi(item, limits, clip_sr)
    seconds: dict[str, float] = {}
    with timed(seconds, "decode"):
        audio = decode_audio(item.absolute, limits)
    tonal = False if item.entry.meta.instrument == "drums" else None
    with timed(seconds, "analysis"):
        analysis = analyse_audio(audio, tonal=tonal).to_payload()
    with timed(seconds, "decode"):  # resampling for CLAP counts as decoding
        clip = resample(audio.mono(), audio.sr, clip_sr)  # any channel count: their mean
    notes = []
    with timed(seconds, "analysis"):
        timbre = describe_timbre(item, clip, clip_sr, notes)
    if analysis["one_shot"]:
        clip = padded_hit(clip, clip_sr)
    expected = EXPECTED_CONTAINER.get(item.absolute.suffix.lower())
    if expected and audio.container != expected:
        message = f"named {item.absolute.suffix} but holds {audio.container}: decoded as such"
        notes.append(Problem(item.relative, message, ProblemReason.CONTAINER_MISMATCH))
    return Prepared(item, clip, analysis, timbre, notes, seconds)


def padded_hit(clip: np.ndarray, sr: int) -> np.ndarray:
    """A short clip zero-padded to :data:`ONE_SHOT_PAD_SECONDS` (longer ones unchanged), as
    one-shots are embedded.

    >>> padded_hit(np.ones(3, np.float32), sr=4).tolist()
    [1.0, 1.0, 1.0, 0.0]
    """
    return np.pad(clip, (0, max(0, round(ONE_SHOT_PAD_SECONDS * sr) - clip.size)))


def describe_timbre(
    item: WorkItem, clip: np.ndarray, sr: int, notes: list[Problem]
) -> np.ndarray | None:
    """The clip's timbre vector; on failure None and a note (the item is still indexed)."""
    try:
        return timbre_vector(clip, sr)
    except Exception as err:  # a descriptor bug must not cost the item its CLAP vectors
        notes.append(Problem(item.relative, f"no timbre vector: {err}", ProblemReason.NO_TIMBRE))
        return None


def _prepare_midi(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared:
    from index.render import render_midi  # the SoundFont synth is only needed for MIDI

    seconds: dict[str, float] = {}
    with timed(seconds, "decode"):
        check_size(item.absolute, limits)
        midi = parse_midi(item.absolute.read_bytes())
    with timed(seconds, "analysis"):
        analysis = analyse_midi(midi)
    if analysis.duration_s > limits.max_seconds:
        raise UnusableFile(
            f"too long: {analysis.duration_s:.0f} s > {limits.max_seconds:.0f} s", "too_long"
        )
    with timed(seconds, "render"):
        stereo = render_midi(midi, sr=clip_sr)
    payload = analysis.to_payload()
    payload["one_shot"] = analysis.duration_s < ONE_SHOT_MAX_SECONDS
    clip = stereo.mean(axis=0).astype(np.float32)
    notes: list[Problem] = []
    with timed(seconds, "analysis"):
        timbre = describe_timbre(item, clip, clip_sr, notes)
    return Prepared(item, clip, payload, timbre, notes, seconds)


def prepare_or_problem(item: WorkItem, limits: Limits, clip_sr: int) -> Prepared | Problem:
    """:func:`prepare`, with any failure turned into a :class:`Problem` for the report."""
    _crash_hook(item)
    try:
        return prepare(item, limits, clip_sr)
    except UnusableFile as err:
        return Problem(item.relative, str(err), ProblemReason(err.code))
    except ValueError as err:
        code = ProblemReason.NO_NOTES if "no notes" in str(err) else ProblemReason.UNDECODABLE
        return Problem(item.relative, str(err), code)
    except OSError as err:  # permissions, I/O errors, a file gone since the plan
        return Problem(
            item.relative, f"unreadable: {err.strerror or err}", ProblemReason.UNREADABLE
        )
    except Exception as err:  # a decoder or analysis bug must not stop the batch
        return Problem(
            item.relative,
            f"analysis error: {type(err).__name__}: {err}",
            ProblemReason.ANALYSIS_ERROR,
        )


_in_worker = False  # set by init_worker: this process is an analysis worker (pool or Ray)


def init_worker() -> None:
    """Start-up of an analysis worker process: compile librosa's numba kernels under a lock
    (see :func:`index.analysis.warm_up`) before any real work."""
    from index.analysis import warm_up

    global _in_worker
    _in_worker = True
    warm_up()


def _crash_hook(item: WorkItem) -> None:
    needle = os.environ.get(CRASH_HOOK_ENV)
    in_worker = _in_worker or multiprocessing.parent_process() is not None
    if needle and needle in item.relative and in_worker:
        os.kill(os.getpid(), signal.SIGSEGV)
