#!/usr/bin/env bash
# Start the embedded S3 server (s3rver) on 127.0.0.1:${NARES_S3_PORT:-9444}, data in ${NARES_HOME:-<repo>/var}/s3/data,
# and create the bucket ${NARES_S3_BUCKET:-nares}. Idempotent: a running server is left as it is.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec .venv/bin/nares store server start
