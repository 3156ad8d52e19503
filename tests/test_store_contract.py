"""One contract for every vector store backend: Edge on disk, qdrant-client local (memory, disk).

Everything is checked against plain Python / numpy over the same generated points, so a backend
passes only if it agrees with the obvious answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.store import (
    STORE_SCHEMA_VERSION,
    Embedder,
    EmbedderMismatch,
    Filter,
    Match,
    MatchAny,
    Point,
    Range,
    VectorQuery,
    VectorStore,
    open_store,
    point_id,
)
from index.store.client import ClientStore
from index.store.edge import EdgeStore, HnswParams, StoreInUse
from index.timbre import TIMBRE_DIM, timbre_id

DIM = 16
EMB = Embedder("test-clap@1", DIM)
OTHER = Embedder("other-clap@2", DIM)
ROOT = Path(__file__).resolve().parents[1]

# Tiny thresholds so that optimize() really builds HNSW on a few thousand 16-d points and filtered
# searches go through the graph (with the defaults they would all be exact full scans).
EDGE_HNSW = HnswParams(full_scan_kb=1, indexing_threshold_kb=1)

INSTRUMENTS = ("drums", "bass", "keys", "pad", "lead", "guitar")
TAGS = ("warm", "dark", "bright", "punchy", "airy")
USES = ("commercial", "broadcast", "sync", "non-commercial")
LICENCES = ("cc-by", "cc0", "studio-a")


class Backend:
    """Opens, and re-opens, one kind of store in one place."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.memory_client: Any = None

    def open(self, embedder: Embedder = EMB) -> VectorStore:
        if self.kind == "edge":
            return EdgeStore.open(embedder, self.tmp_path / "edge", hnsw=EDGE_HNSW)
        if self.kind == "local-disk":
            return ClientStore.local(embedder, path=self.tmp_path / "local")
        if self.memory_client is None:
            store = ClientStore.local(embedder, path=None)
            self.memory_client = store.client
            return store
        # ":memory:" lives as long as its client: "re-opening" is a new store on the same client.
        return ClientStore(self.memory_client, embedder, "audiorag", is_local=True)

    def reopen(self, store: VectorStore, embedder: Embedder = EMB) -> VectorStore:
        if self.kind != "local-memory":
            store.close()
        return self.open(embedder)


BACKENDS = ["edge", "local-memory", "local-disk"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[VectorStore]:
    s = backend.open()
    yield s
    s.close()


@pytest.fixture(scope="module", params=BACKENDS)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[VectorStore, list[Point]]]:
    """One store per backend filled once, for the tests that only read (local mode on disk
    commits every point to sqlite, so filling a store per test would dominate the suite)."""
    store = Backend(request.param, tmp_path_factory.mktemp(request.param)).open()
    points = make_points(400)  # more than one scroll page
    store.upsert(points)
    yield store, points
    store.close()


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_points(
    n: int, seed: int = 0, *, centers: np.ndarray | None = None, start: int = 0
) -> list[Point]:
    """``n`` points with payloads like ours. With ``centers``, vectors are clustered and the
    instrument follows the cluster, so a filter on it keeps a few far-apart islands."""
    rng = np.random.default_rng(seed)
    if centers is None:
        audio = rng.standard_normal((n, DIM))
        cluster = rng.integers(0, len(INSTRUMENTS), n)
    else:
        cluster = rng.integers(0, len(centers), n)
        audio = centers[cluster] + 0.1 * rng.standard_normal((n, DIM))
    text = rng.standard_normal((n, DIM))
    points = []
    for i in range(n):
        k = start + i
        payload = {
            "catalog": "demo" if k % 3 else "extra",
            "kind": "midi" if k % 5 == 0 else "stem",
            "sha256": f"{k:064x}",
            "instrument": INSTRUMENTS[cluster[i] % len(INSTRUMENTS)],
            "bpm": int(rng.integers(60, 181)),  # integers, so range bounds are hit exactly
            "tags": sorted({str(t) for t in rng.choice(TAGS, size=2)}),
            "licence": {
                "id": LICENCES[k % len(LICENCES)],
                "allowed_uses": sorted({str(u) for u in rng.choice(USES, size=2)}),
            },
            "embedder": EMB.id,
        }
        vectors = {"audio": audio[i].astype(np.float32), "text": text[i].astype(np.float32)}
        points.append(Point(point_id("demo", payload["sha256"]), payload, vectors))
    return points


