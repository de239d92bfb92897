"""Rounds: commitUpdate, revealUpdate, commitScores / revealScores, publishGlobalModel,
commitVote / revealVote, closeRound, and the lazy phase rules of docs/protocol.md (early end, deadlines, skips).

Default task (conftest): 3 trainers, 3 validators (committee 3, so every validator sits on every
committee), windows of 100 s.
"""

from __future__ import annotations

import pytest
from contract_helpers import PHASE, ROLE, SLASH, STATUS, WINDOW, salt_of, update_digest
from eth_abi import encode
from eth_utils import keccak


@pytest.fixture
def task(ready_task):
    return ready_task()


def block_ts(w3, receipt):
    return w3.eth.get_block(receipt["blockNumber"])["timestamp"]


# ------------------------------------------------------------------------------ commitUpdate


def test_commit(market, actors, flow, events, task):
    trainer = actors.trainers[0]
    commitment = flow.commitment(task, 1, trainer)
    receipt = flow.tx(market.functions.commitUpdate(task, 1, commitment), trainer)
    assert events(receipt, "UpdateCommitted") == [{"modelId": task, "round": 1, "trainer": trainer, "commitment": commitment}]
    assert market.functions.hasCommitted(task, 1, trainer).call() is True
    assert market.functions.hasCommitted(task, 1, actors.trainers[1]).call() is False
    view = flow.round(task)
    assert view["commits"] == 1 and view["phase"] == PHASE["Commit"]


def test_last_commit_ends_commit_phase(w3, market, actors, flow, task):
    for trainer in actors.trainers[:2]:
        flow.commit(task, 1, trainer)
    receipt = flow.commit(task, 1, actors.trainers[2])
    view = flow.round(task)
    assert view["phase"] == PHASE["Reveal"] and view["phaseDeadline"] == block_ts(w3, receipt) + WINDOW


def test_commit_reverts(market, actors, flow, expect_revert, task, post_task):
    trainer = actors.trainers[0]
    c = flow.commitment(task, 1, trainer)
    expect_revert(market.functions.commitUpdate(77, 1, c), trainer, "UnknownModel", 77)
    expect_revert(market.functions.commitUpdate(task, 2, c), trainer, "WrongRound", task, 1, 2)
    expect_revert(market.functions.commitUpdate(task, 0, c), trainer, "WrongRound", task, 1, 0)
    expect_revert(market.functions.commitUpdate(task, 1, c), actors.validators[0], "NotTrainer", task, actors.validators[0])
    expect_revert(market.functions.commitUpdate(task, 1, c), actors.outsiders[0], "NotTrainer", task, actors.outsiders[0])
    flow.commit(task, 1, trainer)
    expect_revert(market.functions.commitUpdate(task, 1, c), trainer, "AlreadyCommitted", task, 1, trainer)
    open_task = post_task()
    expect_revert(market.functions.commitUpdate(open_task, 1, c), trainer, "WrongStatus", open_task, STATUS["Training"], STATUS["Open"])


def test_commit_deadline_is_inclusive(market, actors, flow, set_time, expect_revert, task):
    deadline = flow.round(task)["phaseDeadline"]
    flow.commit(task, 1, actors.trainers[0])
    set_time(deadline)
    flow.commit(task, 1, actors.trainers[1])  # at the deadline: still Commit
    late = actors.trainers[2]
    c = flow.commitment(task, 1, late)
    expect_revert(market.functions.commitUpdate(task, 1, c), late, "WrongPhase", task, 1, PHASE["Commit"], PHASE["Reveal"])


# ------------------------------------------------------------------------------ revealUpdate


