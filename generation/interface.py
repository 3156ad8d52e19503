"""The generator interface: what every model family renders and what it is asked.

Every generator renders text-to-audio, audio-to-audio (``init_audio`` + ``strength``) and
in-painting (``init_audio`` + ``inpaint_range_s``) behind one :class:`Generator` protocol, so the
orchestration in ``rag/`` never asks which family it holds. Two families:

- Stable Audio Open (diffusers ``StableAudioPipeline`` folder: Oobleck VAE, DiT, T5, projection
  model, cosine DPM-Solver scheduler) — :mod:`generation.stable_audio_open`, with our own sampler
  because the stock pipeline's ``initial_audio_waveforms`` is added to noise at σ_max and has
  almost no effect.
- Stable Audio 3 (diffusers ``StableAudio3Pipeline`` folder) — :mod:`generation.stable_audio_3`,
  through diffusers' own audio-to-audio and in-paint pipelines.

Loading a model lives in :mod:`generation.loading`, so that this module imports no family.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

ProgressFn = Callable[[int, int], None]  # (denoiser steps done, total)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Optional file in a model folder with our defaults for it (default_steps, default_cfg, and for
# Stable Audio 3 max_duration_s): the bundled model needs fewer steps and a lower guidance scale
# than Stable Audio Open's 100 / 7.
DEFAULTS_FILE = "audiorag.json"


MAX_STEPS = 1000  # a sanity bound: no sampler here needs more


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


class RenderLimits(Protocol):
    """What a request is checked against before any work: the generator's rate, channels,
    longest take and default settings. A loaded :class:`Generator` has them, and so has a
    :class:`GeneratorLimits` read from the model's configs alone — which is all a process that
    checks requests but renders none (an API replica whose render workers run elsewhere) needs.
    """

    @property
    def sample_rate(self) -> int: ...
    @property
    def channels(self) -> int: ...
    @property
    def max_duration_s(self) -> float: ...
    @property
    def default_steps(self) -> int: ...
    @property
    def default_cfg(self) -> float: ...


@dataclass(frozen=True)
class GeneratorLimits:
    """A generator's :class:`RenderLimits` without its weights. Each family computes them with
    one function from its components' configs, which the loaded generator calls too (on its
    loaded components' configs), so the two cannot drift."""

    family: str  # "stable-audio-open" | "stable-audio-3"
    sample_rate: int
    channels: int
    max_duration_s: float
    default_steps: int
    default_cfg: float


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


def checked_settings(
    settings: RenderSettings,
    init_audio: np.ndarray | None,
    sample_rate: int,
    max_duration_s: float,
) -> RenderSettings:
    """``settings`` checked for a model (see :func:`check_settings`), the one place both the
    orchestrator (before any work) and every generator (before rendering) validate a render.

    An in-paint's duration becomes its clip's — the take is the clip regenerated in the range —
    and its range must lie inside the clip.
    """
    if settings.inpaint_range_s is not None:
        if init_audio is None:
            raise RenderInputError("in-painting needs the clip to in-paint")
        clip_s = init_audio.shape[-1] / sample_rate
        if clip_s > max_duration_s + 1e-6:
            raise RenderInputError(
                f"in-paint clip is {clip_s:.2f} s; this model renders at most "
                f"{max_duration_s:.2f} s"
            )
        start, end = settings.inpaint_range_s
        if not 0 <= start < end <= clip_s + 1e-6:
            raise RenderInputError(
                f"in-paint range [{start:g}, {end:g}) s must lie inside the clip (the clip is "
                f"{clip_s:.2f} s long)"
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
    if not 1 <= settings.steps <= MAX_STEPS:
        raise RenderInputError(f"steps {settings.steps} is outside [1, {MAX_STEPS}]")
    if settings.cfg < 0:
        raise RenderInputError(f"cfg {settings.cfg:g} must not be negative")


def folder_defaults(folder: Path) -> dict[str, Any]:
    """The model folder's :data:`DEFAULTS_FILE` ({} when it has none)."""
    path = Path(folder) / DEFAULTS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def component_config(component: type, config_file: Path) -> dict[str, Any]:
    """A diffusers component's config as its loaded ``.config`` holds it, read without building
    the module: its ``__init__`` defaults overlaid by ``config_file`` (a saved config may leave
    out any parameter that has a default; loading fills them in the same way). Not diffusers'
    ``load_config`` + ``extract_init_dict``: they return the saved keys only — the defaults
    reach ``.config`` when ``register_to_config`` runs in ``__init__``, i.e. only by building."""
    if not config_file.is_file():
        raise RenderInputError(f"{config_file} is missing (the model folder is incomplete)")
    parameters = inspect.signature(component.__init__).parameters
    defaults = {
        name: parameter.default
        for name, parameter in parameters.items()
        if name != "self" and parameter.default is not inspect.Parameter.empty
    }
    try:
        saved = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise RenderInputError(f"{config_file} is not valid JSON: {err}") from err
    return {**defaults, **saved}
