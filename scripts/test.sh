#!/usr/bin/env bash
# Set up (or reuse) .venv, then run ruff and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NARES_DATA_DIR="${NARES_DATA_DIR:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
