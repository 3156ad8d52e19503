"""Indexing throughput: the pipeline (parallel decode/analysis, batched embedding and upserts)
against a naive one-file-at-a-time loop doing the same per-file work, in the same run.

    python bench/index_throughput.py [--count 96] [--workers 2] [--batch-size 16]

Writes bench/results/index_throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.tiny_models: the default CLAP

from audio.decode import Limits
from audiorag.democatalog.catalog import build_demo_catalog
from index.clap import SAMPLE_RATE as CLAP_SR
from index.clap import ClapEmbedder
from index.ingest import Indexer, build_payload, file_sha256, kind_of
from index.manifest import load_manifest
from index.prepare import WorkItem, prepare_or_problem
from index.store import Point, open_store, point_id
from tests.tiny_models import build_tiny_clap

RESULTS = Path(__file__).parent / "results"


def naive_loop(folder: Path, store, embedder: ClapEmbedder) -> int:
    """Per file: hash, decode + analyse, embed alone, upsert alone."""
    manifest = load_manifest(folder / "licences.jsonl")
    done = 0
    for relative, entry in manifest.entries.items():
        path = folder / relative
        item = WorkItem(relative, path, kind_of(path), file_sha256(path), entry)
        prepared = prepare_or_problem(item, Limits(), CLAP_SR)
        payload = build_payload(item, "bench", prepared.analysis, embedder.embedder.id)
        audio = embedder.embed_audio([prepared.clip])[0]
        text = embedder.embed_text([payload["caption"]])[0]
        store.upsert(
            [Point(point_id("bench", item.sha256), payload, {"audio": audio, "text": text})]
        )
        done += 1
    store.flush()
    return done


def pipeline(folder: Path, store, embedder: ClapEmbedder, workers: int, batch_size: int) -> int:
    indexer = Indexer(store, embedder, workers=workers, batch_size=batch_size)
    report = indexer.run(folder, catalog="bench", manifest=load_manifest(folder / "licences.jsonl"))
    assert not report.failed, report.failed
    return len(report.indexed)


def timed(fn, *args) -> tuple[int, float]:
    started = time.perf_counter()
    n = fn(*args)
    return n, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=96, help="demo items (2 files each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clap", type=Path, default=None, help="CLAP folder (default: tiny)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = tmp_path / "catalog"
        print(f"building a {args.count}-item demo catalog …", flush=True)
        build_demo_catalog(folder, count=args.count, seed=1)
        clap = args.clap or build_tiny_clap(tmp_path / "tiny-clap")
        embedder = ClapEmbedder.from_pretrained(clap, batch_size=args.batch_size)
        # Warm-up outside the clock: numba JIT caches, first-call allocations.
        naive_loop_subset = tmp_path / "warm"
        build_demo_catalog(naive_loop_subset, count=2, seed=2)
        naive_loop(naive_loop_subset, open_store(embedder.embedder, path=tmp_path / "s0"), embedder)

        runs = {}
        store = open_store(embedder.embedder, path=tmp_path / "s1")
        runs["naive loop (1 process, batch 1)"] = timed(naive_loop, folder, store, embedder)
        store.close()
        store = open_store(embedder.embedder, path=tmp_path / "s2")
        runs[f"pipeline ({args.workers} workers, batch {args.batch_size})"] = timed(
            pipeline, folder, store, embedder, args.workers, args.batch_size
        )
        store.close()

    naive_rate = None
    rows = []
    for name, (items, seconds) in runs.items():
        rate = items / seconds
        naive_rate = naive_rate or rate
        rows.append(
            {
                "run": name,
                "files": items,
                "seconds": round(seconds, 2),
                "files_per_s": round(rate, 2),
                "speedup": round(rate / naive_rate, 2),
            }
        )
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    table = ["| run | files | seconds | files/s | speed-up |", "|---|---|---|---|---|"]
    table += [
        f"| {r['run']} | {r['files']} | {r['seconds']} | {r['files_per_s']} | {r['speedup']}× |"
        for r in rows
    ]
    text = "\n".join(table) + f"\n\nCLAP: {embedder.embedder.id}; machine: {machine}\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index_throughput.md").write_text(text)
    (RESULTS / "index_throughput.json").write_text(
        json.dumps({"rows": rows, "clap": embedder.embedder.id, "machine": machine}, indent=2)
    )


if __name__ == "__main__":
    main()