def brute_force(
    points: list[Point], query: np.ndarray, keep: Callable[[dict], bool], limit: int
) -> list[tuple[str, float]]:
    kept = [p for p in points if keep(p.payload)]
    if not kept:
        return []
    scores = unit(np.stack([p.vectors["audio"] for p in kept])) @ unit(query)
    order = np.argsort(-scores)[:limit]
    return [(kept[i].id, float(scores[i])) for i in order]


def bpm_in(lo: float, hi: float) -> Callable[[dict], bool]:
    return lambda p: lo <= p["bpm"] <= hi


def half_double_time(a: float, b: float) -> Filter:
    """The retrieval filter we really use: bpm in [a, b], or at half or double time."""
    return Filter(
        should=(
            Filter(must=(Range("bpm", gte=a, lte=b),)),
            Range("bpm", gte=a / 2, lte=b / 2),
            Range("bpm", gte=2 * a, lte=2 * b),
        )
    )


# (filter, the same predicate in Python)
FILTER_CASES: dict[str, tuple[Filter, Callable[[dict], bool]]] = {
    "match keyword": (
        Filter(must=(Match("instrument", "drums"),)),
        lambda p: p["instrument"] == "drums",
    ),
    "match array contains": (Filter(must=(Match("tags", "warm"),)), lambda p: "warm" in p["tags"]),
    "match nested key": (
        Filter(must=(Match("licence.id", "cc0"),)),
        lambda p: p["licence"]["id"] == "cc0",
    ),
    "match nested array": (
        Filter(must=(Match("licence.allowed_uses", "sync"),)),
        lambda p: "sync" in p["licence"]["allowed_uses"],
    ),
    "match any keyword": (
        Filter(must=(MatchAny("instrument", ("bass", "keys")),)),
        lambda p: p["instrument"] in ("bass", "keys"),
    ),
    "match any array": (
        Filter(must=(MatchAny("licence.allowed_uses", ("broadcast", "sync")),)),
        lambda p: bool({"broadcast", "sync"} & set(p["licence"]["allowed_uses"])),
    ),
    "range closed": (Filter(must=(Range("bpm", gte=100, lte=120),)), bpm_in(100, 120)),
    "range open above": (Filter(must=(Range("bpm", gte=150),)), lambda p: p["bpm"] >= 150),
    "range open below": (Filter(must=(Range("bpm", lte=80),)), lambda p: p["bpm"] <= 80),
    "nested should (half/double time)": (
        half_double_time(100, 110),
        lambda p: bpm_in(100, 110)(p) or bpm_in(50, 55)(p) or bpm_in(200, 220)(p),
    ),
    "must_not": (
        Filter(must_not=(Match("instrument", "drums"), Match("kind", "midi"))),
        lambda p: p["instrument"] != "drums" and p["kind"] != "midi",
    ),
    "nested all kinds": (
        Filter(
            must=(Match("catalog", "demo"), half_double_time(70, 90)),
            must_not=(Filter(must=(Match("tags", "dark"), Range("bpm", lte=80))),),
        ),
        lambda p: (
            p["catalog"] == "demo"
            and (bpm_in(70, 90)(p) or bpm_in(35, 45)(p) or bpm_in(140, 180)(p))
            and not ("dark" in p["tags"] and p["bpm"] <= 80)
        ),
    ),
}


# ---------------------------------------------------------------- persistence and basic CRUD


def test_reopen_keeps_points_payloads_and_vectors(backend: Backend) -> None:
    points = make_points(50)
    store = backend.open()
    store.upsert(points)
    store = backend.reopen(store)
    try:
        assert store.count() == 50
        got = {p.id: p for p in store.retrieve([p.id for p in points], with_vectors=True)}
        for p in points:
            assert got[p.id].payload == p.payload
            for name in ("audio", "text"):
                # Cosine stores vectors normalised.
                np.testing.assert_allclose(
                    got[p.id].vectors[name], unit(p.vectors[name]), atol=1e-6
                )
    finally:
        store.close()


def test_upsert_same_id_replaces_point(store: VectorStore) -> None:
    first, second = make_points(2)
    store.upsert([first])
    replacement = Point(first.id, {**second.payload, "caption": "new"}, second.vectors)
    store.upsert([replacement])
    assert store.count() == 1
    (got,) = store.retrieve([first.id], with_vectors=True)
    assert got.payload == replacement.payload  # replaced whole, not merged
    np.testing.assert_allclose(got.vectors["audio"], unit(second.vectors["audio"]), atol=1e-6)


