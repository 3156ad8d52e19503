"""Search latency and recall: Qdrant Edge vs qdrant-client local mode, on synthetic clustered data.

    python bench/search_latency.py                 # 10k and 100k points, ~11 min on 2 busy cores
    python bench/search_latency.py --sizes 10000   # quick look
    nice -n 10 python bench/search_latency.py --sizes 1000000 --no-text --name search_latency_1m
    ... --store /tmp/store1m --ef 1024 --oversampling 8   # build once, probe search settings
    ... --data structured --name search_latency_1m_structured  # low-dim clusters, like CLAP's

Scale: the catalog is generated in float32 chunks and holds one copy of the audio vectors (2 GB at
10^6); text vectors are made per upsert batch and dropped (``--no-text`` stores none: half the
build). Upserts print progress (``optimize()`` cannot: Edge holds the GIL). The ground truth is a
chunked numpy matmul over all queries of a filter at once. qdrant-client local mode is skipped
above ``--local-max`` points: it is brute force in Python, 2-4 s a query already at 10^5. Build
time (upsert + optimize) and the process's RSS are recorded. Exact (full scan) rows use
``--exact-queries`` queries above 10^5, a prefix of the same query list. "engine only" rows time
the Edge call alone with the request built beforehand: against the ``store.search`` row they split
our time from the engine's.

Vectors are 512-d (like CLAP) in ~50 tight clusters; instrument, licence and tempo follow the
cluster, as in a real catalog of sample packs. That is the hard case for filtered HNSW: a filter
keeps a few far-apart islands of the graph. Recall@10 is measured against numpy brute force over
the points the filter keeps. Latency is wall time around ``store.search`` (our validation and
conversion included), one query at a time, after a short warm-up.

Two data models (``--data``), with the same clusters, filters and payload columns:

* ``isotropic`` (default, the committed runs): a point is center + 0.03 Gaussian noise in all 512
  dims. Nearly all of a cluster sits in a thin shell: similarity 0.68 ± 0.017 to a query of its
  cluster, the 30th neighbour only 1.02x as far as the 10th at 10^6. A worst case: nearest
  neighbours there are barely defined, so approximate search cannot tell them apart.
* ``structured``: center + noise in a random ``SUBSPACE_DIM``-d subspace per cluster + a small
  isotropic residual, then normalised. Set from ``bench/embedding_structure.py`` on the bundled
  CLAP's embeddings of demo-catalog stems (results/embedding_structure.md): 4 components hold
  90 % and 6 hold 95 % of the within-family variance, with shares falling ~2x per component; the
  within-family variance is 0.08-0.38 (median 0.15 on the training catalog, 0.21 held out),
  similarity to the family center 0.88-0.91 ± 0.08-0.10. So the subspace has 6 axes with the
  measured shares (``SUBSPACE_SHARES``) carrying 95 % of a total variance ``CLUSTER_VAR`` = 0.2;
  the other 5 % is spread over all 512 dims. Real embeddings are 128-d, from a small demo model
  on synthetic audio; the 512-d setting and the 50 clusters stay, only a cluster's shape
  changes. Queries are fresh points of a cluster in both models.

Writes ``bench/results/<name>.md`` and ``.json`` (``--name``, default ``search_latency``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from index.store import Embedder, Filter, Match, Point, Range, VectorStore, point_id
from index.store.client import ClientStore
from index.store.edge import EdgeStore, HnswParams, to_edge_filter

DIM = 512
CLUSTERS = 50
EMB = Embedder("bench-clap@synthetic", DIM)
INSTRUMENTS = ("drums", "bass", "keys", "pad", "lead", "guitar", "strings", "vocals", "fx", "perc")
# Each licence grants some uses; "sync" is rare, so filtering on it is selective.
LICENCES = {
    "studio-a": ["commercial", "broadcast", "sync"],
    "cc-by": ["commercial", "broadcast", "non-commercial"],
    "cc-by-nc": ["non-commercial"],
    "label-b": ["commercial"],
    "library-c": ["broadcast", "non-commercial"],
}
OUT = Path(__file__).parent / "results"
CHUNK = 100_000  # rows generated / scored at a time: 200 MB of float32 512-d vectors


# Structured data (see the docstring): measured on CLAP demo embeddings, bench/embedding_structure.
SUBSPACE_SHARES = (0.5125, 0.2377, 0.1133, 0.0567, 0.0306, 0.0180)  # mean family PCA spectrum
SUBSPACE_DIM = len(SUBSPACE_SHARES)  # 95 % of the within-family variance (median d95)
CLUSTER_VAR = 0.2  # median within-family total variance of the unit embeddings
RESIDUAL_SHARE = 0.05  # the variance beyond the top components, isotropic over all DIM dims
ISOTROPIC_NOISE = 0.03  # per-dim noise of the default data model


@dataclass
class ClusterModel:
    """How a cluster's points scatter around its center: in all dims, or in a small subspace."""

    data: str  # "isotropic" or "structured"
    centers: np.ndarray  # (clusters, DIM) float64 unit
    bases: np.ndarray | None = None  # (clusters, SUBSPACE_DIM, DIM) float32 orthonormal rows

    def noise(self, cluster: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 offsets from the centers for points of ``cluster`` (ids, one per point)."""
        n = len(cluster)
        if self.bases is None:
            return ISOTROPIC_NOISE * rng.standard_normal((n, DIM), np.float32)
        scales = np.sqrt(CLUSTER_VAR * (1 - RESIDUAL_SHARE) * np.array(SUBSPACE_SHARES))
        scales = (scales / np.sqrt(sum(SUBSPACE_SHARES))).astype(np.float32)
        coords = rng.standard_normal((n, SUBSPACE_DIM), np.float32) * scales
        along = np.einsum("nk,nkd->nd", coords, self.bases[cluster])
        residual = np.sqrt(CLUSTER_VAR * RESIDUAL_SHARE / DIM).astype(np.float32)
        return along + residual * rng.standard_normal((n, DIM), np.float32)

    def sample(self, cluster: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Unit float32 points of the given clusters."""
        return unit(self.centers[cluster].astype(np.float32) + self.noise(cluster, rng))


def make_cluster_model(data: str, centers: np.ndarray, seed: int) -> ClusterModel:
    if data == "isotropic":
        return ClusterModel(data, centers)
    if data != "structured":
        raise ValueError(f"--data: unknown data model {data!r} (isotropic or structured)")
    # Own stream: the isotropic catalog and everything drawn after the centers stay unchanged.
    basis_rng = np.random.default_rng((seed, 2))
    raw = basis_rng.standard_normal((len(centers), DIM, SUBSPACE_DIM))
    bases = np.linalg.qr(raw)[0].transpose(0, 2, 1).astype(np.float32)
    return ClusterModel(data, centers, bases)


@dataclass
class Catalog:
    """Synthetic points plus the columns the ground truth filters on."""

    audio: np.ndarray  # (n, DIM) float32 unit vectors: the one big array kept
    centers: np.ndarray
    model: ClusterModel
    instrument: np.ndarray
    bpm: np.ndarray
    licence: np.ndarray
    ids: list[str]
    seed: int
    with_text: bool  # also store a "text" vector per point, as the app does

    def points(self, start: int, stop: int) -> list[Point]:
        text = self.text(start, stop) if self.with_text else None
        return [
            Point(
                self.ids[i],
                {
                    "catalog": "bench",
                    "kind": "stem",
                    "instrument": str(self.instrument[i]),
                    "bpm": float(self.bpm[i]),
                    "licence": {
                        "id": str(self.licence[i]),
                        "allowed_uses": LICENCES[self.licence[i]],
                    },
                    "embedder": EMB.id,
                },
                {"audio": self.audio[i]}
                if text is None
                else {"audio": self.audio[i], "text": text[i - start]},
            )
            for i in range(start, stop)
        ]

    def text(self, start: int, stop: int) -> np.ndarray:
        """Caption vectors for one batch, from a seed: never searched here, so never kept."""
        rng = np.random.default_rng((self.seed, 1, start))
        return unit(rng.standard_normal((stop - start, DIM), dtype=np.float32))


def make_catalog(
    n: int, seed: int = 0, *, with_text: bool = True, data: str = "isotropic"
) -> Catalog:
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((CLUSTERS, DIM)))
    model = make_cluster_model(data, centers, seed)
    cluster = rng.integers(0, CLUSTERS, n)
    # 80 % of a cluster's items share its instrument and licence (a sample pack), 20 % are random.
    stray = rng.random(n) < 0.2
    inst_idx = np.where(stray, rng.integers(0, len(INSTRUMENTS), n), cluster % len(INSTRUMENTS))
    names = np.array(list(LICENCES))
    lic_idx = np.where(stray, rng.integers(0, len(names), n), (cluster // 3) % len(names))
    bpm = np.clip(rng.normal(60 + (cluster % 12) * 10, 8), 50, 200).round()
    # float32 chunks: a float64 (n, DIM) temporary would be 4 GB per copy at 10^6.
    audio = np.empty((n, DIM), np.float32)
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        audio[a:b] = model.sample(cluster[a:b], np.random.default_rng((seed, 0, a)))
    ids = [point_id("bench", f"{i:064x}") for i in range(n)]
    return Catalog(
        audio,
        centers,
        model,
        np.array(INSTRUMENTS)[inst_idx],
        bpm,
        names[lic_idx],
        ids,
        seed,
        with_text,
    )


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# A query: its vector, our filter, and the same filter as a boolean mask for the ground truth.
Query = tuple[np.ndarray, Filter | None, np.ndarray | None]
FilterMaker = Callable[[Catalog, np.random.Generator], tuple[Filter | None, np.ndarray | None]]


def no_filter(cat: Catalog, rng: np.random.Generator) -> tuple[None, None]:
    return None, None


def instrument_filter(cat: Catalog, rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
    inst = str(rng.choice(INSTRUMENTS))
    return Filter(must=(Match("instrument", inst),)), cat.instrument == inst


def instrument_bpm_filter(cat: Catalog, rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
    inst, lo = str(rng.choice(INSTRUMENTS)), float(rng.integers(70, 150))
    f = Filter(must=(Match("instrument", inst), Range("bpm", gte=lo, lte=lo + 20)))
    return f, (cat.instrument == inst) & (cat.bpm >= lo) & (cat.bpm <= lo + 20)


def licence_filter(use: str) -> FilterMaker:
    granting = [lic for lic, uses in LICENCES.items() if use in uses]
    masks: dict[int, np.ndarray] = {}  # one mask per catalog, shared by all its queries

    def make(cat: Catalog, rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        key = id(cat.licence)
        if key not in masks:
            masks.clear()
            masks[key] = np.isin(cat.licence, granting)
        return Filter(must=(Match("licence.allowed_uses", use),)), masks[key]

    return make


FILTERS: dict[str, FilterMaker] = {
    "none": no_filter,
    "instrument": instrument_filter,
    "instrument + bpm": instrument_bpm_filter,
    "licence use sync": licence_filter("sync"),  # selective
    "licence use commercial": licence_filter("commercial"),  # keeps most points
}


def make_queries(cat: Catalog, make_filter: FilterMaker, count: int, seed: int) -> list[Query]:
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(count):
        cluster = rng.integers(0, CLUSTERS)
        if cat.model.bases is None:  # as the committed isotropic runs drew them
            noise = ISOTROPIC_NOISE * rng.standard_normal(DIM)
            vector = unit(cat.centers[cluster] + noise).astype(np.float32)
        else:  # a fresh point of the cluster, like the catalog's
            vector = cat.model.sample(np.array([cluster]), rng)[0]
        queries.append((vector, *make_filter(cat, rng)))
    return queries


def truths(cat: Catalog, queries: list[Query], k: int = 10) -> list[set[str]]:
    """Top-k ids of every query by brute force over the points its filter keeps.

    One matmul of all queries against ``CHUNK`` rows at a time, keeping a running top-k, so the
    scores matrix stays ~100 MB at any catalog size and the 2 GB of vectors are read once.
    """
    q = np.stack([vector for vector, _, _ in queries])
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_rows = np.zeros((len(queries), k), np.int64)
    for a in range(0, len(cat.ids), CHUNK):
        scores = q @ cat.audio[a : a + CHUNK].T  # (queries, rows)
        for j, (_, _, mask) in enumerate(queries):
            if mask is not None:
                scores[j, ~mask[a : a + CHUNK]] = -np.inf
        top = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        all_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], 1)
        all_rows = np.concatenate([best_rows, top + a], 1)
        keep = np.argsort(-all_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, 1)
        best_rows = np.take_along_axis(all_rows, keep, 1)
    return [
        {cat.ids[r] for r, s in zip(rows, scores, strict=True) if np.isfinite(s)}
        for rows, scores in zip(best_rows, best_scores, strict=True)
    ]


@dataclass
class Row:
    backend: str
    points: int
    filter: str
    mode: str
    queries: int
    selectivity: float
    p50_ms: float
    p99_ms: float
    recall_at_10: float


# One timed search, prepared beforehand: what it does inside is what the row measures.
Call = Callable[[], list]


def measure(calls: list[Call], wants: list[set[str]]) -> tuple[float, float, float]:
    """Wall ms p50 and p99 of ``calls``, and their mean recall@10 against ``wants``."""
    # The ground truth is computed before: its scan between timed queries would flush the caches.
    for call in calls[:5]:  # warm caches and lazy structures
        call()
    latencies, recalls = [], []
    for call, want in zip(calls, wants, strict=True):
        start = time.perf_counter()
        hits = call()
        latencies.append(time.perf_counter() - start)
        recalls.append(len({str(h.id) for h in hits} & want) / max(1, len(want)))
    ms = np.array(latencies) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.mean(recalls))


def store_calls(store: VectorStore, queries: list[Query], *, exact: bool = False) -> list[Call]:
    """``store.search`` as the app calls it: our validation and conversions are timed too."""

    def call(vector: np.ndarray, filter: Filter | None) -> Call:
        return lambda: store.search(
            "audio", vector, embedder_id=EMB.id, filter=filter, limit=10, exact=exact
        )

    return [call(vector, filter) for vector, filter, _ in queries]


def no_acorn_calls(store: EdgeStore, queries: list[Query]) -> list[Call]:
    """Plain filtered HNSW, to show what ACORN buys."""

    def call(vector: np.ndarray, filter: Filter | None) -> Call:
        def search() -> list:
            with_acorn = store.hnsw
            store.hnsw = replace(with_acorn, acorn=False)
            try:
                return store.search("audio", vector, embedder_id=EMB.id, filter=filter, limit=10)
            finally:
                store.hnsw = with_acorn

        return search

    return [call(vector, filter) for vector, filter, _ in queries]


def engine_calls(store: EdgeStore, queries: list[Query], *, float_walk: bool = False) -> list[Call]:
    """The Edge call alone, with the request ``store.search`` would build made beforehand.

    Set against the ``store.search`` row this splits wall time into engine time and ours
    (validation, filter conversion, hits to ``Hit``). ``float_walk`` ignores the int8 copy and
    walks the graph on the float32 vectors, to show what quantization buys.
    """

    def call(vector: np.ndarray, filter: Filter | None) -> Call:
        edge_filter = to_edge_filter(filter)
        params = store._search_params(filtered=edge_filter is not None, exact=False)
        if float_walk:
            params = qe.SearchParams(
                hnsw_ef=params.hnsw_ef,
                acorn=params.acorn,
                quantization=qe.QuantizationSearchParams(ignore=True),
            )
        request = qe.QueryRequest(
            limit=10,
            query=qe.Query.Nearest(vector.tolist(), using="audio"),
            filter=edge_filter,
            params=params,
            with_payload=True,
        )
        return lambda: store.shard.query(request)

    return [call(vector, filter) for vector, filter, _ in queries]


def rss_gib() -> tuple[float, float]:
    """This process's resident set now and at its peak (VmHWM), GiB; mapped store files count."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return tuple(int(fields[key].split()[0]) / 2**20 for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def fill(store: VectorStore, cat: Catalog, batch: int = 1000) -> float:
    n = len(cat.ids)
    every = max(batch, n // 10 // batch * batch)  # ~10 progress lines
    start = time.perf_counter()
    for i in range(0, n, batch):
        store.upsert(cat.points(i, min(i + batch, n)))
        done = min(i + batch, n)
        if n >= 100_000 and (done % every == 0 or done == n):
            elapsed = time.perf_counter() - start
            print(
                f"  upserted {done:,}/{n:,} in {elapsed:.0f} s ({done / elapsed:,.0f} points/s, "
                f"RSS {rss_gib()[0]:.1f} GiB)",
                flush=True,
            )
    store.flush()
    return time.perf_counter() - start


def bench_edge(
    cat: Catalog,
    n_queries: int,
    n_exact: int,
    hnsw: HnswParams,
    filters: list[str],
    store_dir: Path | None,
) -> tuple[list[Row], dict]:
    """Rows for one catalog; with ``store_dir`` the built store is kept there and reused.

    A 10^6 build takes ~20 min on 2 busy cores, so search settings (``--ef``,
    ``--oversampling``) are probed on a kept store; a store that already holds every point of
    the catalog is searched as it is.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = store_dir or Path(tmp)
        with EdgeStore.open(EMB, path, hnsw=hnsw) as store:
            if store.count() == len(cat.ids):
                print(f"  reusing the built store in {path}", flush=True)
                build: dict = {}
            else:
                build = build_store(store, cat)
            info = store.shard.info()
            shard = (
                f"{info.segments_count} segments, {info.indexed_vectors_count:,} indexed vectors"
            )
            print(f"  shard: {shard}", flush=True)
            rows = search_rows(store, cat, n_queries, n_exact, filters)
            if build:
                build["peak_rss_gib"] = rss_gib()[1]
                build["shard"] = shard
    return rows, build


def build_store(store: EdgeStore, cat: Catalog) -> dict:
    upsert_s = fill(store, cat)
    # Edge reports no progress and holds the GIL while it builds (a ticker thread never ran).
    print(f"  optimize started {time.strftime('%H:%M:%S')}: ~16 min at 10^6 on 2 busy cores")
    start = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - start
    rss, peak = rss_gib()
    print(f"  optimize {optimize_s:.0f} s; RSS {rss:.1f} GiB, peak {peak:.1f} GiB", flush=True)
    build = {"upsert_s": upsert_s, "optimize_s": optimize_s, "build_s": upsert_s + optimize_s}
    return build | {"rss_after_build_gib": rss, "peak_rss_gib": peak}


def search_rows(
    store: EdgeStore, cat: Catalog, n_queries: int, n_exact: int, filters: list[str]
) -> list[Row]:
    rows: list[Row] = []
    for name in filters:
        queries = make_queries(cat, FILTERS[name], n_queries, seed=1)
        start = time.perf_counter()
        wants = truths(cat, queries)
        print(f"  ground truth ({name}): {time.perf_counter() - start:.1f} s", flush=True)
        graph = "HNSW + ACORN" if name != "none" else "HNSW"
        modes = {graph: store_calls(store, queries)}
        modes[f"{graph}, engine only"] = engine_calls(store, queries)
        modes[f"{graph}, engine only, float32 walk (int8 off)"] = engine_calls(
            store, queries, float_walk=True
        )
        if name != "none":
            modes["HNSW, no ACORN"] = no_acorn_calls(store, queries)
        if n_exact:
            modes["exact"] = store_calls(store, queries[:n_exact], exact=True)
        for mode, calls in modes.items():
            stats = measure(calls, wants[: len(calls)])
            rows.append(row("edge", cat, name, mode, queries[: len(calls)], *stats))
            print(fmt(rows[-1]), flush=True)
    return rows


def bench_local(cat: Catalog, n_queries: int) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    warnings.filterwarnings("ignore", message="Local mode is not recommended")  # we know
    with ClientStore.local(EMB, path=None) as store:
        upsert_s = fill(store, cat)
        for name, make_filter in FILTERS.items():
            queries = make_queries(cat, make_filter, n_queries, seed=1)
            stats = measure(store_calls(store, queries), truths(cat, queries))
            rows.append(row("local (:memory:)", cat, name, "brute force", queries, *stats))
            print(fmt(rows[-1]), flush=True)
    return rows, {"upsert_s": upsert_s}


def row(
    backend: str, cat: Catalog, name: str, mode: str, queries: list[Query], *stats: float
) -> Row:
    masks = [m for _, _, m in queries if m is not None]
    selectivity = float(np.mean([m.mean() for m in masks])) if masks else 1.0
    return Row(backend, len(cat.ids), name, mode, len(queries), selectivity, *stats)


def fmt(r: Row) -> str:
    return (
        f"| {r.backend} | {r.points:,} | {r.filter} | {r.selectivity:.1%} | {r.mode} | "
        f"{r.queries} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.recall_at_10:.3f} |"
    )


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    models = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
    cpu = models[0].split(":", 1)[1].strip() if models else platform.machine()
    return f"{cpu}, {os.cpu_count()} cores"


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def markdown(rows: list[Row], setup: dict) -> str:
    lines = [
        "| backend | points | filter | kept | mode | queries | p50 ms | p99 ms | recall@10 |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
        *(fmt(r) for r in rows),
        "",
        "| backend | points | upsert s | points/s | optimize s | build s | RSS after build GiB "
        "| peak RSS GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(s: dict, key: str) -> str:
        return f"{s[key]:.1f}" if key in s else "—"

    for key, s in setup.items():
        backend, n = key.rsplit("@", 1)
        rate = int(n) / s["upsert_s"]
        lines.append(
            f"| {backend} | {int(n):,} | {s['upsert_s']:.1f} | {rate:,.0f} | "
            f"{cell(s, 'optimize_s')} | {cell(s, 'build_s')} | "
            f"{cell(s, 'rss_after_build_gib')} | {cell(s, 'peak_rss_gib')} |"
        )
    return "\n".join(lines) + "\n"


def data_note(data: str) -> str:
    if data == "isotropic":
        return f"isotropic (center + {ISOTROPIC_NOISE} noise in all {DIM} dims)"
    return (
        f"structured (center + noise in a random {SUBSPACE_DIM}-d subspace per cluster, shares "
        f"{SUBSPACE_SHARES} of {1 - RESIDUAL_SHARE:.0%} of variance {CLUSTER_VAR}, "
        f"{RESIDUAL_SHARE:.0%} isotropic residual; from bench/embedding_structure.py)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="per filter, Edge")
    parser.add_argument(
        "--exact-queries", type=int, default=100, help="Edge exact rows above 10^5 points (0: none)"
    )
    parser.add_argument("--local-queries", type=int, default=100, help="per filter, local, 10k")
    parser.add_argument("--local-queries-large", type=int, default=20, help="local, >= 50k")
    parser.add_argument("--local-max", type=int, default=100_000, help="skip local mode above")
    parser.add_argument("--no-text", action="store_true", help="store the audio vector only")
    parser.add_argument(
        "--data",
        choices=("isotropic", "structured"),
        default="isotropic",
        help="cluster shape: noise in all dims (default) or in a low-dim subspace (docstring)",
    )
    parser.add_argument("--ef", type=int, default=HnswParams.ef)
    parser.add_argument("--m", type=int, default=HnswParams.m)
    parser.add_argument("--ef-construct", type=int, default=HnswParams.ef_construct)
    parser.add_argument("--oversampling", type=float, default=HnswParams.oversampling)
    parser.add_argument("--filters", nargs="+", choices=list(FILTERS), default=list(FILTERS))
    parser.add_argument(
        "--store", type=Path, help="build the Edge store here and keep it; reuse it if full"
    )
    parser.add_argument("--name", default="search_latency", help="results file stem")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    hnsw = HnswParams(
        m=args.m, ef_construct=args.ef_construct, ef=args.ef, oversampling=args.oversampling
    )

    rows: list[Row] = []
    setup: dict[str, dict] = {}
    skipped: list[str] = []
    load_before, start = load(), time.perf_counter()
    for n in args.sizes:
        print(f"# {n:,} points, {DIM}-d, {CLUSTERS} clusters ({time.strftime('%H:%M:%S')})")
        cat = make_catalog(n, with_text=not args.no_text, data=args.data)
        print(f"  catalog made; RSS {rss_gib()[0]:.1f} GiB", flush=True)
        n_exact = args.queries if n <= 100_000 else min(args.queries, args.exact_queries)
        edge_rows, build = bench_edge(cat, args.queries, n_exact, hnsw, args.filters, args.store)
        rows += edge_rows
        if build:
            setup[f"edge@{n}"] = build
        if n > args.local_max:
            skipped.append(f"{n:,}")
            print(f"  local mode skipped at {n:,} points: brute force, seconds per query")
            continue
        local_n = args.local_queries if n < 50_000 else args.local_queries_large
        local_rows, setup[f"local (:memory:)@{n}"] = bench_local(cat, local_n)
        rows += local_rows

    table = markdown(rows, setup)
    notes = (
        f"Machine: {machine()}; load average (1/5/15 min) {load_before} at start, {load()} at "
        f"end; {time.perf_counter() - start:.0f} s in all. HNSW: {asdict(hnsw)}. "
        f"Vectors stored: {'audio only' if args.no_text else 'audio + text'}. "
        f"Data: {data_note(args.data)}."
    )
    if skipped:
        notes += (
            f" qdrant-client local mode skipped at {', '.join(skipped)} points (brute force in "
            "Python, 2-4 s a query already at 10^5)."
        )
    notes += "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(f"{notes}\n{table}")
    report = {"notes": notes.strip(), "hnsw": asdict(hnsw), "setup": setup, "data": args.data}
    if args.data == "structured":
        report["structure"] = {
            "subspace_dim": SUBSPACE_DIM,
            "subspace_shares": SUBSPACE_SHARES,
            "cluster_var": CLUSTER_VAR,
            "residual_share": RESIDUAL_SHARE,
        }
    report["rows"] = [asdict(r) for r in rows]
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{notes}\n{table}")


if __name__ == "__main__":
    main()
