"""A generator's limits from its configs alone: equal to the loaded generator's (tiny Stable Audio
Open, the bundled demo model, tiny Stable Audio 3), read without any weights file, and enough for
an API replica with no render threads to refuse bad requests (422) and queue good ones."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from audiorag.api.service import Service
from generation.interface import GeneratorLimits, RenderInputError
from generation.loading import BUNDLED_GENERATOR, load_generator, load_generator_limits
from generation.weights import weight_files
from rag.errors import GenerationError
from rag.orchestrate import GenerateRequest, Orchestrator
from tests.test_api_support import api_settings, running_api
from tests.tiny_models import build_tiny_stable_audio_3


def configs_only(folder: Path, copy: Path) -> Path:
    """A copy of a model folder without a single weights file (configs, tokenizer, defaults)."""
    shutil.copytree(folder, copy)
    for path in weight_files(copy):
        path.unlink()
    assert not weight_files(copy)
    return copy


def assert_same_limits(folder: Path) -> GeneratorLimits:
    limits = load_generator_limits(folder)
    loaded = load_generator(folder)
    assert limits == loaded.limits
    seen = {name: getattr(loaded, name) for name in asdict(limits)}
    assert seen == asdict(limits)
    return limits


@pytest.fixture(scope="module")
def tiny_sa3_folder(tmp_path_factory) -> Path:
    return build_tiny_stable_audio_3(tmp_path_factory.mktemp("models") / "tiny-sa3", seed=0)


def test_tiny_stable_audio_open_limits_equal_the_loaded_generators(tiny_generator_folder):
    limits = assert_same_limits(tiny_generator_folder)
    # 1024 frames x 64 samples at 16 kHz; defaults from the folder's audiorag.json
    assert limits == GeneratorLimits("stable-audio-open", 16000, 2, 4.096, 8, 3.0)


def test_bundled_generator_limits_equal_the_loaded_generators():
    limits = assert_same_limits(BUNDLED_GENERATOR)
    assert limits.family == "stable-audio-open" and limits.max_duration_s > 0


def test_tiny_stable_audio_3_limits_equal_the_loaded_generators(tiny_sa3_folder):
    limits = assert_same_limits(tiny_sa3_folder)
    assert limits == GeneratorLimits("stable-audio-3", 16000, 2, 8.0, 4, 1.0)


def test_stable_audio_3_max_duration_setting_and_pipeline_default_steps(tiny_sa3_folder, tmp_path):
    folder = shutil.copytree(tiny_sa3_folder, tmp_path / "sa3-short")
    (folder / "audiorag.json").write_text(json.dumps({"max_duration_s": 3.0}))
    limits = assert_same_limits(folder)
    # the distilled sampler's 8 steps when the folder sets none; the configured, lower maximum
    assert (limits.default_steps, limits.max_duration_s) == (8, 3.0)


def test_config_keys_left_out_take_the_components_defaults(tiny_generator_folder, tmp_path):
    """A saved config may leave out a parameter with a default: the loaded component fills it
    in from its class, and so must the limits."""
    folder = shutil.copytree(tiny_generator_folder, tmp_path / "sparse")
    vae_config = folder / "vae" / "config.json"
    config = json.loads(vae_config.read_text())
    del config["sampling_rate"]
    vae_config.write_text(json.dumps(config))
    limits = assert_same_limits(folder)
    assert limits.sample_rate == 44100  # AutoencoderOobleck's default


def test_limits_read_no_weights(tiny_generator_folder, tiny_sa3_folder, tmp_path):
    for folder in (tiny_generator_folder, BUNDLED_GENERATOR, tiny_sa3_folder):
        bare = configs_only(folder, tmp_path / f"bare-{folder.name}")
        assert load_generator_limits(bare) == load_generator_limits(folder)
    with pytest.raises(OSError):
        load_generator(tmp_path / f"bare-{tiny_generator_folder.name}")


def test_a_folder_missing_a_config_is_refused_naming_the_file(tiny_generator_folder, tmp_path):
    folder = shutil.copytree(tiny_generator_folder, tmp_path / "broken")
    (folder / "transformer" / "config.json").unlink()
    with pytest.raises(RenderInputError, match=r"transformer/config\.json is missing"):
        load_generator_limits(folder)
    (folder / "transformer" / "config.json").write_text("{not json")
    with pytest.raises(RenderInputError, match=r"transformer/config\.json is not valid JSON"):
        load_generator_limits(folder)


def test_an_api_replica_with_no_render_threads_checks_requests_without_the_weights(
    tmp_path, tiny_clap_folder, tiny_generator_folder
):
    """``api_generation_workers=0`` with a generator folder holding no weights at all: ready,
    422 for what the model cannot render, 202 (queued, for the workers) for what it can."""
    bare = configs_only(tiny_generator_folder, tmp_path / "bare-sao")
    settings = api_settings(
        tmp_path / "data",
        tiny_clap_folder,
        generator_model=str(bare),
        api_generation_workers=0,
        blocked_terms=["Daft Punk"],
    )
    with running_api(settings) as api:
        readiness = api.client.get("/readyz")
        assert readiness.status_code == 200, readiness.text
        assert readiness.json()["generator"] is True
        assert "checks only; rendered by workers" in readiness.json()["detail"]
        service: Service = api.app.state.service
        orchestrator = service.models.orchestrator
        assert isinstance(orchestrator, Orchestrator)
        assert type(orchestrator.generator) is GeneratorLimits
        assert orchestrator.generator == load_generator_limits(tiny_generator_folder)

        headers = api.auth("acme")
        too_long = api.client.post(
            "/v1/generate", json={"prompt": "pad", "duration_s": 5.0}, headers=headers
        )
        assert too_long.status_code == 422 and "4.10] s" in too_long.text, too_long.text
        blocked = api.client.post(
            "/v1/generate",
            json={"prompt": "drums like daft punk", "duration_s": 1.0},
            headers=headers,
        )
        assert blocked.status_code == 422, blocked.text
        assert blocked.json()["detail"]["blocked_term"] == "Daft Punk", blocked.text

        job = api.client.post(
            "/v1/generate",
            json={"prompt": "warm pad", "duration_s": 1.0, "top_k": 0},
            headers=headers,
        )
        assert job.status_code == 202, job.text
        status = api.client.get(f"/v1/jobs/{job.json()['id']}", headers=headers).json()
        assert status["status"] == "queued"  # nothing renders here: it waits for a worker

    with pytest.raises(GenerationError, match="only checks requests"):
        orchestrator.generate(GenerateRequest(prompt="warm pad"), tmp_path / "takes")
