#!/usr/bin/env bash
# One command for a GPU machine: paper-preset throughput (bf16, channels_last_3d, torch.compile), a 1-GPU
# torchrun over NCCL, CUDA decoding and an exact-resume check, into one JSON (default gpu_check.json).
# Without a GPU it says so and runs the CPU dry run (tiny presets, fp32, gloo, CPU decoding), same JSON shape.
# Details and options: benchmarks/gpu_check.py. Python: $PYTHON, else the project's .venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
exec "$python" "$root/benchmarks/gpu_check.py" "$@"
