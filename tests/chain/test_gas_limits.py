"""Gas limits of the calls whose cost depends on who comes last (issue 9): the vote that closes a
round costs several times a plain vote, and on a node a vote estimated as a plain one may be mined
as the closing one. The client sends these calls with at least their worst case
(deploy.MARKETPLACE_GAS_LIMITS); these tests measure that worst case on the embedded chain and
check the limits cover it, and that a stale estimate no longer runs out of gas."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chain_helpers import REWARD, WINDOW, Actors, salt_of, update_digest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import MarketClient, ModelParams, OutOfGas, Phase, TransactionFailed, commitment
from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS, ORDER_DEPENDENT_GAS, deploy_marketplace
from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.chain.protocol import MAX_COMMITTEE, MAX_TRAINERS
from fedmarket.chain.timecontrol import advance_to
from fedmarket.chain.transactions import GAS_MARGIN, GAS_MARGIN_FLAT

POISON = -100_000  # ModelParams' default poison threshold


def committee_clients(market: MarketClient, validators: list[LocalAccount], model_id: int, round: int) -> list[MarketClient]:
    by_address = {v.address: v for v in validators}
    return [market.with_account(by_address[a]) for a in market.get_round(model_id, round).committee]


def score_all(members: list[MarketClient], model_id: int, round: int, reveals: int, pattern: str = "positive") -> list[int]:
    """Every member scores every update; the gas per member. `pattern`: "positive" (every median
    positive), "last" (only the last update's: the search for a positive median reads them all),
    "poison-but-last" (the others below the poison threshold: slashed at the close), "poison"
    (all of them). Each update's scores fall in committee order: the median's insertion sort at
    its worst."""

    def score(i: int, j: int) -> int:
        value = 1_000 * (i + 1)
        last = i == reveals - 1
        if pattern == "last" and not last:
            value = -value
        elif pattern == "poison" or (pattern == "poison-but-last" and not last):
            value = POISON - value
        return value - j

    return [m.submit_scores(model_id, round, [score(i, j) for i in range(reveals)]).gas_used for j, m in enumerate(members)]


def old_node_limit(estimate: int) -> int:
    """The limit a node got before issue 9: the estimate plus the margin, nothing more."""
    return int(estimate * GAS_MARGIN) + GAS_MARGIN_FLAT


def to_confirm(
    market: MarketClient, actors: Actors, ready_task: Callable[..., int], commit_and_reveal: Callable[..., list[LocalAccount]]
) -> tuple[int, list[MarketClient]]:
    """A task of 3 trainers and a committee of 3 whose round 1 waits for its votes."""
    model_id = ready_task(n_trainers=3, n_validators=3)
    commit_and_reveal(model_id, 1)
    members = committee_clients(market, actors.validators, model_id, 1)
    score_all(members, model_id, 1, 3)
    market.with_account(actors.aggregator).publish_global_model(model_id, 1, keccak(text="global 1"), 1)
    assert market.get_round(model_id, 1).phase == Phase.CONFIRM
    return model_id, members


def test_the_closing_vote_costs_more_than_an_estimate_made_before_it_and_fits_its_limit(market, actors, ready_task, commit_and_reveal) -> None:
    model_id, (first, second, last) = to_confirm(market, actors, ready_task, commit_and_reveal)
    # the last member's vote, estimated while two votes are still missing: a plain vote
    stale = market.contract.functions.confirmGlobalModel(model_id, 1, True).estimate_gas({"from": last.sender})
    plain = [first.confirm_global_model(model_id, 1, True).gas_used, second.confirm_global_model(model_id, 1, True).gas_used]
    closing = last.confirm_global_model(model_id, 1, True)
    assert closing.event("RoundClosed")
    assert closing.gas_used > old_node_limit(stale) > max(plain), (stale, plain, closing.gas_used)  # the issue-9 race
    assert closing.gas_used <= MARKETPLACE_GAS_LIMITS["confirmGlobalModel"]


def test_a_stale_estimate_gets_the_worst_case_limit_and_closes_the_round(market, actors, ready_task, commit_and_reveal, monkeypatch) -> None:
    model_id, (first, second, last) = to_confirm(market, actors, ready_task, commit_and_reveal)
    stale = market.contract.functions.confirmGlobalModel(model_id, 1, True).estimate_gas({"from": last.sender})
    first.confirm_global_model(model_id, 1, True)
    second.confirm_global_model(model_id, 1, True)
    # a node's client (estimation on) whose estimate was made before the other votes were mined
    monkeypatch.setattr(market.w3.eth, "estimate_gas", lambda *args, **kwargs: stale)
    node = last.with_account(last.account)
    node.estimate_gas = True
    unguarded = node.with_account(last.account)
    unguarded.gas_limits = {}  # no worst case known: the pre-issue-9 policy
    with pytest.raises(OutOfGas) as info:
        unguarded.confirm_global_model(model_id, 1, True)
    assert isinstance(info.value, TransactionFailed) and info.value.function == "confirmGlobalModel"
    assert info.value.gas_limit == old_node_limit(stale)
    assert str(info.value) == f"confirmGlobalModel ran out of gas (limit {old_node_limit(stale)}) in transaction {info.value.tx_hash}"
    assert not market.has_confirmed(model_id, 1, last.sender).voted  # nothing happened but the fee
    closing = node.confirm_global_model(model_id, 1, True)
    assert closing.event("RoundClosed")
    assert int(market.w3.eth.get_transaction(closing.tx_hash)["gas"]) == MARKETPLACE_GAS_LIMITS["confirmGlobalModel"]


def test_only_order_dependent_calls_get_the_floor(market, actors, params) -> None:
    node = market.with_account(actors.owner)
    node.estimate_gas = True
    estimate = market.contract.functions.newModel(params.to_abi()).estimate_gas({"from": actors.owner.address, "value": REWARD})
    posted = node.new_model(params, REWARD)
    assert "newModel" not in ORDER_DEPENDENT_GAS
    assert int(market.w3.eth.get_transaction(posted.tx_hash)["gas"]) == old_node_limit(estimate)  # no floor
    assert ORDER_DEPENDENT_GAS <= set(MARKETPLACE_GAS_LIMITS)
    assert {"confirmGlobalModel", "closeRound", "submitScores", "publishGlobalModel"} <= ORDER_DEPENDENT_GAS


@pytest.mark.slow
def test_order_dependent_calls_fit_their_limits_at_the_caps() -> None:
    """64 trainers, a committee of 9: the last commit, the last reveal, the last score, a publish that
    first moves the round past a missed score deadline (the medians), the closing vote, and a
    closeRound after a missed confirm deadline (medians, settlement, late slashes), each sent with
    the fixed limit the embedded client uses, each within it."""
    w3 = new_embedded_web3(MAX_TRAINERS + MAX_COMMITTEE + 3)
    accounts = dev_accounts(w3)
    owner, aggregator, deployer = accounts[:3]
    trainers, validators = accounts[3 : 3 + MAX_TRAINERS], accounts[3 + MAX_TRAINERS :]
    market = MarketClient(w3, deploy_marketplace(w3, deployer).address, owner)
    params = ModelParams(
        spec_digest=keccak(text="spec"), initial_model_digest=keccak(text="init"), aggregator=aggregator.address, rounds=3,
        min_trainers=MAX_TRAINERS, max_trainers=MAX_TRAINERS, committee_size=MAX_COMMITTEE, max_validators=MAX_COMMITTEE,
        commit_window=WINDOW, reveal_window=WINDOW, score_window=WINDOW, publish_window=WINDOW, confirm_window=WINDOW,
        trainer_stake=10_000, validator_stake=20_000, aggregator_stake=30_000,
    )  # fmt: skip
    model_id = market.new_model(params, REWARD).model_id
    for t in trainers:
        market.with_account(t).buy_license(model_id)
        market.with_account(t).join_as_trainer(model_id)
    for v in validators:
        market.with_account(v).join_as_validator(model_id)
    market.with_account(aggregator).join_as_aggregator(model_id)
    market.start_training(model_id)
    worst: dict[str, int] = {}

    def note(function: str, gas: int) -> None:
        worst[function] = max(worst.get(function, 0), gas)

    for round in (1, 2, 3):
        for t in trainers:
            c = commitment(model_id, round, update_digest(t.address, round), 10, salt_of(t.address, round), t.address)
            note("commitUpdate", market.with_account(t).commit_update(model_id, round, c).gas_used)
        for t in trainers:
            note("revealUpdate", market.with_account(t).reveal_update(model_id, round, update_digest(t.address, round), 10, salt_of(t.address, round)).gas_used)
        members = committee_clients(market, validators, model_id, round)
        publisher = market.with_account(aggregator)
        if round == 1:  # everyone scores; the last score searches every median for a positive one
            for gas in score_all(members, model_id, round, MAX_TRAINERS, "last"):
                note("submitScores", gas)
        else:  # the last member misses the Score phase: the next call moves the round on
            for gas in score_all(members[:-1], model_id, round, MAX_TRAINERS, "poison-but-last" if round == 2 else "poison"):
                note("submitScores", gas)
            advance_to(w3, market.get_round(model_id, round).phase_deadline + 1)
        if round == 3:  # nothing positive: Due at once; the close slashes 64 poisoned updates and a late member
            note("closeRound", market.close_round(model_id).gas_used)
            continue
        note("publishGlobalModel", publisher.publish_global_model(model_id, round, keccak(text=f"global {round}"), round).gas_used)
        for m in members:
            note("confirmGlobalModel", m.confirm_global_model(model_id, round, True).gas_used)
    assert set(worst) == ORDER_DEPENDENT_GAS
    print("\nworst case at the caps:", {f: f"{g:,} of {MARKETPLACE_GAS_LIMITS[f]:,}" for f, g in worst.items()})
    for function, gas in worst.items():
        assert gas <= MARKETPLACE_GAS_LIMITS[function], (function, gas)
