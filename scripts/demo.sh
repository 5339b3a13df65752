#!/usr/bin/env bash
# Set up (or reuse) .venv, then run the main job: `nares demo` (tiny preset end to end on the embedded stack).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NARES_DATA_DIR="${NARES_DATA_DIR:-$(cd .. && pwd)/shared/data}"
exec .venv/bin/nares demo "$@"
