#!/usr/bin/env bash
# Bring up the embedded stack: local S3 (s3rver), Prefect server on SQLite, a Ray head, and a Prefect
# worker serving the deployments of prefect.yaml. State, logs and PID files live under $NARES_HOME (var/).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/nares stack up "$@"
