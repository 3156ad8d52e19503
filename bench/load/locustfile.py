"""Load on a running ``audiorag serve``: searches, uploads, generation jobs and polling.

Run by ``bench/load/run.py`` (which starts the server, indexes the demo catalog, makes a key and
reads the results); by hand::

    AUDIORAG_LOAD_KEY=ark_… locust -f bench/load/locustfile.py --headless -u 50 -r 10 \\
        --run-time 2m --host http://127.0.0.1:8000

A full generation queue (429 + Retry-After) is the service doing its job, so it counts as a
success here; every other non-2xx is a failure. Accepted job ids are appended to
``AUDIORAG_LOAD_JOBS`` (one a line) so the runner can check that none was lost.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading
import wave

from locust import HttpUser, between, task

PROMPTS = [
    "punchy house drums",
    "warm analog bass line",
    "dreamy pad in A minor",
    "funky guitar riff",
    "lo-fi hip-hop groove",
    "bright arpeggio 128 bpm",
    "dark techno kick",
    "soft piano chords",
]
LICENCE = json.dumps(
    {"id": "LIC-LOAD", "holder": "Load Test", "allowed_uses": ["search"], "attribution": "load"}
)
_jobs_lock = threading.Lock()


def _wav(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0) -> bytes:
    """A short sine as 16-bit mono WAV (stdlib only: locust workers need no numpy)."""
    import math

    frames = bytearray()
    for n in range(int(seconds * sr)):
        value = int(8000 * math.sin(2 * math.pi * freq * n / sr))
        frames += value.to_bytes(2, "little", signed=True)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(bytes(frames))
    return out.getvalue()


def _record_job(job_id: str) -> None:
    path = os.environ.get("AUDIORAG_LOAD_JOBS")
    if path:
        with _jobs_lock, open(path, "a") as out:
            out.write(job_id + "\n")


class SoundDesigner(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['AUDIORAG_LOAD_KEY']}"
        self.pending: list[str] = []

    @task(6)
    def search(self) -> None:
        body = {"text": random.choice(PROMPTS), "limit": 10}
        self.client.post("/v1/search", json=body, name="search")

    @task(2)
    def generate(self) -> None:
        body = {
            "prompt": random.choice(PROMPTS),
            "duration_s": 1.0,
            "steps": 4,
            "top_k": 2,
            "seed": random.randrange(1 << 30),
            "formats": ["wav"],
        }
        with self.client.post(
            "/v1/generate", json=body, name="submit", catch_response=True
        ) as response:
            if response.status_code == 202:
                job_id = response.json()["id"]
                self.pending.append(job_id)
                _record_job(job_id)
                response.success()
            elif response.status_code == 429 and response.headers.get("Retry-After"):
                response.success()  # back-pressure, as designed
            else:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(4)
    def poll(self) -> None:
        if not self.pending:
            return
        job_id = self.pending[0]
        response = self.client.get(f"/v1/jobs/{job_id}", name="poll")
        if response.ok and response.json()["status"] in ("succeeded", "failed", "cancelled"):
            self.pending.pop(0)

    @task(1)
    def upload(self) -> None:
        freq = random.choice([220.0, 330.0, 440.0, 550.0])
        name = f"tone-{random.randrange(1 << 20)}.wav"
        self.client.post(
            f"/v1/catalogs/load-{random.randrange(4)}/items",
            files=[("files", (name, _wav(freq=freq), "audio/wav"))],
            data={"licence": LICENCE},
            name="upload",
        )
