"""Issue 10 items 7 and 8, attacked on the embedded chain (exact wei): a copycat member, a lazy
member, a duplicate update from two seats and a member that commits and never reveals.

Default task (contract_helpers): 3 trainers, committee 3, one round: budget 1,000,003 wei,
T = 700,002, V = 200,000, A = 100,001; validator stake 20,000 and trainer stake 10,000, late
slash 10 %.
"""

from __future__ import annotations

from contract_helpers import PHASE, ROLE, SLASH, WINDOW, commitment_of, salt_of, update_digest

from fedmarket.chain.protocol import validator_weights

V = 200_000
T = 700_002


def validator_pay(events, receipt):
    return {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Validator"]}


def test_item7_copycat_sees_only_commitments(market, actors, flow, events, ready_task):
    """While ScoreCommit runs, a member that has not committed can read nothing of another's
    scores: no stored scores, no utilities, and the event carries only the 32-byte commitment."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    worker, copycat, _third = flow.committee(task, 1)
    receipt = flow.commit_scores(task, 1, worker, [400_000, 300_000, 200_000])
    (committed,) = events(receipt, "ScoresCommitted")
    assert set(committed) == {"modelId", "round", "validator", "commitment"} and len(committed["commitment"]) == 32
    assert market.functions.scoresOf(task, 1, worker).call() == [False, []]
    assert market.functions.utilities(task, 1).call() == [0, 0, 0]
    assert flow.round(task)["scoresSubmitted"] == 0
    # Its commitment in, the copycat can only reveal what it committed to.
    flow.commit_scores(task, 1, copycat, [1, 1, 1])
    assert flow.round(task)["phase"] == PHASE["ScoreCommit"]


def test_item7_lazy_member_earns_nothing_and_is_slashed(actors, flow, events, ready_task):
    """Two members evaluate (close to each other); the third reveals all zeros. Medians 300,000 /
    190,000 / 100,000: M = 590,000 = tolerance; the workers are 10,000 away (weight 580,000 each),
    the lazy one 590,000 (weight 0, Disagreed 2,000, burned). V = 200,000 is three shares of 66,666: the
    workers are paid theirs, the lazy one's goes to the trainer carry (not to the workers, who
    would otherwise profit from out-voting a colleague, nor to the buyer)."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    a, b, lazy = flow.committee(task, 1)
    scores = {a: [300_000, 200_000, 100_000], b: [310_000, 190_000, 100_000], lazy: [0, 0, 0]}
    flow.score(task, 1, scores)
    assert flow.f.utilities(task, 1).call() == [300_000, 190_000, 100_000]
    weights, disagreed = validator_weights(list(scores.values()), [300_000, 190_000, 100_000], 10_000)
    assert weights == [580_000, 580_000, 0] and disagreed == [False, False, True]
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(scores, True))
    assert validator_pay(events, receipt) == {a: V // 3, b: V // 3}
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")] == [(lazy, SLASH["Disagreed"], 2_000)]
    (closed,) = events(receipt, "RoundClosed")
    # buyer: V's dust 2; T's dust: 355,933 + 225,424 + 118,644 = 700,001 paid, 1 wei back
    assert closed["returnedToBuyer"] == V % 3 + 1
    # carry: the lazy share; the 2,000 slashed by the verdict are burned, not shared
    assert flow.f.trainerCarry(task).call() == V // 3
    assert events(receipt, "CarryBurned") == [{"modelId": task, "amount": 2_000}]
    assert flow.participant(task, lazy)["earned"] == 0 and flow.participant(task, lazy)["stakeRemaining"] == 18_000


def test_item7_constant_guess_is_as_far_as_the_utilities_are_large(actors, flow, events, ready_task):
    """A member revealing one constant (the mean of nothing it measured) far from the medians earns
    nothing either; the two that agree are paid a third of V each, the guesser's third is carried."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    a, b, guesser = flow.committee(task, 1)
    flow.score(task, 1, {a: [600_000, 50_000, 50_000], b: [600_000, 50_000, 50_000], guesser: [-500_000] * 3})
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, {a: True, b: True, guesser: True})
    assert validator_pay(events, receipt) == {a: V // 3, b: V // 3}
    assert [(e["participant"], e["reason"]) for e in events(receipt, "Slashed")] == [(guesser, SLASH["Disagreed"])]


def test_item8_duplicate_digest_from_a_second_seat_is_refused(market, actors, flow, events, ready_task):
    """Trainers 0 and 1 (one party) reveal the same digest; the second reveal is refused: utility
    0, late-slashed 1,000, UpdateRefused. Trainers 0 and 2 split T = 700,002 (350,001 each) and
    the 1,000 slashed (500 each): the party earns what its one real update earns."""
    task = ready_task(rounds=1)
    t0, t1, t2 = actors.trainers[:3]
    copied = update_digest(t0, 1)
    flow.commit(task, 1, t0)
    flow.tx(market.functions.commitUpdate(task, 1, commitment_of(task, 1, copied, 100, salt_of(t1, 1), t1)), t1)
    flow.commit(task, 1, t2)
    flow.reveal(task, 1, t0)
    flow.tx(market.functions.revealUpdate(task, 1, copied, 100, salt_of(t1, 1)), t1)
    flow.reveal(task, 1, t2)
    committee = flow.committee(task, 1)
    flow.score(task, 1, dict.fromkeys(committee, [500_000] * 3))
    assert market.functions.utilities(task, 1).call() == [500_000, 0, 500_000]  # the copy reads 0
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(committee, True))
    assert events(receipt, "UpdateRefused") == [{"modelId": task, "round": 1, "trainer": t1, "updateDigest": copied}]
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")] == [(t1, SLASH["Late"], 1_000)]
    pay = {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Trainer"]}
    assert pay == {t0: 350_001 + 500, t2: 350_001 + 500}
    assert validator_pay(events, receipt) == dict.fromkeys(committee, V // 3)


def test_item8_a_digest_sharing_a_fingerprint_is_not_refused_and_a_copy_behind_it_is(market, actors, flow, events, ready_task):
    """The settlement finds duplicates by the 36-bit fingerprints (top bits of the digest) the
    reveal-order words hold and compares the digests themselves only when fingerprints match: a
    different digest with the same fingerprint (t1) is accepted, a real copy (t2) of t0's digest
    revealed after it is refused."""
    task = ready_task(rounds=1)
    t0, t1, t2 = actors.trainers[:3]
    original = update_digest(t0, 1)
    near = original[:5] + bytes(b ^ 0xFF for b in original[5:])  # top 36 bits equal, the rest differs
    assert near != original and near[:4] == original[:4] and near[4] >> 4 == original[4] >> 4
    digests = {t0: original, t1: near, t2: original}
    for t, digest in digests.items():
        flow.tx(market.functions.commitUpdate(task, 1, commitment_of(task, 1, digest, 100, salt_of(t, 1), t)), t)
    for t, digest in digests.items():
        flow.tx(market.functions.revealUpdate(task, 1, digest, 100, salt_of(t, 1)), t)
    committee = flow.committee(task, 1)
    flow.score(task, 1, dict.fromkeys(committee, [500_000] * 3))
    assert market.functions.utilities(task, 1).call() == [500_000, 500_000, 0]
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(committee, True))
    assert events(receipt, "UpdateRefused") == [{"modelId": task, "round": 1, "trainer": t2, "updateDigest": original}]
    assert [(e["participant"], e["reason"]) for e in events(receipt, "Slashed")] == [(t2, SLASH["Late"])]
    pay = {e["participant"]: e["amount"] for e in events(receipt, "RewardAccrued") if e["role"] == ROLE["Trainer"]}
    assert pay == {t0: 350_001 + 500, t1: 350_001 + 500}


def test_item7_member_that_commits_and_never_reveals_is_late(actors, flow, events, advance, ready_task):
    """All three commit scores; one never reveals. ScoreReveal runs to its deadline; the silent
    member is late-slashed (2,000) and earns nothing; the two that revealed (same scores) are the
    only eligible members and share V: a missed reveal is the member's own doing."""
    task = ready_task(rounds=1)
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    a, b, silent = flow.committee(task, 1)
    for member in (a, b, silent):
        flow.commit_scores(task, 1, member, [400_000] * 3)
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]
    flow.reveal_scores(task, 1, a, [400_000] * 3)
    flow.reveal_scores(task, 1, b, [400_000] * 3)
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]  # it waits for the silent one
    advance(WINDOW + 1)
    assert flow.round(task)["phase"] == PHASE["Publish"]
    flow.publish(task, 1)
    receipt = flow.vote(task, 1, {a: True, b: True, silent: True})
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(receipt, "Slashed")] == [(silent, SLASH["Late"], 2_000)]
    assert validator_pay(events, receipt) == {a: 100_000, b: 100_000}


def test_agreement_tolerance_bounds(market, actors, expect_revert, make_params):
    expect_revert(market.functions.newModel(make_params(agreementToleranceBps=0)), actors.owner, "AgreementToleranceOutOfRange", 0, 1, 20_000, value=1)
    expect_revert(
        market.functions.newModel(make_params(agreementToleranceBps=20_001)), actors.owner, "AgreementToleranceOutOfRange", 20_001, 1, 20_000, value=1
    )
    market.functions.newModel(make_params(agreementToleranceBps=20_000)).transact({"from": actors.owner, "value": 1})
