"""Writing a take: audio files, a spectrogram and the manifest, all or nothing.

Everything is written into a hidden temporary folder beside the destination and renamed into
place at the end, so a failed or cancelled render leaves nothing half-written behind.

:class:`TakeManifest` is what ``manifest.json`` holds (and what the provenance log and the API
return): built by the orchestrator, dumped field by field in declaration order, keys never set
left out — the same JSON the dict-built manifests had. Its schema is in ``docs/schema/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

AUDIO_FORMATS = {"wav": ("WAV", "PCM_24"), "flac": ("FLAC", "PCM_24")}


class TakeMode(StrEnum):
    """How the take was rendered."""

    TEXT_TO_AUDIO = "text-to-audio"
    AUDIO_TO_AUDIO = "audio-to-audio"  # seeds layered into the init audio
    IN_PAINT = "in-paint"  # a clip regenerated inside a range


class RetrievalStatus(StrEnum):
    OK = "ok"  # retrieval added at least one seed
    EMPTY = "empty"  # retrieval ran and found nothing seedable
    DISABLED = "disabled"  # no retrieval asked for (or top_k 0)


# A number stays the type it was given (an int request field is not turned into a float), so
# the JSON a manifest is written as does not change by passing through the model.
Number = float | int


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class PromptRecord(_Record):
    user: str = Field(description="The prompt as the user wrote it.")
    enriched: str = Field(description="What the generator was given: user prompt + added.")
    added: list[str] = Field(description="Phrases the seeds' metadata added, heaviest first.")
    negative: str | None


class RetrievalRecord(_Record):
    status: RetrievalStatus
    top_k: int
    embedder: str | None = Field(None, description="CLAP model id (absent when disabled).")
    filters: dict[str, Any] | None = Field(
        None, description="uses, catalogs, instrument, genre (absent when disabled)."
    )
    query: dict[str, Any] | None = Field(None, description="text, like (absent when disabled).")
    roles: list[str] | None = Field(None, description="Roles seeded, one item each (rag/roles.py).")
    roles_from: str | None = Field(
        None, description='"explicit" | "instrument" | "prompt" | "style:<genre>" | "default"'
    )


class SeedLicence(_Record):
    id: str | None
    holder: str | None
    allowed_uses: list[str] | None
    attribution: str | None


class Alignment(_Record):
    """What was done to a seed's audio; ``skipped`` alone when it was not layered."""

    method: str | None = Field(None, description='"time-stretch + pitch-shift" | "midi re-render"')
    tempo_ratio: Number | None = None
    source_bpm: Number | None = None
    target_bpm: Number | None = None
    source_key: str | None = None
    target_key: str | None = None
    semitones: int | None = None
    skipped: str | None = Field(None, description="Why the seed was not layered.")


class SeedRecord(_Record):
    id: str = Field(description="Point id of the catalog item.")
    catalog: str | None
    path: str | None
    kind: str | None
    instrument: str | None
    caption: str | None
    score: Number = Field(description="Fused retrieval score (1.0 for a pinned item).")
    weight: Number = Field(description="Share of the seeds' summed scores.")
    pinned: bool
    layered: bool = Field(description="Whether its audio is in the init mix.")
    licence: SeedLicence
    alignment: Alignment


class StackAlignment(_Record):
    tempo: str = Field(description='"same" | "half/double time" | "stretched" | "n/a"')
    tempo_ratio: Number = Field(description="Target / source tempo after half/double time.")
    key: str = Field(description='"same" | "relative" | "shifted" | "n/a" (unpitched or keyless)')
    semitones: int


class StackItem(_Record):
    id: str
    path: str | None
    instrument: str
    score: Number = Field(description="Fused retrieval score within its role (1.0 pinned).")
    pinned: bool
    bpm: Number | None
    key: str | None
    alignment: StackAlignment | None


class StackRejected(_Record):
    id: str
    path: str | None
    score: Number
    reason: str = Field(description="Why it was not chosen: tempo, key, or a lower score.")


class StackRole(_Record):
    role: str = Field(description='A family ("bass") or a group ("harmonic").')
    families: list[str] = Field(description="Instrument families that may fill it.")
    chosen: StackItem | None
    reason: str | None = Field(description="Why the role is empty (None when filled).")
    rejected: list[StackRejected] = Field(description="The best candidates left out, and why.")


class StackTarget(_Record):
    bpm: Number | None
    key: str | None
    bpm_from: str = Field(description='"request" | "pinned" | "stack" | "none"')
    key_from: str


class StackRecord(_Record):
    """The seed stack: one item per role, all fitting one tempo and key (rag/stack.py)."""

    roles_from: str | None
    target: StackTarget
    preferred_holder: str | None = Field(description="The licence holder the prompt named.")
    roles: list[StackRole]


class Targets(_Record):
    duration_s: Number
    bpm: Number | None
    key: str | None
    sample_rate: int
    channels: int