def test_reveal(market, actors, flow, events, task):
    order = list(reversed(actors.trainers[:3]))
    for i, trainer in enumerate(order):
        flow.commit(task, 1, trainer, samples=10 + i)
    receipts = [flow.reveal(task, 1, t, samples=10 + i) for i, t in enumerate(order)]
    got = [events(r, "UpdateRevealed")[0] for r in receipts]
    assert [e["index"] for e in got] == [0, 1, 2]
    assert got[0] == {
        "modelId": task,
        "round": 1,
        "trainer": actors.trainers[2],
        "updateDigest": update_digest(actors.trainers[2], 1),
        "numSamples": 10,
        "index": 0,
    }
    trainers, digests, samples = market.functions.revealedUpdates(task, 1).call()
    assert trainers == list(reversed(actors.trainers[:3]))
    assert digests == [update_digest(t, 1) for t in trainers]
    assert samples == [10, 11, 12]
    assert all(market.functions.hasRevealed(task, 1, t).call() for t in trainers)


def test_last_reveal_ends_reveal_phase(w3, actors, flow, set_time, task):
    # Commit ends at its deadline (one trainer never commits); Reveal then waits for the two.
    deadline = flow.round(task)["phaseDeadline"]
    for trainer in actors.trainers[:2]:
        flow.commit(task, 1, trainer)
    set_time(deadline + 1)
    flow.reveal(task, 1, actors.trainers[0])
    assert flow.round(task)["phase"] == PHASE["Reveal"]
    assert flow.round(task)["phaseDeadline"] == deadline + WINDOW  # runs from the commit deadline
    receipt = flow.reveal(task, 1, actors.trainers[1])
    view = flow.round(task)
    assert view["phase"] == PHASE["ScoreCommit"] and view["phaseDeadline"] == block_ts(w3, receipt) + WINDOW


def test_reveal_reverts(market, actors, flow, expect_revert, advance, task):
    a, b, c = actors.trainers[:3]
    digest, salt = update_digest(a, 1), salt_of(a, 1)
    flow.commit(task, 1, a)
    # Reveal during Commit
    expect_revert(market.functions.revealUpdate(task, 1, digest, 100, salt), a, "WrongPhase", task, 1, PHASE["Reveal"], PHASE["Commit"])
    # b replays a's commitment: the commitment binds the trainer, so b cannot open it
    flow.tx(market.functions.commitUpdate(task, 1, flow.commitment(task, 1, a)), b)
    advance(WINDOW + 1)  # c never commits: Commit ends at its deadline
    assert flow.phase(task) == PHASE["Reveal"]
    expect_revert(market.functions.revealUpdate(task, 1, digest, 100, salt), b, "CommitmentMismatch", task, 1, b)
    expect_revert(market.functions.revealUpdate(task, 1, update_digest(c, 1), 100, salt_of(c, 1)), c, "NotCommitted", task, 1, c)
    expect_revert(market.functions.revealUpdate(task, 1, digest, 100, salt), actors.validators[0], "NotTrainer", task, actors.validators[0])
    expect_revert(market.functions.revealUpdate(task, 1, digest, 0, salt), a, "ZeroSamples")
    expect_revert(market.functions.revealUpdate(task, 1, digest, 100, keccak(text="wrong salt")), a, "CommitmentMismatch", task, 1, a)
    expect_revert(market.functions.revealUpdate(task, 1, digest, 101, salt), a, "CommitmentMismatch", task, 1, a)
    expect_revert(market.functions.revealUpdate(task, 2, digest, 100, salt), a, "WrongRound", task, 1, 2)
    flow.reveal(task, 1, a)
    expect_revert(market.functions.revealUpdate(task, 1, digest, 100, salt), a, "AlreadyRevealed", task, 1, a)


def test_commitment_binds_round(market, actors, flow, expect_revert, advance, task):
    """A round-1 commitment cannot be reused in round 2."""
    trainers = actors.trainers[:3]
    flow.play_round(task, 1, trainers)
    a = trainers[0]
    old = flow.commitment(task, 1, a)
    flow.tx(market.functions.commitUpdate(task, 2, old), a)
    for t in trainers[1:]:
        flow.commit(task, 2, t)
    expect_revert(market.functions.revealUpdate(task, 2, update_digest(a, 1), 100, salt_of(a, 1)), a, "CommitmentMismatch", task, 2, a)


