"""Stable Audio 3: text-to-audio, audio-to-audio and in-painting through diffusers' own pipelines.

Unlike Stable Audio Open (where we run our own sampler), diffusers ships all three SA3 modes, so
we only route a request to the right one — every pipeline sharing one set of loaded components:

- **text-to-audio** (``StableAudio3Pipeline``) when there is no init audio or ``strength`` is 1.
  ``settings.cfg`` becomes ``guidance_scale`` (≤ 1 turns guidance off — right for the distilled
  checkpoint, whose guidance is baked into its weights) and the negative prompt is used under it.
- **audio-to-audio** (``StableAudio3AudioToAudioPipeline``) for ``0 < strength < 1``, with
  ``init_noise_level = strength``: the init latents are mixed ``(1 - s) · init + s · noise`` and
  the log-SNR schedule starts at σ = s, so strength is the flow-matching noise level itself.
  diffusers keeps the full step count over the shorter schedule; we run ``round(steps · s)``
  steps instead, so cost falls with strength as it does for Stable Audio Open. When that rounds
  to 0 (strength 0 included) nothing is denoised: the result is the init's VAE round trip.
- **in-painting** (``StableAudio3InpaintPipeline``) when ``inpaint_range_s`` is set: the take is
  the clip's length, the model sees the rest of the clip through the DiT's local-additive
  conditioning and regenerates the range from noise; the kept range of the output is then the
  original audio exactly (:func:`audio.signal.splice`).

diffusers' audio-to-audio and in-paint pipelines take no ``guidance_scale`` or negative prompt,
and the in-paint one no noise level: those settings are recorded as not applied in
``RenderResult.sampler`` rather than silently pretended.

The duration is bounded by the duration embedder: it clamps ``seconds_total`` at its
``max_val`` (384 s for SA3 Medium), so the model cannot be told a longer length. The DiT uses
rotary positions and has no window of its own.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from diffusers import (
    AutoencoderSAME,
    StableAudio3AudioToAudioPipeline,
    StableAudio3DiTModel,
    StableAudio3DurationEmbedder,
    StableAudio3InpaintPipeline,
    StableAudio3Pipeline,
)
from transformers import AutoTokenizer, T5GemmaEncoderModel

from audio.signal import fit_length, match_channels, splice
from generation.interface import (
    Cancelled,
    GeneratorLimits,
    ProgressFn,
    RenderInputError,
    RenderResult,
    RenderSettings,
    checked_settings,
    component_config,
    folder_defaults,
)
from generation.weights import folder_sha256

# The pipelines pad every prompt to this many tokens at most (SA3's T5Gemma context).
PIPELINE_MAX_TOKENS = 256
# The pipelines' own log-SNR range for the sigma schedule (their __call__ defaults).
LOGSNR_MIN, LOGSNR_MAX = -6.2, 2.0


FAMILY = "stable-audio-3"


def stable_audio_3_limits(
    vae: Mapping[str, Any],
    duration_embedder: Mapping[str, Any],
    scheduler: Mapping[str, Any],
    *,
    default_steps: int | None = None,
    default_cfg: float = 1.0,
    max_duration_s: float | None = None,
) -> GeneratorLimits:
    """The limits of a model with these VAE, duration embedder and scheduler configs — the
    loaded components' configs, or their config files as :func:`folder_limits` reads them.

    Beyond the embedder's ``max_val`` every duration looks the same to the model, so a
    configured ``max_duration_s`` can only lower it. The default steps are the pipelines' own:
    8 ping-pong steps for the distilled checkpoint (stochastic sampling), 100 Euler steps for
    the base one.
    """
    embedder_max = float(duration_embedder["max_val"])
    stochastic = bool(scheduler.get("stochastic_sampling", False))
    return GeneratorLimits(
        family=FAMILY,
        sample_rate=int(vae["sampling_rate"]),
        channels=int(vae["audio_channels"]),
        max_duration_s=min(embedder_max, max_duration_s or embedder_max),
        default_steps=default_steps or (8 if stochastic else 100),
        default_cfg=default_cfg,
    )


def folder_limits(folder: Path) -> GeneratorLimits:
    """A Stable Audio 3 folder's limits from its configs alone (no weights read)."""
    folder = Path(folder)
    steps, cfg, limit = _folder_settings(folder)
    return stable_audio_3_limits(
        component_config(AutoencoderSAME, folder / "vae" / "config.json"),
        component_config(
            StableAudio3DurationEmbedder, folder / "duration_embedder" / "config.json"
        ),
        component_config(_scheduler_class(folder), folder / "scheduler" / "scheduler_config.json"),
        default_steps=steps,
        default_cfg=cfg,
        max_duration_s=limit,
    )


