"""Generation jobs through API replicas and render workers sharing one PostgreSQL queue.

    .venv/bin/python bench/jobs_scale.py                      # 200 jobs, 2 replicas, 2 workers
    .venv/bin/python bench/jobs_scale.py --kill-worker-at 60  # kill -9 a worker mid-run too

Starts a throwaway PostgreSQL (Debian's server, as the tests do; or ``--database-url``), two
``audiorag serve`` replicas that render nothing themselves (``AUDIORAG_API_GENERATION_WORKERS=0``)
and two ``audiorag worker`` processes, all on one fresh data dir with the bundled models. Clients
submit the jobs round robin to the replicas (honouring 429 + Retry-After, as a client must), and
poll each job from the *other* replica. Then, from the jobs table and the take folders on disk:

* lost — submitted (a 202 with a job id) but not ``succeeded`` in the end;
* duplicated — a take id shared by two jobs, a take folder no job points at, or a job whose
  take folder holds more than one take;
* queue wait (``started − created``) and end-to-end time (``finished − created``), p50/p99;
* jobs per worker process, re-queued jobs (``attempts > 1``), 429s met on the way.

With ``--kill-worker-at N`` one worker is killed with SIGKILL once N jobs have finished and a
replacement is started: its job must be re-queued by the heartbeat reaper and rendered once.

Writes ``bench/results/jobs_scale.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' PostgreSQL helper

from audiorag.api.auth import create_key  # noqa: E402
from audiorag.api.db import Database  # noqa: E402

OUT = ROOT / "bench" / "results"
FINAL = ("succeeded", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path):
    """A child process with its output in ``log``; killed on exit."""
    with log.open("w") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)


def _wait_ready(url: str, child: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            sys.exit(f"{url} exited before it was ready:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} was not ready in {timeout:.0f} s")


def _wait_worker(child: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Until the worker says it runs its render threads (its models are loaded)."""
    deadline = time.monotonic() + timeout
    while "render thread" not in log.read_text(errors="replace"):
        if child.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"a worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


