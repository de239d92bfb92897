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
# Two workers, one per core of CI's machine: most tests are single-threaded (py-evm, a torch
# thread), and the end-to-end ones spend their windows waiting. Work stealing rebalances the long
# tests. FEDMARKET_TEST_WORKERS=0 runs everything in this one process.
exec .venv/bin/python -m pytest -n "${FEDMARKET_TEST_WORKERS:-2}" --dist worksteal "$@"
