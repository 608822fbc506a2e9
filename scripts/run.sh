#!/usr/bin/env bash
# Runs the hotline on embedded defaults: SQLite under var/, a local Redis, the sandboxed
# Asterisk 22 (built on first run), demo data; prints the counsellors' SIP logins.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/hotline up "$@"
