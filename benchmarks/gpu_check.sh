#!/usr/bin/env bash
# The prepared GPU check: every GPU-only figure of the factory, in one run of under 9 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from a copy of the repository (tracked files)
#   bash benchmarks/gpu_check.sh --cpu      # dry run on the CPU with tiny sizes (a few minutes; no GPU figures)
#
# What it does: creates .venv when it is absent (scripts/setup.sh, from requirements.lock; torch==2.13.0 from
# PyPI is a CUDA build on a GPU machine), finds the offline CIFAR-10 subset ($NARES_DATA_DIR, else shared/data,
# ../shared/data, /work/shared/data), then runs `python -m benchmarks.gpu_check`: each section (see
# benchmarks/gpu_check.py) in its own process under its own time budget; a failing section is recorded and the
# next one runs; no section starts after the deadline (GPU_CHECK_TOTAL_S, default 510 s including setup;
# 1500 s for --cpu).
# Output: benchmarks/results/gpu_check_<device>/ (cpu for --cpu): one JSON per section, summary.json and
# summary.md (with this command line and the setup time), memory_model.json (sweep.packing.memory_model).
# Extra arguments go to benchmarks.gpu_check (e.g. --only matmul at_eager, --out DIR). GPU_CHECK_PYTHON picks
# another interpreter; without a working .venv a system python3 with torch is used, the package from here.
set -uo pipefail
cd "$(dirname "$0")/.."
total=510; for a in "$@"; do [ "$a" = "--cpu" ] && total=1500; done   # a CPU dry run is not held to 9 minutes
t0=$(date +%s)
PY="${GPU_CHECK_PYTHON:-.venv/bin/python}"
if ! "$PY" -c "import torch, numpy, yaml, tqdm, nares" 2>/dev/null; then
  echo "gpu_check: setting up .venv (scripts/setup.sh)"
  bash scripts/setup.sh || echo "gpu_check: setup did not finish; going on with what is installed" >&2
fi
if ! "$PY" -c "import torch, nares" 2>/dev/null && python3 -c "import torch, numpy, yaml, tqdm" 2>/dev/null; then
  PY=python3; export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # a system torch, the package from here
  echo "gpu_check: using $(command -v python3) with the repository on PYTHONPATH"
fi
"$PY" -c "import torch, nares" || { echo "gpu_check: no Python with torch and nares's dependencies" >&2; exit 1; }
setup_s=$(( $(date +%s) - t0 ))
echo "gpu_check: setup ${setup_s} s"
if [ -z "${NARES_DATA_DIR:-}" ] || [ ! -f "$NARES_DATA_DIR/cifar10/cifar10_prefix_subset.npz" ]; then
  for d in shared/data ../shared/data /work/shared/data; do
    if [ -f "$d/cifar10/cifar10_prefix_subset.npz" ]; then export NARES_DATA_DIR="$(cd "$d" && pwd)"; break; fi
  done
fi
echo "gpu_check: data ${NARES_DATA_DIR:-(none found: noise images, the precision section fails)}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" TQDM_DISABLE=1
exec "$PY" -m benchmarks.gpu_check --setup-seconds "$setup_s" \
  --deadline-s "$(( ${GPU_CHECK_TOTAL_S:-$total} - setup_s ))" "$@"
