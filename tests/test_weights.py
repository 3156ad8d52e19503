"""The weights digest is computed once per folder and recomputed only when a file changes."""

from __future__ import annotations

import json
import os

from generation.weights import folder_sha256, hash_folder


def _folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "vae").mkdir(parents=True)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x01" * 1000)
    (folder / "transformer.bin").write_bytes(b"\x02" * 10)
    (folder / "config.json").write_text("{}")
    return folder


def test_digest_is_cached_by_name_size_and_mtime(tmp_path):
    folder, cache = _folder(tmp_path), tmp_path / "cache.json"
    first = folder_sha256(folder, cache=cache)
    assert first == hash_folder(folder)
    # Prove the second call reads the cache: plant a marker digest for the unchanged folder.
    known = json.loads(cache.read_text())
    known[str(folder.resolve())]["sha256"] = "from-the-cache"
    cache.write_text(json.dumps(known))
    assert folder_sha256(folder, cache=cache) == "from-the-cache"


def test_a_changed_weights_file_is_hashed_again(tmp_path):
    folder, cache = _folder(tmp_path), tmp_path / "cache.json"
    before = folder_sha256(folder, cache=cache)
    weights = folder / "transformer.bin"
    weights.write_bytes(b"\x03" * 10)  # same size: only the mtime tells
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = folder_sha256(folder, cache=cache)
    assert after != before
    assert after == hash_folder(folder)
    # Non-weights files do not enter the digest.
    (folder / "config.json").write_text('{"changed": true}')
    assert folder_sha256(folder, cache=cache) == after


def test_an_unwritable_cache_only_costs_a_rehash(tmp_path):
    folder = _folder(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder would be")
    assert folder_sha256(folder, cache=blocker / "cache.json") == hash_folder(folder)


def test_a_hub_download_takes_only_the_files_the_loader_reads():
    from huggingface_hub.utils import filter_repo_objects

    from generation.loading import component_patterns

    repo_files = [  # Stable Audio Open 1.0's repo, as listed on the hub
        "model_index.json",
        "model.safetensors",  # the single-file checkpoint for stable-audio-tools, 4.9 GB
        "model.ckpt",
        "model_config.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "transformer/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "text_encoder/pytorch_model.bin",
        "tokenizer/spiece.model",
        "tokenizer/tokenizer.json",
        "scheduler/scheduler_config.json",
    ]
    index = {"_class_name": "StableAudioPipeline", "vae": [], "transformer": [], "scheduler": []}
    index |= {"text_encoder": [], "tokenizer": []}
    kept = set(filter_repo_objects(repo_files, allow_patterns=component_patterns(index)))
    assert "model.safetensors" not in kept and "model.ckpt" not in kept
    assert "text_encoder/pytorch_model.bin" not in kept
    assert {"vae/diffusion_pytorch_model.safetensors", "tokenizer/spiece.model"} <= kept
    assert {"model_index.json", "scheduler/scheduler_config.json"} <= kept


def test_half_precision_on_a_cpu_loads_in_float32_with_a_warning(tiny_generator_folder, caplog):
    import torch

    from generation.loading import load_generator, weights_dtype

    assert weights_dtype("cuda", "float16") == "float16"
    with caplog.at_level("WARNING", logger="generation.loading"):
        generator = load_generator(tiny_generator_folder, device="cpu", dtype="float16")
    assert "float32 instead" in caplog.text
    assert next(generator.pipe.transformer.parameters()).dtype == torch.float32


def test_a_dotted_hub_id_is_looked_up_in_the_cache_not_refused_as_a_folder(tmp_path, monkeypatch):
    """ "stable-audio-open-1.0" has a suffix (".0") but is a hub id, not a missing folder."""
    import huggingface_hub.constants as hub_constants
    import pytest

    from generation.interface import RenderInputError
    from generation.loading import resolve_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(RenderInputError, match="local Hugging Face cache"):
        resolve_folder("stabilityai/stable-audio-open-1.0")
    with pytest.raises(RenderInputError, match="does not exist"):
        resolve_folder("/no/such/model")