def test_delete(store: VectorStore) -> None:
    points = make_points(20)
    store.upsert(points)
    store.delete([p.id for p in points[:5]] + [point_id("demo", "missing")])
    assert store.count() == 15
    assert store.retrieve([points[0].id]) == []
    assert {p.id for p in store.scroll()} == {p.id for p in points[5:]}


def test_retrieve_keeps_request_order_and_skips_missing(store: VectorStore) -> None:
    points = make_points(10)
    store.upsert(points)
    ids = [points[7].id, point_id("demo", "missing"), points[2].id]
    got = store.retrieve(ids)
    assert [p.id for p in got] == [points[7].id, points[2].id]
    assert got[0].vectors == {}  # without with_vectors
    assert got[0].payload == points[7].payload


def test_scroll_pages_through_everything(filled: tuple[VectorStore, list[Point]]) -> None:
    store, points = filled
    seen = [p.id for p in store.scroll()]
    assert len(seen) == len(set(seen)) == len(points)
    assert set(seen) == {p.id for p in points}
    with_vectors = next(iter(store.scroll(with_vectors=True)))
    assert set(with_vectors.vectors) == {"audio", "text"}
    assert with_vectors.vectors["audio"].shape == (DIM,)


# ---------------------------------------------------------------- search and filters


def test_search_order_matches_numpy(filled: tuple[VectorStore, list[Point]]) -> None:
    store, points = filled
    rng = np.random.default_rng(1)
    for _ in range(10):
        query = rng.standard_normal(DIM)
        want = brute_force(points, query, lambda p: True, 10)
        for exact in (False, True):
            hits = store.search("audio", query, embedder_id=EMB.id, limit=10, exact=exact)
            assert [h.id for h in hits] == [i for i, _ in want]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-5)
    text_hits = store.search("text", points[3].vectors["text"], embedder_id=EMB.id, limit=1)
    assert text_hits[0].id == points[3].id
    assert text_hits[0].payload == points[3].payload


def test_search_batch_equals_one_search_per_query(filled: tuple[VectorStore, list[Point]]) -> None:
    """A batch (several vectors, filters, limits; both vector names) answers each query as
    :meth:`search` does, in the order given, and the filtered ones as numpy does."""
    store, points = filled
    rng = np.random.default_rng(7)
    cases = [FILTER_CASES[c] for c in ("match keyword", "match any keyword", "nested all kinds")]
    queries = [
        VectorQuery("audio", rng.standard_normal(DIM), flt, limit=5 + n, exact=True)
        for n, (flt, _) in enumerate(cases)
    ]
    queries += [VectorQuery("text", points[9].vectors["text"], None, limit=3)]
    batch = store.search_batch(queries, embedder_id=EMB.id)
    assert len(batch) == len(queries)
    for q, hits in zip(queries, batch, strict=True):
        one = store.search(
            q.vector_name, q.query, embedder_id=EMB.id, filter=q.filter, limit=q.limit, exact=True
        )
        assert [h.id for h in hits] == [h.id for h in one]
        assert [h.payload for h in hits] == [h.payload for h in one]
    for (_, keep), q, hits in zip(cases, queries, batch, strict=False):
        want = brute_force(points, q.query, keep, q.limit)
        assert [h.id for h in hits] == [i for i, _ in want]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-5)
    assert batch[-1][0].id == points[9].id
    assert store.search_batch([], embedder_id=EMB.id) == []
    with pytest.raises(EmbedderMismatch):
        store.search_batch(queries, embedder_id=OTHER.id)


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filter(filled: tuple[VectorStore, list[Point]], case: str) -> None:
    store, points = filled
    filter, keep = FILTER_CASES[case]
    want_ids = {p.id for p in points if keep(p.payload)}
    assert 0 < len(want_ids) < len(points), "the case should select some points, not all"
    assert store.count(filter) == len(want_ids)
    assert {p.id for p in store.scroll(filter)} == want_ids
    query = np.random.default_rng(2).standard_normal(DIM)
    hits = store.search("audio", query, embedder_id=EMB.id, filter=filter, limit=10)
    assert [h.id for h in hits] == [i for i, _ in brute_force(points, query, keep, 10)]