def _folder_settings(folder: Path) -> tuple[int | None, float, float | None]:
    """(default steps, default cfg, max duration) from the folder's audiorag.json (None: the
    model's own)."""
    defaults = folder_defaults(folder)
    steps = defaults.get("default_steps")
    limit = defaults.get("max_duration_s")
    return (
        int(steps) if steps is not None else None,
        float(defaults.get("default_cfg", 1.0)),
        float(limit) if limit is not None else None,
    )


class StableAudio3:
    """A loaded Stable Audio 3–family model; see the module docstring for what it renders."""

    family = FAMILY

    def __init__(
        self,
        pipe: StableAudio3Pipeline,
        *,
        model_id: str,
        weights_sha256: str,
        device: str = "cpu",
        default_steps: int | None = None,
        default_cfg: float = 1.0,
        max_duration_s: float | None = None,
    ) -> None:
        self.pipe = pipe.to(device)
        self._render_lock = threading.Lock()
        # The other two modes reuse the very same modules (no second copy of the weights).
        self.audio_to_audio = StableAudio3AudioToAudioPipeline(**self.pipe.components)
        self.inpaint = StableAudio3InpaintPipeline(**self.pipe.components)
        for pipeline in (self.pipe, self.audio_to_audio, self.inpaint):
            pipeline.set_progress_bar_config(disable=True)  # we report progress ourselves
        self.device = torch.device(device)
        self.id = model_id
        self.weights_sha256 = weights_sha256
        # The same function computes the limits a check-only process reads from the configs.
        self.limits = stable_audio_3_limits(
            pipe.vae.config,
            pipe.duration_embedder.config,
            pipe.scheduler.config,
            default_steps=default_steps,
            default_cfg=default_cfg,
            max_duration_s=max_duration_s,
        )
        self.sample_rate = self.limits.sample_rate
        self.channels = self.limits.channels
        self.max_duration_s = self.limits.max_duration_s
        self.default_steps = self.limits.default_steps
        self.default_cfg = self.limits.default_cfg
        self.hop_length = int(pipe.vae.downsampling_ratio)
        self.dtype = pipe.transformer.dtype

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        label: str,
        revision: str | None = None,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> StableAudio3:
        """Load every component from its subfolder, offline, and build the three pipelines."""
        folder = Path(folder)
        load = {"torch_dtype": dtype, "local_files_only": True}
        pipe = StableAudio3Pipeline(
            vae=AutoencoderSAME.from_pretrained(folder, subfolder="vae", **load),
            text_encoder=T5GemmaEncoderModel.from_pretrained(folder / "text_encoder", **load),
            tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
            duration_embedder=StableAudio3DurationEmbedder.from_pretrained(
                folder, subfolder="duration_embedder", **load
            ),
            transformer=StableAudio3DiTModel.from_pretrained(
                folder, subfolder="transformer", **load
            ),
            scheduler=_scheduler_class(folder).from_pretrained(
                folder, subfolder="scheduler", local_files_only=True
            ),
        )
        digest = folder_sha256(folder)
        steps, cfg, limit = _folder_settings(folder)
        return cls(
            pipe,
            model_id=f"{label}@{revision or digest[:12]}",
            weights_sha256=digest,
            device=device,
            default_steps=steps,
            default_cfg=cfg,
            max_duration_s=limit,
        )

    # -- text --------------------------------------------------------------------------------

    @property
    def max_prompt_tokens(self) -> int:
        return min(int(self.pipe.tokenizer.model_max_length), PIPELINE_MAX_TOKENS)

    def count_tokens(self, text: str) -> int:
        return len(self.pipe.tokenizer(text).input_ids)

    # -- audio <-> latents -------------------------------------------------------------------

    def latent_frames(self, duration_s: float) -> int:
        """Latent frames the pipelines use for ``duration_s`` (their own rounding, up)."""
        return max(1, math.ceil(duration_s * self.sample_rate / self.hop_length))

    def init_waveform(self, audio: np.ndarray, duration_s: float) -> torch.Tensor:
        """The first ``duration_s`` of ``audio`` as a (1, channels, frames · hop) tensor.

        Cut to the take and zero-padded to whole latent frames before encoding (not cut in latent
        space after, as the pipelines would), so the init's latents do not depend on audio past
        the take through the VAE's attention.
        """
        audio = match_channels(np.asarray(audio, dtype=np.float32), self.channels)
        take = fit_length(audio, round(duration_s * self.sample_rate))
        padded = fit_length(take, self.latent_frames(duration_s) * self.hop_length)
        return torch.from_numpy(padded)[None].to(self.device, self.dtype)

    @torch.inference_mode()
    def encode(self, audio: np.ndarray, duration_s: float) -> torch.Tensor:
        """VAE latents (1, latent_dim, frames) of the first ``duration_s`` of ``audio``."""
        return self.pipe.vae.encode(self.init_waveform(audio, duration_s)).latents

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, samples: int) -> np.ndarray:
        """Audio (channels, samples), trimmed and clamped as the pipelines do."""
        audio = self.pipe.vae.decode(latents).sample[0, :, :samples].clamp(-1.0, 1.0)
        return fit_length(audio.float().cpu().numpy(), samples)

    # -- rendering ---------------------------------------------------------------------------

    def render(
        self,
        settings: RenderSettings,
        init_audio: np.ndarray | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderResult:
        """Render text-to-audio, audio-to-audio (init + strength) or in-painting (init + range).

        One render at a time per loaded model: the pipelines share one scheduler.
        """
        with self._render_lock:
            return self._render(settings, init_audio, progress, cancel)

    def _render(
        self,
        settings: RenderSettings,
        init_audio: np.ndarray | None,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
    ) -> RenderResult:
        settings = checked_settings(settings, init_audio, self.sample_rate, self.max_duration_s)
        started = time.perf_counter()
        samples = round(settings.duration_s * self.sample_rate)
        frames = self.latent_frames(settings.duration_s)
        sampler: dict[str, Any] = {
            "steps": settings.steps,
            "cfg": settings.cfg,
            "strength": settings.strength,
            "latent_frames": frames,
            "logsnr_min": LOGSNR_MIN,
            "logsnr_max": LOGSNR_MAX,
        }
        if init_audio is not None and settings.inpaint_range_s is not None:
            mode, steps = "inpaint", settings.steps
        elif init_audio is not None and settings.strength < 1.0:
            steps = round(settings.steps * settings.strength)
            mode = "audio-to-audio" if steps > 0 else "vae-round-trip"
        else:
            mode, steps = "text-to-audio", settings.steps
        sampler["mode"] = mode
        sampler["steps_run"] = steps
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"cancelled after 0 of {steps} steps")

        generator = torch.Generator("cpu").manual_seed(settings.seed)
        common: dict[str, Any] = {
            "prompt": settings.prompt,
            "duration": settings.duration_s,
            "num_inference_steps": steps,
            "logsnr_min": LOGSNR_MIN,
            "logsnr_max": LOGSNR_MAX,
            "generator": generator,
            "callback_on_step_end": _step_callback(steps, progress, cancel),
        }
        if mode == "vae-round-trip":
            assert init_audio is not None
            audio = self.decode(self.encode(init_audio, settings.duration_s), samples)
            sampler.update(guidance_scale=None, init_noise_level=0.0)
        elif mode == "audio-to-audio":
            assert init_audio is not None
            audio = self._run(
                self.audio_to_audio,
                audio=self.init_waveform(init_audio, settings.duration_s),
                init_noise_level=settings.strength,
                **common,
            )
            sampler.update(guidance_scale=None, init_noise_level=settings.strength)
        elif mode == "inpaint":
            assert init_audio is not None and settings.inpaint_range_s is not None
            start_s, end_s = settings.inpaint_range_s
            generated = self._run(
                self.inpaint,
                audio=self.init_waveform(init_audio, settings.duration_s),
                mask=self._keep_mask(start_s, end_s, frames),
                **common,
            )
            original = match_channels(np.asarray(init_audio, dtype=np.float32), self.channels)
            audio = splice(
                fit_length(original, samples), generated, (start_s, end_s), self.sample_rate
            )
            sampler.update(guidance_scale=None, init_noise_level=1.0)
        else:
            use_cfg = settings.cfg > 1.0  # the pipeline's own test for guidance
            audio = self._run(
                self.pipe,
                guidance_scale=settings.cfg,
                negative_prompt=settings.negative_prompt if use_cfg else None,
                **common,
            )
            sampler.update(guidance_scale=settings.cfg if use_cfg else None, init_noise_level=1.0)
        sampler["negative_prompt_applied"] = mode == "text-to-audio" and (
            settings.cfg > 1.0 and bool(settings.negative_prompt)
        )
        scheduler = self.pipe.scheduler
        sampler["scheduler"] = type(scheduler).__name__
        sampler["config"] = {k: v for k, v in scheduler.config.items() if not k.startswith("_")}
        return RenderResult(
            audio=np.ascontiguousarray(fit_length(audio, samples), dtype=np.float32),
            sample_rate=self.sample_rate,
            denoiser_calls=steps,
            timings_s={"total_s": round(time.perf_counter() - started, 4)},
            sampler=sampler,
        )

    def _run(self, pipeline: Any, **kwargs: Any) -> np.ndarray:
        """One pipeline call; the first waveform as float32 (channels, samples)."""
        with torch.inference_mode():
            audio = pipeline(output_type="pt", **kwargs).audios[0]
        return audio.float().cpu().numpy()

    def _keep_mask(self, start_s: float, end_s: float, frames: int) -> torch.Tensor:
        """The in-paint pipeline's mask (1 = keep, 0 = regenerate), shape (1, 1, frames).

        Its own ``mask_start/end_seconds`` floor both ends, so the last partial frame of the
        range would be kept; we round outward so the whole range is regenerated.
        """
        per_s = self.sample_rate / self.hop_length
        first, last = math.floor(start_s * per_s), math.ceil(end_s * per_s)
        keep = torch.ones(1, 1, frames, device=self.device)
        keep[..., first:last] = 0.0
        return keep


def _step_callback(
    total: int, progress: ProgressFn | None, cancel: threading.Event | None
) -> Callable[..., dict[str, Any]]:
    """A ``callback_on_step_end`` reporting progress and stopping between two steps."""

    def on_step_end(
        pipeline: Any, step: int, timestep: torch.Tensor, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        done = step + 1
        if progress is not None:
            progress(done, total)
        # Raising is how a callback stops a diffusers pipeline; after the last step there is
        # nothing left to save, so a late cancel lets the finished take through.
        if cancel is not None and cancel.is_set() and done < total:
            raise Cancelled(f"cancelled after {done} of {total} steps")
        return {}

    return on_step_end


def _scheduler_class(folder: Path) -> type:
    """The scheduler class the folder's ``model_index.json`` names (a diffusers class)."""
    index = json.loads((folder / "model_index.json").read_text())
    library, name = index.get("scheduler", ["diffusers", "FlowMatchEulerDiscreteScheduler"])
    scheduler_class = getattr(diffusers, name, None) if library == "diffusers" else None
    if scheduler_class is None:
        raise RenderInputError(f"{folder}: unsupported scheduler {library}.{name}")
    return scheduler_class
