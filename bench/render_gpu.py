"""Render speed at Stable Audio Open 1.0 size, stock diffusers vs our render path (issue 7).

Builds every component from its config with random weights (timing does not depend on weight
values; no model hub needed) and times, in one process on one device:

  (a) stock  — diffusers' ``StableAudioPipeline``, fp16 on CUDA, 100 steps, CFG 7, 47.5 s;
  (b) ours   — ``StableAudioOpen.render`` after ``optimize()`` (bf16, fused attention, SDPA
               backends, regional ``torch.compile``, CUDA graphs), same settings; every variant
               listed in ``--variants`` is timed and the fastest is (b);
  (c) a2a    — (b)'s configuration, audio-to-audio at strength 0.5 (half the steps + encode).

Medians over ``--runs`` after ``--warmup``; seconds per denoiser step, VAE decode time, peak
device memory, real-time factor. Numerics: max |Δ| of the latents after one sampler step,
each path against the stock pipeline in fp32 on the same weights. A CLAP section measures
HTSAT-base embedding throughput (windows/s) over a batch-size sweep. ``--profile`` writes
torch.profiler top-kernel tables.

    python bench/render_gpu.py --device cuda --size full            # the GPU measurement
    python bench/render_gpu.py --device cpu --size small --out bench/results/render_gpu_cpu_smoke

Writes ``<out>.md`` and ``<out>.json`` (rewritten after every section, so a run cut short
still leaves what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

warnings.filterwarnings("ignore", message="Should have", category=UserWarning)

# -- component configs -------------------------------------------------------------------------

# Stable Audio Open 1.0 (stabilityai/stable-audio-open-1.0 config files; diffusers' defaults).
FULL_DIT = dict(
    sample_size=1024,
    in_channels=64,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    num_key_value_attention_heads=12,
    out_channels=64,
    cross_attention_dim=768,
    time_proj_dim=256,
    global_states_input_dim=1536,
    cross_attention_input_dim=768,
)
SMALL_DIT = dict(
    sample_size=64,
    in_channels=8,
    num_layers=2,
    attention_head_dim=16,
    num_attention_heads=4,
    num_key_value_attention_heads=2,
    out_channels=8,
    cross_attention_dim=32,
    time_proj_dim=16,
    global_states_input_dim=64,
    cross_attention_input_dim=32,
)
FULL_VAE: dict = {}  # AutoencoderOobleck defaults are Stable Audio Open's: 44.1 kHz, hop 2048
SMALL_VAE = dict(
    encoder_hidden_size=16,
    downsampling_ratios=[4, 4, 4],
    channel_multiples=[1, 2, 2],
    decoder_channels=16,
    decoder_input_channels=8,
    audio_channels=2,
    sampling_rate=16000,
)
# T5-base encoder (t5-base / google-t5 config): 12 layers, d_model 768, 12 heads, d_ff 3072.
FULL_T5 = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
SMALL_T5 = dict(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
TOKENS = {"full": 128, "small": 32}
PROJECTION = {"full": (768, 768, 512), "small": (32, 32, 64)}  # text dim, cond dim, max s
SETTINGS = {
    "full": dict(steps=100, cfg=7.0, duration_s=47.5, runs=5, warmup=2),
    "small": dict(steps=10, cfg=7.0, duration_s=None, runs=3, warmup=1),  # None: the window
}
PROMPT = "punchy drums with warm bass and a bright lead at 120 BPM in A minor"

# HTSAT-base CLAP (laion/larger_clap_*: patch embed 128, depths 2-2-12-2), RoBERTa-base text.
FULL_CLAP_AUDIO = dict(
    spec_size=256,
    num_mel_bins=64,
    patch_embeds_hidden_size=128,
    hidden_size=1024,
    depths=[2, 2, 12, 2],
    num_attention_heads=[4, 8, 16, 32],
    window_size=8,
    projection_dim=512,
    enable_fusion=False,
)
SMALL_CLAP_AUDIO = dict(
    spec_size=256,
    num_mel_bins=64,
    patch_embeds_hidden_size=16,
    hidden_size=128,
    depths=[1, 1, 1, 1],
    num_attention_heads=[1, 2, 4, 8],
    window_size=8,
    projection_dim=64,
    enable_fusion=False,
)
FULL_CLAP_TEXT = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=514,
    projection_dim=512,
)
SMALL_CLAP_TEXT = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=80,
    projection_dim=64,
)
CLAP_BATCHES = {"full": [1, 8, 32, 64, 128, 256], "small": [1, 4, 8]}
CLAP_WINDOWS = {"full": 512, "small": 8}

# (b) candidates: name -> optimize() kwargs (dtype filled in per device)
VARIANTS: dict[str, dict] = {
    "default": {},  # our path with no optimize(): the stock numerics, load dtype
    "fast": dict(fast_attention=True),
    "fast+compile": dict(fast_attention=True, compile=True, compile_vae=True),
    "fast+graphs": dict(fast_attention=True, cuda_graphs=True),
    "fast+compile+graphs": dict(
        fast_attention=True, compile=True, compile_vae=True, cuda_graphs=True
    ),
}
DEFAULT_VARIANTS = {
    "cuda": ["fast", "fast+graphs", "fast+compile+graphs"],
    "cpu": ["default", "fast"],
}


def build_tokenizer(max_length: int):
    from tests.tiny_models import build_tiny_tokenizer

    return build_tiny_tokenizer(max_length=max_length)


def build_dit(size: str):
    from diffusers import StableAudioDiTModel

    return StableAudioDiTModel(**(FULL_DIT if size == "full" else SMALL_DIT))


def build_vae(size: str):
    from diffusers import AutoencoderOobleck

    return AutoencoderOobleck(**(FULL_VAE if size == "full" else SMALL_VAE))


def t5_config(size: str, tokenizer=None):
    from transformers import T5Config

    fields = dict(FULL_T5 if size == "full" else SMALL_T5)
    if tokenizer is not None:
        fields["vocab_size"] = max(fields["vocab_size"], len(tokenizer))
        fields.update(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return T5Config(**fields)


def build_t5(size: str, tokenizer=None):
    from transformers import T5EncoderModel

    return T5EncoderModel(t5_config(size, tokenizer))


def build_projection(size: str):
    from diffusers.pipelines.stable_audio.modeling_stable_audio import (
        StableAudioProjectionModel,
    )

    text_dim, cond_dim, max_s = PROJECTION[size]
    return StableAudioProjectionModel(
        text_encoder_dim=text_dim, conditioning_dim=cond_dim, min_value=0, max_value=max_s
    )


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_param_counts(size: str = "full") -> dict[str, int]:
    """Parameter counts of every component, built on the meta device (no weights allocated)."""
    tokenizer = build_tokenizer(TOKENS[size])
    with torch.device("meta"):
        return {
            "dit": count_params(build_dit(size)),
            "vae": count_params(build_vae(size)),
            "t5": count_params(build_t5(size, tokenizer)),
            "projection": count_params(build_projection(size)),
        }


def work_counts(size: str, frames: int, cfg: bool = True) -> dict[str, float]:
    """Floating-point operations (TFLOP, torch's FLOP counter) of one denoiser call (the CFG pair
    batched), one VAE decode and one VAE encode at ``frames`` latent frames — counted on the meta
    device, so free on any machine. Divided by the GPU's dense bf16 rate they give the floor
    under each measured time: how far a render is from what the chip can do."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed
    from torch.utils.flop_counter import FlopCounterMode

    cfg_batch = 2 if cfg else 1
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dit, vae = build_dit(size), build_vae(size)
        config = dit.config
        cross = torch.zeros(cfg_batch, TOKENS[size] + 2, config.cross_attention_dim)
        global_states = torch.zeros(cfg_batch, 1, config.global_states_input_dim)
        latents = torch.zeros(cfg_batch, config.in_channels, frames)
        head_dim = config.attention_head_dim // 2  # rotary on half of each head, as the pipeline
        cos, sin = get_1d_rotary_pos_embed(
            head_dim, frames + 1, use_real=True, repeat_interleave_real=False
        )
        samples = frames * int(np.prod(vae.config.downsampling_ratios))
        audio = torch.zeros(1, vae.config.audio_channels, samples)
        counts = {}
        with FlopCounterMode(display=False) as counter:
            dit(latents, torch.ones(cfg_batch), encoder_hidden_states=cross,
                global_hidden_states=global_states, rotary_embedding=(cos.to("meta"),
                sin.to("meta")))  # fmt: skip
        counts["dit_call_tflop"] = counter.get_total_flops() / 1e12
        with FlopCounterMode(display=False) as counter:
            vae.decode(latents[:1])
        counts["vae_decode_tflop"] = counter.get_total_flops() / 1e12
        with FlopCounterMode(display=False) as counter:
            vae.encode(audio)
        counts["vae_encode_tflop"] = counter.get_total_flops() / 1e12
    return counts


