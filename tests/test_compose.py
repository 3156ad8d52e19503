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


ROOT = COMPOSE.parent


def _api(spec: dict, name: str = "api") -> dict:
    return spec["services"][name]


def test_api_service_is_built_here_and_wired_to_qdrant():
    spec = yaml.safe_load(COMPOSE.read_text())
    api = _api(spec)
    assert api["build"]["context"] == "."
    assert "whl/cpu" in api["build"]["args"]["TORCH_INDEX"]
    env = api["environment"]
    assert env["AUDIORAG_QDRANT_URL"] == "http://qdrant:6333"
    assert env["AUDIORAG_DATA_DIR"] == "/data"
    assert api["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    data_volume = next(v for v in api["volumes"] if v.endswith(":/data"))
    assert data_volume.split(":")[0] in spec["volumes"]
    assert any(":/models" in v for v in api["volumes"])  # real weights mount here
    assert "8000" in api["ports"][0]


def test_gpu_variant_is_opt_in_with_a_device_reservation():
    spec = yaml.safe_load(COMPOSE.read_text())
    gpu = _api(spec, "api-gpu")
    assert gpu["profiles"] == ["gpu"]  # `docker-compose up` alone never asks for a GPU
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["AUDIORAG_DEVICE"] == "cuda"
    assert gpu["environment"]["AUDIORAG_QDRANT_URL"] == "http://qdrant:6333"
    assert "whl/cpu" not in gpu["build"]["args"]["TORCH_INDEX"]
    assert "gpu" not in (_api(spec).get("profiles") or [])


def test_dockerfile_installs_cpu_torch_then_the_project():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert lines[next(i for i, x in enumerate(lines) if x.startswith("FROM"))] == (
        "FROM python:3.11-slim"
    )
    torch_at = next(i for i, x in enumerate(lines) if "torch==" in x and x.startswith("RUN"))
    project_at = next(i for i, x in enumerate(lines) if x.startswith("RUN pip install ."))
    assert torch_at < project_at and "TORCH_INDEX" in lines[torch_at]
    assert "whl/cpu" in text and "HEALTHCHECK" in text and "USER audiorag" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".git"} <= set(ignored)  # never ship the venv, data or history


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_config_validates_with_the_gpu_profile():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_cluster_profile_is_three_qdrant_nodes_that_find_each_other():
    spec = yaml.safe_load(COMPOSE.read_text())
    nodes = {name: spec["services"][f"qdrant-{name}"] for name in (1, 2, 3)}
    single = spec["services"]["qdrant"]
    for node in nodes.values():
        assert node["profiles"] == ["cluster"]  # `docker-compose up` alone starts one Qdrant
        assert node["image"] == single["image"]  # the same pinned version
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert "test" in node["healthcheck"]
        storage = node["volumes"][0].split(":")[0]
        assert storage in spec["volumes"] and storage != single["volumes"][0].split(":")[0]
    assert nodes[1]["command"] == ["./qdrant", "--uri", "http://qdrant-1:6335"]
    for node in (nodes[2], nodes[3]):
        assert node["command"] == ["./qdrant", "--bootstrap", "http://qdrant-1:6335"]
        assert node["depends_on"]["qdrant-1"]["condition"] == "service_healthy"
    volumes = [n["volumes"][0].split(":")[0] for n in nodes.values()]
    assert len(set(volumes)) == 3  # each node its own storage
    published = [p.split(":")[0] for n in nodes.values() for p in n.get("ports", [])]
    assert "6333" not in published and "6335" not in " ".join(published)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_config_validates_with_the_cluster_profile():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--profile", "cluster", "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_workers_render_apart_from_the_api_on_the_shared_volume():
    """`worker` (profile `workers`) and `worker-gpu` (profile `gpu`): the API's image and
    settings running `audiorag worker`, no port, no HTTP healthcheck, the same data volume."""
    spec = yaml.safe_load(COMPOSE.read_text())
    api = _api(spec)
    assert api["environment"]["AUDIORAG_API_GENERATION_WORKERS"].startswith(
        "${AUDIORAG_API_GENERATION_WORKERS"
    )  # 0 → the API only takes jobs
    for name, profile in (("worker", "workers"), ("worker-gpu", "gpu")):
        worker = spec["services"][name]
        assert worker["profiles"] == [profile]  # `docker-compose up` alone starts no worker
        assert [*worker["entrypoint"], *worker["command"]][:4] == [
            "python",
            "-m",
            "audiorag.cli.app",
            "worker",
        ]
        assert "ports" not in worker and worker["healthcheck"] == {"disable": True}
        assert worker["depends_on"]["qdrant"]["condition"] == "service_healthy"
        data = next(v for v in worker["volumes"] if v.endswith(":/data"))
        assert data == next(v for v in api["volumes"] if v.endswith(":/data"))
        assert worker["environment"]["AUDIORAG_QDRANT_URL"] == "http://qdrant:6333"
        # SIGTERM drains: the grace period outlasts --drain-seconds.
        drain = float(worker["command"][worker["command"].index("--drain-seconds") + 1])
        assert float(worker["stop_grace_period"].rstrip("s")) > drain
    gpu = spec["services"]["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["AUDIORAG_DEVICE"] == "cuda"
    assert "whl/cpu" not in gpu["build"]["args"]["TORCH_INDEX"]
    assert spec["services"]["worker"]["environment"]["AUDIORAG_DEVICE"] == "cpu"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_config_validates_with_the_workers_profile():
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--profile", "workers", "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
