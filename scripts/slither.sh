#!/usr/bin/env bash
# Static analysis of the deployable contracts (contracts/, without the test-only contracts/test/)
# with slither, compiled offline by the npm solc through scripts/solc-wrapper.js.
# Exits non-zero on any High or Medium finding. Quick when nothing changed: the slither venv is
# stamped, and a clean result is remembered per hash of the sources and this script.
#
# Suppressions: one, `uninitialized-local` on MarketCore's duplicate table (a memory array, which
# Solidity zero-initialises; the reason is written on that line). Any other goes the same way:
# `// slither-disable-next-line <detector>` with why it is safe; never exclude a detector here.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.slither-venv
version=0.11.6
python_bin=${PYTHON:-python3}

if [ ! -x "$venv/bin/slither" ] || [ "$(cat "$venv/.fedmarket-stamp" 2>/dev/null)" != "$version" ]; then
  echo "slither: installing slither-analyzer==$version into $venv"
  [ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
  # slither pins web3 < 8, so it lives apart from .venv
  "$venv/bin/pip" install --quiet "slither-analyzer==$version"
  echo "$version" > "$venv/.fedmarket-stamp"
fi

command -v node >/dev/null || { echo "slither: node is missing: run scripts/setup.sh" >&2; exit 2; }
[ -d node_modules/solc ] || { echo "slither: node_modules/solc is missing: run scripts/setup.sh" >&2; exit 2; }

# The standard-JSON input: every .sol under contracts/ except contracts/test/ (attacker and
# receiver contracts written to misbehave on purpose). Compiled like the deployable build (optimizer
# and viaIR on): without viaIR the settlement code does not compile ("stack too deep").
input=$(mktemp "${TMPDIR:-/tmp}/fedmarket-slither-XXXXXX.json")
trap 'rm -f "$input"' EXIT
node - "$input" <<'JS'
const fs = require('fs');
const path = require('path');
const out = process.argv[2];
const sources = {};
(function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (full !== path.join('contracts', 'test')) walk(full);
    } else if (entry.name.endsWith('.sol')) {
      sources[full.split(path.sep).join('/')] = { content: fs.readFileSync(full, 'utf8') };
    }
  }
})('contracts');
fs.writeFileSync(out, JSON.stringify({
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: 'cancun',
    optimizer: { enabled: true },
    viaIR: true,
    outputSelection: {
      '*': { '*': ['abi', 'evm.bytecode', 'evm.deployedBytecode', 'evm.methodIdentifiers', 'userdoc', 'devdoc'], '': ['ast'] },
    },
  },
}));
JS

key=$( (cat "$input"; cat scripts/slither.sh; echo "$version") | sha256sum | cut -c1-32)
if [ "$(cat "$venv/.last-clean" 2>/dev/null)" = "$key" ]; then
  echo "slither: contracts unchanged since the last clean run"
  exit 0
fi

echo "slither: analysing contracts/ (High and Medium findings fail)"
if "$venv/bin/slither" "$input" \
    --solc scripts/solc-wrapper.js \
    --compile-force-framework solc-json \
    --fail-medium; then
  echo "$key" > "$venv/.last-clean"
  echo "slither: no High or Medium finding"
else
  status=$?
  echo "slither: High or Medium findings (or slither failed), exit $status" >&2
  exit "$status"
fi
