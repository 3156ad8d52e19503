"""Shared storage for takes (``AUDIORAG_STORAGE_URL``): a take written locally (atomically) is
published to an fsspec URL — here ``memory://`` and a ``file://`` folder standing in for S3."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from audiorag.api.storage import publish_take
from tests.test_api_support import api_settings, running_api, wait_job


def _take(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, data in {
        "take.wav": b"RIFF....WAVE",
        "spectrogram.png": b"\x89PNG",
        "manifest.json": b'{"take_id": "t1"}',
    }.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_publish_copies_every_file_of_a_take(tmp_path, scheme):
    take = _take(tmp_path / "local" / "20260101-000000-abcdef")
    url = "memory://shared/takes" if scheme == "memory" else f"file://{tmp_path / 'shared'}"
    published = publish_take(url, "acme", take)
    assert published == f"{url}/acme/{take.name}"
    fs, root = fsspec.core.url_to_fs(published)
    assert sorted(Path(p).name for p in fs.ls(root, detail=False)) == sorted(
        p.name for p in take.iterdir()
    )
    for path in take.iterdir():
        assert fs.cat_file(f"{root}/{path.name}") == path.read_bytes()


@pytest.mark.slow
def test_a_finished_job_publishes_its_take(tmp_path, tiny_clap_folder, tiny_generator_folder):
    shared = tmp_path / "shared"
    settings = api_settings(
        tmp_path / "data",
        tiny_clap_folder,
        generator_model=str(tiny_generator_folder),
        storage_url=f"file://{shared}",
    )
    with running_api(settings, tenants=("acme",)) as api:
        body = {"prompt": "soft pad", "duration_s": 0.5, "steps": 2, "retrieval": False}
        job = api.client.post("/v1/generate", json=body, headers=api.auth("acme")).json()
        done = wait_job(api, "acme", job["id"])
    assert done["status"] == "succeeded", done
    local = settings.outputs_dir / "acme" / done["take_id"]
    copy = shared / "acme" / done["take_id"]
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in local.iterdir())
    assert (copy / "manifest.json").read_bytes() == (local / "manifest.json").read_bytes()
