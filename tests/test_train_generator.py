"""Generator training: a tiny real run saves a StableAudioPipeline folder that loads offline and
renders, is deterministic, resumes; the v-objective is what the scheduler samples with, and a
training step hands the transformer exactly the inputs a sampler step does."""

from __future__ import annotations

import inspect
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableAudioPipeline
from safetensors.torch import load_file

import audiorag.training.train_generator as train_module
from audiorag.training.train_clap import TrainItem
from audiorag.training.train_clap import lr_schedule as clap_lr_schedule
from audiorag.training.train_generator import (
    CHECKPOINT_DIR,
    Conditioned,
    DitBatch,
    GeneratorConfig,
    build_vae,
    dit_batch,
    dit_loss,
    encode_hit,
    fold_latent_scale,
    folder_size,
    lr_schedule,
    train_generator,
    v_objective,
)
from generation.interface import RenderSettings
from generation.loading import BUNDLED_GENERATOR, load_generator
from generation.stable_audio_open import stable_audio_open_scheduler

pytestmark = pytest.mark.slow

BUNDLED = BUNDLED_GENERATOR
PIPELINE_PARTS = (
    "vae", "transformer", "text_encoder", "tokenizer", "projection_model", "scheduler",
)  # fmt: skip

MICRO = GeneratorConfig(
    vae_hidden=4,
    vae_decoder_channels=4,
    vae_multiples=(1, 1, 2, 2),
    latent_channels=2,
    dit_layers=1,
    dit_heads=2,
    dit_head_dim=8,
    cond_dim=16,
    text_layers=1,
    text_heads=2,
    vocab_size=200,
    sample_size=64,  # 1.02 s
    vae_crop=8 * 256,
    vae_batch=2,
    dit_tokens=128,
    min_seconds=0.3,
    max_seconds=0.8,
)


def run(catalog: Path, out: Path, **kwargs) -> object:
    settings = {"vae_steps": 3, "dit_steps": 4, "seed": 0, "progress": False, "config": MICRO}
    return train_generator(catalog, out, **{**settings, **kwargs})


