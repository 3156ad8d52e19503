"""bench/render_gpu.py end to end at its small size on the CPU: what a GPU session runs at full
size (``bench/gpu_run.sh``) must not be first found broken on the lent machine."""

import json

import pytest


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "render_gpu"
    argv = ["--device", "cpu", "--size", "small", "--runs", "1", "--warmup", "0", "--profile"]
    assert bench.main([*argv, "--out", str(out), "--clap-batches", "1", "4"]) == 0
    assert out.with_suffix(".md").read_text().startswith("# Render speed")
    return json.loads(out.with_suffix(".json").read_text())


def test_every_render_is_timed(report):
    render = report["render"]
    assert {"stock", "ours:default", "ours:fast"} <= render.keys()
    best = report["best_variant"]
    for name in ("stock", "ours:default", "ours:fast", f"a2a:{best}"):
        assert render[name]["median_s"] > 0, name
    steps = report["settings"]["steps"]
    assert render["ours:fast"]["steps_run"] == steps
    assert render[f"a2a:{best}"]["steps_run"] == round(steps * 0.5)
    assert set(report["profiles"]) >= {"stock", "ours_default", "ours_fast"}


def test_our_first_step_equals_the_stock_pipeline_in_fp32(report):
    numerics = report["numerics"]
    for label in ("ours fp32 (no optimize)", "ours fp32 fast attention"):
        assert numerics[label]["latents_max_abs"] <= 1e-5 * numerics["latent_max_abs"], label


def test_work_is_counted_and_clap_is_swept(report):
    work = report["settings"]["work"]
    assert all(work[key] > 0 for key in ("dit_call_tflop", "vae_decode_tflop", "vae_encode_tflop"))
    clap = report["clap"]
    assert clap["gflop_per_window"] > 0 and clap["log_mel_device_windows_per_s"] > 0
    assert set(clap["batches"]) == {"1", "4"}
    assert all(row["fp32"]["e2e_windows_per_s"] > 0 for row in clap["batches"].values())


def test_full_size_work_is_what_a_1b_dit_costs(bench):
    work = bench.work_counts("full", 1024)  # on the meta device: nothing allocated
    # one CFG pair through the 1.06 B DiT: ~2 FLOP/param/token × 2 × 1,025 tokens, + attention
    assert 4.0 < work["dit_call_tflop"] < 5.0
    assert work["vae_decode_tflop"] == pytest.approx(work["vae_encode_tflop"], rel=0.01)
