"""Accuracy and cost of the stem analysis (tempo, key) against the demo catalog's ground truth,
on the clean stems and on the same stems through a recording chain (room, EQ, compressor,
noise, codec: everything in :mod:`audiorag.democatalog.augment` but the speed change, which
would move the true tempo and key).

    python bench/analysis_accuracy.py [--count 240] [--seed 1] [--catalog DIR] [--dump FILE]

Counts BPM matches (within 2 %, or half/double: :func:`index.analysis.bpm_matches`) over every
stem, and key matches (exact, and exact or relative) over the tonal stems, with the same
``tonal`` hint the indexer gives (drums skip the key). The analysis CPU-seconds per stem are
``time.process_time`` in this one process, so other jobs on the machine do not inflate them.
``--dump`` writes every stem's estimates, to diff two versions of the estimators item by item.

Writes bench/results/analysis_accuracy.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# One thread per library, as index workers run: a BLAS pool's idle threads would spin on the
# other core and count as this process's CPU time.
os.environ["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "1")
os.environ["MKL_NUM_THREADS"] = os.environ.get("MKL_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.decode import Audio, Limits, decode_audio
from audiorag.democatalog import augment
from audiorag.democatalog.catalog import build_demo_catalog
from index.analysis import analyse_audio, bpm_matches, relative_key, warm_up
from index.ingest import kind_of
from index.manifest import load_manifest

RESULTS = Path(__file__).parent / "results"


def recorded(audio: Audio, seed: int) -> Audio:
    """``audio`` (mono downmix) through a room, an EQ, a compressor, noise and a codec."""
    rng = np.random.default_rng(seed)
    y, sr = audio.mono().astype(np.float32), audio.sr
    y = augment.add_room(y, sr, rng)
    y = augment.random_eq(y, sr, rng)
    y = augment.compress(y, sr, rng)
    y = augment.add_noise(y, rng)
    y = augment.codec_round_trip(y, sr, rng)
    return Audio(np.clip(y, -1.0, 1.0)[None, :].astype(np.float32), sr)


def evaluate(folder: Path, *, chain: bool) -> dict:
    """Estimates for every stem of the catalog in ``folder``, and how many are right."""
    manifest = load_manifest(folder / "licences.jsonl")
    rows = []
    cpu = 0.0
    for index, (relative, entry) in enumerate(sorted(manifest.entries.items())):
        if kind_of(Path(relative)) != "stem":
            continue
        audio = decode_audio(folder / relative, Limits())
        if chain:
            audio = recorded(audio, index)
        tonal = False if entry.meta.instrument == "drums" else None
        started = time.process_time()
        result = analyse_audio(audio, tonal=tonal)
        cpu += time.process_time() - started
        truth_key = entry.meta.key
        rows.append(
            {
                "path": relative,
                "bpm": entry.meta.bpm,
                "bpm_estimate": result.bpm,
                "bpm_method": result.bpm_method,
                "bpm_ok": bool(result.bpm and bpm_matches(result.bpm, entry.meta.bpm)),
                "key": truth_key,
                "key_estimate": result.key,
                "key_exact": bool(truth_key) and result.key == truth_key,
                "key_relative": bool(truth_key)
                and result.key in (truth_key, relative_key(truth_key)),
            }
        )
    tonal_rows = [r for r in rows if r["key"]]
    return {
        "stems": len(rows),
        "bpm_ok": sum(r["bpm_ok"] for r in rows),
        "bpm_ok_drums": sum(r["bpm_ok"] for r in rows if not r["key"]),
        "drums": len(rows) - len(tonal_rows),
        "tonal": len(tonal_rows),
        "key_exact": sum(r["key_exact"] for r in tonal_rows),
        "key_exact_or_relative": sum(r["key_relative"] for r in tonal_rows),
        "analysis_cpu_s_per_stem": round(cpu / max(1, len(rows)), 4),
        "rows": rows,
    }


def table(results: dict[str, dict]) -> str:
    lines = [
        "| audio | stems | BPM right | BPM right (drums) | key exact | key exact or relative "
        "| analysis CPU-s/stem |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['stems']} | {r['bpm_ok']}/{r['stems']} "
            f"| {r['bpm_ok_drums']}/{r['drums']} | {r['key_exact']}/{r['tonal']} "
            f"| {r['key_exact_or_relative']}/{r['tonal']} | {r['analysis_cpu_s_per_stem']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=240, help="demo items (one stem each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--catalog", type=Path, default=None, help="an existing demo catalog")
    parser.add_argument("--dump", type=Path, default=None, help="write every estimate here")
    args = parser.parse_args()

    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.catalog
        if folder is None:
            folder = Path(tmp) / "catalog"
            print(f"building a {args.count}-item demo catalog …", flush=True)
            build_demo_catalog(folder, count=args.count, seed=args.seed)
        results = {}
        for name, chain in (("clean", False), ("recording chain", True)):
            print(f"analysing ({name}) …", flush=True)
            results[name] = evaluate(folder, chain=chain)
    text = (
        table(results)
        + f"\n\nDemo catalog: {args.count} items, seed {args.seed}; load average "
        + f"{os.getloadavg()[0]:.1f}.\n"
    )
    print(text)
    if args.dump:
        args.dump.write_text(json.dumps(results, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analysis_accuracy.md").write_text(text)
    summary = {name: {k: v for k, v in r.items() if k != "rows"} for name, r in results.items()}
    (RESULTS / "analysis_accuracy.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
