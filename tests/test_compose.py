"""docker-compose.yml: a pinned Qdrant server with a volume and a healthcheck, and valid syntax."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_qdrant_service_is_pinned_with_volume_and_healthcheck():
    spec = yaml.safe_load(COMPOSE.read_text())
    qdrant = spec["services"]["qdrant"]
    image, _, tag = qdrant["image"].partition(":")
    assert image == "qdrant/qdrant" and tag.startswith("v") and tag != "latest"
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert qdrant["volumes"][0].split(":")[0] in spec["volumes"]
    assert "test" in qdrant["healthcheck"]
    assert "6333:6333" in qdrant["ports"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_config_validates():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
