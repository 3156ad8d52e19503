"""The generator interface, and loading a generator from a hub id or a local folder.

Every generator renders text-to-audio, audio-to-audio (``init_audio`` + ``strength``) and
in-painting (``init_audio`` + ``inpaint_range_s``) behind one :class:`Generator` protocol, so the
orchestration in ``rag/`` never asks which family it holds. Two families:

- Stable Audio Open (diffusers ``StableAudioPipeline`` folder: Oobleck VAE, DiT, T5, projection
  model, cosine DPM-Solver scheduler) — :mod:`generation.stable_audio_open`, with our own sampler
  because the stock pipeline's ``initial_audio_waveforms`` is added to noise at σ_max and has
  almost no effect.
- Stable Audio 3 (diffusers ``StableAudio3Pipeline`` folder) — :mod:`generation.stable_audio_3`,
  through diffusers' own audio-to-audio and in-paint pipelines.

A folder is recognised by its ``model_index.json``; a hub id is first resolved to its local
snapshot, so both load through the same code.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

ProgressFn = Callable[[int, int], None]  # (denoiser steps done, total)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Cancelled(RuntimeError):
    """The render was cancelled between two denoiser steps."""


class RenderInputError(ValueError):
    """A render request the model cannot honour; the message says what to change."""


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides the output besides the model: recorded in every manifest."""

    prompt: str
    negative_prompt: str | None = None
    duration_s: float = 10.0
    steps: int = 100
    cfg: float = 7.0
    seed: int = 0
    strength: float = 1.0  # 0 keeps init_audio (VAE round trip), 1 ignores it
    inpaint_range_s: tuple[float, float] | None = None  # regenerate [from, to) of init_audio


@dataclass
class RenderResult:
    audio: np.ndarray  # float32 (channels, samples) at sample_rate
    sample_rate: int
    denoiser_calls: int  # transformer forward passes (a CFG pair counts as one batched call)
    timings_s: dict[str, float] = field(default_factory=dict)
    sampler: dict[str, object] = field(default_factory=dict)  # scheduler name and settings


class Generator(Protocol):
    id: str  # "<hub id or folder name>@<revision or weights hash>"
    family: str  # "stable-audio-open" | "stable-audio-3"
    weights_sha256: str
    sample_rate: int
    channels: int
    max_duration_s: float
    default_steps: int
    default_cfg: float

    def count_tokens(self, text: str) -> int:
        """Tokens the text encoder sees for ``text`` (to keep enriched prompts within limits)."""
        ...

    @property
    def max_prompt_tokens(self) -> int: ...

    def render(
        self,
        settings: RenderSettings,
        init_audio: np.ndarray | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderResult: ...


def folder_sha256(folder: Path) -> str:
    """sha256 over every weights file in a model folder (names and bytes), for manifests."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")) + sorted(folder.rglob("*.bin")):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def resolve_folder(name_or_path: str | Path, revision: str | None = None) -> tuple[Path, str]:
    """A local folder for a model, and the label for its id.

    A folder is used as is (never touches the network). A hub id is fetched to (or found in)
    the local Hugging Face cache first — only when someone configured one.
    """
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder, folder.name
    if folder.suffix or str(name_or_path).startswith((".", "/")):
        raise RenderInputError(f"generator folder {name_or_path} does not exist")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(
            str(name_or_path),
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"],
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise RenderInputError(
            f"generator {name_or_path!r} is neither a local folder nor in the local Hugging Face "
            f"cache, and the hub could not be reached ({type(err).__name__}); download it where "
            "the hub is reachable, or point AUDIORAG_GENERATOR_MODEL at a folder"
        ) from err
    return Path(snapshot), str(name_or_path)


def model_family(folder: Path) -> str:
    """Which family a diffusers folder holds, from its ``model_index.json``."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise RenderInputError(f"{folder} is not a diffusers model folder (no model_index.json)")
    class_name = json.loads(index_file.read_text()).get("_class_name", "")
    if class_name == "StableAudioPipeline":
        return "stable-audio-open"
    if class_name.startswith("StableAudio3"):
        return "stable-audio-3"
    raise RenderInputError(
        f"{folder}: unsupported pipeline {class_name!r} (expected StableAudioPipeline or "
        "StableAudio3Pipeline)"
    )


def load_generator(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Generator:
    """Load a generator from a hub id or a local diffusers folder, whatever its family."""
    folder, label = resolve_folder(name_or_path, revision)
    family = model_family(folder)
    torch_dtype = DTYPES[dtype]
    if family == "stable-audio-open":
        from generation.stable_audio_open import StableAudioOpen

        return StableAudioOpen.from_folder(
            folder, label=label, revision=revision, device=device, dtype=torch_dtype
        )
    from generation.stable_audio_3 import StableAudio3

    return StableAudio3.from_folder(
        folder, label=label, revision=revision, device=device, dtype=torch_dtype
    )


def checked_settings(
    settings: RenderSettings,
    init_audio: np.ndarray | None,
    sample_rate: int,
    max_duration_s: float,
) -> RenderSettings:
    """``settings`` checked for a model (see :func:`check_settings`); an in-paint's duration
    becomes its clip's, since the take is the clip regenerated in the range."""
    if settings.inpaint_range_s is not None:
        if init_audio is None:
            raise RenderInputError("in-painting needs the clip to in-paint")
        clip_s = init_audio.shape[-1] / sample_rate
        end = settings.inpaint_range_s[1]
        if end > clip_s + 1e-6:
            raise RenderInputError(
                f"in-paint range ends at {end:g} s but the clip is {clip_s:.2f} s long"
            )
        settings = replace(settings, duration_s=clip_s)
    check_settings(settings, max_duration_s)
    return settings


def check_settings(settings: RenderSettings, max_duration_s: float) -> None:
    """Refuse requests the model cannot render, naming the field and the allowed range."""
    if not settings.prompt.strip():
        raise RenderInputError("prompt is empty")
    if not 0 < settings.duration_s <= max_duration_s:
        raise RenderInputError(
            f"duration {settings.duration_s:g} s is outside (0, {max_duration_s:.2f}] s, "
            "this model's maximum"
        )
    if not 0.0 <= settings.strength <= 1.0:
        raise RenderInputError(f"strength {settings.strength:g} is outside [0, 1]")
    if settings.steps < 1:
        raise RenderInputError(f"steps must be at least 1, got {settings.steps}")
    if settings.cfg < 0:
        raise RenderInputError(f"cfg must not be negative, got {settings.cfg:g}")
    if settings.inpaint_range_s is not None:
        start, end = settings.inpaint_range_s
        if not 0 <= start < end:
            raise RenderInputError(f"in-paint range [{start:g}, {end:g}) s is empty or negative")
