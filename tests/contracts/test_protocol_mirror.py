"""fedmarket.chain.protocol's slash rules against the deployed contract on random rounds: the
poison rule (a utility below the threshold and two thirds of the committee's seats below it) and
issue 11's lateness rule (nobody late when 2 * committed < trainers), plus the utility itself,
and the validator pay by agreement (validator_weights, validator_pay) with its Disagreed slashes."""

from __future__ import annotations

import random

import pytest
from contract_helpers import SLASH, WINDOW

from fedmarket.chain.protocol import (
    DEFAULT_VALIDATOR_SHARE_BPS,
    MAX_SCORE,
    late_slashes_apply,
    of_bps,
    poison_slashed,
    round_budget,
    utility_of,
    validator_pay,
    validator_weights,
)

THRESHOLD = -500_000
LOW = [-2 * MAX_SCORE, -MAX_SCORE - 5, -600_000, THRESHOLD - 1]
HIGH = [THRESHOLD, THRESHOLD + 1, 0, 400_000, 2 * MAX_SCORE]
COMMITTING = (2, 3, 5, 6)
"""Commits per round: 2 of 6 is below half (nobody late), 3 of 6 is half (the others late)."""
N_TRAINERS = 6


@pytest.mark.parametrize("n_validators, committee_size, seed", [(5, 3, 1), (5, 5, 2)])
def test_slash_rules_match_the_contract(market, actors, flow, events, advance, ready_task, n_validators, committee_size, seed):
    rng = random.Random(seed)
    task = ready_task(n_trainers=N_TRAINERS, n_validators=n_validators, committeeSize=committee_size, maxValidators=n_validators, rounds=4, badSlashBps=1_000)
    trainers = actors.trainers[:N_TRAINERS]
    seen = {"poisoned": 0, "spared below": 0, "late": 0, "disagreed": 0}
    for r, n_committing in enumerate(COMMITTING, start=1):
        committing = sorted(rng.sample(trainers, n_committing), key=trainers.index)
        for t in committing:
            flow.commit(task, r, t)
        if len(committing) < N_TRAINERS:
            advance(WINDOW + 1)  # Commit runs out for the others
        for t in committing:
            flow.reveal(task, r, t)
        committee = flow.committee(task, r)
        scorers = rng.sample(committee, rng.randint(committee_size // 2 + 1, committee_size))
        given = {m: [rng.choice(LOW if rng.random() < 0.6 else HIGH) for _ in committing] for m in scorers}
        flow.score(task, r, given)
        order = [u.lower() for u in market.functions.revealedUpdates(task, r).call()[0]]
        columns = {trainer: [given[m][i] for m in scorers] for i, trainer in enumerate(order)}
        assert market.functions.utilities(task, r).call() == [utility_of(columns[t], committee_size) for t in order]
        advance(10 * WINDOW)  # nothing is published: Due
        receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
        slashed = events(receipt, "Slashed")
        poisoned = {e["participant"].lower() for e in slashed if e["reason"] == SLASH["Poison"]}
        late = {e["participant"].lower() for e in slashed if e["reason"] == SLASH["Late"] and e["participant"] in trainers}
        assert poisoned == {t for t in order if poison_slashed(columns[t], committee_size, THRESHOLD)}, (r, columns)
        expected_late = {t.lower() for t in trainers if t not in committing} if late_slashes_apply(len(committing), N_TRAINERS) else set()
        assert late == expected_late, (r, len(committing))
        # validators: weights from the medians as scored; nothing was published, so revealing
        # scores is all eligibility needs
        medians = market.functions.utilities(task, r).call()
        weights, disagreed = validator_weights([given.get(m) for m in committee], medians, 10_000)
        pool = of_bps(round_budget(1_000_003, 4, r), DEFAULT_VALIDATOR_SHARE_BPS)
        pay, _, _ = validator_pay(pool, weights, [m in given for m in committee])
        got = {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["participant"] in committee}
        assert got == {m: p for m, p in zip(committee, pay, strict=True) if p}, (r, given, medians)
        assert {e["participant"] for e in slashed if e["reason"] == SLASH["Disagreed"]} == {m for m, d in zip(committee, disagreed, strict=True) if d}
        seen["disagreed"] += sum(disagreed)
        seen["poisoned"] += len(poisoned)
        seen["spared below"] += sum(utility_of(columns[t], committee_size) < THRESHOLD for t in order) - len(poisoned)
        seen["late"] += len(late)
    assert seen["poisoned"] and seen["late"], seen  # the random rounds reached both rules
