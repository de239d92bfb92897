"""The committee of each round (docs/protocol.md, "Committee"): drawn at the round's opening from a
seed fixed by the previous round's reveals (their commitments, the first one mixed with
prevrandao), never the previous committee when there are more validators than seats, and no
contiguous window of the join order (issue 10 item 12)."""

from __future__ import annotations

import random

import committee_model as CM
from contract_helpers import PHASE, SLASH, update_digest

ROUNDS = 16


def mask_of(validators, committee):
    return sum(1 << validators.index(m) for m in committee)


def prevrandao_candidates(w3, receipt):
    """py-evm executes a transaction with prevrandao 0 and seals the block with a random mixHash
    afterwards; a node executes with the mixHash. The draw follows the formula with one of them."""
    return [0, int.from_bytes(bytes(w3.eth.get_block(receipt["blockNumber"])["mixHash"]), "big")]


def play_reveals_only(flow, advance, task, round_, trainers, tag):
    """Every trainer commits and reveals (nobody scores); the round runs out and is closed.
    Returns the reveal entries the next committee's seed is made of, per prevrandao candidate."""
    commitments = {t: flow.commitment(task, round_, t, samples=100 + i, tag=tag) for i, t in enumerate(trainers)}
    for i, t in enumerate(trainers):
        flow.commit(task, round_, t, samples=100 + i, tag=tag)
    receipts = [flow.reveal(task, round_, t, samples=100 + i, tag=tag) for i, t in enumerate(trainers)]
    seats = flow.market.functions.trainers(task).call()
    candidates = []
    for randao in prevrandao_candidates(flow.w3, receipts[0]):
        candidates.append(
            [
                CM.RevealEntry(seats.index(t), 100 + i, CM.reveal_mix(commitments[t], position, randao), update_digest(t, round_, tag))
                for position, (i, t) in enumerate(enumerate(trainers))
            ]
        )
    advance(101)  # the Score window runs out: nobody scored, nothing to publish -> Due
    assert flow.round(task, round_)["phase"] == PHASE["Due"]
    flow.tx(flow.market.functions.closeRound(task), flow.actors.outsiders[0])
    return candidates


def test_committees_follow_the_draw_and_never_repeat(market, actors, flow, advance, ready_task):
    """Sybils holding validator seats 0-2 (the first three joiners, 3 of 6) against the draw: every
    round's committee is the one docs/protocol.md predicts from the reveals, no committee sits twice
    running, and the sybils no longer hold every other committee (the old contiguous windows)."""
    task = ready_task(n_validators=6, rounds=ROUNDS, maxValidators=6)
    validators = market.functions.validators(task).call()
    sybils = set(validators[:3])
    trainers = actors.trainers[:3]
    assert flow.round(task, 2)["committee"] == []  # a round's committee is drawn when it opens
    masks = [mask_of(validators, flow.committee(task, 1))]
    for r in range(1, ROUNDS):
        candidates = play_reveals_only(flow, advance, task, r, trainers, tag=f"r{r}")
        committee = flow.committee(task, r + 1)
        assert committee == sorted(committee, key=validators.index)  # positions in seat order
        mask = mask_of(validators, committee)
        predicted = [CM.draw(CM.next_seed(task, r, masks[-1], entries, 0), 6, 3, masks[-1]) for entries in candidates]
        assert mask in predicted, f"round {r + 1}: committee {mask:06b} not among the predicted {predicted}"
        masks.append(mask)
    assert all(a != b for a, b in zip(masks, masks[1:])), [f"{m:06b}" for m in masks]
    full = [r for r, m in enumerate(masks, start=1) if set(CM.members(validators, m)) == sybils]
    assert len(full) < ROUNDS // 2 - 2, f"sybils held every committee of rounds {full}"
    assert len(set(masks)) > 4  # not a rotation between two windows


