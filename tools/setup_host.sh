#!/usr/bin/env bash
# Sets up everything `make run` / `make test` need on a fresh Debian machine:
# Debian packages (only the missing ones) and a virtualenv with pinned packages.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=$(grep -v '^#' debian-packages.txt | xargs)
missing=""
for p in $debs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: these Debian packages are missing:$missing" >&2
    echo "setup: run as root or: sudo apt-get install$missing" >&2
    exit 1
  fi
  echo "setup: installing Debian packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
