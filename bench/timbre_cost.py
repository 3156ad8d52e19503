"""What a timbre vector costs per item (index/timbre.py): one core, clips of a one-shot's to a
long stem's length, median of repeats.

    nice -n 10 python bench/timbre_cost.py            # writes bench/results/timbre_cost.md

The clips are at the indexer's CLAP rate (48 kHz), as ``index.prepare`` hands them over; the
timbre net hears at most 8 windows of 1.5 s from the first sound, cut before resampling to
22.05 kHz.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one indexing worker's share

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.timbre import timbre_vector  # noqa: E402

SR = 48000
LENGTHS_S = (0.3, 2.0, 10.0, 30.0, 60.0, 300.0)


def clip(seconds: float, seed: int) -> np.ndarray:
    """A tone with noise and a decay: the cost depends on length only."""
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (np.sin(2 * np.pi * 220 * t) * 0.5 + 0.1 * noise).astype(np.float32)


def median_ms(seconds: float, repeats: int) -> float:
    timbre_vector(clip(seconds, 0), SR)  # warm: librosa imports, the scale file
    times = []
    for n in range(repeats):
        audio = clip(seconds, n)
        started = time.perf_counter()
        timbre_vector(audio, SR)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    rows = [(s, median_ms(s, repeats=9 if s <= 30 else 3)) for s in LENGTHS_S]
    lines = [
        f"Timbre vector per item, one thread, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs (median):",
        "",
        "| clip length | ms per item |",
        "|---|---|",
        *(f"| {s:g} s | {ms:.1f} |" for s, ms in rows),
    ]
    table = "\n".join(lines)
    print(table)
    out = ROOT / "bench" / "results" / "timbre_cost.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")


if __name__ == "__main__":
    main()
