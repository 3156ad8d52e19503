"""Shared pieces of the API tests: a stepping generator for queue mechanics, the app fixture
builder, and small audio/catalog helpers. (Holds no tests itself.)"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audiorag.api import create_app
from audiorag.api.auth import create_key
from audiorag.api.service import Service
from audiorag.settings import Settings
from rag.orchestrate import Cancelled
from rag.takes import Take, new_take_id, write_take


class SteppingGenerator:
    """A small, real stand-in for the orchestrator that tests the *queue*, not a model: it
    renders a sine "one step at a time", reports progress, honours the cancel event, and waits
    on ``gate`` before its first step so a test can hold the worker busy and fill the queue."""

    def __init__(self, steps: int = 4, step_s: float = 0.01) -> None:
        self.steps = steps
        self.step_s = step_s
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.requests: list[Any] = []
        # It marks and records nothing: the service brings its own detector and log.
        self.watermarker = None
        self.provenance = None

    def check(self, request: Any) -> None:
        """Nothing to refuse before queueing: this stand-in renders any request."""

    def generate(
        self,
        request: Any,
        out_dir: Path,
        *,
        progress: Any = None,
        cancel: threading.Event | None = None,
    ) -> Take:
        self.requests.append(request)
        self.started.set()
        cancel = cancel or threading.Event()
        while not self.gate.wait(0.01):
            if cancel.is_set():
                raise Cancelled("cancelled while waiting")
        for step in range(self.steps):
            if cancel.is_set():
                raise Cancelled("cancelled between steps")
            time.sleep(self.step_s)
            if progress is not None:
                progress(step + 1, self.steps)
        sr = 8000
        t = np.arange(int(sr * min(request.duration_s, 2.0))) / sr
        tone = 0.2 * np.sin(2 * np.pi * (220 + request.seed % 200) * t)
        manifest = {
            "prompt": request.prompt,
            "seed": request.seed,
            "strength": request.strength,
            "pinned": list(request.pinned),
            "catalogs": list(request.catalogs or ()),
        }
        audio = np.stack([tone, tone]).astype(np.float32)
        return write_take(out_dir, new_take_id(), audio, sr, manifest, request.formats)


@dataclass
class Api:
    client: TestClient
    app: FastAPI
    settings: Settings
    keys: dict[str, str]
    generator: Any = None
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def service(self) -> Service:
        return self.app.state.service

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}


def api_settings(data_dir: Path, clap_folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "clap_model": str(clap_folder),
        "workers": 0,
        "api_queue_size": 2,
        "upload_max_file_bytes": 2 * 2**20,
        "upload_max_request_bytes": 8 * 2**20,
        "upload_max_seconds": 30.0,
        **overrides,
    }
    return Settings(**values)


@contextmanager
def running_api(
    settings: Settings, *, orchestrator: Any = None, tenants: tuple[str, ...] = ("acme", "globex")
) -> Iterator[Api]:
    app = create_app(settings, orchestrator=orchestrator)
    with TestClient(app) as client:
        service: Service = app.state.service
        assert service.models.wait_ready(180), service.models.readiness()
        assert service.models.store is not None, service.models.load_error
        keys = {t: create_key(service.db, t, name="tests")[1] for t in tenants}
        yield Api(client, app, settings, keys, orchestrator)


def upload_folder(
    api: Api, tenant: str, catalog: str, folder: Path, pattern: str = "**/*.*"
) -> dict[str, Any]:
    """Upload every audio/MIDI file of a demo catalog folder with its licences.jsonl."""
    files = sorted(p for p in folder.glob(pattern) if p.suffix in {".wav", ".mid"})
    response = api.client.post(
        f"/v1/catalogs/{catalog}/items",
        headers=api.auth(tenant),
        files=[("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in files],
        data={"manifest": (folder / "licences.jsonl").read_text()},
    )
    assert response.status_code == 200, response.text
    return response.json()


def wav_bytes(seconds: float = 1.0, sr: int = 8000, freq: float = 440.0) -> bytes:
    t = np.arange(int(sr * seconds)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV")
    return buffer.getvalue()


def wait_job(api: Api, tenant: str, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth(tenant)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


LICENCE = {
    "id": "LIC-TEST-1",
    "holder": "Test Holder",
    "allowed_uses": ["search", "generation-seed"],
    "attribution": "test",
}