class ModelRecord(_Record):
    id: str
    family: str
    weights_sha256: str
    notice: str | None = Field(description="Shown to the user, e.g. an untrained stand-in.")


class WatermarkRecord(_Record):
    scheme: str | None = Field(description="Watermarker id; None when takes are not marked.")
    payload: str | None = Field(None, description="32-bit payload, 8 hex digits.")
    payload_int: int | None = Field(None, description="The same payload as an integer.")


class Timings(_Record):
    retrieval_s: Number
    conditioning_s: Number
    render: dict[str, Any] = Field(description="The generator's own timings.")
    total_s: Number


class TakeManifest(_Record):
    """A take's provenance: request, prompt, seeds with their licences, model, settings."""

    take_id: str
    created_at: str = Field(description="ISO 8601, UTC, seconds.")
    mode: TakeMode
    request: dict[str, Any] = Field(description="The GenerateRequest's fields, paths as text.")
    prompt: PromptRecord
    retrieval: RetrievalRecord
    seeds: list[SeedRecord]
    targets: Targets
    model: ModelRecord
    sampler: dict[str, Any] = Field(description="Scheduler, steps run, speed options, seed.")
    watermark: WatermarkRecord
    timings_s: Timings
    stack: StackRecord | None = Field(
        None, description="Roles, chosen items and rejected candidates (absent: no retrieval)."
    )
    outputs: dict[str, str] | None = Field(
        None, description="File names in the take folder: wav, flac, spectrogram."
    )

    def to_json(self) -> dict[str, Any]:
        """The manifest as stored: keys never set (e.g. a disabled retrieval's) left out."""
        return self.model_dump(exclude_unset=True)


@dataclass
class Take:
    id: str
    folder: Path
    audio: dict[str, Path]  # format → file
    manifest: dict[str, Any]


def new_take_id(now: datetime | None = None) -> str:
    """A sortable, unique take id: ``20261121-194501-3f9a2c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def write_take(
    out_dir: Path,
    take_id: str,
    audio: np.ndarray,
    sample_rate: int,
    manifest: TakeManifest | dict[str, Any],
    formats: tuple[str, ...] = ("wav",),
) -> Take:
    """Write ``out_dir/take_id/`` atomically: audio.<fmt>, spectrogram.png, manifest.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / take_id
    if final.exists():
        raise FileExistsError(f"take folder already exists: {final}")
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{take_id}-", dir=out_dir))
    try:
        os.chmod(partial, 0o777 & ~_umask())  # mkdtemp makes it private; a take is not
        files: dict[str, Path] = {}
        for fmt in formats:
            kind, subtype = AUDIO_FORMATS[fmt]
            name = f"audio.{fmt}"
            sf.write(partial / name, np.clip(audio, -1.0, 1.0).T, sample_rate, subtype, format=kind)
            files[fmt] = final / name
        write_spectrogram(audio, sample_rate, partial / "spectrogram.png", title=take_id)
        manifest = {
            **(manifest.to_json() if isinstance(manifest, TakeManifest) else manifest),
            "outputs": {
                **{fmt: f"audio.{fmt}" for fmt in formats},
                "spectrogram": "spectrogram.png",
            },
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return Take(take_id, final, files, manifest)


ABANDONED_AFTER_S = 3600.0  # a take's files are written in seconds; an hour-old .partial is dead


def sweep_partial_takes(out_root: Path, older_than_s: float = ABANDONED_AFTER_S) -> list[Path]:
    """Remove the hidden ``.partial-*`` folders under ``out_root`` (one level of tenant folders,
    or the take folder itself) last changed more than ``older_than_s`` seconds ago; the removed.

    :func:`write_take` removes its own partial folder when it fails, but a process killed while
    writing (kill -9, OOM, power) leaves one behind. Only old ones go: a live writer on another
    replica sharing the folder finishes within seconds, so age tells abandoned from in progress.

    >>> sweep_partial_takes(Path("/nonexistent"))
    []
    """
    if not out_root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for folder in (out_root, *(p for p in out_root.iterdir() if p.is_dir())):
        for partial in folder.glob(".partial-*"):
            try:
                stale = partial.is_dir() and partial.stat().st_mtime < cutoff
            except FileNotFoundError:  # removed meanwhile by another replica's sweep
                continue
            if stale:
                shutil.rmtree(partial, ignore_errors=True)
                removed.append(partial)
    return removed


def write_spectrogram(audio: np.ndarray, sample_rate: int, path: Path, title: str = "") -> None:
    """A log-frequency power spectrogram (dB) of the mono mix, as a PNG."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    power = np.abs(librosa.stft(mono, n_fft=2048, hop_length=512)) ** 2
    db = librosa.power_to_db(power, ref=max(float(power.max()), 1e-10), top_db=80)
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    image = librosa.display.specshow(
        db, sr=sample_rate, hop_length=512, x_axis="time", y_axis="log", ax=ax, cmap="magma"
    )
    fig.colorbar(image, ax=ax, format="%+.0f dB")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
