"""Generator training: a tiny real run saves a StableAudioPipeline folder that loads offline and
renders, is deterministic, resumes; the v-objective is what the scheduler samples with."""

from __future__ import annotations

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
from audiorag.training.train_generator import (
    CHECKPOINT_DIR,
    GeneratorConfig,
    build_scheduler,
    build_vae,
    fold_latent_scale,
    folder_size,
    train_generator,
    v_objective,
)
from generation.loading import BUNDLED_GENERATOR

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


def test_saved_folder_is_a_stable_audio_pipeline_that_renders(trained):
    index = json.loads((trained / "model_index.json").read_text())
    assert index["_class_name"] == "StableAudioPipeline"
    for part in PIPELINE_PARTS:
        assert (trained / part).is_dir(), part
    pipe = StableAudioPipeline.from_pretrained(trained, local_files_only=True)
    assert pipe.vae.config.sampling_rate == 16_000 and pipe.vae.config.audio_channels == 1
    assert pipe.scheduler.config.sigma_min == 0.3 and pipe.scheduler.config.sigma_max == 500
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


def test_v_objective_matches_the_scheduler_preconditioning():
    """Training at t with x_t = αx0 + σε and target v = αε − σx0 is the model the scheduler
    expects at σ_edm = tan(tπ/2): it feeds x_edm/sqrt(σ²+1) and atan(σ)·2/π, and reads
    denoised = c_skip·x_edm + c_out·v."""
    scheduler = build_scheduler()
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
