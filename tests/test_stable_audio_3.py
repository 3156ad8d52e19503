"""Stable Audio 3 through diffusers' pipelines, on a tiny random model: modes, strength, limits."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.interface import Cancelled, RenderInputError, RenderSettings
from generation.loading import load_generator
from generation.stable_audio_3 import StableAudio3
from tests.tiny_models import build_tiny_stable_audio_3

SR = 16000
BASE = RenderSettings(prompt="punchy drums and warm bass", duration_s=1.0, steps=8, cfg=1.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_tiny_stable_audio_3(tmp_path_factory.mktemp("models") / "tiny-sa3", seed=0)


@pytest.fixture(scope="module")
def generator(folder) -> StableAudio3:
    loaded = load_generator(folder)
    assert isinstance(loaded, StableAudio3)
    return loaded


@pytest.fixture(scope="module")
def init_audio() -> np.ndarray:
    """Two seconds of a plucked harmonic tone over a kick pattern, stereo."""
    t = np.arange(2 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))
    kick = 0.5 * np.sin(2 * np.pi * 60 * t) * np.exp(-20 * (t % 0.25))
    mono = (tone + kick).astype(np.float32)
    return np.stack([mono, 0.8 * mono])


def test_loads_through_load_generator_with_limits_and_defaults(generator):
    assert generator.family == "stable-audio-3"
    assert generator.id.startswith("tiny-sa3@")
    assert len(generator.weights_sha256) == 64
    assert generator.sample_rate == SR and generator.channels == 2
    assert generator.max_duration_s == 8.0  # the duration embedder's max_val
    assert (generator.default_steps, generator.default_cfg) == (4, 1.0)  # from audiorag.json
    assert generator.max_prompt_tokens == 64
    assert generator.count_tokens("warm pad") > 0
    # one set of weights behind the three pipelines
    assert generator.audio_to_audio.transformer is generator.pipe.transformer
    assert generator.inpaint.vae is generator.pipe.vae


def test_same_seed_same_audio_bit_for_bit(generator):
    a = generator.render(BASE)
    b = generator.render(BASE)
    c = generator.render(replace(BASE, seed=1))
    assert a.audio.shape == (2, SR) and a.audio.dtype == np.float32
    assert a.sample_rate == SR and a.denoiser_calls == 8
    assert a.sampler["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_text_to_audio_is_the_stock_pipeline(generator):
    settings = replace(BASE, cfg=3.0, negative_prompt="harsh noise")
    ours = generator.render(settings)
    stock = generator.pipe(
        prompt=settings.prompt,
        negative_prompt=settings.negative_prompt,
        duration=settings.duration_s,
        num_inference_steps=settings.steps,
        guidance_scale=settings.cfg,
        generator=torch.Generator().manual_seed(settings.seed),
    ).audios[0]
    assert np.array_equal(ours.audio, stock.numpy())
    assert ours.sampler["guidance_scale"] == 3.0 and ours.sampler["negative_prompt_applied"]


def test_negative_prompt_counts_only_under_guidance(generator):
    assert not np.array_equal(
        generator.render(replace(BASE, cfg=3.0)).audio,
        generator.render(replace(BASE, cfg=3.0, negative_prompt="harsh noise")).audio,
    )
    assert np.array_equal(  # cfg ≤ 1: no guidance, so nothing to steer away from
        generator.render(BASE).audio,
        generator.render(replace(BASE, negative_prompt="harsh noise")).audio,
    )


def test_strength_zero_is_the_vae_round_trip(generator, init_audio):
    result = generator.render(replace(BASE, strength=0.0), init_audio)
    vae = generator.pipe.vae
    with torch.inference_mode():
        waveform = torch.from_numpy(init_audio[:, :SR])[None]
        padded = torch.nn.functional.pad(waveform, (0, 63 * 256 - SR))  # 63 latent frames
        expected = vae.decode(vae.encode(padded).latents).sample[0, :, :SR].clamp(-1, 1)
    assert result.denoiser_calls == 0 and result.sampler["mode"] == "vae-round-trip"
    assert np.array_equal(result.audio, expected.numpy())


def test_strength_one_is_plain_text_to_audio(generator, init_audio):
    seeded = generator.render(replace(BASE, strength=1.0), init_audio)
    assert np.array_equal(seeded.audio, generator.render(BASE).audio)


def test_denoiser_calls_fall_with_strength(generator, init_audio):
    for strength in (0.25, 0.5, 0.75, 1.0):
        result = generator.render(replace(BASE, strength=strength), init_audio)
        assert result.denoiser_calls == round(8 * strength)
        assert result.sampler["init_noise_level"] == strength
    # below half a step's worth nothing is denoised: the round trip again
    assert generator.render(replace(BASE, strength=0.05), init_audio).denoiser_calls == 0


def test_audio_to_audio_is_the_stock_pipeline_at_noise_level_strength(generator, init_audio):
    ours = generator.render(replace(BASE, strength=0.5), init_audio)
    stock = generator.audio_to_audio(
        prompt=BASE.prompt,
        duration=BASE.duration_s,
        audio=generator.init_waveform(init_audio, BASE.duration_s),
        init_noise_level=0.5,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(BASE.seed),
    ).audios[0]
    assert ours.sampler["mode"] == "audio-to-audio"
    assert np.array_equal(ours.audio, stock.numpy())
    assert not np.array_equal(ours.audio, generator.render(BASE).audio)


def test_inpainting_keeps_the_rest_exactly(generator, init_audio):
    settings = replace(BASE, inpaint_range_s=(0.5, 1.25), duration_s=99.0)  # length = the clip's
    result = generator.render(settings, init_audio)
    first, last = int(0.5 * SR), int(1.25 * SR)
    assert result.audio.shape == init_audio.shape
    assert result.sampler["mode"] == "inpaint" and result.denoiser_calls == 8
    assert np.array_equal(result.audio[:, :first], init_audio[:, :first])
    assert np.array_equal(result.audio[:, last:], init_audio[:, last:])
    assert not np.allclose(
        result.audio[:, first + 400 : last - 400], init_audio[:, first + 400 : last - 400]
    )


def test_progress_and_cancel(generator, init_audio):
    seen: list[tuple[int, int]] = []
    generator.render(BASE, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 8) for i in range(1, 9)]
    seen.clear()
    generator.render(replace(BASE, strength=0.5), init_audio, progress=lambda *p: seen.append(p))
    assert seen == [(i, 4) for i in range(1, 5)]

    cancel = threading.Event()
    steps: list[int] = []

    def stop_after_three(done: int, total: int) -> None:
        steps.append(done)
        if done == 3:
            cancel.set()

    with pytest.raises(Cancelled, match="after 3 of 8"):
        generator.render(BASE, progress=stop_after_three, cancel=cancel)
    assert steps == [1, 2, 3]
    with pytest.raises(Cancelled):  # already cancelled: nothing runs
        generator.render(BASE, cancel=cancel)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration_s": 9.0}, "maximum"),
        ({"strength": 1.5}, "strength"),
        ({"strength": -0.1}, "strength"),
        ({"steps": 0}, "steps"),
        ({"inpaint_range_s": (1.0, 3.0)}, r"clip is 2\.00 s"),
    ],
)
def test_bad_settings_are_refused_clearly(generator, init_audio, change, message):
    with pytest.raises(RenderInputError, match=message):
        generator.render(replace(BASE, **change), init_audio)
