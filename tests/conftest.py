"""Shared fixtures: tiny real models (tests/tiny_models.py, built offline) and a small demo
catalog."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Never reach for a model hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from index.clap import ClapEmbedder

DEMO_COUNT = 24


@pytest.fixture(scope="session")
def tiny_clap_folder(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_clap  # imports diffusers: only when needed

    return build_tiny_clap(tmp_path_factory.mktemp("models") / "tiny-clap", seed=0)


@pytest.fixture(scope="session")
def embedder(tiny_clap_folder) -> ClapEmbedder:
    return ClapEmbedder.from_pretrained(tiny_clap_folder)


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory) -> Path:
    """A small synthetic catalog (read-only: copy it before changing files)."""
    from audiorag.democatalog.catalog import build_demo_catalog

    out = tmp_path_factory.mktemp("catalog") / "demo"
    build_demo_catalog(out, count=DEMO_COUNT, seed=7)
    return out


@pytest.fixture(scope="session")
def tiny_generator_folder(tmp_path_factory) -> Path:
    """A tiny Stable Audio Open–architecture model (random weights), saved like a real one."""
    from tests.tiny_models import build_tiny_stable_audio_open

    return build_tiny_stable_audio_open(tmp_path_factory.mktemp("models") / "tiny-sao", seed=0)


@pytest.fixture(scope="session")
def bench():
    """``bench/render_gpu.py`` as a module (it is a script, not part of the package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / "render_gpu.py"
    spec = importlib.util.spec_from_file_location("render_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server (Debian's, tests/postgres.py) for the session; skipped with the
    reason where it is not installed (``make test`` installs it)."""
    from tests.postgres import running_postgres, server_bin

    if server_bin() is None:
        pytest.skip("PostgreSQL is not installed (make postgresql, or apt-get install postgresql)")
    with running_postgres() as url:
        yield url