def test_commitment_of_matches_abi_encoding(market, actors):
    args = (5, 7, keccak(text="u"), 123, keccak(text="s"), actors.trainers[0])
    expected = keccak(encode(["uint256", "uint32", "bytes32", "uint64", "bytes32", "address"], list(args)))
    assert market.functions.commitmentOf(*args).call() == expected


# ------------------------------------------------------------------------------ commitScores / revealScores


def test_score_commit_and_reveal(market, actors, flow, events, task):
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    committee = flow.committee(task, 1)
    member, scores = committee[0], [5, -7, 2**63 - 1]
    receipt = flow.commit_scores(task, 1, member, scores)
    (committed,) = events(receipt, "ScoresCommitted")
    assert committed["validator"] == member and committed["round"] == 1
    assert flow.round(task)["scoreCommits"] == 1
    for other in committee[1:]:
        flow.commit_scores(task, 1, other, [1, 2, 3])
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]
    receipt = flow.reveal_scores(task, 1, member, scores)
    assert events(receipt, "ScoresRevealed") == [{"modelId": task, "round": 1, "validator": member, "scores": scores}]
    assert market.functions.scoresOf(task, 1, member).call() == [True, [5, -7, 10**9]]  # stored clamped to MAX_SCORE (issue 10 item 6)
    assert market.functions.scoresOf(task, 1, committee[1]).call() == [False, []]
    assert flow.round(task)["scoresSubmitted"] == 1


def test_last_commit_and_reveal_end_score_phases(w3, actors, flow, task):
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    committee = flow.committee(task, 1)
    for member in committee[:2]:
        flow.commit_scores(task, 1, member, [1, 2, 3])
    assert flow.round(task)["phase"] == PHASE["ScoreCommit"]
    receipt = flow.commit_scores(task, 1, committee[2], [1, 2, 3])
    view = flow.round(task)
    assert view["phase"] == PHASE["ScoreReveal"] and view["phaseDeadline"] == block_ts(w3, receipt) + WINDOW
    for member in committee[:2]:
        flow.reveal_scores(task, 1, member, [1, 2, 3])
    receipt = flow.reveal_scores(task, 1, committee[2], [1, 2, 3])
    view = flow.round(task)
    assert view["phase"] == PHASE["Publish"] and view["phaseDeadline"] == block_ts(w3, receipt) + WINDOW


def test_reveal_phase_waits_only_for_members_that_committed(w3, actors, flow, advance, task):
    """A member that did not commit cannot hold ScoreReveal open: the last reveal of those that
    committed ends it."""
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    committee = flow.committee(task, 1)
    for member in committee[:2]:
        flow.commit_scores(task, 1, member, [1, 2, 3])
    advance(WINDOW + 1)
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]
    flow.reveal_scores(task, 1, committee[0], [1, 2, 3])
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]
    flow.reveal_scores(task, 1, committee[1], [1, 2, 3])
    assert flow.round(task)["phase"] == PHASE["Publish"]


def test_no_positive_utility_skips_publish(w3, market, actors, flow, task):
    flow.to_phase(task, 1, actors.trainers[:3], "Publish", scores=[0, -1, -2])
    view = flow.round(task)
    assert view["phase"] == PHASE["Due"] and view["phaseDeadline"] == 0
    assert market.functions.utilities(task, 1).call() == [0, -1, -2]


def test_nobody_commits_scores_skips_to_due(actors, flow, advance, task):
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    advance(WINDOW + 1)
    assert flow.round(task)["phase"] == PHASE["Due"]


