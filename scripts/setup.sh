#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine, idempotently:
# - Java 17+ and Maven (the local Kafka broker is fetched from Maven Central with mvn),
#   installed with apt-get when missing and we are allowed to;
# - a virtualenv in .venv with the project and its extras installed from pyproject.toml.
# Usage: scripts/setup.sh [EXTRAS]   (default: stream,test)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-stream,test}"

need_java=0
if ! command -v java >/dev/null 2>&1; then
  need_java=1
else
  major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1])}')
  [ "${major:-0}" -ge 17 ] || need_java=1
fi
need_mvn=0
command -v mvn >/dev/null 2>&1 || need_mvn=1
if [ "$need_java" = 1 ] || [ "$need_mvn" = 1 ]; then
  pkgs=()
  [ "$need_java" = 1 ] && pkgs+=(openjdk-17-jre-headless)
  [ "$need_mvn" = 1 ] && pkgs+=(maven)
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing ${pkgs[*]} with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  else
    echo "[setup] missing: ${pkgs[*]}. Install Java 17+ and Maven (e.g. sudo apt-get install ${pkgs[*]})." >&2
    exit 1
  fi
fi

# Node 20+ and npm build and test the TypeScript producer (producers/typescript).
node_ok=0
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] && node_ok=1
fi
if [ "$node_ok" = 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing nodejs and npm with apt-get ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
    node_ok=1
  else
    echo "[setup] Node 20+ and npm not available: the TypeScript producer's tests will be skipped" >&2
  fi
fi
if [ "$node_ok" = 1 ]; then
  lock_stamp="producers/typescript/node_modules/.installed-$(sha1sum producers/typescript/package-lock.json | cut -c1-12)"
  if [ ! -f "$lock_stamp" ]; then
    echo "[setup] npm ci in producers/typescript ..." >&2
    (cd producers/typescript && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$lock_stamp"
  fi
fi

# Debian's chromium for the dashboard's browser tests (tests/integration/dashboard), driven by
# the playwright package from the test extras; playwright never downloads a browser of its own.
if [[ ",$extras," == *",test,"* ]] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing chromium with apt-get (dashboard browser tests) ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] chromium is missing: the dashboard's browser tests will be skipped (sudo apt-get install chromium)" >&2
  fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "[setup] Python 3.11+ is required (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv ..." >&2
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the project with extras [$extras] into .venv (first time: a few minutes) ..." >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python --version), java $(java -version 2>&1 | head -1 | cut -d'"' -f2), $(mvn -v 2>/dev/null | head -1 | cut -d' ' -f1-3)" >&2
