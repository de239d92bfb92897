"""Elected committees: the election rule by hand, the contract's median rule, the elected simulation."""

from __future__ import annotations

import numpy as np
import pytest

from fedmarket.chain import protocol
from fedmarket.errors import FedmarketError
from fedmarket.fl.committee import SCORE_BOUND, check_committee, elect, first_committee, trainers_of, utility_of


def test_elect_picks_the_best_and_breaks_ties_by_seat() -> None:
    # seats 2 and 3 tie at 7: both beat 5; the sitting 1 and 5 are not candidates
    assert elect({0: 5, 2: 7, 3: 7, 4: -1}, sitting=(1, 5), size=2, participants=6) == (2, 3)
    assert elect({0: 5, 2: 7, 3: 6, 4: 7}, sitting=(1, 5), size=2, participants=6) == (2, 4)
    assert elect({0: 5, 2: 7, 3: 7, 4: 7}, sitting=(1, 5), size=1, participants=6) == (2,)
    # negative utilities still rank: the least bad are elected when nothing better stands
    assert elect({0: -3, 2: -1, 3: -2}, sitting=(1,), size=2, participants=4) == (2, 3)


def test_elect_never_reelects_the_sitting_committee() -> None:
    # the sitting members' would-be scores are irrelevant: they did not train, so they have none
    with pytest.raises(FedmarketError, match="do not train while they serve"):
        elect({0: 9, 1: 1}, sitting=(0,), size=1, participants=3)
    # seats without a utility rank after every scored seat, then by seat
    assert elect({3: -5}, sitting=(0,), size=2, participants=4) == (1, 3)
    assert elect({}, sitting=(0, 1), size=2, participants=5) == (2, 3)


def test_elect_with_too_few_candidates_fills_from_the_sitting_by_seat() -> None:
    # 3 participants, committee 2: one trainer; it is elected with the lowest sitting seat
    assert elect({2: 3}, sitting=(0, 1), size=2, participants=3) == (0, 2)
    assert elect({0: 3}, sitting=(1, 2), size=2, participants=3) == (0, 1)


def test_the_committee_changes_every_round_when_candidates_allow() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        size = int(rng.integers(1, 5))
        participants = int(rng.integers(size + 1, 12))
        sitting = tuple(sorted(int(i) for i in rng.choice(participants, size, replace=False)))
        trainers = trainers_of(participants, sitting)
        utilities = {t: int(rng.integers(-3, 4)) for t in trainers}
        chosen = elect(utilities, sitting, size, participants)
        assert len(set(chosen)) == size and chosen != sitting
        if participants >= 2 * size:
            assert not set(chosen) & set(sitting)
            worst_elected = min(utilities[t] for t in chosen)
            assert all(utilities[t] <= worst_elected for t in trainers if t not in chosen)


def test_bad_committees_are_refused() -> None:
    for participants, size in ((3, 3), (1, 1), (5, 0)):
        with pytest.raises(FedmarketError, match="elected committee"):
            check_committee(participants, size)
    with pytest.raises(FedmarketError, match="not a set of seats"):
        elect({}, sitting=(0, 0), size=2, participants=4)
    with pytest.raises(FedmarketError, match="not a set of seats"):
        elect({}, sitting=(7,), size=1, participants=4)


def test_first_committee_is_drawn_from_the_seed() -> None:
    drawn = [first_committee(10, 3, seed) for seed in range(6)]
    assert drawn == [first_committee(10, 3, seed) for seed in range(6)]
    assert all(len(set(c)) == 3 and list(c) == sorted(c) and all(0 <= i < 10 for i in c) for c in drawn)
    assert len(set(drawn)) > 1


def test_utility_is_the_contracts_rule() -> None:
    assert SCORE_BOUND == protocol.MAX_SCORE
    # by hand: lower median of (3, -1, 8, 2) is 2; (5e9, 4e9, 1) clamps to (1e9, 1e9, 1): 1e9
    assert utility_of([3, -1, 8, 2], 5) == 2
    assert utility_of([5 * 10**9, 4 * 10**9, 1], 3) == 10**9
    assert utility_of([7], 2) == 0  # no quorum: one of two is not more than half
    rng = np.random.default_rng(1)
    for _ in range(300):
        committee = int(rng.integers(1, 8))
        scores = [int(v) for v in rng.integers(-3 * 10**9, 3 * 10**9, size=int(rng.integers(0, committee + 1)))]
        assert utility_of(scores, committee) == protocol.utility_of(scores, committee)
