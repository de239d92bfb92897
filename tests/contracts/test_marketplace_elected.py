"""Elected committees (docs/protocol.md, "Elected committees"; CMFL / BlockFL): a task with
maxValidators 0 has no validators; its trainers serve on the committee. Round 1's committee is
drawn among the trainer seats; each later one is elected when the round before it closes, from
that round's utilities (fl.committee.elect is the reference). A sitting member scores the round's
updates and does not train it (CommitteeMemberCannotTrain); it is neither due nor late as a
trainer, is paid its validator-pool share into its trainer seat and answers for its service with
its trainer stake.

The new revert paths, three rounds on chain to the wei, and what a colluding party can and cannot
do with the election.
"""

from __future__ import annotations

import random

import committee_model as CM
from contract_helpers import DEFAULT_REWARD, PHASE, ROLE, SLASH, STATUS, commitment_of, salt_of, update_digest
from eth_utils import keccak

from fedmarket.fl.committee import elect

FEE, T_STAKE, V_STAKE, A_STAKE = 1_000, 10_000, 20_000, 30_000  # contract_helpers.DEFAULT_PARAMS
LATE = T_STAKE * 1_000 // 10_000  # lateSlashBps 1,000 of the TRAINER stake: a member's stake is its trainer stake
BURN = "0x" + "00" * 20
MAX_SCORE = 10**9


def elected_task(ready_task, n_trainers=8, size=3, rounds=3, **overrides):
    """An elected-committee task (maxValidators 0) with `n_trainers` trainers and a committee of
    `size`, started (round 1 in Commit) unless start=False."""
    return ready_task(n_trainers=n_trainers, n_validators=0, maxValidators=0, committeeSize=size, minTrainers=2 * size, rounds=rounds, **overrides)


def seats_of(market, task, accounts):
    trainers = market.functions.trainers(task).call()
    return sorted(trainers.index(a) for a in accounts)


def off_committee(market, flow, task, round_):
    """The trainers that train round `round_` (not on its committee), in seat order."""
    committee = flow.committee(task, round_)
    return [t for t in market.functions.trainers(task).call() if t not in committee]


def expected_next(market, flow, task, round_, utility_of):
    """fl.committee.elect's committee after round `round_` (addresses, seat order): `utility_of`
    holds each revealed trainer's utility."""
    trainers = market.functions.trainers(task).call()
    sitting = seats_of(market, task, flow.committee(task, round_))
    chosen = elect({trainers.index(t): u for t, u in utility_of.items()}, sitting, flow.params(task)[6], len(trainers))
    return [trainers[i] for i in chosen]


def play(flow, task, round_, utility_of, order=None):
    """Every trainer off the committee commits and reveals (in `order`, default seat order); every
    member scores each update with `utility_of[trainer]` (so the utilities are exactly those),
    the aggregator publishes and every member votes ok. Returns the receipt that closes the round."""
    order = order or off_committee(flow.market, flow, task, round_)
    for t in order:
        flow.commit(task, round_, t)
    for t in order:
        flow.reveal(task, round_, t)
    committee = flow.committee(task, round_)
    flow.score(task, round_, dict.fromkeys(committee, [utility_of[t] for t in order]))
    flow.publish(task, round_)
    return flow.vote(task, round_, dict.fromkeys(committee, True))


