"""Render workers apart from the API: two real ``audiorag serve`` replicas that render nothing
(``AUDIORAG_API_GENERATION_WORKERS=0``) and two ``audiorag worker`` processes, sharing one fresh
PostgreSQL database (Debian's server, started by the test setup), one data dir and a ``file://``
shared storage for takes and job inputs; and the Ray actor pool (``audiorag worker --ray``) on a
local two-node Ray cluster.

Every process has an embedded store of its own (a collection each: these jobs use no retrieval).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from audiorag.api.auth import create_key
from audiorag.api.db import Database, db_path
from audiorag.api.generation import build_generate_request, make_spec
from audiorag.api.jobs import Draining, JobQueue, QueueFull, StorageUnavailable, new_job_id
from audiorag.api.metrics import Metrics
from audiorag.api.repos import jobs as repo
from audiorag.api.storage import InputMissing, fetch_inputs, input_uploader, upload_inputs
from tests.test_faults_service import SHORT, _env, running_server
from tests.test_postgres_state import _fresh_postgres
from tests.test_replicas import _job, _runner, _until

LONG = {**SHORT, "steps": 1000}  # seconds of rendering with the tiny generator


# --- inputs on shared storage ---------------------------------------------------------------------


def test_job_inputs_go_to_shared_storage_and_come_back_to_scratch(tmp_path):
    clip = tmp_path / "inputs" / "abc" / "like.wav"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"RIFF....WAVE")
    url = f"file://{tmp_path / 'shared'}"
    spec = make_spec({"prompt": "pad"}, catalogs=[], pinned=[], like=clip)
    shared = upload_inputs(url, "job1", spec)
    assert shared["like"] == f"{url}/_inputs/job1/like-like.wav"
    assert shared["inpaint"] is None and spec["like"] == str(clip)  # the given spec is kept
    assert upload_inputs(url, "job2", shared) == shared  # a re-run's URLs are not copied again
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    local = fetch_inputs(shared, scratch)
    assert Path(local["like"]).parent == scratch
    assert Path(local["like"]).read_bytes() == clip.read_bytes()
    (tmp_path / "shared" / "_inputs" / "job1" / "like-like.wav").unlink()
    with pytest.raises(InputMissing, match="like file is gone from the shared storage"):
        fetch_inputs(shared, scratch)


def test_an_api_process_without_render_threads_takes_jobs_and_renders_none(tmp_path):
    """``AUDIORAG_API_GENERATION_WORKERS=0``: submit, 429 by the shared queue's depth with a
    Retry-After estimated without dividing by its (zero) threads, and a drain that does not wait
    for the queue — the jobs wait in the table for the workers."""
    db = Database(db_path(tmp_path / "data"))
    queue = JobQueue(
        db,
        lambda: None,  # no orchestrator: a thread that claimed a job would fail it
        build_generate_request,
        out_dir=lambda tenant: tmp_path / "takes" / tenant,
        maxsize=2,
        workers=0,
        metrics=Metrics(),
        heartbeat_s=0.1,
    )
    queue.start()
    try:
        spec = make_spec(SHORT, catalogs=[], pinned=[])
        accepted = [queue.submit("acme", spec) for _ in range(2)]
        with pytest.raises(QueueFull) as full:
            queue.submit("acme", spec)
        # Two queued, none running, no render finished yet: 2 × the first guess (30 s).
        assert full.value.retry_after == 60
        assert queue.wait_idle(0)  # nothing renders here, so nothing to wait for
        queue.drain()
        with pytest.raises(Draining):
            queue.submit("acme", spec)
    finally:
        queue.stop()
    assert [repo.get(db, job_id)["status"] for job_id in accepted] == ["queued", "queued"]
    db.close()


def test_a_job_whose_inputs_the_storage_refuses_is_not_recorded(tmp_path):
    """The shared storage failing at submit: a clear 503-type refusal, and no job without its
    inputs left in the queue."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage's folder should be")
    clip = tmp_path / "like.wav"
    clip.write_bytes(b"RIFF....WAVE")
    db = Database(db_path(tmp_path / "data"))
    queue = JobQueue(
        db,
        lambda: None,
        build_generate_request,
        out_dir=lambda tenant: tmp_path / "takes" / tenant,
        maxsize=2,
        workers=0,
        metrics=Metrics(),
        upload_inputs=input_uploader(f"file://{blocker}"),
    )
    spec = make_spec(SHORT, catalogs=[], pinned=[], like=clip)
    with pytest.raises(StorageUnavailable, match="did not take the job's input files") as err:
        queue.submit("acme", spec)
    assert err.value.retry_after >= 1
    assert repo.count_queued(db) == 0
    db.close()


