"""The semi-centralised market in one process (`fedmarket demo --mode semi`, docs/semi.md).

Deploys a SemiMarket, stores the task's spec and θ0, posts and funds the task, lets every
client join with its stake, starts it, and drives the clients (roles.semi_trainer) on fl.semi's
deterministic virtual clock: `fl.semi.engine.run_events` pops (virtual time, client) events
exactly as `fedmarket sim --mode semi` does and each event runs that client's round against the
chain and the store. The chain's clock follows the virtual one: a round ending at virtual time t
is mined at start + ceil(t x time_scale) chain seconds (one second later than the block before
when two rounds fall on the same second). So the client models equal the simulation's, model for
model. Then every payment epoch is settled, everyone withdraws, and the report gives accuracy,
the device compute-time ratio, the records on chain (re-verified from the events) and the payouts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from web3 import Web3

from fedmarket.chain.embedded import latest_timestamp, set_next_timestamp
from fedmarket.chain.semi_client import MICRO, SemiMarketClient, SemiParams, deploy_semi_market, task_id_of, verify_chain
from fedmarket.errors import FedmarketError
from fedmarket.fl.params import canonical
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.engine import Setup, make_setup, run_events, score_clients
from fedmarket.fl.semi.trust import trust_graph
from fedmarket.fl.sim import state_digest
from fedmarket.roles.semi_agent import semi_spec_bytes
from fedmarket.roles.semi_trainer import InProcessGossip, SemiTrainer
from fedmarket.storage.cid import cid_to_digest
from fedmarket.storage.store import BlobStore
from fedmarket.storage.weights import WeightsMeta, encode_weights

TIME_SCALE = 1000
"""Chain seconds per virtual second (a digits client's round of ~6 SGD steps is 60 chain seconds)."""
WEI = 10**18


@dataclass(frozen=True)
class SemiTerms:
    """The money and payment rules of the posted task (SemiMarket's parameters)."""

    epochs: int = 2
    reward_wei: int = WEI
    stake_wei: int = WEI // 10
    license_fee_wei: int = 0
    late_slash_bps: int = 1_000
    loss_cap: float = 5.0  # a loss >= this scores 1 (of 255)
    pass_score: int = 64  # median bounded score an author needs: loss <= ~3.76 under a 5.0 cap
    min_scorers: int = 1


@dataclass(frozen=True)
class SemiMarketConfig:
    sim: AsyncConfig
    terms: SemiTerms = field(default_factory=SemiTerms)
    time_scale: int = TIME_SCALE

    def check(self) -> None:
        if self.sim.mode != "semi":
            raise FedmarketError(f"the semi market runs mode semi, not {self.sim.mode!r}")
        if self.sim.block_time != 0:
            raise FedmarketError("the semi market serves an upload from the block it is mined in: block_time must be 0")
        if not 2 <= self.sim.clients <= 31:
            raise FedmarketError(f"a semi task has 2..31 clients, not {self.sim.clients}")
        if self.sim.rounds < 1 or self.terms.epochs < 1:
            raise FedmarketError("rounds and payment epochs must be >= 1")


class _ChainedClients:
    """fl.semi.engine's Method: a clock event runs that trainer's round, mined at its chain time."""

    def __init__(self, trainers: list[SemiTrainer], w3: Web3, start_time: int, scale: int, progress: Callable[[str], None]) -> None:
        self.trainers, self.w3, self.start_time, self.scale, self.progress = trainers, w3, start_time, scale, progress

    def step(self, time: float, client: int, round_number: int) -> None:
        chain_time = max(latest_timestamp(self.w3) + 1, self.start_time + math.ceil(time * self.scale))
        set_next_timestamp(self.w3, chain_time)
        outcome = self.trainers[client].step()
        if outcome.round != round_number:
            raise FedmarketError(f"client {client} ran round {outcome.round}, the clock expected {round_number}")
        self.progress(f"client {client} round {round_number} at virtual {time:.3f} s: {outcome.gas_used:,} gas")

    def client_states(self) -> list:
        return [t.state for t in self.trainers]


def _epoch_length(setup_costs: list[float], rounds: int, epochs: int, scale: int, clients: int) -> int:
    """Epochs that cover every client's rounds: the makespan in chain seconds (plus one second per
    transaction for rounds that share a second) over the number of epochs."""
    span = math.ceil(max(setup_costs) * rounds * scale) + clients * rounds
    return max(1, math.ceil(span / epochs))


def run_semi_market(w3: Web3, store: BlobStore, config: SemiMarketConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the whole semi market (module docstring) and return its report."""
    config.check()
    say = progress or (lambda _text: None)
    began = time.perf_counter()
    c, terms = config.sim, config.terms
    accounts = list(w3.eth.accounts)
    if len(accounts) < c.clients + 1:
        raise FedmarketError(f"the chain has {len(accounts)} unlocked accounts; a buyer and {c.clients} clients need {c.clients + 1}")
    buyer, client_accounts = accounts[0], accounts[1 : c.clients + 1]
    say("loading the data and the clients' splits")
    setup = make_setup(c)

    say("deploying SemiMarket, storing the spec and θ0")
    market = deploy_semi_market(w3, buyer)
    epoch_length = _epoch_length(setup.costs, c.rounds, terms.epochs, config.time_scale, c.clients)
    posted = post_semi_task(market.with_account(buyer), store, config, setup, epoch_length)
    task_id, params, owner = posted.task_id, posted.params, market.with_account(buyer)
    for account in client_accounts:
        market.with_account(account).join_task(task_id)
    owner.start_task(task_id)
    start_time = market.get_task(task_id).state.start_time

    gossip = InProcessGossip(trust_graph(c.trust, c.clients, c.seed))
    trainers = [SemiTrainer(i, market.with_account(a), task_id, setup, store, gossip) for i, a in enumerate(client_accounts)]
    method = _ChainedClients(trainers, w3, start_time, config.time_scale, say)
    curve, ledger = run_events(setup, method)

    say("settling the payment epochs and withdrawing")
    end = start_time + params.epochs * params.epoch_length
    if latest_timestamp(w3) + 1 < end:
        set_next_timestamp(w3, end)
    for _ in range(params.epochs):
        owner.settle_epoch(task_id)
    for account in [buyer, *client_accounts]:
        if market.credit(account) > 0:
            market.with_account(account).withdraw()

    client_metrics, average_metrics = score_clients(setup, method.client_states())
    outcomes = [o for t in trainers for o in t.outcomes]
    seconds = {k: round(sum(getattr(o, k) for o in outcomes), 3) for k in ("train_s", "chain_s", "storage_s")}
    report = chain_report(market, task_id, config, client_accounts, buyer, setup.stragglers, [o.gas_used for o in outcomes], seconds)
    report.update(
        final={"client_models": client_metrics.to_dict(), "average_model": average_metrics.to_dict()},
        curve=[p.to_dict() for p in curve],
        clock=ledger.summary(setup.costs, setup.stragglers),
        compute_time_ratio=ledger.ratio(),
        client_digests=[state_digest(t.state) for t in trainers],
        spec_cid=posted.spec_cid,
        initial_cid=posted.initial_cid,
        epoch_length_s=params.epoch_length,
        wall_s=round(time.perf_counter() - began, 3),
    )
    return report


@dataclass(frozen=True)
class PostedSemiTask:
    task_id: int
    params: SemiParams
    spec_cid: str
    initial_cid: str


def post_semi_task(owner: SemiMarketClient, store: BlobStore, config: SemiMarketConfig, setup: Setup, epoch_length: int) -> PostedSemiTask:
    """Store the spec (roles.semi_agent.semi_spec_bytes) and θ0, and post the task as `owner`'s account."""
    c, terms = config.sim, config.terms
    spec_cid = store.add(semi_spec_bytes(c, asdict(terms)))
    initial_cid = store.add(encode_weights(canonical(setup.initial_state), WeightsMeta(arch=setup.spec.id, round=0)))
    params = SemiParams(
        spec_digest=cid_to_digest(spec_cid),
        initial_model_digest=cid_to_digest(initial_cid),
        client_stake=terms.stake_wei,
        license_fee=terms.license_fee_wei,
        min_clients=c.clients,
        max_clients=c.clients,
        epochs=terms.epochs,
        epoch_length=epoch_length,
        rounds=c.rounds,
        loss_cap=int(terms.loss_cap * MICRO),
        pass_score=terms.pass_score,
        min_scorers=terms.min_scorers,
        late_slash_bps=terms.late_slash_bps,
    )
    return PostedSemiTask(task_id_of(owner.post_task(params, terms.reward_wei)), params, spec_cid, initial_cid)


def chain_report(
    market: SemiMarketClient, task_id: int, config: SemiMarketConfig, clients: list[str], buyer: str, stragglers: frozenset[int],
    gas: list[int], seconds: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    """Records, gas, epochs and payouts, read back from the chain's events and views; `clients`
    in client-index (join) order, `gas` of every recorded round."""
    state = market.get_task(task_id).state
    events = [e for e in market.logs() if int(e.args.get("taskId", task_id)) == task_id]
    records = market.records(task_id)
    rounds_done = [c.rounds for c in market.clients(task_id)]
    terms = config.terms

    def total(name: str, key: str, account: str) -> int:
        return sum(int(e.args[key]) for e in events if e.name == name and e.args.get("client", e.args.get("account")) == account)

    participants: dict[str, dict[str, Any]] = {}
    for i, account in enumerate(clients):
        paid, slashed, withdrawn = total("AuthorPaid", "amount", account), total("ClientSlashed", "amount", account), total("Withdrawal", "amount", account)
        deposited = terms.stake_wei + terms.license_fee_wei
        participants[account] = {
            "role": "client",
            "index": i,
            "straggler": i in stragglers,
            "rounds": rounds_done[i],
            "deposited_wei": deposited,
            "earned_wei": paid,
            "slashed_wei": slashed,
            "slash_share_wei": withdrawn - terms.stake_wei + slashed - paid,
            "withdrawn_wei": withdrawn,
        }
    refunded = total("Withdrawal", "amount", buyer)
    deposited = terms.reward_wei + len(clients) * (terms.stake_wei + terms.license_fee_wei)
    withdrawn = sum(p["withdrawn_wei"] for p in participants.values()) + refunded
    balance = int(market.w3.eth.get_balance(market.address))
    return {
        "mode": "semi",
        "task_id": task_id,
        "chain": {"chain_id": int(market.w3.eth.chain_id), "contract": market.address},
        "config": config.sim.to_dict(),
        "terms": asdict(terms),
        "records": {
            "upload": state.uploads,
            "download": state.downloads,
            "score": state.scores,
            "total": state.record_count,
            "head": "0x" + state.head.hex(),
            "verified": verify_chain(records, state.head) and len(records) == state.record_count,
        },
        "gas": {"per_round_mean": sum(gas) / len(gas) if gas else 0, "per_round_max": max(gas, default=0), "rounds": len(gas)},
        "seconds": seconds,
        "epochs": [{k: int(e.args[k]) for k in ("epoch", "budget", "paid", "paidAuthors", "slashed")} for e in events if e.name == "EpochSettled"],
        "participants": participants,
        "buyer": {
            "address": buyer,
            "deposited_wei": terms.reward_wei,
            "refunded_wei": refunded - len(clients) * terms.license_fee_wei,
            "license_income_wei": len(clients) * terms.license_fee_wei,
        },
        "totals": {
            "deposited_wei": deposited,
            "withdrawn_wei": withdrawn,
            "contract_balance_wei": balance,
            "conserved": withdrawn == deposited and balance == 0,
        },
    }
