"""Our Stable Audio Open sampler on a tiny real model: strength, in-painting, determinism."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from audio.signal import splice
from generation.interface import Cancelled, RenderInputError, RenderSettings
from generation.loading import load_generator, model_family
from generation.weights import folder_sha256

SR = 16000


@pytest.fixture(scope="module")
def generator(tiny_generator_folder):
    return load_generator(tiny_generator_folder)


@pytest.fixture(scope="module")
def init_audio() -> np.ndarray:
    """Two seconds of a plucked harmonic tone over a kick pattern, stereo."""
    t = np.arange(2 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))
    kick = 0.5 * np.sin(2 * np.pi * 60 * t) * np.exp(-20 * (t % 0.25))
    mono = (tone + kick).astype(np.float32)
    return np.stack([mono, 0.8 * mono])


BASE = RenderSettings(prompt="punchy drums and warm bass", duration_s=1.0, steps=10, cfg=3.0)


def test_loads_from_folder_with_id_hash_and_limits(generator):
    assert generator.family == "stable-audio-open"
    assert generator.id.startswith("tiny-sao@")
    assert len(generator.weights_sha256) == 64
    assert generator.sample_rate == SR and generator.channels == 2
    assert generator.max_duration_s == pytest.approx(1024 * 64 / SR)
    assert generator.count_tokens("warm pad") > 0


def test_same_seed_same_audio_bit_for_bit(generator):
    a = generator.render(BASE)
    b = generator.render(BASE)
    c = generator.render(replace(BASE, seed=1))
    assert a.audio.shape == (2, SR) and a.audio.dtype == np.float32
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_strength_zero_is_the_vae_round_trip(generator, init_audio):
    result = generator.render(replace(BASE, strength=0.0), init_audio)
    frames = generator.latent_frames(1.0)
    round_trip = generator.decode(generator.encode(init_audio[:, :SR], frames), SR)
    assert result.denoiser_calls == 0
    assert np.array_equal(result.audio, round_trip)


def test_strength_one_is_plain_text_to_audio(generator, init_audio):
    seeded = generator.render(replace(BASE, strength=1.0), init_audio)
    plain = generator.render(BASE)
    assert np.array_equal(seeded.audio, plain.audio)


@pytest.mark.parametrize("steps", [10, 20])
def test_denoiser_calls_proportional_to_strength(generator, init_audio, steps):
    for strength in (0.1, 0.3, 0.5, 0.8, 1.0):
        result = generator.render(replace(BASE, steps=steps, strength=strength), init_audio)
        assert result.denoiser_calls == round(steps * strength)


def test_sampler_starts_at_the_noise_level_of_the_strength(generator, init_audio):
    """Less strength → a lower starting σ on the same schedule; the init carries more."""
    sigmas = [
        generator.render(replace(BASE, strength=s), init_audio).sampler["start_sigma"]
        for s in (0.1, 0.5, 0.9, 1.0)
    ]
    assert sigmas[0] < sigmas[1] < sigmas[2] < sigmas[3] == pytest.approx(500.0)


def test_inpainting_keeps_the_rest_exactly(generator, init_audio):
    settings = replace(BASE, inpaint_range_s=(0.5, 1.25), duration_s=99.0)  # length = the clip's
    result = generator.render(settings, init_audio)
    first, last = int(0.5 * SR), int(1.25 * SR)
    assert result.audio.shape == init_audio.shape
    assert np.array_equal(result.audio[:, :first], init_audio[:, :first])
    assert np.array_equal(result.audio[:, last:], init_audio[:, last:])
    assert not np.allclose(
        result.audio[:, first + 400 : last - 400], init_audio[:, first + 400 : last - 400]
    )


def test_matches_stock_pipeline_at_full_length(generator):
    """At the model's full window our text-to-audio is diffusers' StableAudioPipeline, exactly."""
    duration = generator.max_duration_s
    ours = generator.render(replace(BASE, duration_s=duration, steps=6))
    stock = generator.pipe(
        prompt=BASE.prompt,
        audio_end_in_s=duration,
        num_inference_steps=6,
        guidance_scale=BASE.cfg,
        generator=torch.Generator().manual_seed(BASE.seed),
    ).audios[0]
    np.testing.assert_allclose(ours.audio, stock.numpy()[:, : ours.audio.shape[1]], atol=1e-6)


def test_negative_prompt_changes_the_output(generator):
    plain = generator.render(BASE)
    negative = generator.render(replace(BASE, negative_prompt="harsh noise"))
    assert not np.array_equal(plain.audio, negative.audio)


def test_progress_and_cancel(generator):
    seen: list[tuple[int, int]] = []
    generator.render(BASE, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 10) for i in range(1, 11)]
    cancel = threading.Event()

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        generator.render(BASE, progress=stop_after_three, cancel=cancel)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration_s": 60.0}, "maximum"),
        ({"duration_s": 0.0}, "duration"),
        ({"strength": 1.5}, "strength"),
        ({"strength": -0.1}, "strength"),
        ({"steps": 0}, "steps"),
        ({"prompt": "  "}, "prompt"),
        ({"inpaint_range_s": (1.0, 0.5)}, "in-paint"),
    ],
)
def test_bad_settings_are_refused_clearly(generator, init_audio, change, message):
    with pytest.raises(RenderInputError, match=message):
        generator.render(replace(BASE, **change), init_audio)


def test_inpaint_range_beyond_the_clip_is_refused(generator, init_audio):
    with pytest.raises(RenderInputError, match=r"clip is 2\.00 s"):
        generator.render(replace(BASE, inpaint_range_s=(1.0, 3.0)), init_audio)


def test_folder_checks(tmp_path):
    with pytest.raises(RenderInputError, match=r"model_index\.json"):
        model_family(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "AudioLDM2Pipeline"}')
    with pytest.raises(RenderInputError, match="unsupported"):
        model_family(tmp_path)
    with pytest.raises(RenderInputError, match="does not exist"):
        load_generator(tmp_path / "missing")
    assert folder_sha256(tmp_path) == folder_sha256(Path(tmp_path))


def test_splice_ramps_inside_the_range():
    original = np.zeros((2, 1000), np.float32)
    new = np.ones((2, 1000), np.float32)
    out = splice(original, new, (0.25, 0.75), 1000)
    assert out[:, :250].max() == 0 and out[:, 750:].max() == 0
    assert np.all(out[:, 270:730] == 1.0)
    assert np.all(np.diff(out[0, 250:270]) > 0)


def test_hub_ids_load_from_the_local_cache_offline(tiny_generator_folder, tmp_path, monkeypatch):
    """The hub path is the folder path: a cached snapshot loads with the hub id, offline."""
    import shutil

    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--acme--tiny-sao"
    shutil.copytree(tiny_generator_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    generator = load_generator("acme/tiny-sao")
    assert generator.id.startswith("acme/tiny-sao@")
    assert generator.weights_sha256 == folder_sha256(tiny_generator_folder)
    with pytest.raises(RenderInputError, match="local Hugging Face cache"):
        load_generator("acme/not-cached")


# -- the window: full (upstream's whole window, trimmed) or fit (the request's frames) -----------


@pytest.fixture(scope="module")
def full(tiny_generator_folder):
    return load_generator(tiny_generator_folder).set_window("full")


def denoiser_lengths(gen) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    """Latent frames the DiT sees at each call (a forward hook on the transformer)."""
    lengths: list[int] = []

    def hook(module, args, kwargs):
        lengths.append(args[0].shape[-1])

    handle = gen.pipe.transformer.register_forward_pre_hook(hook, with_kwargs=True)
    return lengths, handle


def test_the_window_defaults_to_fit_for_small_models_and_full_for_sao_1_0(generator):
    from generation.stable_audio_open import SAO_1_0_DIT, auto_window

    assert generator.window == "fit"  # the tiny model: sample_size 1024 but tiny widths
    assert auto_window(SAO_1_0_DIT) == "full"
    assert auto_window({**SAO_1_0_DIT, "in_channels": 4}) == "fit"
    with pytest.raises(ValueError, match="auto, full, fit"):
        generator.set_window("wide")
    assert generator.window == "fit"


def test_full_window_denoises_the_whole_window_and_trims_to_the_request(generator, full):
    lengths, handle = denoiser_lengths(full)
    try:
        wide = full.render(BASE)
    finally:
        handle.remove()
    assert set(lengths) == {full.window_frames} and len(lengths) == BASE.steps
    fit = generator.render(BASE)
    assert wide.audio.shape == fit.audio.shape == (2, SR)
    assert np.isfinite(wide.audio).all()
    assert not np.array_equal(wide.audio, fit.audio)  # other noise, other context: other audio
    assert wide.sampler["window"] == "full" and fit.sampler["window"] == "fit"
    assert wide.sampler["latent_frames"] == 1024
    assert fit.sampler["latent_frames"] == generator.latent_frames(BASE.duration_s)


def test_full_window_is_the_stock_pipeline_at_any_length(full):
    """diffusers' StableAudioPipeline always renders sample_size frames and trims: so do we."""
    ours = full.render(replace(BASE, steps=6))
    stock = full.pipe(
        prompt=BASE.prompt,
        audio_end_in_s=BASE.duration_s,
        num_inference_steps=6,
        guidance_scale=BASE.cfg,
        generator=torch.Generator().manual_seed(BASE.seed),
    ).audios[0]
    assert stock.shape[-1] == SR
    np.testing.assert_allclose(ours.audio, stock.numpy(), atol=1e-6)


