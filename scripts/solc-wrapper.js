#!/usr/bin/env node
// A solc "binary" backed by the npm solc (WebAssembly) package, for tools that expect the native
// compiler: py-solc-x (compile_standard with solc_binary), slither / crytic-compile, scripts.
//
//   solc-wrapper.js --version                  -> "solc, the solidity compiler ...\nVersion: <x>"
//   solc-wrapper.js --standard-json [options]  reads the standard-JSON input on stdin and prints
//                                              only the standard-JSON output on stdout
//
// Options understood: --base-path DIR, --include-path DIR (repeatable), --allow-paths A,B (imports
// are resolved only under the repository, base path, include paths and allowed paths). Other
// options that the native solc takes with --standard-json are accepted and ignored.
'use strict';

const fs = require('fs');
const path = require('path');

const repoRoot = path.resolve(__dirname, '..');
let solc;
try {
  solc = require(path.join(repoRoot, 'node_modules', 'solc'));
} catch (err) {
  process.stderr.write('solc-wrapper: node_modules/solc is missing: run scripts/setup.sh\n');
  process.exit(2);
}

const args = process.argv.slice(2);

if (args.includes('--version') || args.includes('-v')) {
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc-wrapper: only --version and --standard-json are supported\n');
  process.exit(2);
}

const roots = [repoRoot, process.cwd()];
const allowed = [repoRoot, process.cwd()];
for (let i = 0; i < args.length; i += 1) {
  const value = args[i + 1];
  if ((args[i] === '--base-path' || args[i] === '--include-path') && value) {
    roots.push(path.resolve(value));
    allowed.push(path.resolve(value));
    i += 1;
  } else if (args[i] === '--allow-paths' && value) {
    for (const p of value.split(',')) if (p) allowed.push(path.resolve(p));
    i += 1;
  }
}

function isAllowed(file) {
  return allowed.some((dir) => file === dir || file.startsWith(dir + path.sep));
}

// Import callback: a source unit name is looked up under each root, then as given (absolute).
function findImports(unitName) {
  const candidates = roots.map((root) => path.resolve(root, unitName));
  if (path.isAbsolute(unitName)) candidates.unshift(unitName);
  candidates.push(path.resolve(repoRoot, 'node_modules', unitName));
  for (const file of candidates) {
    if (!isAllowed(file) && !file.startsWith(path.join(repoRoot, 'node_modules') + path.sep)) continue;
    try {
      return { contents: fs.readFileSync(file, 'utf8') };
    } catch (err) {
      // try the next root
    }
  }
  return { error: 'File not found: ' + unitName };
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  const output = solc.compile(input, { import: findImports });
  process.stdout.write(output + '\n');
});
