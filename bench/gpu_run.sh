#!/usr/bin/env bash
# The issue-7 measurement in one call on the lent GPU machine (H100/H200), from the repo root:
#
#   here:    bench/gpu_wheels.sh                          # once: the wheels that machine lacks
#   device:  bash bench/gpu_run.sh render                 # carry: [".whl"]; ~6 min
#            bash bench/gpu_run.sh clap                   # ~2 min
#   here:    tar xzf <files_at>/render_gpu.tgz -C bench/results
#
# Each section rewrites bench/results/render_gpu.{md,json} with what the other one measured
# kept (the script carries results over), so run them in two calls and unpack after each.
# Everything lands in one archive under $OUT: the device tool brings back at most 8 files.
# BENCH_DEVICE=cpu BENCH_SIZE=small (BENCH_WHEELS: another wheel folder) runs the same steps on
# a CPU: how this script is checked.
set -uo pipefail
sections=("${@:-render}")
out_dir="${OUT:-/tmp/out}"
results=/tmp/render_gpu_results
mkdir -p "$out_dir" "$results"
# the other section's results: this machine's earlier call, else the committed ones
if [ ! -f "$results/render_gpu.json" ] && [ -f bench/results/render_gpu.json ]; then
    cp bench/results/render_gpu.json "$results/"
fi

wheels="${BENCH_WHEELS:-.whl}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$wheels"/*.whl || { echo "carry .whl (bench/gpu_wheels.sh)"; exit 1; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

device="${BENCH_DEVICE:-cuda}"
if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv \
        | tee "$results/nvidia-smi.txt"
fi
python3 -c "import torch, diffusers, transformers; print(torch.__version__, \
diffusers.__version__, transformers.__version__)" || exit 1

# the render path's own tests first, the CUDA-only ones included (no device sync in the loop)
python3 -m pytest -q -p no:cacheprovider tests/test_render_fast.py 2>&1 \
    | tee "$results/tests_render_fast.log" | tail -n 3

python3 bench/render_gpu.py --device "$device" --size "${BENCH_SIZE:-full}" \
    --sections "${sections[@]}" --profile \
    --out "$results/render_gpu" 2>&1 | tee "$results/render_gpu_${sections[0]}.log"
status=${PIPESTATUS[0]}
tar czf "$out_dir/render_gpu.tgz" -C "$results" .
cp "$results/render_gpu.md" "$out_dir/" 2>/dev/null
exit "$status"
