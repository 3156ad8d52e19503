"""Search latency and recall: Qdrant Edge vs qdrant-client local mode, on synthetic clustered data.

    python bench/search_latency.py                 # 10k and 100k points, ~11 min on 2 busy cores
    python bench/search_latency.py --sizes 10000   # quick look

Vectors are 512-d (like CLAP) in ~50 tight clusters; instrument, licence and tempo follow the
cluster, as in a real catalog of sample packs. That is the hard case for filtered HNSW: a filter
keeps a few far-apart islands of the graph. Recall@10 is measured against numpy brute force over
the points the filter keeps. Latency is wall time around ``store.search`` (our validation and
conversion included), one query at a time, after a short warm-up.

Writes ``bench/results/search_latency.md`` and ``.json``.
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

from index.store import Embedder, Filter, Match, Point, Range, VectorStore, point_id
from index.store.client import ClientStore
from index.store.edge import EdgeStore, HnswParams

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


@dataclass
class Catalog:
    """Synthetic points plus the columns the ground truth filters on."""

    audio: np.ndarray  # (n, DIM) unit vectors
    text: np.ndarray
    centers: np.ndarray
    instrument: np.ndarray
    bpm: np.ndarray
    licence: np.ndarray
    ids: list[str]

    def points(self, start: int, stop: int) -> list[Point]:
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
                {"audio": self.audio[i], "text": self.text[i]},
            )
            for i in range(start, stop)
        ]


def make_catalog(n: int, seed: int = 0) -> Catalog:
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((CLUSTERS, DIM)))
    cluster = rng.integers(0, CLUSTERS, n)
    audio = unit(centers[cluster] + 0.03 * rng.standard_normal((n, DIM))).astype(np.float32)
    text = unit(rng.standard_normal((n, DIM))).astype(np.float32)
    # 80 % of a cluster's items share its instrument and licence (a sample pack), 20 % are random.
    stray = rng.random(n) < 0.2
    inst_idx = np.where(stray, rng.integers(0, len(INSTRUMENTS), n), cluster % len(INSTRUMENTS))
    names = np.array(list(LICENCES))
    lic_idx = np.where(stray, rng.integers(0, len(names), n), (cluster // 3) % len(names))
    bpm = np.clip(rng.normal(60 + (cluster % 12) * 10, 8), 50, 200).round()
    ids = [point_id("bench", f"{i:064x}") for i in range(n)]
    return Catalog(audio, text, centers, np.array(INSTRUMENTS)[inst_idx], bpm, names[lic_idx], ids)


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
    def make(cat: Catalog, rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        allowed = np.array([use in LICENCES[lic] for lic in cat.licence])
        return Filter(must=(Match("licence.allowed_uses", use),)), allowed

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
        center = cat.centers[rng.integers(0, CLUSTERS)]
        vector = unit(center + 0.03 * rng.standard_normal(DIM)).astype(np.float32)
        queries.append((vector, *make_filter(cat, rng)))
    return queries


def truth(cat: Catalog, query: Query, k: int = 10) -> set[str]:
    vector, _, mask = query
    scores = cat.audio @ vector
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argsort(-scores)[:k]
    return {cat.ids[i] for i in top if np.isfinite(scores[i])}


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


def measure(
    store: VectorStore, cat: Catalog, queries: list[Query], search: Callable[..., list]
) -> tuple[float, float, float]:
    """Wall ms p50 and p99 of ``search``, and its mean recall@10."""
    # Ground truth first: its 200 MB scan between timed queries would flush the CPU caches.
    wants = [truth(cat, q) for q in queries]
    for vector, filter, _ in queries[:5]:  # warm caches and lazy structures
        search(store, vector, filter)
    latencies, recalls = [], []
    for (vector, filter, _), want in zip(queries, wants, strict=True):
        start = time.perf_counter()
        hits = search(store, vector, filter)
        latencies.append(time.perf_counter() - start)
        recalls.append(len({h.id for h in hits} & want) / max(1, len(want)))
    ms = np.array(latencies) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.mean(recalls))


def searcher(*, exact: bool = False) -> Callable[..., list]:
    def search(store: VectorStore, vector: np.ndarray, filter: Filter | None) -> list:
        return store.search(
            "audio", vector, embedder_id=EMB.id, filter=filter, limit=10, exact=exact
        )

    return search


def without_acorn(store: EdgeStore, vector: np.ndarray, filter: Filter | None) -> list:
    """Plain filtered HNSW, to show what ACORN buys."""
    with_acorn = store.hnsw
    store.hnsw = replace(with_acorn, acorn=False)
    try:
        return searcher()(store, vector, filter)
    finally:
        store.hnsw = with_acorn


def fill(store: VectorStore, cat: Catalog, batch: int = 1000) -> float:
    start = time.perf_counter()
    for i in range(0, len(cat.ids), batch):
        store.upsert(cat.points(i, min(i + batch, len(cat.ids))))
    store.flush()
    return time.perf_counter() - start


def bench_edge(cat: Catalog, n_queries: int, hnsw: HnswParams) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, EdgeStore.open(EMB, Path(tmp), hnsw=hnsw) as store:
        upsert_s = fill(store, cat)
        start = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - start
        for name, make_filter in FILTERS.items():
            queries = make_queries(cat, make_filter, n_queries, seed=1)
            modes = {"HNSW + ACORN" if name != "none" else "HNSW": searcher()}
            if name != "none":
                modes["HNSW, no ACORN"] = without_acorn
            modes["exact"] = searcher(exact=True)
            for mode, search in modes.items():
                stats = measure(store, cat, queries, search)
                rows.append(row("edge", cat, name, mode, queries, *stats))
                print(fmt(rows[-1]), flush=True)
    return rows, {"upsert_s": upsert_s, "optimize_s": optimize_s}


def bench_local(cat: Catalog, n_queries: int) -> tuple[list[Row], dict]:
    rows: list[Row] = []
    warnings.filterwarnings("ignore", message="Local mode is not recommended")  # we know
    with ClientStore.local(EMB, path=None) as store:
        upsert_s = fill(store, cat)
        for name, make_filter in FILTERS.items():
            queries = make_queries(cat, make_filter, n_queries, seed=1)
            stats = measure(store, cat, queries, searcher())
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
        "| backend | points | upsert s | points/s | optimize s |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, s in setup.items():
        backend, n = key.rsplit("@", 1)
        opt = f"{s['optimize_s']:.1f}" if "optimize_s" in s else "—"
        rate = int(n) / s["upsert_s"]
        lines.append(f"| {backend} | {int(n):,} | {s['upsert_s']:.1f} | {rate:,.0f} | {opt} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300, help="per filter, Edge")
    parser.add_argument("--local-queries", type=int, default=100, help="per filter, local, 10k")
    parser.add_argument("--local-queries-large", type=int, default=20, help="local, >= 50k")
    parser.add_argument("--ef", type=int, default=HnswParams.ef)
    parser.add_argument("--m", type=int, default=HnswParams.m)
    parser.add_argument("--ef-construct", type=int, default=HnswParams.ef_construct)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    hnsw = HnswParams(m=args.m, ef_construct=args.ef_construct, ef=args.ef)

    rows: list[Row] = []
    setup: dict[str, dict] = {}
    load_before, start = load(), time.perf_counter()
    for n in args.sizes:
        print(f"# {n:,} points, {DIM}-d, {CLUSTERS} clusters", flush=True)
        cat = make_catalog(n)
        edge_rows, setup[f"edge@{n}"] = bench_edge(cat, args.queries, hnsw)
        local_n = args.local_queries if n < 50_000 else args.local_queries_large
        local_rows, setup[f"local (:memory:)@{n}"] = bench_local(cat, local_n)
        rows += edge_rows + local_rows

    table = markdown(rows, setup)
    notes = (
        f"Machine: {machine()}; load average (1/5/15 min) {load_before} at start, {load()} at "
        f"end; {time.perf_counter() - start:.0f} s in all. HNSW: {asdict(hnsw)}.\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_latency.md").write_text(f"{notes}\n{table}")
    report = {"notes": notes.strip(), "hnsw": asdict(hnsw), "setup": setup}
    report["rows"] = [asdict(r) for r in rows]
    (args.out / "search_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{notes}\n{table}")


if __name__ == "__main__":
    main()