def test_empty_filter_matches_everything(filled: tuple[VectorStore, list[Point]]) -> None:
    store, points = filled
    assert store.count() == store.count(Filter()) == len(points)
    assert store.count(Filter(must=(Filter(),))) == len(points)


def test_filtered_search_after_optimize_matches_exact(store: VectorStore) -> None:
    """HNSW + filter on clustered data loses recall without ACORN; ours must equal exact."""
    # Only Edge has a graph to get wrong (local mode is brute force, and slow to fill on disk).
    n = 3000 if isinstance(store, EdgeStore) else 500
    centers = unit(np.random.default_rng(3).standard_normal((30, DIM)))
    points = make_points(n, seed=4, centers=centers)
    for i in range(0, len(points), 1000):
        store.upsert(points[i : i + 1000])
    store.optimize()
    if isinstance(store, EdgeStore):  # make sure the graph is really there to be tested
        assert store.shard.info().indexed_vectors_count >= 2 * len(points)
    filters = [
        Filter(must=(Match("instrument", "drums"),)),
        Filter(must=(Match("instrument", "keys"), Range("bpm", gte=90, lte=130))),
        Filter(must=(Match("licence.allowed_uses", "broadcast"),)),
    ]
    rng = np.random.default_rng(5)
    for filter in filters:
        for c in rng.choice(len(centers), 10, replace=False):
            query = centers[c] + 0.1 * rng.standard_normal(DIM)
            ann = store.search("audio", query, embedder_id=EMB.id, filter=filter, limit=10)
            exact = store.search(
                "audio", query, embedder_id=EMB.id, filter=filter, limit=10, exact=True
            )
            assert len(exact) == 10
            assert {h.id for h in ann} == {h.id for h in exact}


# ---------------------------------------------------------------- one embedder per store


@pytest.mark.parametrize("other", [OTHER, Embedder(EMB.id, DIM * 2)], ids=["id", "dim"])
def test_open_with_another_embedder_is_refused(backend: Backend, other: Embedder) -> None:
    store = backend.open()
    store.upsert(make_points(3))
    if backend.kind != "local-memory":
        store.close()
    with pytest.raises(EmbedderMismatch) as err:
        backend.open(other)
    assert EMB.id in str(err.value) and other.id in str(err.value)
    assert str(other.dim) in str(err.value)
    store = backend.open()  # the refused open left the store usable
    assert store.count() == 3
    store.close()


def test_upsert_of_another_embedders_point_writes_nothing(store: VectorStore) -> None:
    good, bad = make_points(2)
    bad.payload["embedder"] = OTHER.id
    with pytest.raises(EmbedderMismatch, match=OTHER.id):
        store.upsert([good, bad])
    unlabelled = Point(good.id, {"catalog": "demo"}, good.vectors)
    with pytest.raises(EmbedderMismatch):
        store.upsert([unlabelled])
    wrong_dim = Point(good.id, good.payload, {"audio": np.ones(DIM + 1, np.float32)})
    with pytest.raises(EmbedderMismatch):
        store.upsert([wrong_dim])
    assert store.count() == 0


def test_search_with_another_embedders_query_is_refused(store: VectorStore) -> None:
    store.upsert(make_points(5))
    with pytest.raises(EmbedderMismatch, match=OTHER.id):
        store.search("audio", np.ones(DIM), embedder_id=OTHER.id)
    with pytest.raises(ValueError):
        store.search("lyrics", np.ones(DIM), embedder_id=EMB.id)


# ---------------------------------------------------------------- timbre vectors, schema


def test_timbre_vectors_are_searched_alone_and_optional(store: VectorStore) -> None:
    """``timbre`` vectors have their own length; points without one (an item whose descriptor
    failed) are stored and simply absent from timbre searches."""
    rng = np.random.default_rng(3)
    points = make_points(30)
    for p in points[:20]:
        p.vectors["timbre"] = rng.standard_normal(TIMBRE_DIM).astype(np.float32)
    store.upsert(points)
    query = rng.standard_normal(TIMBRE_DIM)
    hits = store.search("timbre", query, embedder_id=EMB.id, limit=30, exact=True)
    scores = unit(np.stack([p.vectors["timbre"] for p in points[:20]])) @ unit(query)
    assert [h.id for h in hits] == [points[i].id for i in np.argsort(-scores)]
    with pytest.raises(EmbedderMismatch, match="timbre"):
        store.search("timbre", np.ones(DIM), embedder_id=EMB.id)
    wrong = Point(points[0].id, points[0].payload, {"timbre": np.ones(DIM, np.float32)})
    with pytest.raises(EmbedderMismatch, match="timbre"):
        store.upsert([wrong])


