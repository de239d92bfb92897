#!/usr/bin/env bash
# Set up everything fedmarket needs in this checkout: .venv (Python) and node_modules (solc, anvil,
# hardhat). Idempotent and quick when nothing changed: each step is skipped while its stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
"$python_bin" -c 'import sys; assert sys.version_info >= (3, 11), "fedmarket needs Python >= 3.11"'

py_stamp=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.fedmarket-stamp 2>/dev/null)" != "$py_stamp" ]; then
  echo "setup: Python environment (.venv)"
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  # The CPU build first and pinned: an unpinned torch would pull several GB of CUDA wheels.
  .venv/bin/pip install --quiet "torch==2.13.0"
  .venv/bin/pip install --quiet -e ".[dev]"
  echo "$py_stamp" > .venv/.fedmarket-stamp
fi

node_stamp=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -d node_modules ] || [ "$(cat node_modules/.fedmarket-stamp 2>/dev/null)" != "$node_stamp" ]; then
  echo "setup: Node toolchain (node_modules: solc, anvil, hardhat)"
  # `npm install`, not `npm ci`: the lock lists anvil's optional per-platform packages, and the
  # registry mirror here serves only linux-amd64, which `npm ci` refuses as "out of sync".
  # `npm install` still installs exactly the locked versions (the lock file stays unchanged).
  npm install --no-audit --no-fund --loglevel=error
  echo "$node_stamp" > node_modules/.fedmarket-stamp
fi