class Submitter:
    """Clients submitting jobs round robin and counting what the service answers."""

    def __init__(self, urls: list[str], key: str, body: dict[str, Any]) -> None:
        self.urls = urls
        self.headers = {"Authorization": f"Bearer {key}"}
        self.body = body
        self.accepted: list[str] = []
        self.refused_429 = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def submit(self, n: int) -> None:
        url = self.urls[n % len(self.urls)]
        with httpx.Client(base_url=url, timeout=30) as client:
            while True:
                reply = client.post("/v1/generate", json=self.body, headers=self.headers)
                if reply.status_code == 429:
                    with self._lock:
                        self.refused_429 += 1
                    time.sleep(min(2.0, float(reply.headers.get("Retry-After", "1"))))
                    continue
                with self._lock:
                    if reply.status_code == 202:
                        self.accepted.append(reply.json()["id"])
                    else:
                        self.errors.append(f"{reply.status_code} {reply.text[:200]}")
                return

    def run(self, jobs: int, clients: int) -> None:
        counter = iter(range(jobs))
        lock = threading.Lock()

        def client_loop() -> None:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                self.submit(n)

        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _poll_from_other_replica(urls: list[str], key: str, job_id: str, n: int) -> str:
    """The job's status as the replica it was *not* submitted to reports it."""
    url = urls[(n + 1) % len(urls)]
    reply = httpx.get(
        f"{url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    reply.raise_for_status()
    return reply.json()["status"]


def _rows(db: Database) -> dict[str, dict[str, Any]]:
    return {
        r["id"]: r
        for r in db.all(
            "SELECT id, status, error, created, started, finished, attempts, worker, take_id, "
            "folder FROM jobs"
        )
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan")}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def _check(rows: dict[str, dict[str, Any]], accepted: list[str], outputs: Path) -> dict[str, Any]:
    """Lost and duplicated jobs, from the table and the take folders on disk."""
    lost = [j for j in accepted if rows.get(j, {}).get("status") != "succeeded"]
    succeeded = [rows[j] for j in accepted if j not in lost]
    take_ids = Counter(r["take_id"] for r in succeeded)
    on_disk = {p.name for p in outputs.glob("*/*") if (p / "manifest.json").is_file()}
    partial = [p.name for p in outputs.glob("*/.partial-*")]
    return {
        "lost": len(lost),
        "lost_ids": lost[:10],
        "duplicated_take_ids": sum(1 for c in take_ids.values() if c > 1),
        "takes_on_disk": len(on_disk),
        "takes_without_job": len(on_disk - set(take_ids)),
        "partial_folders_left": len(partial),
        "requeued_jobs": sum(1 for r in succeeded if (r["attempts"] or 0) > 1),
        "jobs_per_worker": dict(Counter(str(r["worker"]).split(":")[1] for r in succeeded)),
    }


def run(args: argparse.Namespace, database_url: str, scratch: Path) -> dict[str, Any]:
    data = scratch / "data"
    db = Database(database_url)
    key = create_key(db, "bench", name="jobs-scale")[1]
    base = {
        **os.environ,
        "AUDIORAG_DATA_DIR": str(data),
        "AUDIORAG_DATABASE_URL": database_url,
        "AUDIORAG_API_GENERATION_WORKERS": "0",
        "AUDIORAG_API_QUEUE_SIZE": str(args.queue_size),
        "AUDIORAG_JOB_HEARTBEAT_S": "1",
        "AUDIORAG_JOB_STALE_S": "8",
        "AUDIORAG_WORKERS": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # 2 workers × 1 thread on 2 cores: no oversubscription
    }
    body = {
        "prompt": "warm pad",
        "duration_s": args.duration,
        "steps": args.steps,
        "retrieval": False,
    }
    bin_dir = Path(sys.executable).parent
    with ExitStack() as stack:
        urls = []
        for n in range(args.replicas):
            port = _free_port()
            env = {**base, "AUDIORAG_COLLECTION": f"replica{n}"}
            log = scratch / f"api{n}.log"
            cmd = [str(bin_dir / "audiorag"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            child = stack.enter_context(_process(cmd, env, log))
            urls.append((f"http://127.0.0.1:{port}", child, log))
        for url, child, log in urls:
            _wait_ready(url, child, log)
        urls_only = [u for u, _, _ in urls]

        def start_worker(n: int) -> subprocess.Popen:
            env = {**base, "AUDIORAG_COLLECTION": f"worker{n}"}
            cmd = [str(bin_dir / "audiorag"), "worker", "--threads", "1"]
            return stack.enter_context(_process(cmd, env, scratch / f"worker{n}.log"))

        workers = [start_worker(n) for n in range(args.workers)]
        for n, child in enumerate(workers):  # queue waits should not count model loading
            _wait_worker(child, scratch / f"worker{n}.log")
        print(f"{len(urls)} replicas and {len(workers)} workers ready", flush=True)

        submitter = Submitter(urls_only, key, body)
        started = time.monotonic()
        submitting = threading.Thread(target=submitter.run, args=(args.jobs, args.clients))
        submitting.start()

        killed = None
        deadline = time.monotonic() + args.timeout
        polled_elsewhere = 0
        last_line, last_print = "", 0.0
        while True:
            rows = _rows(db)
            done = sum(1 for j in submitter.accepted if rows.get(j, {}).get("status") in FINAL)
            line = f"{len(submitter.accepted)}/{args.jobs} accepted, {done} finished"
            if line != last_line and time.monotonic() - last_print > 5:
                print(f"{line}, {submitter.refused_429} × 429", flush=True)
                last_line, last_print = line, time.monotonic()
            if args.kill_worker_at and killed is None and done >= args.kill_worker_at:
                busy = [r for r in rows.values() if r["status"] == "running"]
                if busy:  # kill the worker that is rendering right now
                    victim = workers[0]
                    victim.kill()
                    killed = {"at_finished": done, "job": busy[0]["id"], "pid": victim.pid}
                    workers.append(start_worker(len(workers)))
            if not submitting.is_alive() and done == len(submitter.accepted):
                break
            if time.monotonic() > deadline:
                print("\ntimed out", flush=True)
                break
            time.sleep(0.5)
        wall = time.monotonic() - started
        for n, job_id in enumerate(submitter.accepted[:20]):
            if _poll_from_other_replica(urls_only, key, job_id, n) in FINAL:
                polled_elsewhere += 1

    rows = _rows(db)
    accepted = submitter.accepted
    final = [rows[j] for j in accepted if j in rows and rows[j]["status"] == "succeeded"]
    result = {
        "jobs": args.jobs,
        "accepted": len(accepted),
        "submit_errors": submitter.errors[:10],
        "refused_429": submitter.refused_429,
        "status": dict(Counter(rows[j]["status"] for j in accepted if j in rows)),
        "wall_s": wall,
        "jobs_per_s": len(final) / wall,
        "queue_wait_s": _percentiles([r["started"] - r["created"] for r in final]),
        "end_to_end_s": _percentiles([r["finished"] - r["created"] for r in final]),
        "polled_from_other_replica": polled_elsewhere,
        "killed_worker": killed,
        **_check(rows, accepted, data / "takes"),
    }
    db.close()
    return result


def _table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load {load[0]:.1f} at the end; "
        f"{args.replicas} API replicas (0 render threads) + {args.workers} `audiorag worker` "
        f"processes (1 thread each), PostgreSQL 'jobs' table; renders of {args.duration} s at "
        f"{args.steps} steps with the bundled generator; {args.clients} clients, queue cap "
        f"{args.queue_size} (429 beyond).",
        "",
        "| run | accepted | succeeded | lost | duplicated | re-queued | 429s "
        "| queue wait p50 / p99 s | end-to-end p50 / p99 s | jobs/s | jobs per worker |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for r in results:
        name = "kill -9 a worker mid-run" if r["killed_worker"] else "steady"
        dup = r["duplicated_take_ids"] + r["takes_without_job"]
        lines.append(
            f"| {name} | {r['accepted']} | {r['status'].get('succeeded', 0)} | {r['lost']} | {dup} "
            f"| {r['requeued_jobs']} | {r['refused_429']} "
            f"| {r['queue_wait_s']['p50']:.2f} / {r['queue_wait_s']['p99']:.2f} "
            f"| {r['end_to_end_s']['p50']:.2f} / {r['end_to_end_s']['p99']:.2f} "
            f"| {r['jobs_per_s']:.2f} | {r['jobs_per_worker']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--kill-worker-at", type=int, default=0, help="0: no kill run")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--database-url", help="an existing PostgreSQL (else a throwaway one)")
    parser.add_argument("--out", type=Path, default=OUT / "jobs_scale")
    args = parser.parse_args()

    results = []
    runs = [0] + ([args.kill_worker_at] if args.kill_worker_at else [])
    for kill_at in runs:
        with ExitStack() as stack:
            if args.database_url:
                url = args.database_url
            else:
                from tests.postgres import running_postgres

                url = stack.enter_context(running_postgres())
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jobs-scale-")))
            run_args = argparse.Namespace(**{**vars(args), "kill_worker_at": kill_at})
            print(f"--- run: {'kill -9 a worker at ' + str(kill_at) if kill_at else 'steady'}")
            results.append(run(run_args, url, scratch))
            print(json.dumps(results[-1], indent=1, default=str))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    args.out.with_suffix(".md").write_text(_table(results, args))
    print(_table(results, args))


if __name__ == "__main__":
    main()
