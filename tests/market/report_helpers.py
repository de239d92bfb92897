"""Helpers of the report tests: a small learning task driven by hand through an accepted and a
rejected round, with real global models in an embedded store."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import (
    MarketClient,
    ModelParams,
    TxResult,
    commitment,
    new_salt,
    open_market,
    score_commitment,
    vote_commitment,
)
from fedmarket.chain.deploy import deploy_marketplace
from fedmarket.fl.params import canonical
from fedmarket.fl.taskspec import TaskData, TaskSpec
from fedmarket.roles import buyer
from fedmarket.storage.embedded import EmbeddedStore
from fedmarket.storage.weights import WeightsMeta, encode_weights

ETH = 10**18
REWARD = ETH
STAKE = ETH // 100


@dataclass
class LearningTask:
    market: MarketClient
    model_id: int
    store: EmbeddedStore
    task_data: TaskData
    initial_cid: str
    round_cids: list[str]  # what the aggregator proposed in rounds 1 and 2
    round_states: list[Any]
    trainer: str


def deploy(w3: Web3) -> MarketClient:
    accounts = dev_accounts(w3)
    contract = deploy_marketplace(w3, accounts[0])
    return open_market(w3, contract.address, accounts[0])


def post_learning_task(w3: Web3, store: EmbeddedStore, spec: TaskSpec, *, rounds: int = 2) -> tuple[MarketClient, int, TaskData, str]:
    """Deploy, store the spec and its initial weights, post the task (buyer dev 0, aggregator dev 1)."""
    accounts = dev_accounts(w3)
    market = deploy(w3)
    task_data = TaskData.load(spec)
    spec_cid = store.add(spec.to_bytes())
    initial_cid = store.add(spec.initial_weights(task_data.dataset))
    params = ModelParams(
        spec_digest=spec_cid, initial_model_digest=initial_cid, aggregator=accounts[1].address, rounds=rounds,
        min_trainers=1, max_trainers=1, committee_size=1, max_validators=1,
        trainer_stake=STAKE, validator_stake=STAKE, aggregator_stake=STAKE,
    )  # fmt: skip
    model_id = buyer.post_task(market, params, REWARD).model_id
    return market, model_id, task_data, initial_cid


def score_alone(member: MarketClient, model_id: int, r: int, scores: list[int]) -> TxResult:
    """A committee of one commits to its scores and reveals them; the reveal's result."""
    salt = new_salt()
    member.commit_scores(model_id, r, score_commitment(model_id, r, member.sender, scores, salt))
    return member.reveal_scores(model_id, r, scores, salt)


def vote_alone(member: MarketClient, model_id: int, r: int, ok: bool) -> TxResult:
    """A committee of one commits to its vote and reveals it (which settles the round); the reveal's result."""
    salt = new_salt()
    member.commit_vote(model_id, r, vote_commitment(model_id, r, member.sender, ok, salt))
    return member.reveal_vote(model_id, r, ok, salt)


def run_learning_task(w3: Web3, store: EmbeddedStore, spec: TaskSpec) -> LearningTask:
    """Two rounds with one trainer (dev 2), a committee of one (dev 3) and the aggregator (dev 1):
    round 1's proposal is confirmed, round 2's rejected (round 1's model carries over); then
    finalize, settle and everyone withdraws."""
    accounts = dev_accounts(w3)
    market, model_id, task_data, initial_cid = post_learning_task(w3, store, spec)
    aggregator, trainer, validator = (market.with_account(accounts[i]) for i in (1, 2, 3))
    trainer.buy_license(model_id)  # free (fee 0), but only licensees may train
    trainer.join_as_trainer(model_id)
    validator.join_as_validator(model_id)
    aggregator.join_as_aggregator(model_id)
    buyer.start_task(market, model_id)
    model = task_data.model_spec
    cids, states, parent = [], [], initial_cid
    for r, ok in ((1, True), (2, False)):
        update = store.add(f"update of round {r}\n".encode())
        salt = new_salt()
        trainer.commit_update(model_id, r, commitment(model_id, r, update, 100, salt, trainer.sender))
        trainer.reveal_update(model_id, r, update, 100, salt)
        score_alone(validator, model_id, r, [250_000])
        state = canonical(model.init_state(spec.seed + r))  # a "trained" model: another seed's weights
        cid = store.add(encode_weights(state, WeightsMeta(arch=model.id, round=r, parent_cid=parent)))
        aggregator.publish_global_model(model_id, r, cid, 0)
        vote_alone(validator, model_id, r, ok)  # the committee's only vote closes the round
        cids.append(cid)
        states.append(state)
        parent = cid if ok else parent
    buyer.finalize_and_settle(market, model_id)
    for account in (accounts[0], *(accounts[i] for i in (1, 2, 3))):
        client = market.with_account(account)
        if client.credit(account.address) > 0:
            buyer.withdraw(client)
    return LearningTask(market, model_id, store, task_data, initial_cid, cids, states, trainer.sender)


def rounded(value: float | None) -> float | None:
    """What the report writes for a metric."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), 6)