def test_score_reverts(market, actors, flow, expect_revert, ready_task):
    """Every revert of commitScores and revealScores: wrong phase, not on the committee, wrong
    round, committed twice, reveal without a commit, wrong count, a reveal that does not match its
    commitment (other scores, other salt, another member's commitment), revealed twice."""
    from fedmarket.chain.protocol import score_commitment

    task = ready_task(n_validators=4)  # one validator sits out each round
    committee = flow.committee(task, 1)
    outsider = next(v for v in actors.validators[:4] if v not in committee)
    member, other, late = committee
    fn = market.functions
    salt = flow.member_salt(task, 1, member, "score")
    mine = score_commitment(task, 1, member, [1, 2, 3], salt)
    flow.to_phase(task, 1, actors.trainers[:3], "Reveal")
    expect_revert(fn.commitScores(task, 1, mine), member, "WrongPhase", task, 1, PHASE["ScoreCommit"], PHASE["Reveal"])
    for trainer in actors.trainers[:3]:
        flow.reveal(task, 1, trainer)
    expect_revert(fn.commitScores(task, 1, mine), outsider, "NotCommitteeMember", task, 1, outsider)
    expect_revert(fn.commitScores(task, 1, mine), actors.trainers[0], "NotCommitteeMember", task, 1, actors.trainers[0])
    expect_revert(fn.commitScores(task, 2, mine), member, "WrongRound", task, 1, 2)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], salt), member, "WrongPhase", task, 1, PHASE["ScoreReveal"], PHASE["ScoreCommit"])
    flow.tx(fn.commitScores(task, 1, mine), member)
    expect_revert(fn.commitScores(task, 1, mine), member, "ScoresAlreadyCommitted", task, 1, member)
    flow.tx(fn.commitScores(task, 1, mine), other)  # `other` replays member's commitment: it binds the member
    flow._past_phase(task, 1, "ScoreCommit")  # `late` never commits
    assert flow.round(task)["phase"] == PHASE["ScoreReveal"]
    expect_revert(fn.commitScores(task, 1, mine), late, "WrongPhase", task, 1, PHASE["ScoreCommit"], PHASE["ScoreReveal"])
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], salt), late, "ScoresNotCommitted", task, 1, late)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], salt), outsider, "NotCommitteeMember", task, 1, outsider)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], salt), other, "ScoreCommitmentMismatch", task, 1, other)
    expect_revert(fn.revealScores(task, 1, [1, 2], salt), member, "WrongScoreCount", 3, 2)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3, 4], salt), member, "WrongScoreCount", 3, 4)
    expect_revert(fn.revealScores(task, 1, [1, 2, 4], salt), member, "ScoreCommitmentMismatch", task, 1, member)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], keccak(text="other salt")), member, "ScoreCommitmentMismatch", task, 1, member)
    expect_revert(fn.revealScores(task, 2, [1, 2, 3], salt), member, "WrongRound", task, 1, 2)
    flow.tx(fn.revealScores(task, 1, [1, 2, 3], salt), member)
    expect_revert(fn.revealScores(task, 1, [1, 2, 3], salt), member, "AlreadyScored", task, 1, member)


# ------------------------------------------------------------------------------ publishGlobalModel


def test_publish(w3, market, actors, flow, events, task):
    flow.to_phase(task, 1, actors.trainers[:3], "Publish")
    digest = keccak(text="aggregate")
    receipt = flow.publish(task, 1, digest, metric=-12)
    assert events(receipt, "GlobalModelProposed") == [{"modelId": task, "round": 1, "modelDigest": digest, "metric": -12}]
    view = flow.round(task)
    assert view["proposed"] and view["proposedDigest"] == digest and view["proposedMetric"] == -12
    assert view["phase"] == PHASE["VoteCommit"] and view["phaseDeadline"] == block_ts(w3, receipt) + WINDOW


