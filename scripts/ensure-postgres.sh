#!/usr/bin/env bash
# Prints a PostgreSQL URL for the tests: the server on 127.0.0.1:5432 if one answers,
# else installs and starts one. Creates the test database (and a role when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
url="${HOTLINE_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/hotline_test}"

answers() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

if answers "$url"; then echo "$url"; exit 0; fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "== installing PostgreSQL" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  echo "== starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# The server answers but not to this URL: as its superuser, create the database, and a
# role with a generated password when trust authentication is not on.
mkdir -p var && chmod 700 var
if [ ! -s var/test-pg-password ]; then
  python3 -c 'import secrets; print(secrets.token_hex(16))' > var/test-pg-password
  chmod 600 var/test-pg-password
fi
password="$(cat var/test-pg-password)"
as_postgres() { su postgres -c "psql -Atq -c \"$1\"" >&2; }
as_postgres "DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='hotline') THEN CREATE ROLE hotline LOGIN PASSWORD '$password'; END IF; END\\\$\\\$;"
su postgres -c "psql -Atq -c 'select 1' -d hotline_test" >/dev/null 2>&1 \
  || as_postgres "CREATE DATABASE hotline_test OWNER hotline"
url="postgresql://hotline:$password@127.0.0.1:5432/hotline_test"
answers "$url" || { echo "PostgreSQL does not accept $url" >&2; exit 1; }
echo "$url"
