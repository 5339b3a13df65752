#!/usr/bin/env bash
# Regenerate requirements.lock (exact pins of every dependency) from pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_common.sh
ensure_venv
"$UV" pip compile pyproject.toml --extra dev "${FIND_LINKS[@]}" --python-version 3.11 -o requirements.lock
# A local-version torch build (e.g. +cpu) satisfies the plain pin; keep the lock portable to CUDA machines.
sed -i 's/^torch==2\.13\.0+.*/torch==2.13.0/' requirements.lock
