# Shared helpers for the setup scripts (sourced, not run).
VENV="${NARES_VENV:-$PWD/.venv}"
PY="$VENV/bin/python"
UV="$VENV/bin/uv"
FIND_LINKS=()
# uv does not read pip's configuration: pass its find-links (the local CPU torch) on, from the environment
# or pip's config files (those under $HOME may be missing: a clean CI home).
fl="${PIP_FIND_LINKS:-$(pip config get global.find-links 2>/dev/null || true)}"
[ -n "$fl" ] && FIND_LINKS=(--find-links "$fl")

ensure_venv() {
  if [ ! -x "$PY" ]; then
    python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  fi
  [ -x "$UV" ] || "$PY" -m pip install -q uv==0.13.8
}
