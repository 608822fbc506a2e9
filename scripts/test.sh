#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what is missing, then runs
# lint, types, unit and database tests (SQLite and PostgreSQL), and the integration tests
# with real SIP calls into the sandboxed Asterisk, once on SQLite and once on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh postgresql-client
export HOTLINE_TEST_PG_URL="$(bash scripts/ensure-postgres.sh)"
.venv/bin/python -c 'from hotline.redis_service import ensure_redis; from pathlib import Path; ensure_redis("redis://127.0.0.1:6379/0", Path("var").resolve())'

echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== unit and database tests (SQLite and PostgreSQL)"
.venv/bin/python -m pytest -q tests/unit tests/db "$@"
echo "== integration tests on SQLite (real Asterisk, sipp, Redis)"
HOTLINE_TEST_DB=sqlite .venv/bin/python -m pytest -q tests/integration "$@"
echo "== integration tests on PostgreSQL"
HOTLINE_TEST_DB=postgresql .venv/bin/python -m pytest -q tests/integration "$@"