@pytest.fixture(scope="module", autouse=True)
def short_latents():
    """Cache 1 s of latents per stem instead of 8 s: encoding is most of a micro run's time."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "ENCODE_FRAMES", 64)
        yield


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """Four stems: every run encodes each whole loop, so fewer stems keep the tests fast."""
    from audiorag.democatalog.catalog import build_demo_catalog

    out = tmp_path_factory.mktemp("catalog") / "demo"
    build_demo_catalog(out, count=4, seed=7)
    return out


@pytest.fixture(scope="module")
def trained(catalog, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generator") / "micro"
    run(catalog, out)
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {
        f"{part}/{key}": value
        for part in ("vae", "transformer", "text_encoder", "projection_model")
        for key, value in load_file(next((folder / part).glob("*.safetensors"))).items()
    }


def public(config) -> dict:
    """A diffusers config without its bookkeeping keys (``_class_name`` and the like)."""
    return {key: value for key, value in config.items() if not key.startswith("_")}


def test_saved_folder_is_a_stable_audio_pipeline_that_renders(trained):
    index = json.loads((trained / "model_index.json").read_text())
    assert index["_class_name"] == "StableAudioPipeline"
    for part in PIPELINE_PARTS:
        assert (trained / part).is_dir(), part
    pipe = StableAudioPipeline.from_pretrained(trained, local_files_only=True)
    assert pipe.vae.config.sampling_rate == 16_000 and pipe.vae.config.audio_channels == 1
    assert pipe.scheduler.config.sigma_min == 0.3 and pipe.scheduler.config.sigma_max == 500
    assert public(pipe.scheduler.config) == public(stable_audio_open_scheduler().config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio = pipe(
            "dark techno drums",
            audio_end_in_s=0.5,
            num_inference_steps=3,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        ).audios
    assert audio.shape == (1, 1, 8000) and np.isfinite(audio).all()


def test_training_is_deterministic(catalog, trained, tmp_path):
    again = tmp_path / "again"
    run(catalog, again)
    first, second = weights(trained), weights(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_resume_continues_from_the_checkpoint(catalog, trained, tmp_path):
    out = tmp_path / "resumed"
    # Interrupted after 2 autoencoder steps, then after 2 DiT steps: the rerun picks up both.
    assert run(catalog, out, stop_after=2).vae_steps == 2
    assert not (out / "model_index.json").exists()
    run(catalog, out, stop_after=None, stage="vae")
    assert run(catalog, out, stop_after=2, stage="dit").dit_steps == 2
    summary = run(catalog, out)
    assert summary.dit_steps == 4
    finished, resumed = weights(trained), weights(out)
    assert all(torch.equal(finished[key], resumed[key]) for key in finished)
    with pytest.raises(ValueError, match="no-resume"):
        run(catalog, out, dit_steps=5)


def test_a_run_cut_by_its_time_budget_is_usable_and_continues(catalog, trained, tmp_path):
    out = tmp_path / "budget"
    # minutes=0: each stage stops after its first step, and the pipeline is still saved
    summary = run(catalog, out, minutes=0)
    assert (summary.vae_steps, summary.dit_steps) == (1, 1)
    assert (out / "model_index.json").is_file()
    # the same command again: the autoencoder goes on to 3 steps, the DiT starts over on the
    # new latents, and the result is the uninterrupted run's
    summary = run(catalog, out)
    assert (summary.vae_steps, summary.dit_steps) == (3, 4)
    key = json.loads((out / "checkpoint" / "vae-final" / "key.json").read_text())
    assert key["steps"] == 3
    finished, continued = weights(trained), weights(out)
    assert all(torch.equal(finished[key], continued[key]) for key in finished)


@pytest.fixture(scope="module")
def oneshots(tmp_path_factory) -> Path:
    """Two drum hits and two notes rendered with the shipped SoundFont."""
    from audiorag.democatalog.oneshots import build_oneshot_catalog

    out = tmp_path_factory.mktemp("oneshots") / "hits"
    build_oneshot_catalog(
        out, seed=3, hits_per_drum=1, notes_per_program=1, drum_notes=(36, 42), programs=(40, 73)
    )
    return out


def test_a_dit_learns_one_shots_and_their_words_on_a_finished_autoencoder(
    catalog, oneshots, trained, tmp_path
):
    out = tmp_path / "with-hits"
    summary = run([catalog, oneshots], out, vae_from=trained / "vae", shares=[0.5, 0.5])
    assert summary.items == 8 and summary.vae_steps == 0 and summary.dit_steps == 4
    pipe = StableAudioPipeline.from_pretrained(out, local_files_only=True)
    # the autoencoder is the given one, untouched; the words of the one-shots are tokens
    given = StableAudioPipeline.from_pretrained(trained, local_files_only=True).vae
    same = zip(pipe.vae.state_dict().values(), given.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)
    unknown = pipe.tokenizer.unk_token_id
    assert unknown not in pipe.tokenizer("violin kick")["input_ids"]
    with pytest.raises(ValueError, match="no vae stage"):
        run([catalog, oneshots], out, vae_from=trained / "vae", stage="vae")
    with pytest.raises(ValueError, match="no-resume"):  # another seed is another run
        run([catalog, oneshots], out, vae_from=trained / "vae", shares=[0.5, 0.5], seed=1)


def test_one_shot_windows_hold_the_hit_once_then_silence():
    """A hit is not tiled like a loop: its latents from the start, seconds_total its length."""
    hit = torch.arange(1.0, 11.0).view(1, 10)  # 10 latent frames, 0.16 s
    loop = torch.full((1, 20), -1.0)
    kick = {"instrument": "drums", "program": None, "is_drum": True, "genre": None, "bpm": None,
            "key": None, "bars": None, "tags": ["kick"], "one_shot": True, "sound": "kick",
            "drum_note": 36, "pitches": [36]}  # fmt: skip
    bass = {"instrument": "bass", "program": 33, "is_drum": False, "genre": "techno", "bpm": 120.0,
            "key": "C minor", "bars": 4, "tags": ["dark"]}  # fmt: skip
    items = [TrainItem("hit.wav", kick), TrainItem("loop.wav", bass)]
    config = GeneratorConfig(latent_channels=1, sample_size=64, dit_tokens=64, min_seconds=0.5,
                             max_seconds=0.9, full_window_share=0.0)  # fmt: skip
    silence = torch.zeros(1)
    only_hits = np.array([1.0, 0.0])
    batch = dit_batch([hit, loop], items, silence, config, np.random.default_rng(0), only_hits)
    assert torch.allclose(batch.seconds_total, torch.tensor(10 / 62.5))
    for window in batch.latents:
        assert torch.equal(window[:, :10], hit) and not window[:, 10:].any()


def test_a_hit_is_encoded_with_silence_around_it(trained):
    from diffusers import AutoencoderOobleck

    vae = AutoencoderOobleck.from_pretrained(trained / "vae").eval()
    click = torch.zeros(300)
    click[:20] = 1.0
    with torch.no_grad():
        z = encode_hit(vae, click)
        silent = encode_hit(vae, torch.zeros(300))
    assert z.shape == (2, 2)  # 300 samples: two frames of 256, the last one part silence
    assert not torch.allclose(z, silent)


def test_v_objective_matches_the_scheduler_preconditioning():
    """Training at t with x_t = αx0 + σε and target v = αε − σx0 is the model the scheduler
    expects at σ_edm = tan(tπ/2): it feeds x_edm/sqrt(σ²+1) and atan(σ)·2/π, and reads
    denoised = c_skip·x_edm + c_out·v."""
    scheduler = stable_audio_open_scheduler()
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 4, 10, generator=generator)
    noise = torch.randn(6, 4, 10, generator=generator)
    sigma_edm = torch.tensor([0.3, 0.7, 1.0, 4.0, 50.0, 500.0])
    t = scheduler.precondition_noise(sigma_edm)
    assert torch.allclose(t, 2 / math.pi * torch.atan(sigma_edm))
    x_t, v = v_objective(x0, noise, t)
    x_edm = x0 + sigma_edm.view(-1, 1, 1) * noise
    model_input = scheduler.precondition_inputs(x_edm, sigma_edm.view(-1, 1, 1))
    assert torch.allclose(model_input, x_t, atol=1e-5)
    denoised = scheduler.precondition_outputs(x_edm, v, sigma_edm.view(-1, 1, 1))
    assert torch.allclose(denoised, x0, atol=1e-3)


def test_a_training_step_and_a_sampler_step_give_the_transformer_the_same_inputs(
    tiny_generator_folder,
):
    """Same latents, time, noise and prompt: a training-loss step and a sampler step (seeded at
    strength 0.5) hand the DiT identical conditioning, rotary tables and timestep, and the same
    noisy latents (to rounding: the sampler scales x0 + σε, training mixes αx0 + σε)."""
    generator = load_generator(tiny_generator_folder)
    pipe = generator.pipe
    calls: list[dict[str, object]] = []

    def capture(module, args, kwargs):
        calls.append(inspect.signature(module.forward).bind(*args, **kwargs).arguments)

    prompt, duration_s, seed = "punchy house drums in A minor", 1.0, 3
    init_audio = 0.1 * np.random.default_rng(0).standard_normal((2, 16_000)).astype(np.float32)
    settings = RenderSettings(
        prompt=prompt, duration_s=duration_s, steps=2, cfg=1.0, seed=seed, strength=0.5
    )
    handle = pipe.transformer.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        generator.render(settings, init_audio=init_audio)
        sampled = calls[0]
        x0 = generator.encode(init_audio, generator.latent_frames(duration_s))
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
        batch = DitBatch(x0, [prompt], torch.tensor([duration_s]), keep_text=torch.ones(1))
        model = Conditioned(pipe.transformer, pipe.text_encoder, pipe.projection_model)
        # Without autograd: with it, SDPA in the text encoder takes another CPU kernel, and the
        # states differ in the last bit (~1e-7) — the same function, other rounding.
        with torch.no_grad():
            dit_loss(model, pipe.tokenizer, batch, sampled["timestep"], noise, "cpu")
        trained = calls[1]
    finally:
        handle.remove()
    assert len(calls) == 2
    for name in ("encoder_hidden_states", "global_hidden_states", "timestep"):
        assert torch.equal(trained[name], sampled[name]), name
    assert len(trained["rotary_embedding"]) == len(sampled["rotary_embedding"]) == 2
    for ours, theirs in zip(trained["rotary_embedding"], sampled["rotary_embedding"], strict=True):
        assert torch.equal(ours, theirs)
    assert float(sampled["timestep"]) == pytest.approx(0.5)
    assert torch.allclose(trained["hidden_states"], sampled["hidden_states"], atol=1e-5)


def test_learning_rate_schedules_are_each_trainers_own():
    """One warmup_cosine, two schedules: CLAP warms up over 5 % and decays to 0; the generator
    warms up over min(100, steps/10) and decays to a tenth."""
    clap = clap_lr_schedule(100)
    assert [clap(s) for s in (0, 4, 5)] == [0.2, 1.0, 1.0]
    assert clap(52) == pytest.approx(0.5 * (1 + math.cos(math.pi * 47 / 95)))
    assert clap(100) == clap(500) == 0.0
    generator = lr_schedule(2000)
    assert [generator(s) for s in (0, 99, 100)] == [0.01, 1.0, 1.0]
    assert generator(1050) == pytest.approx(0.55)
    assert generator(2000) == generator(9000) == pytest.approx(0.1)
    short = lr_schedule(30)  # warm-up of 3 steps
    assert [short(s) for s in (0, 2)] == [pytest.approx(1 / 3), 1.0]


def test_folding_the_latent_scale_keeps_the_round_trip():
    torch.manual_seed(0)
    vae = build_vae(MICRO).eval()
    audio = torch.randn(1, 1, 4096) * 0.1
    with torch.no_grad():
        before = vae.encode(audio).latent_dist.mean
        round_trip = vae.decode(before).sample
        fold_latent_scale(vae, 3.0)
        after = vae.encode(audio).latent_dist.mean
        again = vae.decode(after).sample
    assert torch.allclose(after * 3.0, before, atol=1e-5)
    assert torch.allclose(again, round_trip, atol=1e-5)


@pytest.mark.skipif(not (BUNDLED / "model_index.json").is_file(), reason="no bundled generator")
def test_bundled_generator_is_small_and_loads():
    assert folder_size(BUNDLED) <= 40 * 2**20
    assert not (BUNDLED / CHECKPOINT_DIR).exists()
    pipe = StableAudioPipeline.from_pretrained(BUNDLED, local_files_only=True)
    assert pipe.transformer.config.sample_size * pipe.vae.hop_length / 16_000 >= 20.0


def test_one_shot_generator_measures_run_on_a_held_out_hit_catalog(trained, oneshots):
    from audiorag.evaluation.eval_generator import evaluate_generator, markdown_table

    result = evaluate_generator(oneshots, trained, requests=4, duration_s=0.5, progress=False)
    assert result["one_shots"] and result["requests"] == 4 and result["type_requests"] == 2
    for key in ("family", "one_shot_type"):
        assert set(result[key]) == {"clap", "timbre"}
        for found in result[key].values():
            assert 0.0 <= found["agreement"] <= 1.0 and 0.0 <= found["real_hits_agreement"] <= 1.0
    assert "drum type agrees" in markdown_table(result)
