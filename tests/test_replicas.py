"""Stateless API replicas: two real ``audiorag serve`` processes sharing one PostgreSQL database
(Debian's server, started by the test setup) and one data dir (models, watermark key, takes),
each with its own embedded store (a collection of its own; these jobs use no retrieval).

A job submitted to one replica is polled (progress included) and cancelled from the other; 429
back-pressure counts the jobs queued on both; and a replica killed with SIGKILL mid-render
leaves its job to the other, which re-queues it once its heartbeat is stale and renders it into
a take of its own — the job is never lost and never rendered twice into one take.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiorag.api.auth import create_key
from audiorag.api.db import Database
from audiorag.api.repos import jobs as repo
from tests.test_faults_service import SHORT, Server, _env, running_server
from tests.test_postgres_state import _fresh_postgres

pytestmark = pytest.mark.slow

LONG = {**SHORT, "steps": 1000}  # seconds of rendering with the tiny generator


@pytest.fixture
def replicas(postgres_url, tmp_path, tiny_clap_folder, tiny_generator_folder) -> Iterator[Any]:
    url = _fresh_postgres(postgres_url)
    db = Database(url)
    key = create_key(db, "acme", name="replicas")[1]
    data = tmp_path / "data"
    base = {
        **_env(data, tiny_clap_folder, tiny_generator_folder),
        "AUDIORAG_DATABASE_URL": url,
        "AUDIORAG_API_QUEUE_SIZE": "2",
        "AUDIORAG_JOB_HEARTBEAT_S": "0.5",
        "AUDIORAG_JOB_STALE_S": "4",
    }
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                running_server({**base, "AUDIORAG_COLLECTION": name}, tmp_path / f"{name}.log")
            )
            for name in ("replica_a", "replica_b")
        ]
        yield db, servers, {"Authorization": f"Bearer {key}"}, data
    db.close()


def _runner(db: Database, job_id: str) -> int | None:
    """The pid of the process running ``job_id`` (its worker id is host:pid:nonce)."""
    row = repo.get(db, job_id)
    return int(row["worker"].split(":")[1]) if row and row["worker"] else None


def _until(what: str, check, timeout: float = 120, why=lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {why()}"
        time.sleep(0.1)
    return found


def _job(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_is_polled_and_cancelled_from_the_other_replica(replicas):
    db, (a, b), headers, _ = replicas
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        clients = {a.process.pid: on_a, b.process.pid: on_b}
        first = on_a.post("/v1/generate", json={**LONG, "seed": 1}, headers=headers).json()
        second = on_b.post("/v1/generate", json={**LONG, "seed": 2}, headers=headers).json()
        # One generation worker per replica: each takes one of the two jobs.
        runners = _until(
            "both jobs running",
            lambda: {_runner(db, first["id"]), _runner(db, second["id"])} == set(clients),
        )
        assert runners
        # Any replica answers for any job, progress included.
        first_on = _runner(db, first["id"])
        runner, other = (on_a, on_b) if first_on == a.process.pid else (on_b, on_a)
        seen = _until(
            "progress from the other replica",
            lambda: (j := _job(other, headers, first["id"]))["progress"]["done"] > 0 and j,
        )
        assert seen["status"] == "running"
        # Back-pressure counts what waits in the shared table: one queued on each, then 429.
        queued = [
            c.post("/v1/generate", json={**SHORT, "seed": 10 + n}, headers=headers)
            for n, c in enumerate((on_a, on_b))
        ]
        assert [r.status_code for r in queued] == [202, 202], [r.text for r in queued]
        full = on_b.post("/v1/generate", json={**SHORT, "seed": 20}, headers=headers)
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        # A queued job accepted by A, cancelled through B: final at once.
        waiting = queued[0].json()["id"]
        assert on_b.delete(f"/v1/jobs/{waiting}", headers=headers).json()["status"] == "cancelled"
        # The running job, cancelled through the replica that is not running it.
        other.delete(f"/v1/jobs/{first['id']}", headers=headers)
        stopped = _until(
            "the cancel to reach the rendering replica",
            lambda: (j := _job(runner, headers, first["id"]))["status"] != "running" and j,
            timeout=60,
        )
        assert stopped["status"] == "cancelled", stopped
        assert stopped["progress"]["done"] < 1000  # stopped mid-render, not finished
        on_a.delete(f"/v1/jobs/{second['id']}", headers=headers)
        last = queued[1].json()["id"]
        done = _until(
            "the other queued job",
            lambda: (j := _job(on_a, headers, last))["status"] not in ("queued", "running") and j,
            timeout=180,
        )
        assert done["status"] == "succeeded", done
        assert _job(on_b, headers, second["id"])["status"] == "cancelled"


def test_a_replica_killed_mid_render_leaves_its_job_to_the_other(replicas):
    db, (a, b), headers, data = replicas
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        body = {**SHORT, "steps": 300, "seed": 3}  # long enough to be killed mid-render
        job = on_a.post("/v1/generate", json=body, headers=headers).json()
        victim_pid = _until("the job to start", lambda: _runner(db, job["id"]))
        victim, survivor = (a, on_b) if victim_pid == a.process.pid else (b, on_a)
        _until("some progress", lambda: _job(survivor, headers, job["id"])["progress"]["done"])
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(30)
        # Its heartbeat goes stale (4 s here); the survivor queues it again and renders it.
        finished = _until(
            "the survivor to finish the job",
            lambda: (
                (j := _job(survivor, headers, job["id"]))["status"]
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            timeout=600,
            why=lambda: (repo.get(db, job["id"]), _logs(a, b)),
        )
    assert finished["status"] == "succeeded", (finished, _logs(a, b))
    row = repo.get(db, job["id"])
    assert row["attempts"] == 2 and _runner(db, job["id"]) != victim_pid
    # One complete take for the job: the killed render's hidden .partial-* folder never
    # became a take, and the second render wrote a take folder of its own.
    takes = [p for p in (data / "takes" / "acme").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in takes] == [finished["take_id"]]
    assert (Path(row["folder"]) / "manifest.json").is_file()
    alive = b if victim is a else a
    wav = httpx.get(alive.url + finished["links"]["audio_wav"], headers=headers, timeout=30)
    assert wav.content[:4] == b"RIFF"


def _logs(*servers: Server) -> str:
    return "\n".join(s.output()[-3000:] for s in servers)
