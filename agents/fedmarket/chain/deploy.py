"""Deploy the compiled contracts and keep an address book per chain (deploy/deployments/<chainId>.json).

An address book records, per contract name: address, deployer, transaction hash, block number,
compiler version and the source hash of the compile that produced the deployed code, so that a
client can tell whether its artifacts match what is on chain.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from fedmarket.chain.compile import Artifact, compile_contracts, compiler_version, source_hash
from fedmarket.chain.embedded import is_embedded
from fedmarket.errors import FedmarketError
from fedmarket.paths import repo_root

MARKETPLACE = "Marketplace"

DEPLOY_GAS_EMBEDDED = 15_000_000
"""Gas limit of a deployment on the embedded chain (estimation costs a second execution there)."""

MARKETPLACE_GAS_LIMITS: dict[str, int] = {
    # Upper bounds within the documented caps (docs/protocol.md): pass them as `gas` on the
    # embedded chain, where estimation doubles the cost of a transaction. Measured worst cases
    # (tests/contracts/test_marketplace_gas.py, 64 trainers, committee 9): newModel 324k,
    # joinAsTrainer 117k, submitScores 483k, the last confirmation (which settles the round)
    # 1.7M, generateTrainingPayments 2.9M (64 trainers + 32 validators + 1 payees).
    "newModel": 400_000,
    "payForModel": 80_000,
    "buyLicense": 160_000,  # measured 117,675: the first licence of a task writes fresh slots
    "joinAsTrainer": 200_000,
    "joinAsValidator": 200_000,
    "joinAsAggregator": 150_000,
    "startTraining": 300_000,
    "cancelModel": 4_000_000,
    "commitUpdate": 150_000,
    "revealUpdate": 200_000,
    "submitScores": 600_000,
    "publishGlobalModel": 150_000,
    "confirmGlobalModel": 4_000_000,
    "closeRound": 4_000_000,
    "finalizeContract": 150_000,
    "generateTrainingPayments": 4_000_000,
    "withdraw": 100_000,
}

Deployer = str | LocalAccount


def deployments_dir() -> Path:
    return repo_root() / "deploy" / "deployments"


def deploy_contract(
    w3: Web3,
    name: str,
    deployer: Deployer,
    *ctor_args: Any,
    artifacts: dict[str, Artifact] | None = None,
    value: int = 0,
) -> Contract:
    """Deploy contract `name` from `deployer` (an unlocked address or a LocalAccount) and return it.

    `artifacts` defaults to the cached compile of contracts/ (with contracts/test/ when the name
    is only found there).
    """
    if artifacts is None:
        artifacts = compile_contracts(include_test=False)
        if name not in artifacts:
            artifacts = compile_contracts(include_test=True)
    if name not in artifacts:
        raise FedmarketError(f"no compiled contract named {name!r}")
    artifact = artifacts[name]
    if artifact.bytecode in ("", "0x"):
        raise FedmarketError(f"{name} is abstract or an interface: nothing to deploy")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(w3, factory.constructor(*ctor_args), deployer, value=value, gas=DEPLOY_GAS_EMBEDDED if is_embedded(w3) else None)
    address = receipt["contractAddress"]
    if not address:
        raise FedmarketError(f"deploying {name} produced no contract (transaction {receipt['transactionHash'].hex()})")
    contract = w3.eth.contract(address=address, abi=artifact.abi)
    contract.deployment_receipt = receipt  # type: ignore[attr-defined]
    return contract


def deploy_marketplace(w3: Web3, deployer: Deployer, *, record: bool = False, directory: Path | None = None) -> Contract:
    """Deploy the Marketplace; with `record`, also write it into the chain's address book."""
    contract = deploy_contract(w3, MARKETPLACE, deployer)
    if record:
        receipt = contract.deployment_receipt  # type: ignore[attr-defined]
        write_address_book(
            w3.eth.chain_id,
            MARKETPLACE,
            contract.address,
            receipt["transactionHash"].to_0x_hex(),
            receipt["blockNumber"],
            deployer=_address_of(deployer),
            directory=directory,
        )
    return contract


def send_transaction(w3: Web3, call: Any, sender: Deployer, *, value: int = 0, gas: int | None = None) -> Any:
    """Send a contract call / constructor from `sender` and wait for its receipt; revert -> FedmarketError."""
    params: dict[str, Any] = {"from": _address_of(sender), "value": value}
    if gas is not None:
        params["gas"] = gas
    if isinstance(sender, LocalAccount):
        params["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
        tx = call.build_transaction(params)
        signed = sender.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    else:
        tx_hash = call.transact(params)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.05)
    if receipt["status"] != 1:
        raise FedmarketError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def write_address_book(
    chain_id: int,
    contract: str,
    address: str,
    tx: str,
    block: int,
    *,
    deployer: str | None = None,
    directory: Path | None = None,
) -> Path:
    """Record `contract` at `address` in deploy/deployments/<chain_id>.json (other entries kept)."""
    path = (directory or deployments_dir()) / f"{int(chain_id)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        book = json.loads(path.read_text()) if path.exists() else {}
    except ValueError as exc:
        raise FedmarketError(f"address book {path} is not JSON: {exc}") from exc
    book["chainId"] = int(chain_id)
    book.setdefault("contracts", {})[contract] = {
        "address": Web3.to_checksum_address(address),
        "deployer": Web3.to_checksum_address(deployer) if deployer else None,
        "transactionHash": tx,
        "blockNumber": int(block),
        "compiler": compiler_version(),
        "sourceHash": source_hash(include_test=False),
        "deployedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(book, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def read_address_book(chain_id: int, *, directory: Path | None = None) -> dict[str, Any]:
    """The address book of `chain_id`: {"chainId": ..., "contracts": {name: {address, ...}}}."""
    path = (directory or deployments_dir()) / f"{int(chain_id)}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FedmarketError(f"nothing deployed on chain {chain_id} (no {path}): run `fedmarket deploy`") from exc
    except ValueError as exc:
        raise FedmarketError(f"address book {path} is not JSON: {exc}") from exc


def deployed_address(chain_id: int, contract: str = MARKETPLACE, *, directory: Path | None = None) -> str:
    """The recorded address of `contract` on `chain_id`."""
    book = read_address_book(chain_id, directory=directory)
    try:
        return book["contracts"][contract]["address"]
    except KeyError as exc:
        raise FedmarketError(f"no {contract} recorded for chain {chain_id}: run `fedmarket deploy`") from exc


def _address_of(sender: Deployer) -> str:
    if isinstance(sender, LocalAccount):
        return sender.address
    return Web3.to_checksum_address(sender)
