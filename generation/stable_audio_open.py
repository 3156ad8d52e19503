"""Stable Audio Open: text-to-audio, audio-to-audio and in-painting on diffusers' components.

We keep diffusers' ``StableAudioPipeline`` for what it does right — holding the components and
encoding the prompt and the timing conditioning — and run our own denoising loop, because its
``initial_audio_waveforms`` is added to noise already scaled to σ_max (≈500) and has almost no
effect. Ours:

- **audio-to-audio**: the init audio is encoded by the VAE and noised to σ = tan(strength·π/2)
  (the training objective's time t = strength: 0.5 is equal parts init and noise), and
  ``round(steps · strength)`` steps run from there, so cost falls with strength; strength 0
  returns the VAE round trip, strength 1 is plain text-to-audio.
- **in-painting** (RePaint-style, without its resampling jumps): at every step the kept frames
  are replaced by the init latents re-noised to the current σ, so the model only invents the
  masked range but sees the rest; the kept range of the output is then the original audio,
  cross-faded into the new range over a few milliseconds inside it.

The **window** (:attr:`StableAudioOpen.window`): ``fit`` renders only as many latent frames as
the request (the DiT uses rotary positions and the timing conditioning tells it the length), so a
10 s render costs a fifth of a 47 s one; ``full`` renders the model's whole window
(``transformer.config.sample_size`` frames) and trims afterwards, as upstream does (diffusers'
``waveform_length = sample_size``; stable-audio-tools trained on padded 2,097,152-sample windows):
the init or kept audio sits at the start of the window and the rest is silence. ``auto`` (the
default) is ``full`` for a model of Stable Audio Open 1.0's size — trained on full windows only —
and ``fit`` for smaller ones (the bundled demo model, trained on short crops).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderOobleck,
    CosineDPMSolverMultistepScheduler,
    StableAudioDiTModel,
    StableAudioPipeline,
)
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel
from diffusers.utils.torch_utils import randn_tensor
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5EncoderModel

from audio.signal import fit_length, match_channels, splice
from generation.interface import (
    Cancelled,
    GeneratorLimits,
    ProgressFn,
    RenderResult,
    RenderSettings,
    checked_settings,
    component_config,
    folder_defaults,
)
from generation.speed import (
    GraphedDenoiser,
    call_transformer,
    fold_weight_norm,
    install_fast_attention,
)
from generation.weights import folder_sha256

WINDOWS = ("auto", "full", "fit")
# Stable Audio Open 1.0's DiT (its transformer/config.json): the size ``window="auto"`` renders
# full windows for.
SAO_1_0_DIT = {
    "sample_size": 1024,
    "in_channels": 64,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "num_key_value_attention_heads": 12,
    "cross_attention_dim": 768,
}


def auto_window(config: Mapping[str, Any]) -> str:
    """``full`` for a DiT of Stable Audio Open 1.0's size (a transformer config), else ``fit``.

    >>> auto_window(SAO_1_0_DIT), auto_window({**SAO_1_0_DIT, "num_layers": 2})
    ('full', 'fit')
    """
    real = all(config.get(key) == value for key, value in SAO_1_0_DIT.items())
    return "full" if real else "fit"


FAMILY = "stable-audio-open"
# Stable Audio Open 1.0's own sampler settings, for a folder with no audiorag.json.
DEFAULT_STEPS, DEFAULT_CFG = 100, 7.0


def stable_audio_open_limits(
    vae: Mapping[str, Any],
    transformer: Mapping[str, Any],
    *,
    default_steps: int = DEFAULT_STEPS,
    default_cfg: float = DEFAULT_CFG,
) -> GeneratorLimits:
    """The limits of a model with this VAE and DiT config — the loaded components' configs, or
    their config.json files as :func:`folder_limits` reads them: the VAE's rate and channels,
    and the DiT's window (``sample_size`` latent frames of ``prod(downsampling_ratios)``
    samples each)."""
    sample_rate = int(vae["sampling_rate"])
    hop_length = math.prod(int(ratio) for ratio in vae["downsampling_ratios"])
    return GeneratorLimits(
        family=FAMILY,
        sample_rate=sample_rate,
        channels=int(vae["audio_channels"]),
        max_duration_s=int(transformer["sample_size"]) * hop_length / sample_rate,
        default_steps=default_steps,
        default_cfg=default_cfg,
    )


def folder_limits(folder: Path) -> GeneratorLimits:
    """A Stable Audio Open folder's limits from its configs alone (no weights read)."""
    steps, cfg = _folder_settings(folder)
    return stable_audio_open_limits(
        component_config(AutoencoderOobleck, folder / "vae" / "config.json"),
        component_config(StableAudioDiTModel, folder / "transformer" / "config.json"),
        default_steps=steps,
        default_cfg=cfg,
    )