def test_a_store_of_an_older_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    EdgeStore.open(EMB, tmp_path / "edge").close()
    sidecar = tmp_path / "edge" / "store.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "schema": 1}))
    with pytest.raises(EmbedderMismatch, match=r"schema 1.*re-index into a new store"):
        EdgeStore.open(EMB, tmp_path / "edge")
    old = ClientStore.local(EMB, path=tmp_path / "local")
    old.client.update_collection(
        "audiorag", metadata={"audiorag": {"embedder": EMB.id, "dim": DIM, "schema": 1}}
    )
    old.close()
    with pytest.raises(EmbedderMismatch, match=r"schema 1.*re-index into a new store"):
        ClientStore.local(EMB, path=tmp_path / "local")


def test_a_store_of_another_timbre_net_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """Timbre vectors of another net (or scale) cannot be searched beside this one's."""
    EdgeStore.open(EMB, tmp_path / "edge").close()
    sidecar = tmp_path / "edge" / "store.json"
    assert json.loads(sidecar.read_text())["timbre"] == timbre_id()
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "timbre": "timbre-v2@old"}))
    with pytest.raises(EmbedderMismatch, match=r"timbre-v2@old.*re-index into a new store"):
        EdgeStore.open(EMB, tmp_path / "edge")
    old = ClientStore.local(EMB, path=tmp_path / "local")
    record = {"embedder": EMB.id, "dim": DIM, "schema": STORE_SCHEMA_VERSION, "timbre": "x"}
    old.client.update_collection("audiorag", metadata={"audiorag": record})
    old.close()
    with pytest.raises(EmbedderMismatch, match=r"'x'.*re-index into a new store"):
        ClientStore.local(EMB, path=tmp_path / "local")


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    edge = open_store(EMB, path=tmp_path / "edge")
    local = open_store(EMB, path=tmp_path / "local", backend="local")
    try:
        assert isinstance(edge, EdgeStore) and isinstance(local, ClientStore)
        assert (tmp_path / "edge" / "store.json").exists()
    finally:
        edge.close()
        local.close()


# ---------------------------------------------------------------- Edge: quirks, locking, crashes


def test_edge_refuses_boolean_match(tmp_path: Path) -> None:
    # qdrant-edge-py 0.9 turns MatchValue(True) into 1, which silently matches nothing.
    with EdgeStore.open(EMB, tmp_path) as store, pytest.raises(TypeError, match="booleans"):
        store.count(Filter(must=(Match("flag", True),)))


def run_python(code: str, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_edge_folder_is_locked_to_one_process(tmp_path: Path) -> None:
    store = EdgeStore.open(EMB, tmp_path)
    try:
        with pytest.raises(StoreInUse, match="in use by another process"):
            EdgeStore.open(EMB, tmp_path)
        child = run_python(
            f"""
            from pathlib import Path
            from index.store import Embedder
            from index.store.edge import EdgeStore
            EdgeStore.open(Embedder({EMB.id!r}, {DIM}), Path({str(tmp_path)!r}))
            """
        )
        _, stderr = child.communicate(timeout=60)
        assert child.returncode != 0
        assert f"StoreInUse: store folder {tmp_path} is in use by another process" in stderr
    finally:
        store.close()
    EdgeStore.open(EMB, tmp_path).close()  # closing released the lock


def test_edge_points_survive_sigkill_after_upsert(tmp_path: Path) -> None:
    child = run_python(
        f"""
        import sys, time
        from pathlib import Path
        from index.store.edge import EdgeStore
        from tests.test_store_contract import EMB, make_points
        store = EdgeStore.open(EMB, Path({str(tmp_path)!r}))
        points = make_points(1000)
        for i in range(0, 1000, 100):
            store.upsert(points[i : i + 100])
        print("upserted", flush=True)
        time.sleep(60)  # killed here: no flush, no close
        """
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == "upserted\n", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL

    points = make_points(1000)
    with EdgeStore.open(EMB, tmp_path) as store:
        assert store.count() == 1000
        got = store.retrieve([points[-1].id], with_vectors=True)
        assert got[0].payload == points[-1].payload
        np.testing.assert_allclose(
            got[0].vectors["audio"], unit(points[-1].vectors["audio"]), atol=1e-6
        )