def pay(amount, utility_of):
    """amount * u_i / P for each trainer (rounded down, u_i > 0), and the dust."""
    total = sum(u for u in utility_of.values() if u > 0)
    paid = {t: amount * u // total for t, u in utility_of.items() if u > 0}
    return paid, amount - sum(paid.values())


def agent_view(market, task, account):
    """agentView's role and committee fields (tests/contracts/test_agent_view.py has them all)."""
    v = market.functions.agentView(task, account).call()
    return {"role": v[12], "onCommittee": v[14], "committed": v[15]}


def rewards(events, receipt):
    return {(e["participant"], e["role"]): e["amount"] for e in events(receipt, "RewardAccrued")}


# ------------------------------------------------------------------------------ revert paths


def test_a_member_cannot_train_the_round_it_scores(market, actors, flow, expect_revert, advance, ready_task):
    """CommitteeMemberCannotTrain: checked before AlreadyCommitted and before the phase (a member's
    commit after the Commit window still says why it may not train)."""
    task = elected_task(ready_task)
    committee = flow.committee(task, 1)
    assert len(committee) == 3 and set(committee) <= set(actors.trainers[:8])
    member = committee[0]
    commitment = flow.commitment(task, 1, member)
    expect_revert(market.functions.commitUpdate(task, 1, commitment), member, "CommitteeMemberCannotTrain", task, 1, member)
    view = agent_view(market, task, member)
    assert (view["role"], view["onCommittee"], view["committed"]) == (ROLE["Trainer"], True, False)
    trainer = off_committee(market, flow, task, 1)[0]
    assert agent_view(market, task, trainer)["onCommittee"] is False
    flow.commit(task, 1, trainer)
    advance(101)  # past the Commit window: Reveal
    assert flow.phase(task) == PHASE["Reveal"]
    expect_revert(market.functions.commitUpdate(task, 1, commitment), member, "CommitteeMemberCannotTrain", task, 1, member)
    expect_revert(market.functions.commitUpdate(task, 1, commitment), trainer, "AlreadyCommitted", task, 1, trainer)
    assert market.functions.hasCommitted(task, 1, member).call() is False


def test_nobody_joins_an_elected_task_as_validator(market, actors, tx, expect_revert, flow, ready_task):
    """maxValidators 0: joinAsValidator is full (RoleFull(modelId, Validator, 0)); the task starts
    without validators and round 1's committee sits on trainer seats."""
    task = elected_task(ready_task, start=False)
    validator = actors.validators[0]
    expect_revert(market.functions.joinAsValidator(task), validator, "RoleFull", task, ROLE["Validator"], 0, value=V_STAKE)
    assert market.functions.validators(task).call() == []
    tx(market.functions.startTraining(task), actors.owner)
    assert flow.state(task)["status"] == STATUS["Training"] and flow.state(task)["validatorCount"] == 0
    assert set(flow.committee(task, 1)) <= set(market.functions.trainers(task).call())


def test_a_trainer_off_the_committee_cannot_score(market, actors, flow, expect_revert, ready_task):
    """NotCommitteeMember for a trainer that does not sit this round (nor for an outsider)."""
    task = elected_task(ready_task)
    trainers = off_committee(market, flow, task, 1)
    flow.to_phase(task, 1, trainers, "ScoreCommit")
    assert flow.phase(task) == PHASE["ScoreCommit"]
    for account in (trainers[0], actors.outsiders[0]):
        expect_revert(market.functions.commitScores(task, 1, keccak(text="scores")), account, "NotCommitteeMember", task, 1, account)


def test_commit_ends_when_every_trainer_off_the_committee_committed(market, flow, ready_task):
    task = elected_task(ready_task)
    trainers = off_committee(market, flow, task, 1)
    assert len(trainers) == 5
    for t in trainers[:-1]:
        flow.commit(task, 1, t)
    assert flow.phase(task) == PHASE["Commit"]
    flow.commit(task, 1, trainers[-1])
    assert flow.phase(task) == PHASE["Reveal"]


# ------------------------------------------------------------------------------ three rounds to the wei


def test_three_elected_rounds_to_the_wei(market, actors, flow, tx, events, w3, ready_task):
    """8 trainers, a committee of 3, 3 rounds (budgets 333,334 / 333,334 / 333,335). Round 1's
    committee is the draw over the trainer seats; rounds 2 and 3 are fl.committee.elect of the
    previous round's utilities (a tie at the last seat goes to the lower seat, not to the earlier
    reveal). Members never train and are never late as trainers; the member that commits its
    scores and does not reveal them is late-slashed from its trainer stake; the validator pool
    goes to the members' trainer seats (RewardAccrued with role Validator); at the end every wei
    is credited: deposits == credits, the task holds nothing."""
    task = elected_task(ready_task, start=False)
    receipt = tx(market.functions.startTraining(task), actors.owner)
    trainers = market.functions.trainers(task).call()
    assert trainers == actors.trainers[:8]
    # Round 1: Committee.draw(keccak256(abi.encode(prevrandao, modelId)), 8 trainers, 3, 0); py-evm
    # runs the transaction with prevrandao 0 and seals the block with a random mixHash.
    c1 = flow.committee(task, 1)
    randaos = [0, int.from_bytes(bytes(w3.eth.get_block(receipt["blockNumber"])["mixHash"]), "big")]
    assert sum(1 << trainers.index(m) for m in c1) in [CM.draw(CM.first_seed(r, task), 8, 3, 0) for r in randaos]
    (started,) = events(receipt, "RoundStarted")
    assert list(started["committee"]) == c1

    earned: dict[str, int] = dict.fromkeys(trainers, 0)
    slashed: dict[str, int] = dict.fromkeys(trainers, 0)
    to_buyer = 0

    # ---- round 1: everyone acts; five trainers reveal in reverse seat order
    n1 = off_committee(market, flow, task, 1)
    u1 = {n1[0]: 300_000, n1[1]: 300_000, n1[2]: 500_000, n1[3]: 400_000, n1[4]: 100_000}
    closed = play(flow, task, 1, u1, order=list(reversed(n1)))
    assert events(closed, "Slashed") == []  # 5 of 8 committed: without the members' exclusion all three were late
    t1, v1, a1 = 233_333, 66_666, 33_335
    trainer_pay, dust = pay(t1, u1)
    round1_pay = trainer_pay
    paid = rewards(events, closed)
    assert paid == {
        **{(t, ROLE["Trainer"]): x for t, x in trainer_pay.items()},
        **{(m, ROLE["Validator"]): v1 // 3 for m in c1},
        (actors.aggregator, ROLE["Aggregator"]): a1,
    }
    (rc,) = events(closed, "RoundClosed")
    assert rc["returnedToBuyer"] == dust == 3
    to_buyer += dust
    for (t, role), x in paid.items():
        if role != ROLE["Aggregator"]:
            earned[t] += x
    c2 = flow.committee(task, 2)
    # the tie at 300,000 for the third seat goes to n1[0] (the lower seat; it revealed after n1[1])
    assert c2 == expected_next(market, flow, task, 1, u1) == [n1[0], n1[2], n1[3]]
    assert not set(c2) & set(c1)
    assert [agent_view(market, task, m)["onCommittee"] for m in c2] == [True] * 3

    # ---- round 2: one trainer does not commit, one member commits its scores and never reveals them
    n2 = off_committee(market, flow, task, 2)
    absent = n1[1]
    lazy, *diligent = c2
    trainers2 = [t for t in n2 if t != absent]
    for t in trainers2:
        flow.commit(task, 2, t)
    flow._past_phase(task, 2, "Commit")  # waits for `absent` until its deadline
    for t in trainers2:
        flow.reveal(task, 2, t)
    u2 = dict(zip(trainers2, [600_000, 200_000, 400_000, 700_000]))
    scores = [u2[t] for t in trainers2]
    for m in c2:
        flow.commit_scores(task, 2, m, scores)
    assert flow.phase(task) == PHASE["ScoreReveal"]
    for m in diligent:
        flow.reveal_scores(task, 2, m, scores)
    flow._past_phase(task, 2, "ScoreReveal")  # `lazy` never reveals
    assert list(market.functions.utilities(task, 2).call()) == scores  # a quorum of 2 of 3
    flow.publish(task, 2)
    closed = flow.vote(task, 2, dict.fromkeys(diligent, True))  # 2 approvals of 3: accepted
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(closed, "Slashed")] == [
        (absent, SLASH["Late"], LATE),  # a trainer off the committee that did not commit
        (lazy, SLASH["Late"], LATE),  # the member's service, from its trainer stake
    ]
    slashed[absent] += LATE
    slashed[lazy] += LATE
    assert flow.participant(task, lazy)["stakeRemaining"] == T_STAKE - LATE
    trainer_pay, dust = pay(t1, u2)
    slash_pay, carry = pay(2 * LATE, u2)
    paid = rewards(events, closed)
    assert paid == {
        **{(t, ROLE["Trainer"]): trainer_pay[t] + slash_pay[t] for t in trainers2},
        **{(m, ROLE["Validator"]): v1 // 2 for m in diligent},  # two eligible members, nothing for `lazy`
        (actors.aggregator, ROLE["Aggregator"]): a1,
    }
    assert (dust, carry) == (2, 2) and market.functions.trainerCarry(task).call() == carry
    to_buyer += dust
    for (t, role), x in paid.items():
        if role != ROLE["Aggregator"]:
            earned[t] += x
    c3 = flow.committee(task, 3)
    assert c3 == expected_next(market, flow, task, 2, u2)
    assert set(c3) == {t for t in trainers2 if u2[t] >= 400_000} and not set(c3) & set(c2)

    # ---- round 3 (the last): everyone acts; the carry's 2 wei is too little to pay anyone
    n3 = off_committee(market, flow, task, 3)
    u3 = dict(zip(n3, [100_000, 200_000, 300_000, 400_000, 500_000]))
    closed = play(flow, task, 3, u3)
    assert events(closed, "Slashed") == []
    t3, v3, a3 = 233_334, 66_667, 33_334
    trainer_pay, dust = pay(t3, u3)
    carry_pay, carry = pay(2, u3)
    assert carry_pay == dict.fromkeys(n3, 0) and carry == 2
    paid = rewards(events, closed)
    assert paid == {
        **{(t, ROLE["Trainer"]): x for t, x in trainer_pay.items()},
        **{(m, ROLE["Validator"]): v3 // 3 for m in c3},
        (actors.aggregator, ROLE["Aggregator"]): a3,
    }
    to_buyer += dust + v3 % 3
    for (t, role), x in paid.items():
        if role != ROLE["Aggregator"]:
            earned[t] += x
    assert flow.state(task)["roundsClosed"] == 3

    # ---- the end: every wei is credited
    for t in trainers:
        assert flow.participant(task, t) == {
            "role": ROLE["Trainer"],
            "stakeRemaining": T_STAKE - slashed[t],
            "earned": earned[t],
            "slashed": slashed[t],
            "licensed": True,
        }
    tx(market.functions.finalizeContract(task), actors.outsiders[0])
    settled = tx(market.functions.generateTrainingPayments(task), actors.outsiders[0])
    assert {e["trainer"]: (e["earned"], e["stakeReturned"]) for e in events(settled, "ContributionPayment")} == {
        t: (earned[t], T_STAKE - slashed[t]) for t in trainers
    }
    assert events(settled, "ValidationPayment") == []
    assert events(settled, "CarryBurned") == [{"modelId": task, "amount": carry}]
    credit = {a: market.functions.credit(a).call() for a in [*trainers, actors.owner, actors.aggregator, BURN]}
    assert {t: credit[t] for t in trainers} == {t: earned[t] + T_STAKE - slashed[t] for t in trainers}
    assert credit[actors.aggregator] == a1 + a1 + a3 + A_STAKE
    assert credit[actors.owner] == 8 * FEE + to_buyer
    assert credit[BURN] == carry
    deposited = DEFAULT_REWARD + 8 * (FEE + T_STAKE) + A_STAKE
    assert sum(credit.values()) == deposited == market.functions.totalCredit().call() == w3.eth.get_balance(market.address)
    assert market.functions.taskBalance(task).call() == 0
    # a member of round 2 earned both ways: paid to train in rounds 1 and 3 and to score in round 2
    assert earned[n1[2]] == round1_pay[n1[2]] + v1 // 2 + trainer_pay[n1[2]]


def test_a_refused_duplicate_is_not_elected_however_it_was_scored(market, actors, flow, tx, events, ready_task):
    """A trainer that reveals another's update digest is refused at settlement: its utility is 0
    for the election too (the members scored the copy 900,000 like any update), and it is
    late-slashed. 6 trainers, a committee of 2: 4 train, the 2 best sit next."""
    task = elected_task(ready_task, n_trainers=6, size=2, rounds=2)
    n1 = off_committee(market, flow, task, 1)
    original, copier, c, d = n1
    digest = update_digest(original, 1)
    for t in n1:
        if t == copier:
            tx(market.functions.commitUpdate(task, 1, commitment_of(task, 1, digest, 100, salt_of(copier, 1), copier)), copier)
        else:
            flow.commit(task, 1, t)
    for t in n1:
        if t == copier:
            tx(market.functions.revealUpdate(task, 1, digest, 100, salt_of(copier, 1)), copier)
        else:
            flow.reveal(task, 1, t)
    scored = {original: 100_000, copier: 900_000, c: 500_000, d: 300_000}
    committee = flow.committee(task, 1)
    flow.score(task, 1, dict.fromkeys(committee, [scored[t] for t in n1]))
    assert list(market.functions.utilities(task, 1).call()) == [100_000, 0, 500_000, 300_000]
    flow.publish(task, 1)
    closed = flow.vote(task, 1, dict.fromkeys(committee, True))
    assert [(e["participant"], e["reason"]) for e in events(closed, "Slashed")] == [(copier, SLASH["Late"])]
    assert flow.committee(task, 2) == expected_next(market, flow, task, 1, {**scored, copier: 0}) == [c, d]


# ------------------------------------------------------------------------------ attackers


def test_a_sybil_pair_cannot_sit_twice_running_nor_lift_each_other(market, actors, flow, events, expect_revert, ready_task):
    """Two sybils hold two of round 1's three seats (a majority). They cannot train while they sit
    (CommitteeMemberCannotTrain), so they have no update to score each other up with, and the
    election excludes sitting members however they score: round 2's committee holds neither.
    In round 2 their accomplice X, elected by their scores, sits alone among two honest members:
    it scores the pair at the maximum, but a utility is the lower median of a quorum, so the pair
    gets what the honest members gave it, and X is slashed Disagreed from its trainer stake (its
    validator share goes to the trainer carry).

    What a colluding majority CAN do (the CMFL / BlockFL design's weakness, docs/protocol.md,
    "Elected committees"): the next committee is elected by the sitting committee's scores, so a
    majority steers who sits next. Here it seats X (an update worth 100,000 scored to the maximum)
    and keeps out Y, the best honest trainer (900,000 scored 1: just above 0, so Y is not
    poison-slashed, only paid almost nothing). It cannot seat itself twice running, and a party
    that wants to keep a majority must win it again through honest members' scores or through
    sybils among the trainers it steers onto the committee."""
    task = elected_task(ready_task, n_trainers=7)
    c1 = flow.committee(task, 1)
    p1, p2, honest = c1
    for sybil in (p1, p2):
        expect_revert(market.functions.commitUpdate(task, 1, flow.commitment(task, 1, sybil)), sybil, "CommitteeMemberCannotTrain", task, 1, sybil)
    n1 = off_committee(market, flow, task, 1)
    y, a, b, x = n1
    truth = {y: 900_000, a: 500_000, b: 400_000, x: 100_000}
    steered = {**truth, y: 1, x: MAX_SCORE}
    for t in n1:
        flow.commit(task, 1, t)
    for t in n1:
        flow.reveal(task, 1, t)
    flow.score(task, 1, {p1: [steered[t] for t in n1], p2: [steered[t] for t in n1], honest: [truth[t] for t in n1]})
    assert list(market.functions.utilities(task, 1).call()) == [steered[t] for t in n1]  # the majority's median
    flow.publish(task, 1)
    flow.vote(task, 1, dict.fromkeys(c1, True))
    c2 = flow.committee(task, 2)
    assert c2 == expected_next(market, flow, task, 1, steered) == sorted([x, a, b], key=n1.index)
    assert p1 not in c2 and p2 not in c2  # the sitting majority is not re-elected, whatever it scores
    assert y not in c2  # steered out: the weakness

    # round 2: the pair trains; X, sitting alone with two honest members, scores it to the maximum
    n2 = off_committee(market, flow, task, 2)
    assert set(n2) == {p1, p2, honest, y}
    truth2 = {p1: 300_000, p2: 300_000, honest: 600_000, y: 900_000}
    lifted = {**truth2, p1: MAX_SCORE, p2: MAX_SCORE, honest: 1, y: 1}
    for t in n2:
        flow.commit(task, 2, t)
    for t in n2:
        flow.reveal(task, 2, t)
    flow.score(task, 2, {x: [lifted[t] for t in n2], a: [truth2[t] for t in n2], b: [truth2[t] for t in n2]})
    assert list(market.functions.utilities(task, 2).call()) == [truth2[t] for t in n2]  # X moved nothing
    flow.publish(task, 2)
    closed = flow.vote(task, 2, dict.fromkeys(c2, True))
    assert [(e["participant"], e["reason"], e["amount"]) for e in events(closed, "Slashed")] == [(x, SLASH["Disagreed"], LATE)]
    assert events(closed, "CarryBurned") == [{"modelId": task, "amount": LATE}]
    validator_pay = {e["participant"] for e in events(closed, "RewardAccrued") if e["role"] == ROLE["Validator"]}
    assert validator_pay == {a, b}
    assert flow.participant(task, x)["stakeRemaining"] == T_STAKE - LATE
    c3 = flow.committee(task, 3)
    # four trainers for three seats: the honest pair (best) and one sybil, the lower seat of the tie
    assert c3 == expected_next(market, flow, task, 2, truth2) == sorted([y, honest, p1], key=market.functions.trainers(task).call().index)
    assert not set(c3) & set(c2) and not set(c2) & set(c1)


def test_no_seat_sits_on_every_committee_at_the_smallest_elected_task(market, actors, flow, ready_task):
    """6 trainers, a committee of 3 (minTrainers >= 2 * committeeSize, the least ParamsCheck takes;
    5 is ElectedTrainersOutOfRange, test_marketplace_setup): a whole next committee sits outside
    every committee, so the committees alternate and every seat trains every other round. With 5
    trainers the rule had to re-seat a sitting member, the lowest seat, every round whatever
    anyone scored: a first joiner held a permanent, paid seat."""
    task = elected_task(ready_task, n_trainers=6, rounds=4)
    committees = [flow.committee(task, 1)]
    for r in range(1, 4):
        n = off_committee(market, flow, task, r)
        utility_of = dict(zip(n, [700_000, 300_000, 500_000]))
        play(flow, task, r, utility_of)
        committees.append(flow.committee(task, r + 1))
        assert committees[-1] == expected_next(market, flow, task, r, utility_of)
        assert sorted(committees[-1]) == sorted(n) and not set(committees[-1]) & set(committees[-2])
    assert committees[0] == committees[2] and committees[1] == committees[3]


def test_the_reference_model_elects_as_fl_committee_does():
    """committee_model.elect (the invariant machine's, written from the contract's rule over
    revealed seats) and fl.committee.elect (over seats with a utility) agree on 5,000 random
    rounds: sizes 1..9, up to 32 trainers, any subset revealed in any order, tied utilities."""
    rng = random.Random(3)
    for _ in range(5_000):
        size = rng.randint(1, 9)
        count = rng.randint(2 * size, 32)
        sitting = rng.sample(range(count), size)
        outside = [i for i in range(count) if i not in sitting]
        revealed = rng.sample(outside, rng.randint(0, len(outside)))
        scored = [(seat, rng.randint(-3, 3)) for seat in revealed]
        mask = CM.elect(scored, sum(1 << i for i in sitting), size, count)
        assert mask == sum(1 << i for i in elect(dict(scored), sitting, size, count)), (scored, sitting, size, count)