def test_publish_reverts(market, actors, flow, expect_revert, task):
    digest = keccak(text="aggregate")
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    agg = actors.aggregator
    expect_revert(market.functions.publishGlobalModel(task, 1, digest, 1), agg, "WrongPhase", task, 1, PHASE["Publish"], PHASE["ScoreCommit"])
    flow.score(task, 1, dict.fromkeys(flow.committee(task, 1), [1, 1, 1]))
    expect_revert(market.functions.publishGlobalModel(task, 1, digest, 1), actors.owner, "NotAggregator", task, actors.owner)
    expect_revert(market.functions.publishGlobalModel(task, 2, digest, 1), agg, "WrongRound", task, 1, 2)
    flow.publish(task, 1, digest)
    expect_revert(market.functions.publishGlobalModel(task, 1, digest, 1), agg, "AlreadyPublished", task, 1)


# ------------------------------------------------------------------------------ commitVote / revealVote


def test_vote_commit_reveal_and_last_reveal_closes(w3, market, actors, flow, events, task):
    flow.to_phase(task, 1, actors.trainers[:3], "VoteCommit")
    committee = flow.committee(task, 1)
    votes = dict(zip(committee, [True, False, True], strict=True))
    for member, ok in votes.items():
        receipt = flow.commit_vote(task, 1, member, ok)
        assert [e["validator"] for e in events(receipt, "VoteCommitted")] == [member]
    view = flow.round(task)
    assert view["phase"] == PHASE["VoteReveal"] and view["voteCommits"] == 3 and view["confirmations"] == 0
    receipt = flow.reveal_vote(task, 1, committee[0], True)
    assert events(receipt, "GlobalModelConfirmed") == [{"modelId": task, "round": 1, "validator": committee[0], "ok": True}]
    assert market.functions.hasConfirmed(task, 1, committee[0]).call() == [True, True]
    assert market.functions.hasConfirmed(task, 1, committee[1]).call() == [False, False]
    flow.reveal_vote(task, 1, committee[1], False)
    assert market.functions.hasConfirmed(task, 1, committee[1]).call() == [True, False]
    receipt = flow.reveal_vote(task, 1, committee[2], True)
    (closed,) = events(receipt, "RoundClosed")
    assert closed["round"] == 1 and closed["accepted"] is True
    assert closed["globalModelDigest"] == keccak(text=f"global:{task}:1")
    (started,) = events(receipt, "RoundStarted")
    assert started["round"] == 2 and started["commitDeadline"] == block_ts(w3, receipt) + WINDOW
    view = flow.round(task, 1)
    assert view["closed"] and view["phase"] == PHASE["None"] and view["confirmations"] == 3 and view["rejections"] == 1
    assert view["voteCommits"] == 3 and view["scoreCommits"] == 3
    state = flow.state(task)
    assert state["currentRound"] == 2 and state["roundsClosed"] == 1
    assert state["globalModelDigest"] == closed["globalModelDigest"]


def test_vote_reveal_settles_once_every_committed_member_revealed(actors, flow, events, task):
    """VoteCommit ends at its deadline with 2 of 3 commitments; the second reveal settles the round
    and the silent member is late."""
    flow.to_phase(task, 1, actors.trainers[:3], "VoteCommit")
    committee = flow.committee(task, 1)
    receipt = flow.vote(task, 1, dict.fromkeys(committee[:2], True))
    (closed,) = events(receipt, "RoundClosed")
    assert closed["accepted"] is True  # 2 approvals of a committee of 3: a majority
    assert [(e["participant"], e["reason"]) for e in events(receipt, "Slashed")] == [(committee[2], SLASH["Late"])]


