"""Fixtures for the chain client tests: a fresh embedded chain per test, signing dev accounts by
role, a deployed Marketplace behind a MarketClient, and helpers that drive a task through a round
with the client only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chain_helpers import REWARD, WINDOW, Actors, salt_of, update_digest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import MarketClient, ModelParams, commitment, connect
from fedmarket.chain.deploy import deploy_marketplace


@pytest.fixture
def w3() -> Web3:
    return connect(None)


@pytest.fixture
def actors(w3: Web3) -> Actors:
    accounts = dev_accounts(w3)
    return Actors(
        owner=accounts[0],
        aggregator=accounts[1],
        validators=accounts[2:8],
        trainers=accounts[8:28],
        outsider=accounts[28],
        deployer=accounts[29],
    )


@pytest.fixture
def market(w3: Web3, actors: Actors) -> MarketClient:
    """The Marketplace, freshly deployed, sending as the owner (buyer)."""
    contract = deploy_marketplace(w3, actors.deployer)
    return MarketClient(w3, contract.address, actors.owner)


@pytest.fixture
def params(actors: Actors) -> ModelParams:
    return ModelParams(
        spec_digest=keccak(text="spec"),
        initial_model_digest=keccak(text="initial model"),
        aggregator=actors.aggregator.address,
        rounds=2,
        min_trainers=3,
        max_trainers=20,
        committee_size=3,
        max_validators=6,
        commit_window=WINDOW,
        reveal_window=WINDOW,
        score_window=WINDOW,
        publish_window=WINDOW,
        confirm_window=WINDOW,
        license_fee=1_000,
        trainer_stake=10_000,
        validator_stake=20_000,
        aggregator_stake=30_000,
        poison_threshold=-500_000,
    )


@pytest.fixture
def ready_task(market: MarketClient, actors: Actors, params: ModelParams) -> Callable[..., int]:
    """ready_task(n_trainers=3, n_validators=3, start=True, **param_changes) -> model id."""

    def ready(n_trainers: int = 3, n_validators: int = 3, start: bool = True, **changes: object) -> int:
        task = params.with_(min_trainers=min(n_trainers, 3), committee_size=min(n_validators, 3), **changes)
        model_id = market.new_model(task, REWARD).model_id
        for trainer in actors.trainers[:n_trainers]:
            client = market.with_account(trainer)
            client.buy_license(model_id)
            client.join_as_trainer(model_id)
        for validator in actors.validators[:n_validators]:
            market.with_account(validator).join_as_validator(model_id)
        market.with_account(actors.aggregator).join_as_aggregator(model_id)
        if start:
            market.start_training(model_id)
        return model_id

    return ready


@pytest.fixture
def commit_and_reveal(market: MarketClient, actors: Actors) -> Callable[..., list[LocalAccount]]:
    """commit_and_reveal(model_id, round, n=3) -> the trainers that committed and revealed."""

    def run(model_id: int, round: int, n: int = 3) -> list[LocalAccount]:
        trainers = actors.trainers[:n]
        for t in trainers:
            c = commitment(model_id, round, update_digest(t.address, round), 10, salt_of(t.address, round), t.address)
            market.with_account(t).commit_update(model_id, round, c)
        for t in trainers:
            market.with_account(t).reveal_update(model_id, round, update_digest(t.address, round), 10, salt_of(t.address, round))
        return trainers

    return run
