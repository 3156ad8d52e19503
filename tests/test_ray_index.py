"""Indexing through Ray (index/distributed.py) on a local two-node Ray cluster: the same points
and payloads as the local indexer, idempotent, resumable, and a worker that dies costs its item.

One module-scoped cluster (Ray's start takes ~10–20 s): two nodes of one CPU each on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from index.distributed import EmbedderSource, RayIndexer  # noqa: E402
from index.ingest import Indexer  # noqa: E402
from index.manifest import load_manifest  # noqa: E402
from index.prepare import CRASH_HOOK_ENV, ProblemReason  # noqa: E402
from index.store import open_store  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    # Workers inherit the environment of the process that starts the nodes: the crash hook must
    # be set before. It only fires for paths containing this needle (the crash test's file).
    os.environ[CRASH_HOOK_ENV] = "crash_me"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    os.environ.pop(CRASH_HOOK_ENV, None)


def _ray_indexer(store, embedder, tiny_clap_folder, **kwargs) -> RayIndexer:
    source = EmbedderSource(str(tiny_clap_folder), batch_size=4)
    return RayIndexer(store, embedder, batch_size=4, source=source, embed_cpus=0, **kwargs)


def _state(store) -> dict[str, tuple[dict, np.ndarray, np.ndarray]]:
    return {
        p.id: (p.payload, p.vectors["audio"], p.vectors["text"])
        for p in store.scroll(with_vectors=True)
    }


def _assert_same(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)  # the same point ids
    for pid, (payload, audio, text) in expected.items():
        assert got[pid][0] == payload  # the same payloads, field for field
        np.testing.assert_allclose(got[pid][1], audio, atol=1e-5)
        np.testing.assert_allclose(got[pid][2], text, atol=1e-5)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, demo_catalog, embedder):
    """The demo catalog indexed by the local indexer (inline), as the state to match."""
    store = open_store(embedder.embedder, path=tmp_path_factory.mktemp("local") / "store")
    try:
        manifest = load_manifest(demo_catalog / "licences.jsonl")
        report = Indexer(store, embedder, workers=0, batch_size=4).run(
            demo_catalog, catalog="demo", manifest=manifest
        )
        return report, _state(store)
    finally:
        store.close()


def test_ray_index_matches_the_local_indexer_and_is_idempotent(
    ray_cluster, tmp_path, demo_catalog, embedder, tiny_clap_folder, local_reference
):
    local_report, expected = local_reference
    assert len(expected) == len(local_report.indexed) > 0
    assert len(ray.nodes()) == 2
    manifest = load_manifest(demo_catalog / "licences.jsonl")
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        indexer = _ray_indexer(store, embedder, tiny_clap_folder)
        report = indexer.run(demo_catalog, catalog="demo", manifest=manifest)
        assert sorted(report.indexed) == sorted(local_report.indexed)
        assert report.failed == local_report.failed == []
        assert sorted(report.skipped, key=lambda p: p.path) == sorted(
            local_report.skipped, key=lambda p: p.path
        )
        assert report.accuracy == local_report.accuracy
        # the work was spread over the cluster and its stages were timed
        assert {"decode", "analysis", "render", "embed", "upsert"} <= set(report.stage_seconds)
        json.dumps(report.to_json())
        _assert_same(_state(store), expected)

        again = indexer.run(demo_catalog, catalog="demo", manifest=manifest)
        assert again.indexed == [] and sorted(again.unchanged) == sorted(report.indexed)
        _assert_same(_state(store), expected)
    finally:
        store.close()


def test_ray_run_resumes_a_killed_run_to_the_identical_state(
    ray_cluster, tmp_path, demo_catalog, embedder, tiny_clap_folder, local_reference
):
    """A run killed mid-way has upserted some of its batches and deleted nothing: resuming with
    Ray from that state ends where a complete run does."""
    _, expected = local_reference
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        ids = sorted(expected)
        kept = ids[: len(ids) // 2]
        store.upsert([p for p in _points(expected) if p.id in kept])  # what the killed run left
        manifest = load_manifest(demo_catalog / "licences.jsonl")
        report = _ray_indexer(store, embedder, tiny_clap_folder).run(
            demo_catalog, catalog="demo", manifest=manifest
        )
        assert len(report.unchanged) == len(kept)
        assert len(report.indexed) == len(ids) - len(kept)
        _assert_same(_state(store), expected)
    finally:
        store.close()


def _points(state: dict):
    from index.store import Point

    return [Point(pid, pl, {"audio": a, "text": t}) for pid, (pl, a, t) in state.items()]


def test_a_ray_worker_that_segfaults_costs_only_its_own_item(
    ray_cluster, tmp_path, embedder, tiny_clap_folder
):
    root = tmp_path / "catalog"
    root.mkdir()
    names = sorted([f"loop_{i}.wav" for i in range(5)] + ["crash_me.wav"])
    rng = np.random.default_rng(1)
    for name in names:
        sf.write(root / name, rng.standard_normal((44_100, 2)) * 0.2, 44_100)
    rows = [
        {"path": n, "licence": {"id": "L", "holder": "T", "allowed_uses": ["search"]}}
        for n in names
    ]
    (root / "licences.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = open_store(embedder.embedder, path=tmp_path / "store")
    try:
        indexer = _ray_indexer(store, embedder, tiny_clap_folder)
        report = indexer.run(root, catalog="c", manifest=load_manifest(root / "licences.jsonl"))
        (crashed,) = report.failed
        assert crashed.path == "crash_me.wav"
        assert crashed.code is ProblemReason.WORKER_CRASHED
        assert "analysis worker crashed" in crashed.reason
        assert sorted(report.indexed) == [n for n in names if n != "crash_me.wav"]
        assert store.count() == 5
    finally:
        store.close()


def test_cli_index_ray_alone_or_with_an_address(tmp_path):
    """A bare ``--ray`` means Ray on this machine; an address after it is kept."""
    import typer

    from audiorag.cli.app import app

    command = typer.main.get_command(app).commands["index"]

    def ray_option(*args: str) -> str | None:
        return command.make_context("index", [str(tmp_path), *args]).params["ray"]

    assert ray_option() is None
    assert ray_option("--ray") == "local"
    assert ray_option("--ray", "--workers", "1") == "local"
    assert ray_option("--ray", "auto") == "auto"
    assert ray_option("--ray=ray://head:10001") == "ray://head:10001"


def test_cli_index_with_ray_reports_like_the_local_run(
    ray_cluster, tmp_path, demo_catalog, tiny_clap_folder, monkeypatch
):
    """``audiorag index DIR --ray`` in-process: it joins the cluster this process is connected
    to, indexes the folder and writes the same report shape as a local run."""
    from typer.testing import CliRunner

    from audiorag.cli.app import app
    from audiorag.settings import get_settings

    catalog = Path(shutil.copytree(demo_catalog, tmp_path / "catalog"))
    rows = (catalog / "licences.jsonl").read_text().splitlines()[:4]
    (catalog / "licences.jsonl").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("AUDIORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUDIORAG_CLAP_MODEL", str(tiny_clap_folder))
    get_settings.cache_clear()
    try:
        report = tmp_path / "report.json"
        result = CliRunner().invoke(
            app, ["index", str(catalog), "--ray", "--report", str(report), "--catalog", "c"]
        )
        assert result.exit_code == 0, result.output
        data = json.loads(report.read_text())
        assert data["counts"]["indexed"] == 4 and data["counts"]["failed"] == 0
        assert data["stage_seconds"]["embed"] > 0
        assert ray.is_initialized()  # the session it joined is left to its owner
    finally:
        get_settings.cache_clear()
