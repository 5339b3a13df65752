#!/usr/bin/env bash
# Stop the embedded S3 server by its recorded PID; its data stays on disk for the next start.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec .venv/bin/nares store server stop
