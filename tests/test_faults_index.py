"""Index-side faults: a worker that dies mid-item, two runs on one store, a Qdrant server that is
not there (nothing listening, or a peer that accepts and hangs up)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index.ingest import Indexer
from index.manifest import load_manifest
from index.prepare import CRASH_HOOK_ENV, ProblemReason
from index.store import Embedder, Retry, StoreUnavailable, open_store
from index.store.edge import EdgeStore, StoreInUse

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[1]


def _catalog(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in names:
        sf.write(root / name, rng.standard_normal((44_100, 2)) * 0.2, 44_100)
    rows = [
        {"path": n, "licence": {"id": "L", "holder": "T", "allowed_uses": ["search"]}}
        for n in names
    ]
    (root / "licences.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root


def test_a_worker_that_segfaults_costs_only_its_own_item(tmp_path, embedder, monkeypatch):
    names = [f"loop_{i}.wav" for i in range(6)] + ["crash_me.wav"]
    root = _catalog(tmp_path / "catalog", sorted(names))
    monkeypatch.setenv(CRASH_HOOK_ENV, "crash_me")  # that worker kills itself with SIGSEGV
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        indexer = Indexer(store, embedder, workers=2, batch_size=2)
        report = indexer.run(root, catalog="c", manifest=load_manifest(root / "licences.jsonl"))
        assert report.failed and [p.path for p in report.failed] == ["crash_me.wav"]
        (crashed,) = report.failed
        assert crashed.code is ProblemReason.WORKER_CRASHED
        assert "analysis worker crashed" in crashed.reason
        # the items that shared the broken pool with it were retried, not lost
        assert sorted(report.indexed) == sorted(n for n in names if n != "crash_me.wav")
        assert store.count() == 6
    finally:
        store.close()


def test_a_second_run_on_a_store_in_use_is_refused_naming_folder_and_process(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from index.store import Embedder
                from index.store.edge import EdgeStore
                store = EdgeStore.open(Embedder("e@1", 4), Path({str(tmp_path)!r}))
                print("open", flush=True)
                time.sleep(60)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreInUse) as refused:
            EdgeStore.open(Embedder("e@1", 4), tmp_path)
        assert str(tmp_path) in str(refused.value)
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    EdgeStore.open(Embedder("e@1", 4), tmp_path).close()  # the holder gone, the folder opens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HangUpServer:
    """A TCP peer on loopback that accepts every connection and closes it at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.mark.parametrize("peer", ["nothing listening", "accepts and hangs up"])
def test_unreachable_qdrant_server_is_retried_with_backoff_then_named(peer):
    server = HangUpServer() if peer != "nothing listening" else None
    port = server.port if server else _free_port()
    url = f"http://127.0.0.1:{port}"
    retry = Retry(attempts=4, first_delay_s=0.1, max_delay_s=0.4, max_total_s=10)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        open_store(Embedder("e@1", 4), url=url, retry=retry)
    spent = time.monotonic() - started
    assert url in str(refused.value) and "4 tries" in str(refused.value)
    assert spent >= sum(retry.delays()) - 0.05  # it waited 0.1 + 0.2 + 0.4 s between tries
    if server:
        assert server.accepted >= 4
        server.sock.close()


def test_retry_gives_up_at_its_time_budget():
    url = f"http://127.0.0.1:{_free_port()}"
    retry = Retry(attempts=50, first_delay_s=0.2, max_delay_s=0.2, max_total_s=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=url):
        open_store(Embedder("e@1", 4), url=url, retry=retry)
    assert time.monotonic() - started < 3.0


def test_settings_set_how_hard_a_server_is_retried(tmp_path):
    from types import SimpleNamespace

    from audiorag.components import load_store
    from audiorag.settings import Settings

    url = f"http://127.0.0.1:{_free_port()}"
    settings = Settings(
        data_dir=tmp_path, qdrant_url=url, qdrant_retry_attempts=2, qdrant_retry_max_s=5
    )
    with pytest.raises(StoreUnavailable, match="2 tries"):
        load_store(settings, SimpleNamespace(embedder=Embedder("e@1", 4)))
