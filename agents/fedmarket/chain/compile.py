"""Compile the Solidity contracts with the npm solc (WebAssembly), offline, cached by source hash.

`scripts/solc-wrapper.js` acts as a solc binary around node_modules/solc: we hand it the
standard-JSON input on stdin and read only the JSON output back (~3 s). The artifacts of a compile
are cached as JSON keyed by a hash of every source, the compiler version and the settings, so
repeated runs and tests do not recompile. Two artifact sets exist:

- "main": contracts/**.sol except contracts/test/ (what gets deployed);
- "test": every source, test-only helper contracts included (contracts/test/).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write
from fedmarket.paths import data_dir, repo_root

MARKETPLACE = "Marketplace"

EVM_VERSION = "cancun"
"""py-evm (the embedded chain) does not run solc 0.8.37's default, osaka."""

OPTIMIZER_RUNS = 200
VIA_IR = True
"""The IR pipeline: cheaper packed-storage code for the round functions (see docs/protocol.md gas figures)."""

COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
    "viaIR": VIA_IR,
    "evmVersion": EVM_VERSION,
    "metadata": {"bytecodeHash": "none"},  # no metadata hash in the code: 53 bytes under the size limit
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]},
    },
}

TEST_DIR = "test"
"""contracts/test/: test-only contracts, compiled only into the "test" artifact set."""

CACHE_FORMAT = 1


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: str = field(repr=False)  # creation code, 0x-prefixed hex
    deployed_bytecode: str = field(repr=False)  # runtime code, 0x-prefixed hex
    source: str = ""  # source unit, e.g. "contracts/Marketplace.sol"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=data["name"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            source=data.get("source", ""),
        )


def contracts_dir() -> Path:
    return repo_root() / "contracts"


def wrapper_path() -> Path:
    return repo_root() / "scripts" / "solc-wrapper.js"


def compiler_version() -> str:
    """The npm solc's version (read from its package.json: no compiler start-up)."""
    package = repo_root() / "node_modules" / "solc" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise FedmarketError(f"the Solidity compiler is missing ({package}): run scripts/setup.sh") from exc


def source_files(include_test: bool = False) -> dict[str, str]:
    """Source unit name (path relative to the repo, e.g. "contracts/lib/Median.sol") -> content."""
    root = repo_root()
    base = contracts_dir()
    if not base.is_dir():
        raise FedmarketError(f"no contracts directory at {base}")
    sources: dict[str, str] = {}
    for path in sorted(base.rglob("*.sol")):
        relative = path.relative_to(base)
        if not include_test and relative.parts[0] == TEST_DIR:
            continue
        sources[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    if not sources:
        raise FedmarketError(f"no Solidity sources under {base}")
    return sources


def source_hash(include_test: bool = False) -> str:
    """sha256 over every source (names and contents), the compiler version and the settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": CACHE_FORMAT, "solc": compiler_version(), "settings": COMPILER_SETTINGS}, sort_keys=True).encode())
    for name, content in source_files(include_test).items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(content.encode()).digest())
    return digest.hexdigest()


def compile_contracts(include_test: bool = False, *, use_cache: bool = True) -> dict[str, Artifact]:
    """Compile contracts/ (with contracts/test/ when `include_test`) -> {contract name: Artifact}.

    Artifacts come from the cache when every source, the compiler and the settings are unchanged;
    `use_cache=False` recompiles (and refreshes the cache). Raises FedmarketError when node or
    node_modules/solc is missing or when the sources do not compile.
    """
    set_name = "test" if include_test else "main"
    key = source_hash(include_test)
    cache_file = _cache_dir() / f"{set_name}.json"
    if use_cache:
        cached = _read_cache(cache_file, key)
        if cached is not None:
            return cached
    artifacts = _compile(source_files(include_test))
    _write_cache(cache_file, key, artifacts)
    return artifacts


def load_artifact(name: str) -> Artifact:
    """The artifact of contract `name`: the deployable set first, then the test-only set."""
    artifacts = compile_contracts(include_test=False)
    if name in artifacts:
        return artifacts[name]
    if (contracts_dir() / TEST_DIR).is_dir():
        artifacts = compile_contracts(include_test=True)
        if name in artifacts:
            return artifacts[name]
    raise FedmarketError(f"no contract named {name!r} under {contracts_dir()}")


def load_market_abi() -> list[dict[str, Any]]:
    """The Marketplace ABI from the (cached) compile of contracts/."""
    return load_artifact(MARKETPLACE).abi


def standard_json_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": content} for name, content in sources.items()},
        "settings": COMPILER_SETTINGS,
    }


def _compile(sources: dict[str, str]) -> dict[str, Artifact]:
    node = shutil.which("node")
    if node is None:
        raise FedmarketError("node is not installed (the Solidity compiler runs on Node.js): run scripts/setup.sh")
    compiler_version()  # node_modules/solc present?
    request = json.dumps(standard_json_input(sources))
    try:
        proc = subprocess.run(
            [node, str(wrapper_path()), "--standard-json"],
            input=request,
            capture_output=True,
            text=True,
            cwd=repo_root(),
            check=False,
        )
    except OSError as exc:
        raise FedmarketError(f"could not run the Solidity compiler: {exc}") from exc
    if proc.returncode != 0:
        raise FedmarketError(f"the Solidity compiler failed: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        output = json.loads(proc.stdout)
    except ValueError as exc:
        raise FedmarketError(f"the Solidity compiler printed no JSON: {proc.stdout[:200]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(e.get("formattedMessage") or e.get("message", "") for e in errors)
        raise FedmarketError(f"the contracts do not compile:\n{text}")
    artifacts: dict[str, Artifact] = {}
    for source, contracts in sorted(output.get("contracts", {}).items()):
        for name, data in sorted(contracts.items()):
            if name in artifacts:
                raise FedmarketError(f"two contracts are named {name!r} ({artifacts[name].source}, {source})")
            evm = data.get("evm", {})
            artifacts[name] = Artifact(
                name=name,
                abi=data.get("abi", []),
                bytecode="0x" + evm.get("bytecode", {}).get("object", ""),
                deployed_bytecode="0x" + evm.get("deployedBytecode", {}).get("object", ""),
                source=source,
            )
    return artifacts


def _cache_dir() -> Path:
    """artifacts/solc/ in the checkout when writable, else the data dir's."""
    preferred = repo_root() / "artifacts" / "solc"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        if os.access(preferred, os.W_OK):
            return preferred
    except OSError:
        pass
    fallback = data_dir() / "artifacts"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _read_cache(path: Path, key: str) -> dict[str, Artifact] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("sourceHash") != key:
        return None
    return {name: Artifact.from_json(item) for name, item in data["contracts"].items()}


def _write_cache(path: Path, key: str, artifacts: dict[str, Artifact]) -> None:
    data = {
        "sourceHash": key,
        "compiler": compiler_version(),
        "settings": COMPILER_SETTINGS,
        "contracts": {name: artifact.to_json() for name, artifact in artifacts.items()},
    }
    # Atomic: concurrent test processes never read a half-written cache (not durable: it is rebuilt).
    atomic_write(path, json.dumps(data))
