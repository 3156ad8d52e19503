"""Indexing at scale: files/s of the local indexer against the Ray indexer with 1 and 2 worker
processes on this machine, in one run, and the per-stage cost of a file (decode, analysis, MIDI
render, embed, upsert, plus the driver's content hash) from which a large run is projected.

    python bench/index_scale.py [--count 48] [--clap FOLDER] [--full-clap]

Each run indexes the same freshly built demo catalog into a fresh Edge store with the same CLAP
(default: the bundled demo CLAP, what ``audiorag index`` runs), after a warm-up (numba caches).
Ray runs start a local Ray with that many CPUs for the decode/analysis tasks; the embedding actor
shares them (as the local indexer's embedding shares the cores with its workers). The stage costs
are measured serially in this process, one file at a time, single-threaded as the index workers
run (BLAS/OpenMP/numba and torch at one thread each), as CPU-seconds of the calling thread
(``time.thread_time``; the upsert: of the process): a file's CPU time is split between its
stages in proportion to their wall time, so other jobs on the machine do not inflate them.
From those, the CPU-bound ceiling of this machine's cores in files/s. ``--full-clap`` also
times a full-size CLAP (transformers' default ClapConfig: HTS-AT + RoBERTa-base, random weights:
the same arithmetic as the released checkpoints) on CPU.

Writes bench/results/index_scale.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# One thread per library, as index workers run (index.ingest.single_threaded_children): with a
# BLAS pool per process, idle threads spin on the other processes' cores and the serial stage
# costs measured here would count that spinning.
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "1")
os.environ["MKL_NUM_THREADS"] = os.environ.get("MKL_NUM_THREADS", "1")
os.environ["NUMBA_NUM_THREADS"] = os.environ.get("NUMBA_NUM_THREADS", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.decode import Limits, file_sha256
from audiorag.democatalog.catalog import build_demo_catalog
from index.analysis import warm_up
from index.clap import BUNDLED_CLAP, WINDOW_SAMPLES, ClapEmbedder, plan_windows
from index.clap import SAMPLE_RATE as CLAP_SR
from index.ingest import Indexer, embed_batch, kind_of
from index.manifest import load_manifest
from index.prepare import Prepared, WorkItem, prepare_or_problem
from index.store import open_store

RESULTS = Path(__file__).parent / "results"


def stage_costs(folder: Path, embedder: ClapEmbedder, store_path: Path, batch: int) -> dict:
    """CPU-seconds per file for each stage, serially, on one thread: hash, decode, analysis,
    render (per kind), embed and upsert (per file, in batches of ``batch``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _stage_costs(folder, embedder, store_path, batch)
    finally:
        torch.set_num_threads(threads)


def _stage_costs(folder: Path, embedder: ClapEmbedder, store_path: Path, batch: int) -> dict:
    manifest = load_manifest(folder / "licences.jsonl")
    per_kind: dict[str, dict[str, list[float]]] = {"stem": {}, "midi": {}}
    prepared: list[Prepared] = []
    durations = []
    for relative, entry in manifest.entries.items():
        path = folder / relative
        kind = kind_of(path)
        started = time.thread_time()
        sha = file_sha256(path)
        per_kind[kind].setdefault("hash", []).append(time.thread_time() - started)
        started = time.thread_time()
        result = prepare_or_problem(WorkItem(relative, path, kind, sha, entry), Limits(), CLAP_SR)
        cpu = time.thread_time() - started
        assert isinstance(result, Prepared), result
        wall = sum(result.seconds.values()) or 1.0
        for stage, spent in result.seconds.items():
            per_kind[kind].setdefault(stage, []).append(spent * cpu / wall)
        if kind == "stem":
            durations.append(result.analysis["duration_s"])
        prepared.append(result)
    store = open_store(embedder.embedder, path=store_path)
    embed = upsert = 0.0
    for i in range(0, len(prepared), batch):
        started = time.thread_time()
        points, failed = embed_batch(embedder, prepared[i : i + batch], "bench")
        embed += time.thread_time() - started
        started = time.process_time()  # the store may work on threads of its own
        store.upsert(points)
        upsert += time.process_time() - started
        assert not failed, failed
    store.close()
    windows = len(plan_windows([p.clip for p in prepared]).windows)
    return {
        "per_kind": {
            kind: {stage: round(statistics.mean(v), 4) for stage, v in stages.items()}
            for kind, stages in per_kind.items()
        },
        "embed_per_file": round(embed / len(prepared), 4),
        "upsert_per_file": round(upsert / len(prepared), 5),
        "windows_per_file": round(windows / len(prepared), 2),
        "stem_seconds_mean": round(statistics.mean(durations), 2),
        "files": len(prepared),
        "kinds": {kind: sum(1 for p in prepared if p.item.kind == kind) for kind in per_kind},
    }


def cpu_per_file(costs: dict) -> float:
    """Mean CPU-seconds of all the work on one file of this catalog (its mix of kinds)."""
    total = 0.0
    for kind, stages in costs["per_kind"].items():
        total += costs["kinds"][kind] * sum(stages.values())
    return total / costs["files"] + costs["embed_per_file"] + costs["upsert_per_file"]


def full_clap_window_seconds(batch: int = 8) -> float:
    """CPU seconds per 10-s window for a full-size CLAP audio tower (random weights)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from index.clap import log_mel_features

    model = ClapModel(ClapConfig()).eval()
    extractor = ClapFeatureExtractor()
    windows = [np.random.default_rng(i).standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.1
               for i in range(batch)]  # fmt: skip
    with torch.inference_mode():
        for _ in range(2):  # the first is a warm-up
            started = time.perf_counter()
            features = log_mel_features(windows, extractor, "cpu")
            model.audio_projection(model.audio_model(input_features=features).pooler_output)
            spent = time.perf_counter() - started
    return spent / batch


def run_local(folder: Path, embedder: ClapEmbedder, store_path: Path, args) -> dict:
    store = open_store(embedder.embedder, path=store_path)
    try:
        indexer = Indexer(store, embedder, workers=args.workers, batch_size=args.batch_size)
        report = indexer.run(
            folder, catalog="bench", manifest=load_manifest(folder / "licences.jsonl")
        )
        assert not report.failed, report.failed
        return {"files": len(report.indexed), "seconds": report.seconds, "start_s": 0.0,
                "stages": report.stage_seconds, "load": os.getloadavg()[0]}  # fmt: skip
    finally:
        store.close()


def run_ray(folder: Path, embedder: ClapEmbedder, store_path: Path, cpus: int, args) -> dict:
    import ray

    from index.distributed import EmbedderSource, RayIndexer, ray_session

    started = time.perf_counter()
    with ray_session("local", num_cpus=cpus):
        ray.get(ray.remote(lambda: None).remote())  # a worker is up: the cluster is ready
        start_s = time.perf_counter() - started
        store = open_store(embedder.embedder, path=store_path)
        try:
            source = EmbedderSource(str(args.clap or BUNDLED_CLAP), batch_size=args.batch_size)
            indexer = RayIndexer(store, embedder, batch_size=args.batch_size, source=source,
                                 embed_cpus=0)  # fmt: skip
            manifest = load_manifest(folder / "licences.jsonl")
            report = indexer.run(folder, catalog="bench", manifest=manifest)
            assert not report.failed, report.failed
            return {"files": len(report.indexed), "seconds": report.seconds,
                    "start_s": start_s, "stages": report.stage_seconds,
                    "load": os.getloadavg()[0]}  # fmt: skip
        finally:
            store.close()


def projection(costs: dict, full_clap_s: float | None) -> list[str]:
    """Hours for 10^6 stems on N CPU nodes + M GPUs, from the measured per-stem costs."""
    stem = costs["per_kind"]["stem"]
    cpu_s = stem.get("decode", 0) + stem.get("analysis", 0)  # per stem, on a worker core
    hash_s = stem.get("hash", 0)  # per stem, on the driver, serial
    upsert_s = costs["upsert_per_file"]
    length = costs["stem_seconds_mean"]
    # as the embedder cuts it (a tail under a second is dropped)
    windows = len(plan_windows([np.zeros(round(length * CLAP_SR), np.float32)]).windows)
    lines = [
        f"Per demo stem ({length} s, {windows} CLAP window): decode+analysis {cpu_s:.3f} "
        f"CPU-s on a worker, content hash {hash_s * 1000:.2f} ms on the driver, upsert "
        f"{upsert_s * 1000:.2f} ms (Edge, batches of 16).",
        "",
        "| N CPU nodes × 32 cores | decode+analysis hours for 10^6 stems (90 % busy) |",
        "|---|---|",
    ]
    for nodes in (1, 4, 16, 64):
        hours = 1e6 * cpu_s / (nodes * 32 * 0.9) / 3600
        lines.append(f"| {nodes} | {hours:.1f} |")
    lines += [
        "",
        "| M GPUs (assumed 500 windows/s each, full-size CLAP) | embed hours for 10^6 stems |",
        "|---|---|",
    ]
    for gpus in (1, 2, 4, 8):
        lines.append(f"| {gpus} | {1e6 * windows / (gpus * 500) / 3600:.2f} |")
    if full_clap_s:
        lines.append(
            f"\nFull-size CLAP on this CPU: {full_clap_s:.3f} s per 10-s window (1 core of 2 "
            f"busy with others): 10^6 stems on CPU alone would need "
            f"{1e6 * windows * full_clap_s / 3600:.0f} core-hours."
        )
    lines.append(
        f"Driver floor (serial): hashing {1e6 * hash_s / 3600:.2f} h + upserting "
        f"{1e6 * upsert_s / 3600:.2f} h for 10^6 stems at these sizes."
    )
    return lines


RUN_STAGES = ("decode", "analysis", "render", "embed", "upsert")


def render(runs: dict, costs: dict, full_clap_s, batch: int, clap: str, machine: str) -> str:
    """The Markdown tables: the runs, the serial stage costs, the projection."""
    lines = [
        "| run | files | seconds | files/s | Ray start s | load avg | "
        + " | ".join(RUN_STAGES)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(RUN_STAGES),
    ]
    for name, r in runs.items():
        per = [f"{r['stages'].get(s, 0) / r['files']:.3f}" for s in RUN_STAGES]
        rate = r["files"] / r["seconds"]
        lines.append(
            f"| {name} | {r['files']} | {r['seconds']:.1f} | {rate:.2f} | {r['start_s']:.1f} | "
            f"{r.get('load', 0):.1f} | " + " | ".join(per) + " |"
        )
    cpu = cpu_per_file(costs)
    cores = os.cpu_count() or 1
    lines += [
        "",
        "Stage columns: wall seconds per file inside each stage, summed over processes "
        "(CPU-seconds when the machine is otherwise idle). *load avg*: the 1-minute load "
        "average at the end of the run.",
        "",
        "| serial, CPU-s per file (1 thread) | hash | decode | analysis | render |",
        "|---|---|---|---|---|",
    ]
    for kind, stages in costs["per_kind"].items():
        cells = [f"{stages.get(s, 0):.4f}" for s in ("hash", "decode", "analysis", "render")]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"embed {costs['embed_per_file']:.4f} CPU-s/file ({costs['windows_per_file']} "
        f"windows/file, batches of {batch}), upsert {costs['upsert_per_file']:.5f} CPU-s/file",
        "",
        f"All the work on one file of this catalog: {cpu:.3f} CPU-s on average, so "
        f"{cores} cores can index at most {cores / cpu:.1f} files/s with every core busy on "
        "indexing and no scheduling or start-up cost.",
        "",
        *projection(costs, full_clap_s),
        "",
        f"CLAP: {clap}; machine: {machine}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=48, help="demo items (2 files each)")
    parser.add_argument("--workers", type=int, default=2, help="the local indexer's pool")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clap", type=Path, default=None, help="CLAP folder (default: bundled)")
    parser.add_argument("--full-clap", action="store_true", help="also time a full-size CLAP")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = tmp_path / "catalog"
        print(f"building a {args.count}-item demo catalog …", flush=True)
        build_demo_catalog(folder, count=args.count, seed=1)
        embedder = ClapEmbedder.from_pretrained(
            args.clap or BUNDLED_CLAP, batch_size=args.batch_size
        )
        warm = tmp_path / "warm"
        build_demo_catalog(warm, count=2, seed=2)
        # as every index worker does at start-up (init_worker): librosa's beat tracker compiles
        # its numba kernels on import (~6 CPU-s), which is no stem's cost
        warm_up()
        stage_costs(warm, embedder, tmp_path / "s-warm", args.batch_size)
        print("stage costs (serial) …", flush=True)
        costs = stage_costs(folder, embedder, tmp_path / "s-stages", args.batch_size)
        runs = {}
        print("local indexer …", flush=True)
        runs[f"local indexer ({args.workers} worker processes)"] = run_local(
            folder, embedder, tmp_path / "s-local", args
        )
        for cpus in (1, 2):
            print(f"Ray, {cpus} worker process(es) …", flush=True)
            runs[f"Ray ({cpus} worker process{'es' if cpus > 1 else ''})"] = run_ray(
                folder, embedder, tmp_path / f"s-ray{cpus}", cpus, args
            )
        full_clap_s = full_clap_window_seconds() if args.full_clap else None

    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0]
    machine = (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, load average {load_start:.1f} "
        f"at the start, {load:.1f} at the end"
    )
    text = render(runs, costs, full_clap_s, args.batch_size, embedder.embedder.id, machine)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index_scale.md").write_text(text)
    (RESULTS / "index_scale.json").write_text(json.dumps(
        {"runs": runs, "stage_costs": costs, "full_clap_window_s": full_clap_s,
         "clap": embedder.embedder.id, "machine": machine}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