# --- API replicas + `audiorag worker` processes ---------------------------------------------


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``audiorag worker`` in a subprocess, once it has loaded its models."""
    command = [sys.executable, "-m", "audiorag.cli.app", "worker", "--drain-seconds", "0.5"]
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        _until(
            "the worker to load its models",
            lambda: "render thread" in log.read_text() or process.poll() is not None,
            timeout=240,
        )
        assert process.poll() is None, log.read_text()
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


@pytest.fixture
def deployment(postgres_url, tmp_path, tiny_clap_folder, tiny_generator_folder) -> Iterator[Any]:
    url = _fresh_postgres(postgres_url)
    db = Database(url)
    key = create_key(db, "acme", name="workers")[1]
    data, shared = tmp_path / "data", tmp_path / "shared"
    base = {
        **_env(data, tiny_clap_folder, tiny_generator_folder),
        "AUDIORAG_DATABASE_URL": url,
        "AUDIORAG_STORAGE_URL": f"file://{shared}",
        "AUDIORAG_API_QUEUE_SIZE": "2",
        "AUDIORAG_API_GENERATION_WORKERS": "0",  # the API replicas render nothing
        "AUDIORAG_JOB_HEARTBEAT_S": "0.5",
        "AUDIORAG_JOB_STALE_S": "4",
    }
    with ExitStack() as stack:
        apis = [
            stack.enter_context(
                running_server({**base, "AUDIORAG_COLLECTION": name}, tmp_path / f"{name}.log")
            )
            for name in ("api_a", "api_b")
        ]
        workers = [
            stack.enter_context(
                running_worker({**base, "AUDIORAG_COLLECTION": name}, tmp_path / f"{name}.log")
            )
            for name in ("worker_a", "worker_b")
        ]
        yield {
            "db": db,
            "apis": apis,
            "workers": workers,
            "headers": {"Authorization": f"Bearer {key}"},
            "data": data,
            "shared": shared,
            "logs": tmp_path,
        }
    db.close()


def _reference_clip() -> bytes:
    buffer = io.BytesIO()
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(22050) / 44100).astype(np.float32)
    sf.write(buffer, tone, 44100, format="WAV")
    return buffer.getvalue()


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(folder.glob("*.log")))


@pytest.mark.slow
def test_any_replica_takes_polls_and_cancels_and_any_worker_renders(deployment):
    db, (a, b) = deployment["db"], deployment["apis"]
    headers, shared = deployment["headers"], deployment["shared"]
    worker_pids = {w.pid for w in deployment["workers"]}
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        # A job with a reference clip, submitted to A: its input goes to the shared storage.
        first = on_a.post(
            "/v1/generate",
            data={"request": json.dumps({**LONG, "seed": 1})},
            files={"like": ("ref.wav", _reference_clip(), "audio/wav")},
            headers=headers,
        )
        assert first.status_code == 202, first.text
        first = first.json()
        second = on_b.post("/v1/generate", json={**LONG, "seed": 2}, headers=headers).json()
        # The workers render them, not the replicas (which have no render thread).
        _until(
            "both jobs running on the two workers",
            lambda: {_runner(db, first["id"]), _runner(db, second["id"])} == worker_pids,
            why=lambda: _logs(deployment["logs"]),
        )
        like = repo.get(db, first["id"])["spec"]["like"]
        assert like.startswith(f"file://{shared}/_inputs/{first['id']}/")
        # Progress is seen from the replica that did not take the job.
        seen = _until(
            "progress seen from B",
            lambda: (j := _job(on_b, headers, first["id"]))["progress"]["done"] > 0 and j,
        )
        assert seen["status"] == "running"
        # Back-pressure counts the shared queue; Retry-After holds with 0 render threads here.
        queued = [
            c.post("/v1/generate", json={**SHORT, "seed": 10 + n}, headers=headers)
            for n, c in enumerate((on_a, on_b))
        ]
        assert [r.status_code for r in queued] == [202, 202], [r.text for r in queued]
        full = on_a.post("/v1/generate", json={**SHORT, "seed": 20}, headers=headers)
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        waiting = queued[0].json()["id"]
        assert on_b.delete(f"/v1/jobs/{waiting}", headers=headers).json()["status"] == "cancelled"
        # The running job, submitted to A, cancelled through B: its worker stops it.
        on_b.delete(f"/v1/jobs/{first['id']}", headers=headers)
        stopped = _until(
            "the cancel to reach the worker",
            lambda: (j := _job(on_a, headers, first["id"]))["status"] != "running" and j,
            timeout=60,
        )
        assert stopped["status"] == "cancelled", stopped
        assert stopped["progress"]["done"] < 1000
        on_a.delete(f"/v1/jobs/{second['id']}", headers=headers)
        last = queued[1].json()["id"]
        done = _until(
            "the queued job",
            lambda: (j := _job(on_b, headers, last))["status"] not in ("queued", "running") and j,
            timeout=180,
        )
        assert done["status"] == "succeeded", (done, _logs(deployment["logs"]))
        assert _runner(db, last) in worker_pids
        # Its take was published to the shared storage.
        assert (shared / "acme" / done["take_id"] / "manifest.json").is_file()
        wav = on_a.get(done["links"]["audio_wav"], headers=headers)
        assert wav.content[:4] == b"RIFF"


@pytest.mark.slow
def test_a_worker_killed_mid_render_leaves_its_job_to_the_other(deployment):
    db, (a, b) = deployment["db"], deployment["apis"]
    headers, data = deployment["headers"], deployment["data"]
    workers = {w.pid: w for w in deployment["workers"]}
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        job = on_a.post("/v1/generate", json={**SHORT, "steps": 300, "seed": 3}, headers=headers)
        job = job.json()
        victim = _until("the job to start", lambda: _runner(db, job["id"]))
        assert victim in workers
        _until("some progress", lambda: _job(on_b, headers, job["id"])["progress"]["done"])
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(30)
        # Its heartbeat goes stale (4 s here): queued again, rendered by the other worker.
        finished = _until(
            "the other worker to finish the job",
            lambda: (
                (j := _job(on_b, headers, job["id"]))["status"]
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            timeout=600,
            why=lambda: (repo.get(db, job["id"]), _logs(deployment["logs"])),
        )
    assert finished["status"] == "succeeded", (finished, _logs(deployment["logs"]))
    row = repo.get(db, job["id"])
    assert row["attempts"] == 2
    assert _runner(db, job["id"]) in set(workers) - {victim}
    # One complete take: the killed render's hidden .partial-* folder never became one.
    takes = [p for p in (data / "takes" / "acme").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in takes] == [finished["take_id"]]
    assert (Path(row["folder"]) / "manifest.json").is_file()


@pytest.mark.slow
def test_a_draining_worker_requeues_the_job_it_cuts_off(deployment):
    """SIGTERM: the worker claims nothing new; a job still running when the drain time is up is
    queued again without counting as a try, and the other worker renders it."""
    db, (a, _) = deployment["db"], deployment["apis"]
    headers = deployment["headers"]
    workers = {w.pid: w for w in deployment["workers"]}
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        job = on_a.post("/v1/generate", json={**SHORT, "steps": 400, "seed": 4}, headers=headers)
        job = job.json()
        first = _until("the job to start", lambda: _runner(db, job["id"]))
        _until("some progress", lambda: _job(on_a, headers, job["id"])["progress"]["done"])
        # --drain-seconds 0.5: far too short for 400 steps (an idle machine renders them in 5 s)
        workers[first].send_signal(signal.SIGTERM)
        assert workers[first].wait(60) == 0
        finished = _until(
            "the other worker to finish it",
            lambda: (j := _job(on_a, headers, job["id"]))["status"] == "succeeded" and j,
            timeout=600,
            why=lambda: (repo.get(db, job["id"]), _logs(deployment["logs"])),
        )
    row = repo.get(db, job["id"])
    assert row["attempts"] == 1  # the cut-off try did not count
    assert _runner(db, job["id"]) != first and finished["take_id"]


# --- the Ray actor pool -------------------------------------------------------------------------


@pytest.fixture
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield ray
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_the_ray_pool_renders_and_survives_a_killed_actor(
    ray_cluster, tmp_path, tiny_clap_folder, tiny_generator_folder
):
    """One CPU actor (the embedded store allows one process per collection; a Qdrant server
    allows more) on a two-node cluster: it renders a queued job; killed with SIGKILL
    mid-render, Ray restarts it and its job is queued again once and finished."""
    from audiorag.render_pool import RenderPool
    from audiorag.settings import Settings

    data = tmp_path / "data"
    settings = Settings(
        data_dir=data,
        clap_model=str(tiny_clap_folder),
        generator_model=str(tiny_generator_folder),
        database_url=None,
        storage_url=None,
        workers=0,
        job_heartbeat_s=0.5,
        job_stale_s=4,
    )
    db = Database(db_path(data))
    pool = RenderPool(settings, cpu_actors=1)
    try:
        (started,) = pool.start()
        assert started["device"] == "cpu"
        quick = _queue(db, steps=2, seed=1)
        done = _until("the quick job", lambda: _final(db, quick), timeout=120)
        assert done["status"] == "succeeded", done
        assert done["worker"] == started["worker"]
        slow = _queue(db, steps=300, seed=2)
        _until("progress", lambda: (repo.get(db, slow) or {}).get("done"), timeout=120)
        os.kill(int(started["worker"].split(":")[1]), signal.SIGKILL)
        done = _until("the restarted actor to finish it", lambda: _final(db, slow), timeout=600)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2 and done["worker"] != started["worker"]
        takes = [p for p in (data / "takes" / "acme").iterdir() if not p.name.startswith(".")]
        assert sorted(p.name for p in takes) == sorted([_take_of(db, quick), done["take_id"]])
    finally:
        pool.shutdown(drain_s=0)
        db.close()


def _queue(db: Database, *, steps: int, seed: int) -> str:
    job_id = new_job_id()
    body = {**SHORT, "steps": steps, "seed": seed}
    repo.insert(db, job_id, "acme", make_spec(body, catalogs=[], pinned=[]), None, None)
    return job_id


def _final(db: Database, job_id: str) -> dict[str, Any] | None:
    row = repo.get(db, job_id)
    return row if row and row["status"] in ("succeeded", "failed", "cancelled") else None


def _take_of(db: Database, job_id: str) -> str:
    return repo.get(db, job_id)["take_id"]


@pytest.mark.slow
def test_the_worker_command_runs_a_ray_pool_and_drains_on_sigterm(
    tmp_path, tiny_clap_folder, tiny_generator_folder
):
    """``audiorag worker --ray`` (bare: Ray started on this machine) renders a queued job from
    the shared table and stops cleanly on SIGTERM."""
    pytest.importorskip("ray")
    data = tmp_path / "data"
    db = Database(db_path(data))
    env = _env(data, tiny_clap_folder, tiny_generator_folder)
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "audiorag.cli.app", "worker", "--ray", "--actors", "1"]
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        _until(
            "the actor to load its models",
            lambda: "render actor" in log.read_text() or process.poll() is not None,
            timeout=240,
        )
        assert process.poll() is None, log.read_text()
        job_id = _queue(db, steps=2, seed=5)
        done = _until("the job", lambda: _final(db, job_id), timeout=120, why=log.read_text)
        assert done["status"] == "succeeded", done
        process.send_signal(signal.SIGTERM)
        assert process.wait(120) == 0, log.read_text()
        assert "draining" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        db.close()
