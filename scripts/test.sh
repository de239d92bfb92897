#!/usr/bin/env bash
# Set up, lint the Python, run the static analysis of the contracts, then the whole test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k wallet`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Lint and format (ruff, pinned in pyproject's dev extra): a finding or an unformatted file fails the run.
.venv/bin/ruff check agents tests
.venv/bin/ruff format --check agents tests
bash scripts/slither.sh
exec .venv/bin/python -m pytest "$@"
