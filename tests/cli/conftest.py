"""Fixtures for the CLI tests: one anvil for the session (started from node_modules, stopped by its
pid), the Marketplace deployed on it by `fedmarket deploy`, an in-process client to set tasks up
and to check state, and a `cli` runner with a fresh data dir per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    AGGREGATOR,
    AGGREGATOR_STAKE,
    BUYER,
    CID_A,
    CID_B,
    LICENSE_FEE,
    REWARD,
    TRAINER_STAKE,
    TRAINERS,
    VALIDATOR_STAKE,
    VALIDATORS,
    WINDOW,
    Cli,
)
from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedmarket.chain.anvil import AnvilProcess, dev_accounts
from fedmarket.chain.client import MarketClient, ModelParams, open_market
from fedmarket.storage.cid import cid_to_digest


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    with AnvilProcess(accounts=12) as process:
        yield process


@pytest.fixture(scope="session")
def w3(anvil: AnvilProcess) -> Web3:
    return anvil.web3()


@pytest.fixture(scope="session")
def accounts(w3: Web3) -> list[LocalAccount]:
    return dev_accounts(w3)


@pytest.fixture(scope="session")
def address_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="session")
def deployed(anvil: AnvilProcess, address_book: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`fedmarket deploy` on the session's anvil, from dev:0, into a temporary address book."""
    cli = Cli(tmp_path_factory.mktemp("deployer-home"), anvil.url, address_book)
    return cli.ok("deploy")


@pytest.fixture(scope="session")
def market(w3: Web3, deployed: dict) -> MarketClient:
    """The deployed Marketplace, in process, with no account (views; `with_account` to send)."""
    return open_market(w3, deployed["address"])


@pytest.fixture
def cli(tmp_path: Path, anvil: AnvilProcess, address_book: Path, deployed: dict) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home, anvil.url, address_book)


@pytest.fixture
def post_task(market: MarketClient, accounts: list[LocalAccount]) -> Callable[..., int]:
    """Post a task in process (buyer dev:0, aggregator dev:1); `joined` stakes everyone, `started` starts it."""

    def post(*, joined: bool = False, started: bool = False, rounds: int = 2) -> int:
        params = ModelParams(
            spec_digest=cid_to_digest(CID_A),
            initial_model_digest=cid_to_digest(CID_B),
            aggregator=accounts[AGGREGATOR].address,
            rounds=rounds,
            min_trainers=3,
            max_trainers=3,
            committee_size=3,
            max_validators=3,
            commit_window=WINDOW,
            reveal_window=WINDOW,
            score_window=WINDOW,
            publish_window=WINDOW,
            confirm_window=WINDOW,
            license_fee=LICENSE_FEE,
            trainer_stake=TRAINER_STAKE,
            validator_stake=VALIDATOR_STAKE,
            aggregator_stake=AGGREGATOR_STAKE,
            poison_threshold=-100_000,  # the by-hand round's -200000 score is poison at it
        )
        model_id = market.with_account(accounts[BUYER]).new_model(params, REWARD).model_id
        if joined or started:
            for i in TRAINERS:
                trainer = market.with_account(accounts[i])
                trainer.buy_license(model_id, LICENSE_FEE)
                trainer.join_as_trainer(model_id, TRAINER_STAKE)
            for i in VALIDATORS:
                market.with_account(accounts[i]).join_as_validator(model_id, VALIDATOR_STAKE)
            market.with_account(accounts[AGGREGATOR]).join_as_aggregator(model_id, AGGREGATOR_STAKE)
        if started:
            market.with_account(accounts[BUYER]).start_training(model_id)
        return model_id

    return post
