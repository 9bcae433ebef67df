#!/usr/bin/env bash
# GPU readiness check (see benchmarks/gpu_check.py): on a CUDA machine after `make install`,
#   benchmarks/gpu_check.sh            # prints one JSON line; exit 0 when every step passed
#   benchmarks/gpu_check.sh --device cpu   # dry run on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m benchmarks.gpu_check "$@"