def test_vote_reverts(market, actors, flow, expect_revert, ready_task):
    """Every revert of commitVote and revealVote."""
    from fedmarket.chain.protocol import vote_commitment

    task = ready_task(n_validators=4)
    committee = flow.committee(task, 1)
    outsider = next(v for v in actors.validators[:4] if v not in committee)
    member, other, late = committee
    fn = market.functions
    salt = flow.member_salt(task, 1, member, "vote")
    mine = vote_commitment(task, 1, member, True, salt)
    flow.to_phase(task, 1, actors.trainers[:3], "Publish")
    expect_revert(fn.commitVote(task, 1, mine), member, "WrongPhase", task, 1, PHASE["VoteCommit"], PHASE["Publish"])
    flow.publish(task, 1)
    expect_revert(fn.commitVote(task, 1, mine), outsider, "NotCommitteeMember", task, 1, outsider)
    expect_revert(fn.commitVote(task, 2, mine), member, "WrongRound", task, 1, 2)
    expect_revert(fn.revealVote(task, 1, True, salt), member, "WrongPhase", task, 1, PHASE["VoteReveal"], PHASE["VoteCommit"])
    flow.tx(fn.commitVote(task, 1, mine), member)
    expect_revert(fn.commitVote(task, 1, mine), member, "VoteAlreadyCommitted", task, 1, member)
    flow.tx(fn.commitVote(task, 1, mine), other)  # a replayed commitment binds its member
    flow._past_phase(task, 1, "VoteCommit")
    expect_revert(fn.commitVote(task, 1, mine), late, "WrongPhase", task, 1, PHASE["VoteCommit"], PHASE["VoteReveal"])
    expect_revert(fn.revealVote(task, 1, True, salt), late, "VoteNotCommitted", task, 1, late)
    expect_revert(fn.revealVote(task, 1, True, salt), outsider, "NotCommitteeMember", task, 1, outsider)
    expect_revert(fn.revealVote(task, 1, True, salt), other, "VoteCommitmentMismatch", task, 1, other)
    expect_revert(fn.revealVote(task, 1, False, salt), member, "VoteCommitmentMismatch", task, 1, member)
    expect_revert(fn.revealVote(task, 1, True, keccak(text="x")), member, "VoteCommitmentMismatch", task, 1, member)
    expect_revert(fn.revealVote(task, 2, True, salt), member, "WrongRound", task, 1, 2)
    flow.tx(fn.revealVote(task, 1, True, salt), member)
    expect_revert(fn.revealVote(task, 1, True, salt), member, "AlreadyConfirmed", task, 1, member)


def test_rejected_proposal(market, actors, flow, events, task):
    """Two of three reject: the aggregator loses bad-slash (50 % of 30_000) and the previous global
    model carries over; the aggregator's share returns to the buyer."""
    trainers = actors.trainers[:3]
    flow.to_phase(task, 1, trainers, "VoteCommit")
    committee = flow.committee(task, 1)
    receipt = flow.vote(task, 1, dict(zip(committee, [False, True, False], strict=True)))
    (closed,) = events(receipt, "RoundClosed")
    assert closed["accepted"] is False
    assert closed["globalModelDigest"] == flow.params(task)[1]  # the initial model
    assert events(receipt, "Slashed") == [{"modelId": task, "round": 1, "participant": actors.aggregator, "reason": SLASH["Rejected"], "amount": 15_000}]
    assert flow.participant(task, actors.aggregator)["earned"] == 0
    assert flow.participant(task, actors.aggregator)["stakeRemaining"] == 15_000
    assert flow.state(task)["globalModelDigest"] == flow.params(task)[1]


# ------------------------------------------------------------------------------ closeRound


def test_close_round_not_due(market, actors, flow, expect_revert, task, now):
    deadline = flow.round(task)["phaseDeadline"]
    expect_revert(market.functions.closeRound(task), actors.outsiders[0], "RoundNotDue", task, 1, PHASE["Commit"], deadline)


def test_close_round_wrong_status(market, actors, expect_revert, post_task):
    model_id = post_task()
    expect_revert(market.functions.closeRound(model_id), actors.owner, "WrongStatus", model_id, STATUS["Training"], STATUS["Open"])
    expect_revert(market.functions.closeRound(12), actors.owner, "UnknownModel", 12)