def test_draw_share_is_the_validator_share_over_many_seeds():
    """Over 4,000 chained draws (random seeds, each round excluding the previous committee): a
    third of the seats for 3 sybils of 9 validators, half for 3 of 6; a committee of sybils alone
    about as often as chance gives (1/20 of 6 choose 3 with 3 of 6), never back to back repeats.
    The old rotation gave 3 sybils of 6 (joined first) every other committee."""
    rng = random.Random(12)
    for count, size, sybils in ((6, 3, 0b000111), (9, 3, 0b000000111), (8, 5, 0b00011111)):
        previous, seats, full, n = 0, 0, 0, 4_000
        for _ in range(n):
            mask = CM.draw(rng.getrandbits(256), count, size, previous)
            assert bin(mask).count("1") == size and mask < 1 << count and mask != previous
            seats += bin(mask & sybils).count("1")
            full += mask == sybils
            previous = mask
        share = seats / (n * size)
        expected = bin(sybils).count("1") / count
        assert abs(share - expected) < 0.03, (count, size, share, expected)
        if count == 6:
            assert full / n < 0.08, full / n  # 1 of 20 committees by chance, vs every other one before


def test_draw_covers_every_committee_uniformly():
    """The partial Fisher-Yates draw reaches all 20 committees of 3 of 6 equally often (no previous
    committee to exclude), and the redraw moves only the previous committee's mass."""
    rng = random.Random(7)
    counts: dict[int, int] = {}
    for _ in range(20_000):
        mask = CM.draw(rng.getrandbits(256), 6, 3, 0)
        counts[mask] = counts.get(mask, 0) + 1
    assert len(counts) == 20 and min(counts.values()) > 850 and max(counts.values()) < 1_150
    assert CM.draw(0, 3, 3, 0b111) == 0b111  # V == c: the only committee sits every round


def test_validator_off_committee_cannot_act_and_is_not_slashed(market, actors, flow, events, expect_revert, ready_task):
    task = ready_task(n_validators=6)
    trainers = actors.trainers[:3]
    committee = flow.committee(task, 1)
    resting = [v for v in actors.validators[:6] if v not in committee]
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    expect_revert(market.functions.commitScores(task, 1, bytes(32)), resting[0], "NotCommitteeMember", task, 1, resting[0])
    flow.score(task, 1, dict.fromkeys(committee, [1, 1, 1]))
    flow.publish(task, 1)
    expect_revert(market.functions.commitVote(task, 1, bytes(32)), resting[0], "NotCommitteeMember", task, 1, resting[0])
    receipt = None
    receipt = flow.vote(task, 1, dict.fromkeys(committee, True))
    assert events(receipt, "Slashed") == []
    paid = {e["participant"] for e in events(receipt, "RewardAccrued")}
    assert set(committee) <= paid and not paid & set(resting)
    assert market.functions.hasConfirmed(task, 1, resting[0]).call() == [False, False]
    assert market.functions.scoresOf(task, 1, resting[0]).call() == [False, []]


def test_member_missing_score_and_vote_is_slashed_once(market, actors, flow, events, advance, ready_task):
    task = ready_task()
    trainers = actors.trainers[:3]
    committee = flow.committee(task, 1)
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    flow.score(task, 1, dict.fromkeys(committee[:2], [1, 1, 1]))  # ScoreCommit ends at its deadline; both reveals end ScoreReveal
    flow.publish(task, 1)
    flow.vote(task, 1, dict.fromkeys(committee[:2], True))  # the two reveals settle the round
    (receipt,) = [flow.w3.eth.get_transaction_receipt(flow.w3.eth.get_block("latest")["transactions"][0])]
    assert events(receipt, "Slashed") == [{"modelId": task, "round": 1, "participant": committee[2], "reason": SLASH["Late"], "amount": 2_000}]
    assert flow.participant(task, committee[2])["stakeRemaining"] == 18_000


def test_deadline_past_2106_reverts(market, actors, tx, set_time, expect_revert, ready_task):
    """Deadlines are stored as uint32 seconds: a round that would end after 2^32 - 1 cannot open."""
    set_time(2**32 - 1_000)
    task = ready_task(start=False, commitWindow=5_000)
    expect_revert(market.functions.startTraining(task), actors.owner, "DeadlineOutOfRange")
