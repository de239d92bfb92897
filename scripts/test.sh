#!/usr/bin/env bash
# Set up, run the static analysis of the contracts, then the whole test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k wallet`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/slither.sh
exec .venv/bin/python -m pytest "$@"
