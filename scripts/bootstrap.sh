#!/usr/bin/env bash
# Installs what the hotline needs on a fresh Debian machine (run as root, or with sudo):
# Debian packages, the Python virtual environment, and a local Redis when none answers.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_packages=()
# fail2ban + nftables: the SIP lock-out guard; openssl: the cloud seats' TLS certificate.
for package in "$@" debootstrap sip-tester espeak-ng sox ffmpeg redis-server python3-venv \
               fail2ban nftables openssl; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || need_packages+=("$package")
done
if [ "${#need_packages[@]}" -gt 0 ]; then
  # python3-venv only matters when the python3 in PATH has no venv module.
  if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    need_packages=("${need_packages[@]/python3-venv}")
  fi
  if [ -n "$(echo "${need_packages[@]}" | tr -d ' ')" ]; then
    echo "== installing Debian packages: ${need_packages[*]}"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${need_packages[*]}
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating the Python virtual environment (.venv)"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import hotline, pytest, ruff' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "== installing Python packages"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev,speech]'
  touch .venv/.installed
fi
