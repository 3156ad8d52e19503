"""How long the bundled generator takes to render a 10 s take on this CPU (issue 5: ≤ 20 s).

    python bench/render_cpu.py [--model DIR] [--runs 5] [--out bench/results/render_cpu]

Times text-to-audio and audio-to-audio (strength 0.5) at the model's default steps and CFG,
after one warm-up render; reports the median and the split between denoising and decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from audiorag.components import BUNDLED_GENERATOR
from generation.interface import RenderSettings
from generation.loading import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_GENERATOR)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/render_cpu"))
    args = parser.parse_args()

    generator = load_generator(args.model)
    base = RenderSettings(
        prompt="energetic house drums, 124 BPM",
        duration_s=args.duration,
        steps=generator.default_steps,
        cfg=generator.default_cfg,
    )
    samples = round(args.duration * generator.sample_rate)
    init = 0.1 * np.random.default_rng(0).standard_normal((generator.channels, samples))
    cases = {
        "text-to-audio": (base, None),
        "audio-to-audio, strength 0.5": (replace(base, strength=0.5), init.astype(np.float32)),
    }
    generator.render(replace(base, duration_s=1.0, steps=2))  # warm-up
    rows = []
    for name, (settings, init_audio) in cases.items():
        totals, denoise, decode = [], [], []
        for run in range(args.runs):
            started = time.perf_counter()
            result = generator.render(replace(settings, seed=run), init_audio)
            totals.append(time.perf_counter() - started)
            denoise.append(result.timings_s.get("denoise_s", 0.0))
            decode.append(result.timings_s["decode_s"])
            print(f"{name}: run {run + 1}/{args.runs} {totals[-1]:.2f} s", flush=True)
        rows.append(
            {
                "case": name,
                "median_s": round(statistics.median(totals), 3),
                "max_s": round(max(totals), 3),
                "denoise_median_s": round(statistics.median(denoise), 3),
                "decode_median_s": round(statistics.median(decode), 3),
                "denoiser_calls": result.denoiser_calls,
            }
        )
    record = {
        "model": generator.id,
        "duration_s": args.duration,
        "steps": base.steps,
        "cfg": base.cfg,
        "runs": args.runs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# {args.duration:g} s render, {generator.id}, {base.steps} steps, CFG {base.cfg:g}",
        "",
        f"{record['machine']}, torch threads {record['torch_threads']}, "
        f"load average at the end {record['load_average'][0]:.2f}; median of {args.runs} runs "
        "after a warm-up.",
        "",
        "| case | median s | max s | denoising s | decoding s | denoiser calls |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['median_s']} | {r['max_s']} | {r['denoise_median_s']} | "
        f"{r['decode_median_s']} | {r['denoiser_calls']} |"
        for r in rows
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
