"""The one set-up every way of running a market shares: deploy the Marketplace, name the
participants, store the task spec and the initial model, post and fund the task.

`fedmarket demo` (market.engine), `fedmarket up` (market.devnet) and `bench overhead` all start
here, so a market is built the same way whichever runs it: the same names (aggregator,
trainer-1..N, validator-1..K), the same spec and initial-model CIDs for the same TaskSpec, and the
same ModelParams for the same MarketTerms (through roles.buyer.task_params).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fedmarket.chain.protocol import DEFAULT_AGREEMENT_TOLERANCE_BPS, DEFAULT_POISON_THRESHOLD, WEI_PER_ETH
from fedmarket.errors import FedmarketError
from fedmarket.roles import buyer

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

    from fedmarket.chain.client import MarketClient, ModelParams
    from fedmarket.fl.taskspec import TaskData, TaskSpec
    from fedmarket.storage.store import BlobStore

T = TypeVar("T")


@dataclass(frozen=True)
class MarketTerms:
    """What the buyer offers and asks of a market's task: amounts in wei, windows in seconds.
    The defaults are the demo's."""

    rounds: int = 5
    reward: int = WEI_PER_ETH
    top_up: int = WEI_PER_ETH // 2
    license_fee: int = WEI_PER_ETH // 100
    trainer_stake: int = WEI_PER_ETH // 10
    validator_stake: int = WEI_PER_ETH // 20
    aggregator_stake: int = WEI_PER_ETH // 10
    committee: int = 3
    window: int = 120
    late_slash_bps: int = 1_000
    bad_slash_bps: int = 5_000
    poison_threshold: int = DEFAULT_POISON_THRESHOLD
    agreement_tolerance_bps: int = DEFAULT_AGREEMENT_TOLERANCE_BPS

    def check(self) -> None:
        if self.rounds < 1:
            raise FedmarketError("a market needs at least 1 round")
        if self.reward <= 0:
            raise FedmarketError("a market needs a reward > 0 wei")

    def params(self, spec: TaskSpec, spec_cid: str, initial_cid: str, aggregator: str) -> ModelParams:
        """The task's ModelParams: exactly spec.trainers trainers, up to spec.validators validators
        (an elected committee: none, maxValidators 0, and a committee of up to trainers / 2, so that
        a whole next committee sits outside every committee)."""
        elected = spec.committee == "elected"
        committee = min(self.committee, spec.trainers // 2) if elected else min(self.committee, spec.validators)
        return buyer.task_params(
            spec_cid, initial_cid, aggregator, rounds=self.rounds, trainers=spec.trainers, validators=0 if elected else spec.validators,
            committee=committee, window=self.window, license_fee=self.license_fee,
            trainer_stake=self.trainer_stake, validator_stake=self.validator_stake, aggregator_stake=self.aggregator_stake,
            late_slash_bps=self.late_slash_bps, bad_slash_bps=self.bad_slash_bps, poison_threshold=self.poison_threshold,
            agreement_tolerance_bps=self.agreement_tolerance_bps,
        )  # fmt: skip


def participant_names(trainers: int, validators: int) -> list[str]:
    """A market's participants besides the buyer, in this order: aggregator, trainer-1..N, validator-1..K."""
    return ["aggregator", *(f"trainer-{i}" for i in range(1, trainers + 1)), *(f"validator-{j}" for j in range(1, validators + 1))]


def role_of(name: str) -> str:
    """trainer-3 -> trainer, validator-1 -> validator, aggregator -> aggregator."""
    return name.split("-", 1)[0]


def measure_training_s(spec: TaskSpec, task_data: TaskData, *, device: str = "cpu") -> float:
    """Seconds one trainer's local training of round 1 takes here (trainer 1's split, one torch
    thread, as the agents run it): what a commit window must leave room for."""
    import time

    import torch

    from fedmarket.fl.seeds import client_seed, initial_model_seed
    from fedmarket.fl.training import resolve_device, train_local

    idx = task_data.trainer_indices(0)
    model_spec = task_data.model_spec
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        train_local(model_spec.build(), model_spec.init_state(initial_model_seed(spec.seed)), task_data.dataset.x[idx], task_data.dataset.y[idx],
                    spec.train_config(client_seed(spec.seed, 1, 0)), resolve_device(device))  # fmt: skip
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


RESTART_ALLOWANCE_S = 15
"""What a restarted agent takes on a busy machine before it can train: start Python and torch,
load its data, fetch and check the task's files (measured about 10-25 s at a load of 8-10)."""


def window_for_training(train_s: float, trainers: int, cores: int) -> int:
    """A phase window that leaves every trainer room to train while all of them share `cores`
    cores, and a restarted one room to start first: the measured time, times the trainers per
    core, times 3 for a machine that is busy with other work too, plus RESTART_ALLOWANCE_S
    (rounded up to whole seconds)."""
    per_core = -(-trainers // max(1, cores))
    return int(-(-3 * train_s * per_core // 1)) + RESTART_ALLOWANCE_S


@dataclass(frozen=True)
class PostedTask:
    """A deployed Marketplace with the task posted (and funded) on it."""

    market: MarketClient  # signing as the buyer
    model_id: int
    deploy_block: int  # the block the Marketplace was deployed in: where a report starts reading
    spec_cid: str
    initial_cid: str
    task_data: TaskData
    params: ModelParams


def _direct(call: Callable[[], T]) -> T:
    return call()


def set_up_market(
    w3: Web3,
    deployer: LocalAccount,
    buyer_account: LocalAccount,
    store: BlobStore,
    spec: TaskSpec,
    terms: MarketTerms,
    aggregator: str,
    *,
    on_chain: Callable[[Callable[[], Any]], Any] = _direct,
    on_store: Callable[[Callable[[], Any]], Any] = _direct,
    task_data: TaskData | None = None,
) -> PostedTask:
    """Deploy, store the spec and the initial model, post the task escrowing `terms.reward` and
    top it up by `terms.top_up`. `on_chain` / `on_store` wrap each chain and store call (the
    engine times them); `task_data`: the spec's data set when the caller has loaded it already."""
    from fedmarket.chain.client import MarketClient
    from fedmarket.chain.deploy import deploy_marketplace
    from fedmarket.fl.taskspec import TaskData

    terms.check()
    contract = on_chain(lambda: deploy_marketplace(w3, deployer))
    deploy_block = int(contract.deployment_receipt["blockNumber"])
    market = MarketClient(w3, contract.address, buyer_account)
    task_data = task_data if task_data is not None else TaskData.load(spec)
    spec_cid = on_store(lambda: store.add(spec.to_bytes()))
    initial_weights = spec.initial_weights(task_data.dataset)
    initial_cid = on_store(lambda: store.add(initial_weights))
    params = terms.params(spec, spec_cid, initial_cid, aggregator)
    model_id = on_chain(lambda: buyer.post_task(market, params, terms.reward)).model_id
    if terms.top_up:
        on_chain(lambda: buyer.fund_task(market, model_id, terms.top_up))
    return PostedTask(market, model_id, deploy_block, spec_cid, initial_cid, task_data, params)
