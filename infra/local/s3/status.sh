#!/usr/bin/env bash
# Print the embedded S3 server's status as JSON; exit status 0 when it runs and answers.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec .venv/bin/nares store server status
