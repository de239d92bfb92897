"""Elected committees (CMFL, BlockFL): who scores the next round, chosen by this round's scores.

In an elected-committee task the N participants both train and serve. Each round K of them sit
on the committee: they do not train that round's aggregate, they score the other participants'
updates (fl.utility, cmfl_distance by default). A trainer's utility is the contract's rule over
the committee's scores: each clamped to the utilities' range, their lower median, 0 without a
quorum (more than half of the committee scored).

The next committee is elected from this round's trainers, best utility first, never re-electing
a sitting member:

- BlockFL (Kim, Park, Bennis, Kim, "Blockchained On-Device Federated Learning", IEEE
  Communications Letters 2020) and the seed documents: a new committee each round, by the
  scores, without the previous committee;
- CMFL (Che et al., "A Decentralized Federated Learning Framework via Committee Mechanism with
  Convergence Guarantee", IEEE TPDS 2022): the training clients that scored best become the next
  round's committee.

Ties go to the lower seat index (join order). When fewer than K trainers exist (N < 2K), every
trainer is elected and the remaining seats go to sitting members by seat index, so the committee
still changes every round. Round 1 has no scores: its committee is drawn from the task's seed.
These are pure functions of their inputs: the market's elected mode is checked against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.utility.base import MICRO, SCORE_LIMIT

SCORE_BOUND = int(SCORE_LIMIT) * MICRO
"""|score| the contract accepts (chain.protocol.MAX_SCORE): the utilities' range in micro-units."""

COMMITTEE_TAG = 0x434F4D  # "COM": the first committee's draw is not any other stream of the seed


def lower_median(values: Sequence[int]) -> int:
    """The lower median, always one of the values (sorted s[(k - 1) // 2]); 0 for none."""
    ordered = sorted(int(v) for v in values)
    return ordered[(len(ordered) - 1) // 2] if ordered else 0


def utility_of(scores: Sequence[int], committee_size: int) -> int:
    """An update's utility from the scores the members gave it, as the contract takes it
    (chain.protocol.utility_of, which fl may not import): each clamped to +-SCORE_BOUND, their
    lower median; 0 unless more than half of the committee scored."""
    if len(scores) * 2 <= committee_size:
        return 0
    return lower_median([max(-SCORE_BOUND, min(SCORE_BOUND, int(v))) for v in scores])


def check_committee(participants: int, size: int) -> None:
    """Refuse a committee that cannot work: at least one member and one trainer every round."""
    if size < 1 or participants < size + 1:
        raise FedmarketError(
            f"an elected committee of {size} needs at least {size + 1} participants (one to train) and a size of at least 1; got {participants} participants"
        )


def first_committee(participants: int, size: int, seed: int) -> tuple[int, ...]:
    """Round 1's committee: `size` distinct seats of 0..participants-1 drawn from the seed, sorted."""
    check_committee(participants, size)
    rng = np.random.default_rng(np.random.SeedSequence([seed, COMMITTEE_TAG]))
    return tuple(sorted(int(i) for i in rng.choice(participants, size=size, replace=False)))


def trainers_of(participants: int, committee: Sequence[int]) -> tuple[int, ...]:
    """The seats that train while `committee` serves, in seat order."""
    sitting = set(committee)
    return tuple(i for i in range(participants) if i not in sitting)


def elect(utilities: Mapping[int, int], sitting: Sequence[int], size: int, participants: int) -> tuple[int, ...]:
    """The next committee (sorted seats): the `size` best utilities among the seats that are not
    sitting, ties to the lower seat; if fewer than `size` such seats exist, all of them and then
    sitting members by seat index. `utilities` maps each trainer's seat to its utility (seats
    without one rank after every scored seat)."""
    check_committee(participants, size)
    seats = set(range(participants))
    if set(sitting) - seats or len(set(sitting)) != len(sitting):
        raise FedmarketError(f"the sitting committee {list(sitting)} is not a set of seats of 0..{participants - 1}")
    if set(utilities) & set(sitting):
        raise FedmarketError(f"sitting members {sorted(set(utilities) & set(sitting))} have utilities: members do not train while they serve")
    candidates = sorted(seats - set(sitting), key=lambda i: (i not in utilities, -int(utilities.get(i, 0)), i))
    chosen = candidates[:size]
    chosen += sorted(sitting)[: size - len(chosen)]
    return tuple(sorted(chosen))