def test_nobody_commits(market, actors, flow, events, advance, task):
    """Commit ends at its deadline with no commit: straight to Due. Fewer than half of the
    trainers committed (the parent model was likely not retrievable, issue 11), so nobody is late-slashed;
    nobody revealed, so the whole budget returns to the buyer."""
    advance(WINDOW + 1)
    assert flow.phase(task) == PHASE["Due"]
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == []
    (closed,) = events(receipt, "RoundClosed")
    budget = 1_000_003 // 2
    assert closed["budget"] == budget and closed["returnedToBuyer"] == budget and closed["accepted"] is False
    assert market.functions.trainerCarry(task).call() == 0
    assert events(receipt, "RewardAccrued") == []
    assert flow.state(task)["currentRound"] == 2


def test_lazy_phases_follow_deadlines(market, actors, flow, advance, events, task):
    """Each phase that reaches its deadline hands over at that deadline, the next one runs a full
    window from it; the aggregator that never publishes is late."""
    trainers = actors.trainers[:3]
    commit_deadline = flow.round(task)["phaseDeadline"]
    flow.commit(task, 1, trainers[0])
    advance(WINDOW + 1)
    view = flow.round(task)
    assert view["phase"] == PHASE["Reveal"] and view["phaseDeadline"] == commit_deadline + WINDOW
    advance(WINDOW)
    view = flow.round(task)  # nobody revealed: the score phases are skipped
    assert view["phase"] == PHASE["Due"]
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == []  # 2 * 1 commit < 3 trainers: nobody is late (issue 11)


def test_missing_publish_slashes_aggregator(market, actors, flow, advance, events, task):
    flow.to_phase(task, 1, actors.trainers[:3], "Publish")
    deadline = flow.round(task)["phaseDeadline"]
    expect = (task, 1, PHASE["Publish"], deadline)
    assert flow.round(task)["phase"] == PHASE["Publish"]
    advance(WINDOW + 1)
    assert flow.phase(task) == PHASE["Due"], expect
    receipt = flow.tx(market.functions.closeRound(task), actors.outsiders[0])
    assert events(receipt, "Slashed") == [{"modelId": task, "round": 1, "participant": actors.aggregator, "reason": SLASH["Late"], "amount": 3_000}]
    (closed,) = events(receipt, "RoundClosed")
    assert closed["accepted"] is False


def test_close_after_last_round(market, actors, flow, expect_revert, ready_task):
    task = ready_task(rounds=1)
    flow.play_round(task, 1, actors.trainers[:3])
    assert flow.round(task, 1)["closed"]
    expect_revert(market.functions.closeRound(task), actors.owner, "RoundNotDue", task, 1, PHASE["None"], 0)
    c = flow.commitment(task, 1, actors.trainers[0])
    expect_revert(market.functions.commitUpdate(task, 1, c), actors.trainers[0], "AlreadyCommitted", task, 1, actors.trainers[0])


# ------------------------------------------------------------------------------ views


def test_get_round_bounds(market, flow, task, post_task):
    assert flow.round(task, 0)["phase"] == PHASE["None"] and flow.round(task, 0)["committee"] == []
    future = flow.round(task, 2)
    # a round's committee is drawn when it opens: none yet for round 2
    assert future["phase"] == PHASE["None"] and not future["closed"] and future["committee"] == []
    assert flow.round(task, 3)["committee"] == []
    assert flow.round(post_task(), 1)["committee"] == []


