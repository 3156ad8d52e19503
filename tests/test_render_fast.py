"""The render path's speed options (issue 7) keep its output; the GPU bench's full-size builders
describe Stable Audio Open 1.0 — counted on the meta device, no weights allocated."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import generation.speed as speed
import generation.stable_audio_open as sao
from generation.interface import RenderSettings
from generation.loading import load_generator

SR = 16000
BASE = RenderSettings(prompt="punchy drums and warm bass", duration_s=0.5, steps=6, cfg=3.0)


@pytest.fixture(scope="module")
def plain(tiny_generator_folder):
    return load_generator(tiny_generator_folder)


@pytest.fixture(scope="module")
def fast(tiny_generator_folder):
    """Every speed option that runs on a CPU, in fp32 (compile off, no CUDA graphs)."""
    return load_generator(tiny_generator_folder).optimize(fast_attention=True)


@pytest.fixture(scope="module")
def init_audio() -> np.ndarray:
    t = np.arange(SR) / SR
    mono = (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))).astype(np.float32)
    return np.stack([mono, 0.8 * mono])


def test_optimize_installs_the_fast_attention_and_strips_weight_norm(fast):
    from torch.nn.utils.weight_norm import WeightNorm

    blocks = fast.pipe.transformer.transformer_blocks
    for block in blocks:
        for attn in (block.attn1, block.attn2):
            assert isinstance(attn.processor, speed.FastStableAudioAttnProcessor)
        # the original projections are views into the fused weight: no extra memory
        fused = block.attn1.fused_qkv_weight
        assert block.attn1.to_q.weight.data_ptr() == fused.data_ptr()
        assert block.attn2.to_k.weight.data_ptr() == block.attn2.fused_kv_weight.data_ptr()
    hooks = [h for m in fast.pipe.vae.modules() for h in m._forward_pre_hooks.values()]
    assert not any(isinstance(h, WeightNorm) for h in hooks)
    assert fast.speed["fast_attention"] and fast.speed["compute_dtype"] == "float32"


@pytest.mark.parametrize(
    "change",
    [{}, {"strength": 0.5}, {"inpaint_range_s": (0.25, 0.75), "duration_s": 1.0}],
    ids=["text", "audio-to-audio", "in-paint"],
)
def test_fast_path_renders_the_same_audio(plain, fast, init_audio, change):
    settings = replace(BASE, **change)
    init = init_audio if change else None
    a = plain.render(settings, init)
    b = fast.render(settings, init)
    assert a.denoiser_calls == b.denoiser_calls
    np.testing.assert_allclose(b.audio, a.audio, atol=1e-5, rtol=0)


def test_rotary_is_built_once_per_length_and_never_in_the_loop(tiny_generator_folder, monkeypatch):
    gen = load_generator(tiny_generator_folder)
    calls = []
    real = sao.get_1d_rotary_pos_embed

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sao, "get_1d_rotary_pos_embed", counting)
    gen.render(BASE)
    assert len(calls) == 1  # 6 steps, one table
    gen.render(replace(BASE, seed=3))
    assert len(calls) == 1  # same length: cached
    gen.render(replace(BASE, duration_s=0.25))
    assert len(calls) == 2


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_the_first_step_does_not_search_the_schedule(
    tiny_generator_folder, init_audio, monkeypatch, strength
):
    """The scheduler's own first-step search is .nonzero().item(): a host sync on a GPU. Each
    render makes its own scheduler, so the class is what gets watched."""
    from diffusers import CosineDPMSolverMultistepScheduler

    gen = load_generator(tiny_generator_folder)

    def refuse(*args, **kwargs):
        raise AssertionError("index_for_timestep called")

    monkeypatch.setattr(CosineDPMSolverMultistepScheduler, "index_for_timestep", refuse)
    settings = replace(BASE, strength=strength)
    result = gen.render(settings, init_audio if strength < 1 else None)
    assert result.denoiser_calls == round(BASE.steps * strength)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device syncs exist only on a GPU")
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_the_sampler_loop_never_waits_for_the_gpu(tiny_generator_folder, init_audio, strength):
    """Every denoiser step, scheduler step included (its Brownian-tree noise compares σ values
    in Python), runs without a device sync: the host stays ahead and queues the next step."""
    gen = load_generator(tiny_generator_folder, device="cuda")
    original = gen._step

    def strict_step(*args, **kwargs):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return original(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    gen._step = strict_step
    settings = replace(BASE, strength=strength)
    gen.render(settings, init_audio if strength < 1 else None)


@pytest.mark.parametrize("vae_dtype", [None, torch.bfloat16])
def test_bf16_denoiser_keeps_an_fp32_sampler_and_stays_close(
    tiny_generator_folder, plain, vae_dtype
):
    gen = load_generator(tiny_generator_folder).optimize(dtype=torch.bfloat16, vae_dtype=vae_dtype)
    assert gen.dtype == torch.float32 and gen.compute_dtype == torch.bfloat16
    assert gen.pipe.transformer.dtype == torch.bfloat16
    assert gen.pipe.vae.dtype == (vae_dtype or torch.float32)  # fp32 unless asked (opt-in)
    a = plain.render(BASE).audio
    b = gen.render(BASE)
    assert b.audio.dtype == np.float32 and b.audio.shape == a.shape
    assert np.isfinite(b.audio).all()
    assert np.abs(b.audio - a).max() < 0.1 * max(np.abs(a).max(), 1e-3)
    assert b.sampler["speed"]["vae_dtype"] == str(vae_dtype or torch.float32)[6:]


def test_the_gpu_preset_decodes_in_fp32_unless_bf16_decode_is_asked(tiny_generator_folder):
    """The fast preset's GPU options (less the CUDA graphs, which need a GPU) applied on the
    CPU: the DiT computes in bf16, the VAE decodes fp32 latents with fp32 weights."""
    options = speed.speed_options("fast", "cuda")
    assert "vae_dtype" not in options
    options.pop("cuda_graphs")
    gen = load_generator(tiny_generator_folder).optimize(**options)
    seen: list[torch.dtype] = []
    gen.pipe.vae.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    gen.render(replace(BASE, steps=2), init_audio=None)
    assert gen.compute_dtype == torch.bfloat16
    assert seen == [torch.float32] and gen.pipe.vae.decoder.conv1.weight.dtype == torch.float32
    opted = speed.speed_options("fast", "cuda", bf16_decode=True)
    assert opted["vae_dtype"] == torch.bfloat16
    assert speed.speed_options("fast", "cpu", bf16_decode=True) == {"fast_attention": True}


def test_speed_presets_name_their_options():
    assert speed.speed_options("off", "cuda") is None
    assert speed.speed_options("auto", "cpu") is None  # the stock numerics on a CPU
    assert speed.speed_options("fast", "cpu") == {"fast_attention": True}
    fast = speed.speed_options("auto", "cuda")
    assert fast == {"fast_attention": True, "dtype": torch.bfloat16, "cuda_graphs": True}
    compiled = speed.speed_options("compiled", "cuda:0")
    assert compiled == {**fast, "compile": True, "compile_vae": True}
    with pytest.raises(ValueError, match="auto, off, fast or compiled"):
        speed.speed_options("turbo", "cpu")


@pytest.mark.parametrize(("preset", "fused"), [("auto", False), ("fast", True)])
def test_the_service_applies_its_speed_setting_and_the_manifest_says_so(
    tiny_generator_folder, tmp_path, preset, fused
):
    from audiorag.components import load_generator as load_configured
    from audiorag.settings import Settings

    settings = Settings(
        data_dir=tmp_path, generator_model=str(tiny_generator_folder), render_speed=preset
    )
    gen = load_configured(settings)
    processors = {type(p).__name__ for p in gen.pipe.transformer.attn_processors.values()}
    assert ("FastStableAudioAttnProcessor" in processors) is fused
    recorded = gen.render(BASE).sampler["speed"]
    assert recorded.get("fast_attention", False) is fused


def test_cuda_graph_cache_keeps_the_most_recent_lengths(monkeypatch):
    """A service renders many lengths: one graph each, the least recently used dropped. (The
    capture itself needs CUDA; here it returns a stand-in graph that only counts replays.)"""

    class Replays:
        count = 0

        def replay(self):
            Replays.count += 1

    graphed = speed.GraphedDenoiser(transformer=None, backends=None, max_graphs=2)
    monkeypatch.setattr(graphed, "_capture", lambda args: (Replays(), args, args[0]))

    def call(frames: int) -> None:
        graphed(torch.zeros(2, 4, frames), torch.zeros(2))

    for frames in (10, 20, 10, 30):  # 10 used again just before 30 arrives: 20 goes
        call(frames)
    assert [key[0][0][-1] for key in graphed.graphs] == [10, 30]
    assert Replays.count == 4


def test_cuda_graphs_need_a_cuda_device(tiny_generator_folder):
    gen = load_generator(tiny_generator_folder)
    with pytest.raises(ValueError, match="CUDA"):
        gen.optimize(cuda_graphs=True)


def test_full_size_components_match_stable_audio_open_1_0(bench):
    dit = bench.FULL_DIT
    assert dit["num_layers"] == 24
    assert dit["num_attention_heads"] * dit["attention_head_dim"] == 1536
    assert dit["num_attention_heads"] == 24 and dit["num_key_value_attention_heads"] == 12
    assert dit["in_channels"] == dit["out_channels"] == 64 and dit["sample_size"] == 1024
    counts = bench.meta_param_counts("full")
    assert counts["dit"] == pytest.approx(1.06e9, rel=0.03)
    assert counts["vae"] == pytest.approx(156e6, rel=0.05)
    assert counts["t5"] == pytest.approx(109e6, rel=0.05)
    with torch.device("meta"):
        model = bench.build_dit("full")
    assert all(p.device.type == "meta" for p in model.parameters())  # nothing allocated
    block = model.transformer_blocks[0]
    assert block.attn2.to_k.out_features == 12 * 64  # GQA: 12 key/value heads
    with torch.device("meta"):
        vae = bench.build_vae("full")
    assert vae.hop_length == 2048 and vae.config.sampling_rate == 44100
    assert 47.5 < 1024 * vae.hop_length / 44100 < 47.6
    assert bench.build_tokenizer(bench.TOKENS["full"]).model_max_length == 128


def test_full_size_clap_is_htsat_base(bench):
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection

    config = ClapAudioConfig(**bench.FULL_CLAP_AUDIO)
    with torch.device("meta"):
        model = ClapAudioModelWithProjection(config)
    assert config.depths == [2, 2, 12, 2] and config.patch_embeds_hidden_size == 128
    params = sum(p.numel() for p in model.parameters())
    assert 50e6 < params < 120e6


def test_markdown_labels_a_cpu_run_as_a_smoke_run(bench):
    results = {
        "meta": {
            "device": "cpu",
            "size": "small",
            "torch": "x",
            "diffusers": "y",
            "transformers": "z",
            "host": "x86_64",
            "started": "now",
        },
        "render": {},
        "numerics": {},
        "clap": {},
    }
    text = bench.render_markdown(results)
    assert "CPU smoke run, not the GPU measurement" in text