def _folder_settings(folder: Path) -> tuple[int, float]:
    """(default steps, default cfg) from the folder's audiorag.json, else Stable Audio Open's."""
    defaults = folder_defaults(folder)
    steps = int(defaults.get("default_steps", DEFAULT_STEPS))
    return steps, float(defaults.get("default_cfg", DEFAULT_CFG))


class StableAudioOpen:
    """A loaded Stable Audio Open–family model; see the module docstring for what it renders."""

    family = FAMILY

    def __init__(
        self,
        pipe: StableAudioPipeline,
        *,
        model_id: str,
        weights_sha256: str,
        device: str = "cpu",
        default_steps: int = DEFAULT_STEPS,
        default_cfg: float = DEFAULT_CFG,
        window: str = "auto",
    ) -> None:
        self.pipe = pipe.to(device)
        # A sampler: dropout off in every part, whatever mode they were built in (from_pretrained
        # leaves them in eval mode; the stock pipeline re-sets only the text encoder, per call).
        for module in (pipe.vae, pipe.text_encoder, pipe.projection_model, pipe.transformer):
            module.eval()
        self._render_lock = threading.Lock()
        self.device = torch.device(device)
        self.id = model_id
        self.weights_sha256 = weights_sha256
        # The same function computes the limits a check-only process reads from the configs.
        self.limits = stable_audio_open_limits(
            pipe.vae.config,
            pipe.transformer.config,
            default_steps=default_steps,
            default_cfg=default_cfg,
        )
        self.default_steps = self.limits.default_steps
        self.default_cfg = self.limits.default_cfg
        self.sample_rate = self.limits.sample_rate
        self.channels = self.limits.channels
        self.max_duration_s = self.limits.max_duration_s
        self.hop_length = int(pipe.vae.hop_length)
        self.window_frames = int(pipe.transformer.config.sample_size)
        self.window = "fit"
        self.set_window(window)
        self.dtype = pipe.transformer.dtype  # latents and the sampler's state
        # The denoiser runs in ``compute_dtype``, the VAE in ``vae_dtype``; :meth:`optimize` may
        # lower them (bf16) while the sampler keeps ``dtype``. Equal by default: no casts, the
        # stock numerics.
        self.compute_dtype = self.dtype
        self.vae_dtype = self.dtype
        self.speed: dict[str, object] = {}  # what optimize() turned on, for reports
        self._rotary_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._attention_backends: list | None = None
        self._graphed: GraphedDenoiser | None = None

    def set_window(self, window: str) -> StableAudioOpen:
        """Render ``full`` windows, ``fit`` the request, or ``auto`` (see the module docstring)."""
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
        self.window = auto_window(self.pipe.transformer.config) if window == "auto" else window
        return self

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        label: str,
        revision: str | None = None,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> StableAudioOpen:
        """Load every component from its subfolder, offline."""
        load = {"torch_dtype": dtype, "local_files_only": True}
        pipe = StableAudioPipeline(
            vae=AutoencoderOobleck.from_pretrained(folder, subfolder="vae", **load),
            text_encoder=T5EncoderModel.from_pretrained(folder / "text_encoder", **load),
            projection_model=StableAudioProjectionModel.from_pretrained(
                folder, subfolder="projection_model", **load
            ),
            tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
            transformer=StableAudioDiTModel.from_pretrained(
                folder, subfolder="transformer", **load
            ),
            scheduler=CosineDPMSolverMultistepScheduler.from_pretrained(
                folder, subfolder="scheduler", local_files_only=True
            ),
        )
        digest = folder_sha256(folder)
        steps, cfg = _folder_settings(folder)
        return cls(
            pipe,
            model_id=f"{label}@{revision or digest[:12]}",
            weights_sha256=digest,
            device=device,
            default_steps=steps,
            default_cfg=cfg,
        )

    # -- text --------------------------------------------------------------------------------

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.pipe.tokenizer.model_max_length)

    def count_tokens(self, text: str) -> int:
        return len(self.pipe.tokenizer(text).input_ids)

    # -- audio <-> latents -------------------------------------------------------------------

    def latent_frames(self, duration_s: float) -> int:
        return max(1, math.ceil(duration_s * self.sample_rate / self.hop_length))

    @torch.inference_mode()
    def encode(self, audio: np.ndarray, frames: int) -> torch.Tensor:
        """VAE latents (1, channels, frames) of ``audio`` (channels, samples) at the model rate.

        The audio is zero-padded or cut to exactly ``frames`` latent frames; the posterior's
        mean is used, so encoding is deterministic.
        """
        audio = match_channels(np.asarray(audio, dtype=np.float32), self.channels)
        padded = fit_length(audio, frames * self.hop_length)
        waveform = torch.from_numpy(padded)[None].to(self.device, self.vae_dtype)
        return self.pipe.vae.encode(waveform).latent_dist.mode().to(self.dtype)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor, samples: int) -> np.ndarray:
        audio = self.pipe.vae.decode(latents.to(self.vae_dtype)).sample[0, :, :samples]
        return audio.float().cpu().numpy()

    # -- rendering ---------------------------------------------------------------------------

    @torch.inference_mode()
    def render(
        self,
        settings: RenderSettings,
        init_audio: np.ndarray | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> RenderResult:
        """Render text-to-audio, audio-to-audio (init + strength) or in-painting (init + range).

        One render at a time per loaded model: the scheduler holds per-render state.
        """
        with self._render_lock, warnings.catch_warnings():
            # torchsde's Brownian tree warns when the schedule ends at σ=0, below its σ_min: the
            # stock pipeline does the same; the noise it draws there is multiplied by zero.
            warnings.filterwarnings("ignore", message="Should have", category=UserWarning)
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
        timings: dict[str, float] = {}
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        duration = settings.duration_s
        samples = round(duration * self.sample_rate)
        # The latents rendered: the request's, or the model's whole window (trimmed at decode).
        frames = self.window_frames if self.window == "full" else self.latent_frames(duration)
        use_cfg = settings.cfg > 1.0
        cond = self._conditioning(settings.prompt, settings.negative_prompt, duration, use_cfg)
        shape = (1, self.pipe.transformer.config.in_channels, frames)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=self.dtype)

        known = None
        seeded = init_audio is not None and (settings.strength < 1.0 or settings.inpaint_range_s)
        if seeded:
            t0 = time.perf_counter()
            seed_audio = match_channels(np.asarray(init_audio, dtype=np.float32), self.channels)
            if self.window == "full":  # the take's audio, then silence to the window's end
                seed_audio = fit_length(seed_audio, samples)
            known = self.encode(seed_audio, frames)
            self._sync()
            timings["encode_s"] = time.perf_counter() - t0
        scheduler, start_sigma = self._schedule(settings, seeded)
        if scheduler is None:  # strength 0: nothing to denoise, the VAE round trip
            return self._finish(known, samples, 0, timings, started, settings, init_audio, 0.0)
        timesteps = scheduler.timesteps
        # Always name the first index: otherwise the scheduler finds it with .nonzero().item(),
        # a host sync.
        scheduler.set_begin_index(0)
        if seeded and settings.strength < 1.0:
            latents = scheduler.add_noise(known, noise, timesteps[:1])  # init + σ_start · noise
        else:
            latents = noise * scheduler.init_noise_sigma
        # Rotary positions depend only on the length: computed once per length, on the device.
        cond["rotary"] = self._rotary(frames + cond["global"].shape[1])

        keep = self._keep_mask(settings, frames) if settings.inpaint_range_s else None
        t0 = time.perf_counter()
        run = timesteps
        for i, t in enumerate(run):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled after {i} of {len(run)} steps")
            if keep is not None:  # RePaint: the kept frames, re-noised to this step's σ
                sigma = scheduler.sigmas[i]
                fresh = randn_tensor(
                    shape, generator=generator, device=self.device, dtype=self.dtype
                )
                latents = torch.where(keep, known + fresh * sigma, latents)
            latents = self._step(scheduler, latents, t, cond, settings.cfg, generator)
            if progress is not None:
                progress(i + 1, len(run))
        self._sync()  # once, after the loop: the timing covers the GPU's work
        timings["denoise_s"] = time.perf_counter() - t0
        if keep is not None:
            latents = torch.where(keep, known, latents)
        return self._finish(
            latents, samples, len(run), timings, started, settings, init_audio, start_sigma
        )

    def _schedule(
        self, settings: RenderSettings, seeded: bool
    ) -> tuple[CosineDPMSolverMultistepScheduler | None, float]:
        """A fresh scheduler for this render and the σ it starts at (None: nothing to denoise).

        Text-to-audio (and in-painting at strength 1) runs the model's full schedule. A seeded
        render starts at σ = tan(strength·π/2) — the noise level where the training objective's
        time is t = strength (α = cos, σ = sin), so 0.5 means equal parts init and noise — and
        runs ``round(steps · strength)`` steps spaced like the full schedule from there: the
        cost falls with strength, 0 keeps the init (VAE round trip), 1 ignores it.
        """
        config = self.pipe.scheduler.config
        if not seeded or settings.strength >= 1.0:
            scheduler = CosineDPMSolverMultistepScheduler.from_config(config)
            scheduler.set_timesteps(settings.steps, device=self.device)
            return scheduler, float(config.sigma_max)
        steps = round(settings.steps * settings.strength)
        sigma = min(float(config.sigma_max), math.tan(settings.strength * math.pi / 2))
        if steps == 0 or sigma <= 0.0:
            return None, 0.0
        scheduler = CosineDPMSolverMultistepScheduler.from_config(config)
        scheduler.set_timesteps(steps, device=self.device)
        # The same exponential spacing as the full schedule, from σ_start down to σ_min (or
        # below it for very low strengths), then 0. Set directly: the scheduler's own spacing
        # puts a single step at σ_min, and narrowing its config shrinks the Brownian tree's
        # range until torchsde recurses.
        end = min(float(config.sigma_min), sigma * 0.5)
        sigmas = torch.exp(torch.linspace(math.log(sigma), math.log(end), steps))
        scheduler.timesteps = scheduler.precondition_noise(sigmas).to(self.device)
        # σ stays on the host, where set_timesteps keeps it: the Brownian-tree noise sampler
        # compares σ values in Python, which on a GPU tensor is a device sync every step.
        scheduler.sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
        return scheduler, sigma

    def _conditioning(
        self, prompt: str, negative: str | None, duration_s: float, use_cfg: bool
    ) -> dict[str, torch.Tensor]:
        """Cross-attention and global conditioning, batched [uncond, cond] under CFG.

        Follows the stock pipeline: without a negative prompt the unconditional branch gets
        all-zero cross-attention states (text and timing) and the real timing as global state.
        """
        pipe = self.pipe
        seconds = torch.tensor([0.0, float(duration_s)], device=self.device)

        def encode(text: str) -> tuple[torch.Tensor, torch.Tensor]:
            return encode_conditioning(
                pipe.text_encoder, pipe.projection_model, pipe.tokenizer, [text],
                seconds[:1], seconds[1:],
            )  # fmt: skip

        cross, global_states = encode(prompt)
        if use_cfg and negative:
            negative_cross, negative_global = encode(negative)
            cross = torch.cat([negative_cross, cross], dim=0)
            global_states = torch.cat([negative_global, global_states], dim=0)
        elif use_cfg:
            cross = torch.cat([torch.zeros_like(cross), cross], dim=0)
            global_states = torch.cat([global_states, global_states], dim=0)
        dtype = self.compute_dtype
        return {"cross": cross.to(dtype), "global": global_states.to(dtype)}

    def _step(
        self,
        scheduler: CosineDPMSolverMultistepScheduler,
        latents: torch.Tensor,
        t: torch.Tensor,
        cond: dict[str, torch.Tensor],
        cfg: float,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """One denoiser call (the CFG pair batched together) and one scheduler step."""
        use_cfg = cfg > 1.0
        model_input = torch.cat([latents] * 2) if use_cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        prediction = self._denoise(
            model_input.to(self.compute_dtype), t.unsqueeze(0), cond, cond["rotary"]
        ).to(latents.dtype)
        if use_cfg:
            uncond, text = prediction.chunk(2)
            prediction = uncond + cfg * (text - uncond)
        return scheduler.step(prediction, t, latents, generator=generator).prev_sample

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _rotary(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The DiT's rotary (cos, sin) tables for ``length`` positions, cached on the device.

        The stock code builds them on the CPU and copies them to the device in every attention
        layer of every step; the values are the same.
        """
        cached = self._rotary_cache.get(length)
        if cached is None:
            cos, sin = rotary_tables(self.pipe.transformer, length)
            cached = (cos.to(self.device), sin.to(self.device))
            self._rotary_cache[length] = cached
        return cached

    def _denoise(
        self,
        model_input: torch.Tensor,
        timestep: torch.Tensor,
        cond: dict[str, torch.Tensor],
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """One transformer call (replayed from a CUDA graph when :meth:`optimize` captured one)."""
        args = (model_input, timestep, cond["cross"], cond["global"], rotary[0], rotary[1])
        if self._graphed is not None:
            return self._graphed(*args)
        return call_transformer(self.pipe.transformer, *args, backends=self._attention_backends)

    def optimize(
        self,
        *,
        dtype: torch.dtype | None = None,
        vae_dtype: torch.dtype | None = None,
        fast_attention: bool = True,
        attention_backends: list[str] | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        compile_vae: bool = False,
        cuda_graphs: bool = False,
        strip_weight_norm: bool = True,
    ) -> StableAudioOpen:
        """Speed options for rendering; returns ``self``. Nothing here changes the sampler.

        - ``dtype``: run the DiT and the text encoder in this dtype (bf16 on a GPU); latents
          and the scheduler stay in the model's load dtype (fp32), as samplers in the field do,
          so only the denoiser's arithmetic is lowered.
        - ``vae_dtype``: run the VAE (encode and decode) in this dtype; default: the load dtype
          (fp32). The decode is the last word on every sample the user hears and costs one
          pass against the denoiser's hundreds, so it is lowered only when asked for.
        - ``fast_attention``: our attention processor for the DiT — one fused QKV matmul for
          self-attention, one fused KV matmul for cross-attention, GQA inside SDPA
          (``enable_gqa``) instead of copying key/value heads. Same maths; in fp32 the result
          equals the stock processor's to rounding (tested).
        - ``attention_backends``: SDPA kernels in priority order, e.g. ``["cudnn", "flash",
          "efficient", "math"]`` (CUDA only; default on CUDA: that list).
        - ``compile``: ``torch.compile`` each transformer block (regional compilation: one
          block compiled once, reused 24 times — seconds, not minutes); ``compile_mode`` as in
          ``torch.compile`` (default "max-autotune-no-cudagraphs" on CUDA).
        - ``compile_vae``: also compile the VAE decoder (fuses the Snake activations).
        - ``cuda_graphs``: capture the whole transformer call per input shape in a CUDA graph
          and replay it (no per-kernel launch cost; the scheduler step stays eager because its
          Brownian-tree noise is drawn on the host side).
        - ``strip_weight_norm``: fold the VAE's weight-norm hooks into plain weights once,
          instead of recomputing every weight on every call.
        """
        cuda = self.device.type == "cuda"
        pipe = self.pipe
        if strip_weight_norm:  # before any cast: the folded weights are computed in fp32
            fold_weight_norm(pipe.vae)
        if dtype is not None and dtype != self.compute_dtype:
            for module in (pipe.transformer, pipe.text_encoder, pipe.projection_model):
                module.to(dtype=dtype)
            self.compute_dtype = dtype
        if vae_dtype is not None and vae_dtype != self.vae_dtype:
            pipe.vae.to(dtype=vae_dtype)
            self.vae_dtype = vae_dtype
        if fast_attention:
            install_fast_attention(pipe.transformer)
        if cuda:
            from torch.nn.attention import SDPBackend

            names = attention_backends or ["cudnn", "flash", "efficient", "math"]
            table = {
                "cudnn": SDPBackend.CUDNN_ATTENTION,
                "flash": SDPBackend.FLASH_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "math": SDPBackend.MATH,
            }
            self._attention_backends = [table[name] for name in names]
        default_mode = "max-autotune-no-cudagraphs" if cuda else None
        mode = (compile_mode or default_mode) if compile else None
        if compile:
            for block in pipe.transformer.transformer_blocks:
                block.compile(mode=mode, dynamic=False)
            if compile_vae:
                pipe.vae.decoder.compile(mode=mode, dynamic=False)
        if cuda_graphs:
            if not cuda:
                raise ValueError("cuda_graphs needs a CUDA device")
            self._graphed = GraphedDenoiser(pipe.transformer, self._attention_backends)
        self.speed = {
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
            "vae_dtype": str(self.vae_dtype).removeprefix("torch."),
            "fast_attention": fast_attention,
            "attention_backends": None if not cuda else list(attention_backends or names),
            "compile": compile,
            "compile_mode": mode,
            "compile_vae": compile_vae and compile,
            "cuda_graphs": cuda_graphs,
            "strip_weight_norm": strip_weight_norm,
        }
        return self

    def _keep_mask(self, settings: RenderSettings, frames: int) -> torch.Tensor:
        """True on latent frames to keep (outside the in-paint range), shaped to broadcast."""
        start_s, end_s = settings.inpaint_range_s or (0.0, 0.0)
        per_s = self.sample_rate / self.hop_length
        first, last = math.floor(start_s * per_s), math.ceil(end_s * per_s)
        keep = torch.ones(1, 1, frames, dtype=torch.bool, device=self.device)
        keep[..., first:last] = False
        return keep

    def _finish(
        self,
        latents: torch.Tensor,
        samples: int,
        calls: int,
        timings: dict[str, float],
        started: float,
        settings: RenderSettings,
        init_audio: np.ndarray | None,
        start_sigma: float,
    ) -> RenderResult:
        t0 = time.perf_counter()
        audio = self.decode(latents, samples)
        timings["decode_s"] = time.perf_counter() - t0
        if settings.inpaint_range_s is not None and init_audio is not None:
            original = match_channels(np.asarray(init_audio, dtype=np.float32), self.channels)
            audio = splice(original[:, :samples], audio, settings.inpaint_range_s, self.sample_rate)
        timings["total_s"] = time.perf_counter() - started
        scheduler = self.pipe.scheduler
        return RenderResult(
            audio=np.ascontiguousarray(audio, dtype=np.float32),
            sample_rate=self.sample_rate,
            denoiser_calls=calls,
            timings_s={k: round(v, 4) for k, v in timings.items()},
            sampler={
                "scheduler": type(scheduler).__name__,
                "config": {k: v for k, v in scheduler.config.items() if not k.startswith("_")},
                "steps": settings.steps,
                "steps_run": calls,
                "cfg": settings.cfg,
                "strength": settings.strength,
                # full: the model's whole window rendered, trimmed to the take; fit: the take's
                "window": self.window,
                "latent_frames": int(latents.shape[-1]),
                "start_sigma": round(start_sigma, 4),
                # what optimize() turned on ({}: the stock numerics), for reproducing the take
                "speed": dict(self.speed),
            },
        )


# -- the model's inputs, shared with training ----------------------------------------------------
#
# The sampler and ``audiorag train generator`` both build the scheduler, the conditioning and the
# rotary tables with these functions, so a trained model sees at sampling time exactly the inputs
# it learned from.


def stable_audio_open_scheduler() -> CosineDPMSolverMultistepScheduler:
    """Stable Audio Open 1.0's sampler settings (its scheduler_config.json)."""
    return CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500.0,
        sigma_data=1.0,
        sigma_schedule="exponential",
        solver_order=2,
        prediction_type="v_prediction",
        rho=7.0,
        final_sigmas_type="zero",
    )


def encode_conditioning(
    text_encoder: T5EncoderModel,
    projection: StableAudioProjectionModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    seconds_start: torch.Tensor,
    seconds_total: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-attention states, global states) of a batch, as ``StableAudioPipeline`` builds them.

    Text: max-length padded tokens through the encoder and the projection, zeroed at padding;
    then the seconds_start and seconds_total tokens. Global: the two timing tokens side by side.
    No ``inference_mode`` here: training backpropagates through it.
    """
    device = seconds_total.device
    tokens = tokenizer(
        list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
        truncation=True, return_tensors="pt",
    ).to(device)  # fmt: skip
    hidden = text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]
    text = projection(text_hidden_states=hidden).text_hidden_states
    text = text * tokens.attention_mask.unsqueeze(-1).to(text.dtype)
    timing = projection(start_seconds=seconds_start, end_seconds=seconds_total)
    start, end = timing.seconds_start_hidden_states, timing.seconds_end_hidden_states
    return torch.cat([text, start, end], dim=1), torch.cat([start, end], dim=2)


def rotary_tables(
    transformer: StableAudioDiTModel, positions: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The DiT's rotary (cos, sin) tables over ``positions`` tokens (the global token, then the
    latent frames), on the CPU, as ``StableAudioPipeline`` builds them."""
    return get_1d_rotary_pos_embed(
        transformer.config.attention_head_dim // 2,
        positions,
        use_real=True,
        repeat_interleave_real=False,
    )
