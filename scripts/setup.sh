#!/usr/bin/env bash
# Create or reuse .venv with every pinned dependency, the project itself and the local S3 server.
# Re-running is cheap: nothing is reinstalled unless requirements.lock or infra/local/package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_common.sh
ensure_venv
stamp="$VENV/.nares-installed"
want="$(cat requirements.lock requirements-nodeps.txt infra/local/package.json infra/local/package-lock.json pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned dependencies into $VENV"
  "$UV" pip install -q --python "$PY" "${FIND_LINKS[@]}" --compile-bytecode -r requirements.lock
  # Packages whose declared dependencies would pull CUDA builds: installed without their dependencies.
  [ -s requirements-nodeps.txt ] && "$UV" pip install -q --python "$PY" --no-deps -r requirements-nodeps.txt
  "$UV" pip install -q --python "$PY" --no-deps -e .
  (cd infra/local && npm ci --silent --no-audit --no-fund >/dev/null)
  echo "$want" >"$stamp"
fi
echo "setup: ready ($VENV)"
