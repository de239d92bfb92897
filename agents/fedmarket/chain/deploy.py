"""Deploy the compiled contracts and keep an address book per chain (deploy/deployments/<chainId>.json).

An address book records, per contract name: address, deployer, transaction hash, block number,
compiler version and the source hash of the compile that produced the deployed code, so that a
client can tell whether its artifacts match what is on chain.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from fedmarket.chain.compile import MARKETPLACE, Artifact, compile_contracts, compiler_version, source_hash
from fedmarket.chain.embedded import is_embedded
from fedmarket.chain.protocol import min_window_for
from fedmarket.chain.reverts import ErrorDecoder
from fedmarket.chain.transactions import Sender, sender_address
from fedmarket.chain.transactions import send_transaction as send
from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write_json
from fedmarket.paths import repo_root

DEPLOY_GAS_EMBEDDED = 15_000_000
"""Gas limit of a deployment on the embedded chain (estimation costs a second execution there)."""

MARKETPLACE_GAS_LIMITS: dict[str, int] = {
    # Upper bounds within the documented caps (docs/protocol.md): pass them as `gas` on the
    # embedded chain, where estimation doubles the cost of a transaction; on a node they are the
    # floor of the ORDER_DEPENDENT_GAS calls. Measured worst cases at 64 trainers and a committee
    # of 9 (tests/chain/test_gas_limits.py, tests/contracts/test_marketplace_gas.py): newModel 350k,
    # joinAsTrainer 117k (580k for a seat that starts a reveal-order word and a score word: it
    # creates them for all 9 committee positions in both buffers), generateTrainingPayments 2.9M
    # (64 + 32 + 1 payees). Commit-reveal round at the caps (tests/chain/test_gas_limits.py, gas_used):
    # the last revealScores (every median read) 1.48M, a publish that first moves the round past a
    # missed ScoreReveal deadline 1.17M, the last revealVote (settles the round) 2.90M, a closeRound
    # with every update poisoned and a late member 3.78M.
    "newModel": 400_000,
    "payForModel": 80_000,
    "buyLicense": 160_000,  # measured 117,675: the first licence of a task writes fresh slots
    "joinAsTrainer": 800_000,
    "joinAsValidator": 200_000,
    "joinAsAggregator": 250_000,  # ~152k: creates the proposal's slots in both buffers
    "startTraining": 300_000,
    "cancelModel": 4_000_000,
    "leaveModel": 150_000,
    "commitUpdate": 150_000,
    "revealUpdate": 200_000,
    "commitScores": 2_500_000,  # the last commitment ends ScoreCommit (no medians: cheap)
    "revealScores": 2_500_000,  # the last reveal ends ScoreReveal: every median is read
    "publishGlobalModel": 2_000_000,
    "commitVote": 2_000_000,  # may first move the round past a missed ScoreReveal deadline (medians)
    "revealVote": 4_500_000,  # the last reveal settles the round: measured 2,900,308 at the caps
    "closeRound": 4_400_000,  # measured 3,779,301 at the caps (all poisoned, a late member) + ~15 %
    "finalizeContract": 150_000,
    "generateTrainingPayments": 4_000_000,
    "withdraw": 100_000,
}

ORDER_DEPENDENT_GAS: frozenset[str] = frozenset(
    {"commitUpdate", "revealUpdate", "commitScores", "revealScores", "publishGlobalModel", "commitVote", "revealVote", "closeRound"}
)
"""Functions whose gas depends on who comes last, so an estimate made before another participant's
transaction is mined can fall short: the last commit / reveal / score ends its phase (the last
score computes every update's median), a publish or a close may first move the round through
phases whose deadlines passed (Score -> Publish computes the medians too), the last vote settles
the round. On a node the client sends them with at least their limit above (issue 9: a vote
estimated at 39,781 gas was mined as the closing vote, ~200k, and ran out of gas)."""

Deployer = Sender


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
    gas = DEPLOY_GAS_EMBEDDED if is_embedded(w3) else None
    receipt = send_transaction(w3, factory.constructor(*ctor_args), deployer, value=value, gas=gas, errors=ErrorDecoder(artifact.abi))
    address = receipt["contractAddress"]
    if not address:
        raise FedmarketError(f"deploying {name} produced no contract (transaction {receipt['transactionHash'].hex()})")
    contract = w3.eth.contract(address=address, abi=artifact.abi)
    contract.deployment_receipt = receipt  # type: ignore[attr-defined]
    return contract


def deploy_marketplace(w3: Web3, deployer: Deployer, *, record: bool = False, directory: Path | None = None) -> Contract:
    """Deploy the Marketplace (its shortest window: 1 s on dev chains, minutes elsewhere:
    protocol.min_window_for); with `record`, also write it into the chain's address book."""
    contract = deploy_contract(w3, MARKETPLACE, deployer, min_window_for(int(w3.eth.chain_id)))
    if record:
        receipt = contract.deployment_receipt  # type: ignore[attr-defined]
        write_address_book(
            w3.eth.chain_id,
            MARKETPLACE,
            contract.address,
            receipt["transactionHash"].to_0x_hex(),
            receipt["blockNumber"],
            deployer=sender_address(deployer),
            directory=directory,
        )
    return contract


def send_transaction(w3: Web3, call: Any, sender: Deployer, *, value: int = 0, gas: int | None = None, errors: ErrorDecoder | None = None) -> Any:
    """Send a contract call / constructor from `sender` (through `fedmarket.chain.transactions`) and
    wait for its receipt; a revert raises its ContractRevert (decoded with `errors`' ABI)."""
    # build_transaction only encodes here: gas and fees are given, so it asks the node nothing.
    built = call.build_transaction({"from": sender_address(sender), "value": value, "gas": 1, "maxFeePerGas": 1, "maxPriorityFeePerGas": 1, "chainId": 1})
    tx = {"data": built["data"], "value": value}
    if built.get("to"):
        tx["to"] = built["to"]
    what = getattr(call, "fn_name", None) or "the deployment"
    return send(w3, sender, tx, what=what, gas=gas, errors=errors)


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
        "deployedAt": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return atomic_write_json(path, book)


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
