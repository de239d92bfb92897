"""agentView(modelId, account): in one call what an agent's step reads (issue 13), equal to what
getModel, getRound, hasCommitted / hasRevealed, scoresOf and hasConfirmed say separately."""

from __future__ import annotations

from contract_helpers import PHASE, ROLE, STATUS

AGENT_FIELDS = [
    "status",
    "currentRound",
    "roundsClosed",
    "trainerCount",
    "validatorCount",
    "globalModelDigest",
    "phase",
    "phaseDeadline",
    "closed",
    "proposed",
    "proposedDigest",
    "proposedMetric",
    "role",
    "licensed",
    "onCommittee",
    "committed",
    "revealed",
    "scoreCommitted",
    "scored",
    "voteCommitted",
    "voted",
]


def agent_view(market, task, account):
    return dict(zip(AGENT_FIELDS, market.functions.agentView(task, account).call()))


def separate_reads(market, flow, task, account):
    """The same facts, read the old way (one call each)."""
    f = market.functions
    state = flow.state(task)
    r = state["currentRound"]
    view = flow.round(task, r)
    part = flow.participant(task, account)
    member = account in view["committee"]
    return {
        "status": state["status"],
        "currentRound": r,
        "roundsClosed": state["roundsClosed"],
        "trainerCount": state["trainerCount"],
        "validatorCount": state["validatorCount"],
        "globalModelDigest": state["globalModelDigest"],
        "phase": view["phase"],
        "phaseDeadline": view["phaseDeadline"],
        "closed": view["closed"],
        "proposed": view["proposed"],
        "proposedDigest": view["proposedDigest"],
        "proposedMetric": view["proposedMetric"],
        "role": part["role"],
        "licensed": part["licensed"],
        "onCommittee": member,
        "committed": f.hasCommitted(task, r, account).call() if r else False,
        "revealed": f.hasRevealed(task, r, account).call() if r else False,
        "scoreCommitted": member and _committed(market, task, r, account, "ScoresCommitted", view, scores=True),
        "scored": f.scoresOf(task, r, account).call()[0] if member else False,
        "voteCommitted": member and _committed(market, task, r, account, "VoteCommitted", view, scores=False),
        "voted": f.hasConfirmed(task, r, account).call()[0] if member else False,
    }


def _committed(market, task, round_, account, event, view, scores):
    """Whether `account` committed scores (or a vote) in the round, from the commitment events;
    agentView reports score commitments only until the proposal, then equal to `scored`."""
    if scores and view["proposed"]:
        return market.functions.scoresOf(task, round_, account).call()[0]
    if not scores and not view["proposed"]:
        return False
    logs = getattr(market.events, event)().get_logs(from_block=0, argument_filters={"modelId": task, "round": round_})
    return any(e["args"]["validator"] == account for e in logs)


def test_agent_view_equals_the_separate_views_through_a_round(market, actors, flow, advance, ready_task):
    task = ready_task(n_validators=5)
    trainers = actors.trainers[:3]
    accounts = [*trainers, *actors.validators[:5], actors.aggregator, actors.outsiders[0], actors.owner]

    def check():
        for account in accounts:
            assert agent_view(market, task, account) == separate_reads(market, flow, task, account), account

    check()
    flow.commit(task, 1, trainers[0])
    check()
    mine = agent_view(market, task, trainers[0])
    assert mine["committed"] and not mine["revealed"] and mine["role"] == ROLE["Trainer"] and mine["licensed"]
    for t in trainers[1:]:
        flow.commit(task, 1, t)
    flow.reveal(task, 1, trainers[0])
    assert agent_view(market, task, trainers[0])["revealed"]
    for t in trainers[1:]:
        flow.reveal(task, 1, t)
    committee = flow.committee(task, 1)
    resting = next(v for v in actors.validators[:5] if v not in committee)
    flow.commit_scores(task, 1, committee[0], [1, 2, 3])
    check()
    view = agent_view(market, task, committee[0])
    assert view["scoreCommitted"] and not view["scored"] and view["onCommittee"]
    assert not agent_view(market, task, resting)["onCommittee"]
    for member in committee[1:]:
        flow.commit_scores(task, 1, member, [1, 2, 3])
    flow.reveal_scores(task, 1, committee[0], [1, 2, 3])
    check()
    assert agent_view(market, task, committee[0])["scored"]
    for member in committee[1:]:
        flow.reveal_scores(task, 1, member, [1, 2, 3])
    flow.publish(task, 1)
    flow.commit_vote(task, 1, committee[0])
    check()
    view = agent_view(market, task, committee[0])
    assert view["phase"] == PHASE["VoteCommit"] and view["proposed"] and view["voteCommitted"] and not view["voted"]
    assert view["scoreCommitted"] and view["proposedMetric"] == 900_000
    for member in committee[1:]:
        flow.commit_vote(task, 1, member)
    flow.reveal_vote(task, 1, committee[0])
    check()
    assert agent_view(market, task, committee[0])["voted"]
    for member in committee[1:]:
        flow.reveal_vote(task, 1, member)
    check()  # round 2 open: the duties start over
    assert agent_view(market, task, trainers[0])["currentRound"] == 2 and not agent_view(market, task, trainers[0])["committed"]
    advance(10_000)
    check()  # lazily derived: Due
    assert agent_view(market, task, actors.outsiders[0])["phase"] == PHASE["Due"]


def test_agent_view_before_training_and_of_an_unknown_task(market, actors, post_task, call_error):
    task = post_task()
    view = agent_view(market, task, actors.trainers[0])
    assert view["status"] == STATUS["Open"] and view["currentRound"] == 0 and view["phase"] == PHASE["None"]
    assert view["role"] == ROLE["None"] and not view["licensed"] and not view["onCommittee"]
    assert call_error(market.functions.agentView(task + 1, actors.trainers[0])) == ("UnknownModel", (task + 1,))
