"""Gas limits of the calls whose cost depends on who comes last (issue 9): the vote reveal that
closes a round costs several times a plain one, and on a node a reveal estimated as a plain one
may be mined as the closing one. The client sends these calls with at least their worst case
(deploy.MARKETPLACE_GAS_LIMITS); these tests measure that worst case on the embedded chain and
check the limits cover it, and that a stale estimate no longer runs out of gas."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chain_helpers import REWARD, WINDOW, Actors, ballot_salt, salt_of, update_digest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedmarket.chain.anvil import dev_accounts
from fedmarket.chain.client import MarketClient, ModelParams, OutOfGas, Phase, TransactionFailed, TxResult, commitment, score_commitment, vote_commitment
from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS, ORDER_DEPENDENT_GAS, deploy_marketplace
from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.chain.protocol import MAX_COMMITTEE, MAX_TRAINERS
from fedmarket.chain.timecontrol import advance_to
from fedmarket.chain.transactions import GAS_MARGIN, GAS_MARGIN_FLAT

POISON = -100_000  # ModelParams' default poison threshold


def committee_clients(market: MarketClient, validators: list[LocalAccount], model_id: int, round: int) -> list[MarketClient]:
    by_address = {v.address: v for v in validators}
    return [market.with_account(by_address[a]) for a in market.get_round(model_id, round).committee]


def score_all(
    members: list[MarketClient], model_id: int, round: int, reveals: int, pattern: str = "positive", revealing: int | None = None
) -> dict[str, list[int]]:
    """Every member commits to scores of every update, then the first `revealing` (default all)
    reveal them; the gas per member of each call. `pattern`: "positive" (every median positive),
    "last" (only the last update's: the search for a positive median reads them all),
    "poison-but-last" (the others below the poison threshold: slashed at the close), "poison" (all
    of them). Each update's scores fall in committee order: the median's insertion sort at its worst."""

    def score(i: int, j: int) -> int:
        value = 1_000 * (i + 1)
        last = i == reveals - 1
        if pattern == "last" and not last:
            value = -value
        elif pattern == "poison" or (pattern == "poison-but-last" and not last):
            value = POISON - value
        return value - j

    scores = [[score(i, j) for i in range(reveals)] for j in range(len(members))]
    gas = {"commitScores": [], "revealScores": []}
    for m, s in zip(members, scores, strict=True):
        gas["commitScores"].append(
            m.commit_scores(model_id, round, score_commitment(model_id, round, m.sender, s, ballot_salt(m.sender, round, "scores"))).gas_used
        )
    for m, s in list(zip(members, scores, strict=True))[:revealing]:
        gas["revealScores"].append(m.reveal_scores(model_id, round, s, ballot_salt(m.sender, round, "scores")).gas_used)
    return gas


def commit_votes(members: list[MarketClient], model_id: int, round: int) -> list[int]:
    """Every member commits to approve; the gas of each commit."""
    return [m.commit_vote(model_id, round, vote_commitment(model_id, round, m.sender, True, ballot_salt(m.sender, round, "vote"))).gas_used for m in members]


def reveal_vote(member: MarketClient, model_id: int, round: int) -> TxResult:
    return member.reveal_vote(model_id, round, True, ballot_salt(member.sender, round, "vote"))


def stale_estimate(market: MarketClient, member: MarketClient, model_id: int) -> int:
    """The member's vote reveal estimated now, while the others' are still missing: a plain reveal."""
    return market.contract.functions.revealVote(model_id, 1, True, ballot_salt(member.sender, 1, "vote")).estimate_gas({"from": member.sender})


def old_node_limit(estimate: int) -> int:
    """The limit a node got before issue 9: the estimate plus the margin, nothing more."""
    return int(estimate * GAS_MARGIN) + GAS_MARGIN_FLAT


def to_vote_reveal(
    market: MarketClient, actors: Actors, ready_task: Callable[..., int], commit_and_reveal: Callable[..., list[LocalAccount]]
) -> tuple[int, list[MarketClient]]:
    """A task of 3 trainers and a committee of 3 whose round 1 waits for its vote reveals."""
    model_id = ready_task(n_trainers=3, n_validators=3)
    commit_and_reveal(model_id, 1)
    members = committee_clients(market, actors.validators, model_id, 1)
    score_all(members, model_id, 1, 3)
    market.with_account(actors.aggregator).publish_global_model(model_id, 1, keccak(text="global 1"), 1)
    commit_votes(members, model_id, 1)
    assert market.get_round(model_id, 1).phase == Phase.VOTE_REVEAL
    return model_id, members


def test_the_closing_vote_costs_more_than_an_estimate_made_before_it_and_fits_its_limit(market, actors, ready_task, commit_and_reveal) -> None:
    model_id, (first, second, last) = to_vote_reveal(market, actors, ready_task, commit_and_reveal)
    stale = stale_estimate(market, last, model_id)
    plain = [reveal_vote(first, model_id, 1).gas_used, reveal_vote(second, model_id, 1).gas_used]
    closing = reveal_vote(last, model_id, 1)
    assert closing.event("RoundClosed")
    assert closing.gas_used > old_node_limit(stale) > max(plain), (stale, plain, closing.gas_used)  # the issue-9 race
    assert closing.gas_used <= MARKETPLACE_GAS_LIMITS["revealVote"]


def test_a_stale_estimate_gets_the_worst_case_limit_and_closes_the_round(market, actors, ready_task, commit_and_reveal, monkeypatch) -> None:
    model_id, (first, second, last) = to_vote_reveal(market, actors, ready_task, commit_and_reveal)
    stale = stale_estimate(market, last, model_id)
    reveal_vote(first, model_id, 1)
    reveal_vote(second, model_id, 1)
    # a node's client (estimation on) whose estimate was made before the other reveals were mined
    monkeypatch.setattr(market.w3.eth, "estimate_gas", lambda *args, **kwargs: stale)
    node = last.with_account(last.account)
    node.estimate_gas = True
    unguarded = node.with_account(last.account)
    unguarded.gas_limits = {}  # no worst case known: the pre-issue-9 policy
    with pytest.raises(OutOfGas) as info:
        reveal_vote(unguarded, model_id, 1)
    assert isinstance(info.value, TransactionFailed) and info.value.function == "revealVote"
    assert info.value.gas_limit == old_node_limit(stale)
    assert str(info.value) == f"revealVote ran out of gas (limit {old_node_limit(stale)}) in transaction {info.value.tx_hash}"
    assert not market.has_confirmed(model_id, 1, last.sender).voted  # nothing happened but the fee
    closing = reveal_vote(node, model_id, 1)
    assert closing.event("RoundClosed")
    assert int(market.w3.eth.get_transaction(closing.tx_hash)["gas"]) == MARKETPLACE_GAS_LIMITS["revealVote"]


def test_only_order_dependent_calls_get_the_floor(market, actors, params) -> None:
    node = market.with_account(actors.owner)
    node.estimate_gas = True
    estimate = market.contract.functions.newModel(params.to_abi()).estimate_gas({"from": actors.owner.address, "value": REWARD})
    posted = node.new_model(params, REWARD)
    assert "newModel" not in ORDER_DEPENDENT_GAS
    assert int(market.w3.eth.get_transaction(posted.tx_hash)["gas"]) == old_node_limit(estimate)  # no floor
    assert ORDER_DEPENDENT_GAS <= set(MARKETPLACE_GAS_LIMITS)
    assert {"revealVote", "closeRound", "revealScores", "publishGlobalModel"} <= ORDER_DEPENDENT_GAS


@pytest.mark.slow
def test_order_dependent_calls_fit_their_limits_at_the_caps() -> None:
    """64 trainers, a committee of 9: the last commit, the last reveal, the last score commit and
    reveal, a publish that first moves the round past a missed score-reveal deadline (the medians),
    the last vote commit, the closing vote reveal, and a closeRound of a round with nothing
    positive (medians, settlement, poison and late slashes), each sent with the fixed limit the
    embedded client uses, each within it."""
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
        if round == 1:  # everyone scores; the last reveal searches every median for a positive one
            gas = score_all(members, model_id, round, MAX_TRAINERS, "last")
        else:  # the last member commits but misses ScoreReveal: the next call moves the round on
            gas = score_all(members, model_id, round, MAX_TRAINERS, "poison-but-last" if round == 2 else "poison", revealing=len(members) - 1)
            advance_to(w3, market.get_round(model_id, round).phase_deadline + 1)
        for function, used in gas.items():
            for g in used:
                note(function, g)
        if round == 3:  # nothing positive: Due at once; the close slashes 64 poisoned updates and a late member
            note("closeRound", market.close_round(model_id).gas_used)
            continue
        note("publishGlobalModel", publisher.publish_global_model(model_id, round, keccak(text=f"global {round}"), round).gas_used)
        for g in commit_votes(members, model_id, round):
            note("commitVote", g)
        for m in members:
            note("revealVote", reveal_vote(m, model_id, round).gas_used)
    assert set(worst) >= ORDER_DEPENDENT_GAS
    print("\nworst case at the caps:", {f: f"{g:,} of {MARKETPLACE_GAS_LIMITS[f]:,}" for f, g in worst.items()})
    for function, gas in worst.items():
        assert gas <= MARKETPLACE_GAS_LIMITS[function], (function, gas)
