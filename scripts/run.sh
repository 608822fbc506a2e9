#!/usr/bin/env bash
# Runs the hotline on embedded defaults: SQLite under var/, a local Redis, the sandboxed
# Asterisk 22 (built on first run), demo data; prints the counsellors' SIP logins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The demo's cloud seats take a plain UDP softphone too (production requires TLS + SRTP).
export HOTLINE_ASTERISK__CLOUD_SEAT_TLS_REQUIRED="${HOTLINE_ASTERISK__CLOUD_SEAT_TLS_REQUIRED:-false}"
exec .venv/bin/hotline up "$@"
