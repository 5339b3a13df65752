#!/usr/bin/env bash
# Tear the embedded stack down (worker, Prefect server, Ray head, S3, in that order). Data under $NARES_HOME stays.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/nares stack down "$@"