def build_pipeline(size: str, device: str, seed: int = 0):
    """A Stable Audio Open pipeline of the given size, random fp32 weights, on ``device``."""
    from diffusers import StableAudioPipeline

    from generation.stable_audio_open import stable_audio_open_scheduler

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(TOKENS[size])
    # Initialise straight on the device: a 1 B-parameter random init on the host takes minutes.
    with torch.device(device):
        parts = dict(
            vae=build_vae(size),
            text_encoder=build_t5(size, tokenizer),
            projection_model=build_projection(size),
            transformer=build_dit(size),
        )
    pipe = StableAudioPipeline(
        tokenizer=tokenizer, scheduler=stable_audio_open_scheduler(), **parts
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def clone_pipeline(pipe, dtype: torch.dtype):
    """A copy with its own weights (the same values) in ``dtype``; its own scheduler state.

    (``copy.deepcopy`` refuses modules with old-style weight norm, like the Oobleck VAE.)
    """
    size = "full" if pipe.transformer.config.num_layers == FULL_DIT["num_layers"] else "small"
    twin = build_pipeline(size, str(pipe.device))
    for name in ("vae", "text_encoder", "projection_model", "transformer"):
        getattr(twin, name).load_state_dict(getattr(pipe, name).state_dict())
    twin.to(dtype=dtype)
    return twin


# -- timing helpers ------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str) -> tuple[float, object]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def measure(fn: Callable[[], object], device: str, runs: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [timed(fn, device)[0] for _ in range(runs)]
    out = {"median_s": statistics.median(times), "runs_s": [round(t, 4) for t in times]}
    if device == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def release(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def test_audio(seconds: float, sample_rate: int, channels: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))
    mono += 0.5 * np.sin(2 * np.pi * 60 * t) * np.exp(-20 * (t % 0.25))
    return np.repeat(mono[None].astype(np.float32), channels, axis=0)


def profile_table(fn: Callable[[], object], device: str, path: Path, rows: int = 30) -> str:
    """torch.profiler over one call of ``fn``: top kernels by device (or CPU) time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=rows)
    path.write_text(table)
    return table


# -- the render sections -------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.size = args.size
        base = SETTINGS[self.size]
        self.steps = args.steps or base["steps"]
        self.cfg = args.cfg or base["cfg"]
        self.runs = args.runs or base["runs"]
        self.warmup = args.warmup if args.warmup is not None else base["warmup"]
        self.out = Path(args.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        cuda = self.device == "cuda"
        self.stock_dtype = torch.float16 if cuda else torch.float32
        self.ours_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
            args.dtype or ("bf16" if cuda else "fp32")
        ]
        self.results: dict = {"meta": self.meta(), "render": {}, "numerics": {}, "clap": {}}
        self.carry_over(args.sections)

    def carry_over(self, sections: list[str]) -> None:
        """Keep the sections this run skips from an earlier run into the same ``--out`` (same
        device and size), so ``--sections render`` and ``--sections clap`` can run apart."""
        path = self.out.with_suffix(".json")
        if not path.is_file():
            return
        old = json.loads(path.read_text())
        meta = old.get("meta", {})
        if meta.get("device") != self.device or meta.get("size") != self.size:
            return
        keys = {"render": ["render", "numerics", "settings", "best_variant", "profiles"]}
        keys["clap"] = ["clap"]
        for section, names in keys.items():
            if section in sections:
                continue
            for name in names:
                if name in old:
                    self.results[name] = old[name]
            self.results.setdefault("earlier_runs", {})[section] = meta.get("started")

    def meta(self) -> dict:
        import diffusers
        import transformers

        meta = {
            "device": self.device,
            "size": self.size,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "host": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
            "argv": sys.argv[1:],
            "peak_tflops": self.args.peak_tflops,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if self.device == "cuda":
            props = torch.cuda.get_device_properties(0)
            meta.update(
                gpu=props.name,
                gpu_mem_gib=round(props.total_memory / 2**30, 1),
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
            )
        return meta

    def save(self) -> None:
        self.out.with_suffix(".json").write_text(json.dumps(self.results, indent=2, default=str))
        self.out.with_suffix(".md").write_text(render_markdown(self.results))

    # (a), (b), (c) ------------------------------------------------------------------------

    def run_render(self) -> None:
        from generation.interface import RenderSettings
        from generation.stable_audio_open import StableAudioOpen

        t0 = time.perf_counter()
        master = build_pipeline(self.size, self.device)
        counts = {
            "dit": count_params(master.transformer),
            "vae": count_params(master.vae),
            "t5": count_params(master.text_encoder),
        }
        build_s = time.perf_counter() - t0
        probe = StableAudioOpen(master, model_id="probe", weights_sha256="-", device=self.device)
        duration = SETTINGS[self.size]["duration_s"] or probe.max_duration_s
        duration = self.args.duration or duration
        settings = RenderSettings(
            prompt=PROMPT, duration_s=duration, steps=self.steps, cfg=self.cfg, seed=0
        )
        self.results["settings"] = {
            "steps": self.steps,
            "cfg": self.cfg,
            "duration_s": duration,
            "latent_frames": probe.latent_frames(duration),
            "sample_rate": probe.sample_rate,
            "channels": probe.channels,
            "stock_dtype": str(self.stock_dtype).removeprefix("torch."),
            "ours_dtype": str(self.ours_dtype).removeprefix("torch."),
            "runs": self.runs,
            "warmup": self.warmup,
            "params": counts,
            "build_s": round(build_s, 2),
        }
        work = work_counts(self.size, probe.latent_frames(duration), self.cfg > 1)
        self.results["settings"]["work"] = work
        print(f"built {counts} in {build_s:.1f} s; {duration:.2f} s audio; {work}", flush=True)
        self.numerics(master, settings)
        self.save()

        # (a) stock
        stock = clone_pipeline(master, self.stock_dtype)
        self.results["render"]["stock"] = self.time_stock(stock, duration)
        self.profile_if("stock", lambda pipe=stock: self.stock_call(pipe, duration, "pt"))
        del stock
        release(self.device)
        self.save()

        # (b) ours, every variant
        best = None
        for name in self.args.variants or DEFAULT_VARIANTS[self.device]:
            try:
                entry = self.time_ours(master, name, settings)
            except Exception as error:  # a variant that fails must not cost the others
                traceback.print_exc()
                entry = {"error": f"{type(error).__name__}: {error}"[:500]}
            self.results["render"][f"ours:{name}"] = entry
            if "median_s" in entry and (best is None or entry["median_s"] < best[1]):
                best = (name, entry["median_s"])
            release(self.device)
            self.save()
        self.results["best_variant"] = best[0] if best else None

        # (c) audio-to-audio at strength 0.5 with the best variant
        if best:
            gen = self.ours(master, best[0])
            init = test_audio(duration, gen.sample_rate, gen.channels)
            a2a = replace(settings, strength=0.5)
            self.results["render"][f"a2a:{best[0]}"] = self.time_render(gen, a2a, init)
            del gen
            release(self.device)
        self.save()

    def numerics(self, master, settings) -> None:
        """Latents after one sampler step, each path vs the stock pipeline in fp32."""
        reference = clone_pipeline(master, torch.float32)
        ref = stock_first_step(reference, settings)
        out: dict = {"reference": "stock pipeline, fp32, one step of the schedule"}
        scale = float(ref["latents"].abs().max())
        out["latent_max_abs"] = scale
        low = str(self.ours_dtype).removeprefix("torch.")
        checks = {
            "ours fp32 (no optimize)": ("default", torch.float32),
            "ours fp32 fast attention": ("fast", torch.float32),
        }
        if self.ours_dtype != torch.float32:
            checks[f"ours {low} fast attention"] = ("fast", self.ours_dtype)
        if self.device == "cuda":
            checks[f"ours {low} fast+graphs"] = ("fast+graphs", self.ours_dtype)
        for label, (variant, dtype) in checks.items():
            try:
                gen = self.ours(master, variant, dtype=dtype)
                got = ours_first_step(gen, settings)
                out[label] = diff(ref, got)
                del gen
            except Exception as error:
                out[label] = {"error": f"{type(error).__name__}: {error}"[:300]}
            release(self.device)
        if self.stock_dtype != torch.float32:
            half = clone_pipeline(master, self.stock_dtype)
            out[f"stock {str(self.stock_dtype).removeprefix('torch.')}"] = diff(
                ref, stock_first_step(half, settings)
            )
            del half
        del reference
        release(self.device)
        self.results["numerics"] = out
        print("numerics:", json.dumps(out, default=str), flush=True)

    def ours(self, master, variant: str, dtype: torch.dtype | None = None):
        from generation.stable_audio_open import StableAudioOpen

        options = dict(VARIANTS[variant])
        pipe = clone_pipeline(master, torch.float32)
        gen = StableAudioOpen(pipe, model_id="bench", weights_sha256="-", device=self.device)
        if variant != "default":
            if options.get("compile") and self.args.compile_mode:
                options["compile_mode"] = self.args.compile_mode
            gen.optimize(dtype=dtype or self.ours_dtype, **options)
        return gen

    def stock_call(self, pipe, duration: float, output_type: str):
        return pipe(
            prompt=PROMPT,
            audio_end_in_s=duration,
            num_inference_steps=self.steps,
            guidance_scale=self.cfg,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type=output_type,
        ).audios

    def time_stock(self, pipe, duration: float) -> dict:
        print("timing stock …", flush=True)
        total = measure(
            lambda: self.stock_call(pipe, duration, "pt"), self.device, self.runs, self.warmup
        )
        # denoise only (no decode), the prompt encoding, and the VAE decode alone
        latent_run = measure(
            lambda: self.stock_call(pipe, duration, "latent"), self.device, self.runs, 0
        )
        latents = self.stock_call(pipe, duration, "latent")
        decode = measure(lambda: pipe.vae.decode(latents).sample, self.device, self.runs, 1)
        prompt = measure(
            lambda: pipe.encode_prompt(PROMPT, pipe.device, True), self.device, self.runs, 1
        )
        denoise = latent_run["median_s"] - prompt["median_s"]
        entry = {
            **total,
            "denoise_s": denoise,
            "s_per_step": denoise / self.steps,
            "decode_s": decode["median_s"],
            "prompt_s": prompt["median_s"],
            "rtf": duration / total["median_s"],
            "steps_run": self.steps,
        }
        print(f"stock: {entry['median_s']:.3f} s", flush=True)
        return entry

    def time_ours(self, master, name: str, settings) -> dict:
        print(f"timing ours:{name} …", flush=True)
        t0 = time.perf_counter()
        gen = self.ours(master, name)
        gen.render(replace(settings, steps=2))  # compile / capture outside the timed runs
        ready_s = time.perf_counter() - t0
        entry = self.time_render(gen, settings)
        entry["setup_s"] = ready_s
        entry["speed"] = gen.speed
        self.profile_if(f"ours_{name}", lambda g=gen: g.render(settings))
        del gen
        return entry

    def time_render(self, gen, settings, init=None) -> dict:
        last: dict = {}

        def call():
            last["result"] = gen.render(settings, init)

        entry = measure(call, self.device, self.runs, self.warmup)
        timings = last["result"].timings_s
        steps_run = last["result"].denoiser_calls
        # the render's own (synchronised) split, from the last timed run
        entry.update(
            denoise_s=timings.get("denoise_s"),
            s_per_step=timings.get("denoise_s", 0.0) / max(1, steps_run),
            decode_s=timings.get("decode_s"),
            encode_s=timings.get("encode_s"),
            rtf=settings.duration_s / entry["median_s"],
            steps_run=steps_run,
        )
        print(f"  {entry['median_s']:.3f} s ({steps_run} steps)", flush=True)
        return entry

    def profile_if(self, name: str, fn: Callable[[], object]) -> None:
        if not self.args.profile:
            return
        path = (
            self.out.parent
            / f"{self.out.name}_profile_{name.replace(':', '_').replace('+', '_')}.txt"
        )
        profile_table(fn, self.device, path)
        self.results.setdefault("profiles", {})[name] = path.name  # beside the report

    # CLAP ------------------------------------------------------------------------------------

    def run_clap(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode
        from transformers import (
            ClapAudioConfig,
            ClapConfig,
            ClapFeatureExtractor,
            ClapModel,
            ClapProcessor,
            ClapTextConfig,
            RobertaTokenizer,
        )

        from index.clap import (
            WINDOW_SAMPLES,
            ClapEmbedder,
            log_mel_features,
            train_byte_level_tokenizer,
        )

        full = self.size == "full"
        with tempfile.TemporaryDirectory() as tmp:
            train_byte_level_tokenizer(["drums bass keys pad lead", "warm bright dark"], Path(tmp))
            tokenizer = RobertaTokenizer.from_pretrained(tmp, model_max_length=77)
        audio = ClapAudioConfig(**(FULL_CLAP_AUDIO if full else SMALL_CLAP_AUDIO))
        text = ClapTextConfig(
            vocab_size=50265 if full else len(tokenizer),
            **(FULL_CLAP_TEXT if full else SMALL_CLAP_TEXT),
        )
        config = ClapConfig(
            text_config=text.to_dict(),
            audio_config=audio.to_dict(),
            projection_dim=audio.projection_dim,
        )
        torch.manual_seed(0)
        with torch.device(self.device):
            model = ClapModel(config)
        extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
        frames = 1 + WINDOW_SAMPLES // extractor.hop_length  # one ten-second window's log-mel
        with torch.device("meta"):  # its work, counted without allocating anything
            shadow = ClapModel(config)
            with FlopCounterMode(display=False) as counter:
                shadow.audio_model(input_features=torch.zeros(1, 1, frames, audio.num_mel_bins))
        del shadow
        processor = ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer)
        embedder = ClapEmbedder(model, processor, model_id="bench-clap", device=self.device)
        audio_params = count_params(model.audio_model) + count_params(model.audio_projection)
        n = self.args.clap_windows or CLAP_WINDOWS[self.size]
        rng = np.random.default_rng(0)
        clips = [(0.1 * rng.standard_normal(WINDOW_SAMPLES)).astype(np.float32) for _ in range(n)]
        section: dict = {
            "audio_params": audio_params,
            "windows": n,
            "gflop_per_window": counter.get_total_flops() / 1e9,
            "batches": {},
        }

        # the same windows twice: on the host CPU, then as embed_audio does it (pad on the
        # host, STFT + mel on the embedder's device)
        chunk = clips[: min(n, 64)]
        features_cpu = measure(lambda: log_mel_features(chunk, extractor), "cpu", 3, 1)
        section["log_mel_cpu_windows_per_s"] = len(chunk) / features_cpu["median_s"]
        features_dev = measure(
            lambda: log_mel_features(chunk, extractor, self.device), self.device, 3, 1
        )
        section["log_mel_device_windows_per_s"] = len(chunk) / features_dev["median_s"]
        dtypes = {"fp32": None}
        if self.device == "cuda":
            dtypes["bf16-autocast"] = torch.bfloat16
        for batch in self.args.clap_batches or CLAP_BATCHES[self.size]:
            row: dict = {}
            for label, dtype in dtypes.items():
                autocast = (
                    torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
                )
                try:
                    embedder.batch_size = batch
                    # end to end: ClapEmbedder.embed_audio (host log-mel + model + pooling)
                    with autocast:
                        e2e = measure(lambda: embedder.embed_audio(clips), self.device, 1, 1)
                    # model only: features already on the device
                    feats = log_mel_features(clips[:batch], extractor, self.device)

                    @torch.inference_mode()
                    def model_only(feats=feats, autocast=autocast):
                        with autocast:
                            hidden = model.audio_model(input_features=feats)
                            return model.audio_projection(hidden.pooler_output)

                    mo = measure(model_only, self.device, max(3, self.runs), 2)
                    row[label] = {
                        "e2e_windows_per_s": n / e2e["median_s"],
                        "model_windows_per_s": batch / mo["median_s"],
                        "peak_mem_gib": mo.get("peak_mem_gib"),
                    }
                except Exception as error:
                    row[label] = {"error": f"{type(error).__name__}: {error}"[:300]}
                release(self.device)
            section["batches"][str(batch)] = row
            print(f"clap batch {batch}: {json.dumps(row)}", flush=True)
        if self.args.profile:
            feats = log_mel_features(clips[:32], extractor, self.device)
            path = self.out.parent / f"{self.out.name}_profile_clap.txt"
            with torch.inference_mode():
                profile_table(lambda: model.audio_model(input_features=feats), self.device, path)
            section["profile"] = path.name
        self.results["clap"] = section
        self.save()


def stock_first_step(pipe, settings) -> dict:
    """Latents (and the CFG-combined prediction) after the stock pipeline's first step."""
    seen: dict = {}
    original = pipe.scheduler.step

    # an explicit ``generator`` parameter: the pipeline passes it only if the signature has it
    def step(model_output, timestep, sample, generator=None, return_dict=True):
        seen["prediction"] = model_output.detach().float().cpu()
        return original(
            model_output, timestep, sample, generator=generator, return_dict=return_dict
        )

    class Stop(Exception):
        pass

    def callback(i, t, latents):
        seen["latents"] = latents.detach().float().cpu()
        raise Stop

    pipe.scheduler.step = step
    try:
        pipe(
            prompt=settings.prompt,
            audio_end_in_s=settings.duration_s,
            num_inference_steps=settings.steps,
            guidance_scale=settings.cfg,
            generator=torch.Generator("cpu").manual_seed(settings.seed),
            output_type="latent",
            callback=callback,
            callback_steps=1,
        )
    except Stop:
        pass
    finally:
        del pipe.scheduler.step
    return seen


def ours_first_step(gen, settings) -> dict:
    """Latents after our sampler's first step (the same set-up as ``StableAudioOpen._render``).

    Compared on the stock pipeline's latent length (its full window), so both see the same
    noise: the stock pipeline always renders the model's whole window.
    """
    from diffusers.utils.torch_utils import randn_tensor

    seen: dict = {}
    pipe = gen.pipe
    frames = pipe.transformer.config.sample_size
    with torch.inference_mode():
        cond = gen._conditioning(settings.prompt, None, settings.duration_s, settings.cfg > 1)
        scheduler, _ = gen._schedule(settings, seeded=False)  # a fresh one, as render makes
        scheduler.set_begin_index(0)
        generator = torch.Generator("cpu").manual_seed(settings.seed)
        shape = (1, pipe.transformer.config.in_channels, frames)
        noise = randn_tensor(shape, generator=generator, device=gen.device, dtype=gen.dtype)
        latents = noise * scheduler.init_noise_sigma
        cond["rotary"] = gen._rotary(frames + cond["global"].shape[1])
        original = scheduler.step

        def step(model_output, timestep, sample, **kwargs):
            seen["prediction"] = model_output.detach().float().cpu()
            return original(model_output, timestep, sample, **kwargs)

        scheduler.step = step
        try:
            t = scheduler.timesteps[0]
            latents = gen._step(scheduler, latents, t, cond, settings.cfg, generator)
        finally:
            del scheduler.step
    seen["latents"] = latents.float().cpu()
    return seen


def diff(ref: dict, got: dict) -> dict:
    return {
        "latents_max_abs": float((ref["latents"] - got["latents"]).abs().max()),
        "prediction_max_abs": float((ref["prediction"] - got["prediction"]).abs().max()),
        "prediction_scale": float(ref["prediction"].abs().max()),
    }


# -- report --------------------------------------------------------------------------------------


def render_tflop(work: dict, entry: dict, encodes: bool) -> float:
    """TFLOP of one render: its denoiser calls, one decode, and one encode when seeded."""
    if not work:
        return 0.0
    calls = entry.get("steps_run") or 0
    total = calls * work["dit_call_tflop"] + work["vae_decode_tflop"]
    return total + (work["vae_encode_tflop"] if encodes else 0.0)


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(results: dict) -> str:
    meta, settings = results["meta"], results.get("settings", {})
    cpu = meta["device"] != "cuda"
    lines = [
        "# Render speed: stock diffusers vs our render path (issue 7)",
        "",
    ]
    if cpu:
        lines += [
            "> **CPU smoke run, not the GPU measurement.** Small random-weight components on the",
            "> CPU, to prove the script runs end to end; the numbers say nothing about GPU speed.",
            "",
        ]
    device = meta.get("gpu", meta.get("host", "cpu"))
    lines += [
        f"Device: {device} ({meta['device']}); torch {meta['torch']}, diffusers "
        f"{meta['diffusers']}, transformers {meta['transformers']}"
        + (f", CUDA {meta.get('cuda')}, cuDNN {meta.get('cudnn')}" if not cpu else "")
        + f"; size `{meta['size']}`; started {meta['started']}.",
        "",
    ]
    if settings:
        lines += [
            f"Settings: {settings['steps']} steps, CFG {settings['cfg']}, "
            f"{settings['duration_s']:.2f} s of audio ({settings['latent_frames']} latent frames, "
            f"{settings['channels']} ch at {settings['sample_rate']} Hz); stock in "
            f"{settings['stock_dtype']}, ours in {settings['ours_dtype']}; median of "
            f"{settings['runs']} runs after {settings['warmup']} warm-up. Parameters: "
            + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in settings["params"].items())
            + ".",
            "",
            "| run | median s | s / step | decode s | peak GiB | real-time × | vs stock "
            "| TFLOP/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        work = settings.get("work") or {}
        stock = results["render"].get("stock", {}).get("median_s")
        for name, entry in results["render"].items():
            if "error" in entry:
                lines.append(f"| {name} | failed: {entry['error'][:80]} | | | | | | |")
                continue
            speedup = f"{stock / entry['median_s']:.2f}×" if stock else "—"
            rate = render_tflop(work, entry, name.startswith("a2a")) / entry["median_s"]
            lines.append(
                f"| {name} ({entry.get('steps_run')} steps) | {fmt(entry['median_s'])} | "
                f"{fmt(entry.get('s_per_step'), 4)} | {fmt(entry.get('decode_s'))} | "
                f"{fmt(entry.get('peak_mem_gib'), 2)} | {fmt(entry.get('rtf'), 1)} | {speedup} "
                f"| {f'{rate:.3g}' if work else '—'} |"
            )
        lines.append("")
        if work:
            peak = meta.get("peak_tflops", 790.0)
            full = render_tflop(work, {"steps_run": settings["steps"]}, False)
            half = render_tflop(work, {"steps_run": round(settings["steps"] / 2)}, True)
            lines += [
                f"Work (torch's FLOP counter, meta device): one denoiser call with the CFG pair "
                f"{work['dit_call_tflop']:.3g} TFLOP, VAE decode {work['vae_decode_tflop']:.3g}, "
                f"encode {work['vae_encode_tflop']:.3g}. At {peak:.0f} TFLOP/s (dense bf16, "
                f"measured on these GPUs) the floor is {full / peak:.3g} s for (b) and "
                f"{half / peak:.3g} s for (c); the VAE is bandwidth-bound (long 1-D "
                "activations), so its share of the floor understates its time.",
                "",
            ]
        best = results.get("best_variant")
        if best and stock:
            b = results["render"][f"ours:{best}"]["median_s"]
            a2a = results["render"].get(f"a2a:{best}", {}).get("median_s")
            lines += [
                f"(b) = ours:{best}: {b:.3f} s, {stock / b:.2f}× stock (target ≤ 1.5 s and ≥ 3× "
                "on an H100 at full size)."
                + (
                    f" (c) a2a 0.5: {a2a:.3f} s = {100 * a2a / b:.0f} % of (b) (target ≤ 55 %)."
                    if a2a
                    else ""
                ),
                "",
            ]
    numerics = results.get("numerics")
    if numerics:
        lines += [
            f"Numerics — {numerics['reference']} (latents max |x| "
            f"{numerics['latent_max_abs']:.1f}):",
            "",
            "| path | latents max abs Δ | CFG prediction max abs Δ (scale) |",
            "|---|---:|---:|",
        ]
        for label, entry in numerics.items():
            if not isinstance(entry, dict):
                continue
            if "error" in entry:
                lines.append(f"| {label} | failed: {entry['error'][:80]} | |")
                continue
            lines.append(
                f"| {label} | {entry['latents_max_abs']:.3g} | "
                f"{entry['prediction_max_abs']:.3g} ({entry['prediction_scale']:.3g}) |"
            )
        lines.append("")
    clap = results.get("clap")
    if clap:
        gflop = clap.get("gflop_per_window", float("nan"))
        peak = meta.get("peak_tflops", 790.0)
        lines += [
            f"CLAP audio tower: {clap['audio_params'] / 1e6:.1f} M params, {clap['windows']} "
            f"ten-second windows; log-mel alone: {clap['log_mel_cpu_windows_per_s']:.0f} "
            f"windows/s on the host CPU, "
            f"{clap.get('log_mel_device_windows_per_s', float('nan')):.0f} windows/s as "
            f"`embed_audio` does it (STFT on the {meta['device']}). Work: {gflop:.3g} GFLOP a "
            f"window, so {peak:.0f} TFLOP/s caps the model at {1e3 * peak / gflop:.0f} "
            "windows/s.",
            "",
            "| batch | precision | end to end windows/s (`embed_audio`) "
            "| model only windows/s | peak GiB |",
            "|---:|---|---:|---:|---:|",
        ]
        for batch, row in clap["batches"].items():
            for label, entry in row.items():
                if "error" in entry:
                    lines.append(f"| {batch} | {label} | failed: {entry['error'][:60]} | | |")
                    continue
                lines.append(
                    f"| {batch} | {label} | {entry['e2e_windows_per_s']:.1f} | "
                    f"{entry['model_windows_per_s']:.1f} | {fmt(entry.get('peak_mem_gib'), 2)} |"
                )
        lines.append("")
    if results.get("profiles") or (clap and clap.get("profile")):
        lines += ["Profiles (torch.profiler, top kernels):", ""]
        for name, path in (results.get("profiles") or {}).items():
            lines.append(f"- {name}: `{path}`")
        if clap and clap.get("profile"):
            lines.append(f"- clap: `{clap['profile']}`")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--size", choices=["full", "small"], default="full")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float)
    parser.add_argument("--duration", type=float, help="seconds of audio (default 47.5 / window)")
    parser.add_argument(
        "--dtype", choices=["bf16", "fp16", "fp32"], help="ours (default bf16 on cuda)"
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument(
        "--compile-mode",
        default="default",
        help="torch.compile mode for the compiled variants (e.g. max-autotune-no-cudagraphs)",
    )
    parser.add_argument(
        "--sections", nargs="+", choices=["render", "clap"], default=["render", "clap"]
    )
    parser.add_argument("--clap-batches", nargs="+", type=int)
    parser.add_argument("--clap-windows", type=int)
    parser.add_argument("--profile", action="store_true", help="write torch.profiler tables")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=790.0,
        help="dense bf16 TFLOP/s the floors are computed at (790: an 8192³ bf16 matmul on the "
        "H100/H200 lent here)",
    )
    parser.add_argument("--out", default="bench/results/render_gpu")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here; use --device cpu --size small for a smoke run")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # casting warnings and prompt-truncation notices, once per clone and call: noise here
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    bench = Bench(args)
    started = time.perf_counter()
    if "render" in args.sections:
        bench.run_render()
    if "clap" in args.sections:
        bench.run_clap()
    bench.results["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    bench.save()
    print(render_markdown(bench.results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
