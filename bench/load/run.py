"""Load test: a fresh ``audiorag serve`` with the demo catalog indexed, 50 locust users for two
minutes (searches, uploads, generation jobs, polling), then: requests, error rate (non-429),
p50/p99 of search and job submit, and jobs submitted / finished / lost.

    .venv/bin/python bench/load/run.py [--users 50] [--spawn-rate 10] [--run-time 2m]
                                       [--count 60] [--out bench/results/load.json]

Everything runs on loopback; the data dir is a fresh temporary folder (kept with --keep). Uses
the bundled demo CLAP and generator unless AUDIORAG_CLAP_MODEL / AUDIORAG_GENERATOR_MODEL say
otherwise. Needs the dev extras (locust).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FINAL = ("succeeded", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("the server exited before it was ready; see its log")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit("the server was not ready in time")


def _stats(prefix: Path) -> dict[str, dict[str, float]]:
    """locust's per-request-name stats (count, failures, p50, p99 in ms)."""
    out = {}
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            out[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "p50_ms": float(row["50%"] or 0),
                "p99_ms": float(row["99%"] or 0),
            }
    return out


def _status_counts(url: str) -> dict[str, int]:
    """Responses by status class from the server's own /metrics."""
    counts: dict[str, int] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        match = re.match(r'audiorag_http_requests_total\{.*status="(\d+)".*\} ([0-9.e+]+)', line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + int(float(match.group(2)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--run-time", default="2m")
    parser.add_argument("--count", type=int, default=60, help="demo catalog size")
    parser.add_argument("--settle-s", type=float, default=300, help="wait for queued jobs")
    parser.add_argument("--out", type=Path, default=Path("bench/results/load.json"))
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="audiorag-load-"))
    env = {**os.environ, "AUDIORAG_DATA_DIR": str(base / "data"), "AUDIORAG_WORKERS": "0"}
    env.setdefault("AUDIORAG_API_QUEUE_SIZE", "16")
    audiorag = str(BIN / "audiorag")
    server = None
    try:
        print(f"data dir {base}; building and indexing a {args.count}-item demo catalog")
        _run(
            [audiorag, "catalog", "demo", "--out", str(base / "demo"), "--count", str(args.count)],
            env,
        )
        _run([audiorag, "index", str(base / "demo"), "--catalog", "demo"], env)
        key = _run([audiorag, "keys", "create", "--tenant", "load"], env).strip().splitlines()[-1]
        _run([audiorag, "grants", "add", "load", "demo"], env)

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(base / "serve.log", "w")  # noqa: SIM115 - the server writes it until the end
        server = subprocess.Popen(
            [audiorag, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(url, server)
        print(f"server ready on {url}; locust: {args.users} users for {args.run_time}")

        jobs_file = base / "jobs.txt"
        jobs_file.touch()
        prefix = base / "locust"
        started = time.monotonic()
        subprocess.run(
            [
                str(BIN / "locust"),
                "-f",
                str(HERE / "locustfile.py"),
                "--headless",
                "-u",
                str(args.users),
                "-r",
                str(args.spawn_rate),
                "--run-time",
                args.run_time,
                "--host",
                url,
                "--csv",
                str(prefix),
                "--only-summary",
                "--stop-timeout",
                "10",
            ],
            env={**env, "AUDIORAG_LOAD_KEY": key, "AUDIORAG_LOAD_JOBS": str(jobs_file)},
            check=False,
        )
        load_s = time.monotonic() - started

        submitted = [j for j in jobs_file.read_text().split() if j]
        headers = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + args.settle_s
        states: dict[str, str] = {}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while True:
                for job_id in submitted:
                    if states.get(job_id) not in FINAL:
                        response = client.get(f"/v1/jobs/{job_id}")
                        states[job_id] = (
                            response.json()["status"] if response.is_success else "missing"
                        )
                if all(s in FINAL for s in states.values()) or time.monotonic() > deadline:
                    break
                time.sleep(1)
        statuses = _status_counts(url)
        stats = _stats(prefix)
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    total = stats.get("Aggregated", {"requests": 0, "failures": 0})
    by_state: dict[str, int] = {}
    for state in states.values():
        by_state[state] = by_state.get(state, 0) + 1
    result = {
        "users": args.users,
        "run_time": args.run_time,
        "load_seconds": round(load_s, 1),
        "requests": total["requests"],
        "failures_non_429": total["failures"],
        "error_rate": round(total["failures"] / max(1, total["requests"]), 5),
        "responses_by_status": statuses,
        "search": stats.get("search"),
        "submit": stats.get("submit"),
        "poll": stats.get("poll"),
        "upload": stats.get("upload"),
        "jobs": {
            "submitted": len(submitted),
            "finished": sum(by_state.get(s, 0) for s in FINAL),
            "by_status": by_state,
            "unfinished": sum(by_state.get(s, 0) for s in ("queued", "running")),
            "lost": by_state.get("missing", 0),
        },
        "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