def test_full_window_at_the_window_length_equals_fit(generator, full):
    settings = replace(BASE, duration_s=generator.max_duration_s, steps=4)
    assert np.array_equal(full.render(settings).audio, generator.render(settings).audio)


def test_full_window_seeds_sit_at_the_start_and_silence_fills_the_rest(full, init_audio):
    """Audio-to-audio and in-painting encode the take's audio at the window's start, then
    silence (upstream pads the init the same way); the kept range stays the original's."""
    encoded: list[torch.Tensor] = []
    handle = full.pipe.vae.encoder.register_forward_pre_hook(
        lambda module, args: encoded.append(args[0].clone())
    )
    try:
        a2a = full.render(replace(BASE, strength=0.5), init_audio)  # a 1 s take of a 2 s clip
        inpaint = full.render(replace(BASE, inpaint_range_s=(0.5, 1.25)), init_audio)
    finally:
        handle.remove()
    window = full.window_frames * full.hop_length
    assert [e.shape[-1] for e in encoded] == [window, window]
    np.testing.assert_array_equal(encoded[0][0, :, :SR].numpy(), init_audio[:, :SR])
    assert not encoded[0][0, :, SR:].any()  # the clip's second second is past the take
    np.testing.assert_array_equal(encoded[1][0, :, : 2 * SR].numpy(), init_audio)
    assert not encoded[1][0, :, 2 * SR :].any()
    assert a2a.audio.shape == (2, SR) and a2a.denoiser_calls == round(BASE.steps * 0.5)
    first, last = int(0.5 * SR), int(1.25 * SR)
    assert inpaint.audio.shape == init_audio.shape
    assert np.array_equal(inpaint.audio[:, :first], init_audio[:, :first])
    assert np.array_equal(inpaint.audio[:, last:], init_audio[:, last:])


def test_the_window_setting_reaches_the_generator_and_its_sampler_record(
    tiny_generator_folder, tmp_path
):
    from audiorag.components import load_generator as load_configured
    from audiorag.settings import Settings

    settings = Settings(
        data_dir=tmp_path, generator_model=str(tiny_generator_folder), sao_window="full"
    )
    gen = load_configured(settings)
    assert gen.window == "full"
    assert gen.render(replace(BASE, steps=2)).sampler["window"] == "full"