def test_utilities_median_rules(market, actors, flow, advance, task):
    """Issue 10 item 6: no quorum (at most half of the committee revealed scores): 0 for every
    update; an even count: the lower of the two middle scores (always a submitted score); odd: the
    middle one."""
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    c = flow.committee(task, 1)
    scores = {c[0]: [10, -3, 7], c[1]: [30, 0, 8], c[2]: [20, 100, -5]}
    for member, s in scores.items():
        flow.commit_scores(task, 1, member, s)
    flow.reveal_scores(task, 1, c[0], scores[c[0]])
    assert market.functions.utilities(task, 1).call() == [0, 0, 0]  # 1 of 3: no quorum
    flow.reveal_scores(task, 1, c[1], scores[c[1]])
    assert market.functions.utilities(task, 1).call() == [10, -3, 7]
    flow.reveal_scores(task, 1, c[2], scores[c[2]])
    assert market.functions.utilities(task, 1).call() == [20, 0, 7]


def test_utilities_without_scores(market, actors, flow, advance, task):
    flow.to_phase(task, 1, actors.trainers[:3], "ScoreCommit")
    assert market.functions.utilities(task, 1).call() == [0, 0, 0]
    advance(WINDOW + 1)
    assert flow.phase(task) == PHASE["Due"]


def test_round_data_kept_for_current_and_previous_round(market, actors, flow, call_error, ready_task):
    task = ready_task(rounds=3)
    trainers = actors.trainers[:3]
    flow.play_round(task, 1, trainers, scores=[1, 2, 3])
    flow.to_phase(task, 2, trainers, "Publish", scores=[4, 5, 6])
    assert market.functions.utilities(task, 2).call() == [4, 5, 6]
    assert market.functions.utilities(task, 1).call() == [1, 2, 3]
    flow.publish(task, 2)
    flow.vote(task, 2, dict.fromkeys(flow.committee(task, 2), True))
    assert flow.state(task)["currentRound"] == 3
    assert call_error(market.functions.utilities(task, 1)) == ("RoundDataPruned", (task, 1, 3))
    assert call_error(market.functions.revealedUpdates(task, 1)) == ("RoundDataPruned", (task, 1, 3))
    member = flow.committee(task, 1)[0]
    assert call_error(market.functions.scoresOf(task, 1, member)) == ("RoundDataPruned", (task, 1, 3))
    assert market.functions.revealedUpdates(task, 2).call()[1] == [update_digest(t, 2) for t in trainers]
    # round 3 reuses round 1's slots
    flow.to_phase(task, 3, trainers, "Publish", scores=[7, 8, 9])
    assert market.functions.utilities(task, 3).call() == [7, 8, 9]
    assert market.functions.revealedUpdates(task, 3).call()[1] == [update_digest(t, 3) for t in trainers]
    assert market.functions.utilities(task, 2).call() == [4, 5, 6]
    # round headers stay for every round
    assert market.functions.hasRevealed(task, 1, trainers[0]).call() is True
    assert flow.round(task, 1)["reveals"] == 3
    # the proposal lives in the round's buffer: kept for the current and the previous round; an
    # older round reports proposed, digest and metric 0 (GlobalModelProposed keeps them), and a
    # round not proposed yet never shows the proposal of the round two before, whose slots it reuses
    old = flow.round(task, 1)
    assert (old["proposed"], old["proposedDigest"], old["proposedMetric"]) == (True, b"\x00" * 32, 0)
    previous = flow.round(task, 2)
    assert (previous["proposed"], previous["proposedDigest"], previous["proposedMetric"]) == (True, keccak(text=f"global:{task}:2"), 900_000)
    now = flow.round(task, 3)
    assert (now["proposed"], now["proposedDigest"], now["proposedMetric"]) == (False, b"\x00" * 32, 0)
    flow.publish(task, 3, metric=-7)
    now = flow.round(task, 3)
    assert (now["proposed"], now["proposedDigest"], now["proposedMetric"]) == (True, keccak(text=f"global:{task}:3"), -7)


def test_participant_view_unknown(market, actors, flow, task):
    assert flow.participant(task, actors.outsiders[0]) == {"role": ROLE["None"], "stakeRemaining": 0, "earned": 0, "slashed": 0, "licensed": False}
