"""An index run killed with SIGKILL resumes to the same final state: no duplicate, no gap."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.store import open_store

pytestmark = pytest.mark.slow


def _env(data_dir: Path, clap: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AUDIORAG_DATA_DIR": str(data_dir),
        "AUDIORAG_CLAP_MODEL": str(clap),
        "AUDIORAG_EMBED_BATCH_SIZE": "2",
        "HF_HUB_OFFLINE": "1",
    }


def _index_cmd(catalog: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "audiorag.cli.app",
        "index",
        str(catalog),
        "--catalog",
        "demo",
        "--workers",
        "0",
    ]


def _state(data_dir: Path, embedder) -> dict[str, tuple[dict, np.ndarray]]:
    store = open_store(embedder.embedder, path=data_dir / "qdrant-edge" / "audiorag")
    try:
        return {p.id: (p.payload, p.vectors["audio"]) for p in store.scroll(with_vectors=True)}
    finally:
        store.close()


@pytest.fixture
def small_catalog(tmp_path, demo_catalog) -> Path:
    """The demo catalog with a licence for its first 16 files only (the rest are skipped fast)."""
    folder = Path(shutil.copytree(demo_catalog, tmp_path / "catalog"))
    rows = (folder / "licences.jsonl").read_text().splitlines()[:16]
    (folder / "licences.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def test_kill_9_mid_run_then_resume(tmp_path, small_catalog, tiny_clap_folder, embedder):
    demo_catalog = small_catalog
    reference_dir = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run(
        _index_cmd(demo_catalog),
        env=_env(reference_dir, tiny_clap_folder),
        check=True,
        capture_output=True,
    )
    full_run = time.perf_counter() - started
    expected = _state(reference_dir, embedder)
    assert len(expected) > 0

    # Kill at several points of the run until one lands mid-way (start-up time varies).
    for fraction in (0.7, 0.5, 0.85, 0.35):
        data_dir = tmp_path / f"killed-{fraction}"
        process = subprocess.Popen(
            _index_cmd(demo_catalog),
            env=_env(data_dir, tiny_clap_folder),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(full_run * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        partial = _state(data_dir, embedder) if (data_dir / "qdrant-edge").exists() else {}
        if 0 < len(partial) < len(expected):
            break
    else:
        pytest.fail("could not kill the run mid-way")
    assert set(partial) <= set(expected)  # what survived is right, just incomplete

    subprocess.run(
        _index_cmd(demo_catalog),
        env=_env(data_dir, tiny_clap_folder),
        check=True,
        capture_output=True,
    )
    resumed = _state(data_dir, embedder)
    assert set(resumed) == set(expected)
    for pid, (payload, vector) in expected.items():
        assert resumed[pid][0] == payload
        np.testing.assert_allclose(resumed[pid][1], vector, atol=1e-5)
