"""Every MarketClient method against the Marketplace on the embedded chain, and the one-line
messages of the custom errors the contract raises."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from chain_helpers import REWARD, WINDOW, Actors, ballot_salt, salt_of, score_by_commit_reveal, update_digest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedmarket.chain.client import (
    AgentView,
    AlreadyCommitted,
    CommitmentMismatch,
    InsufficientFunds,
    MarketClient,
    ModelParams,
    NoLicense,
    NotCommitteeMember,
    NothingToWithdraw,
    NotOwner,
    Phase,
    RevealedUpdate,
    Role,
    RoundDataPruned,
    RoundNotDue,
    ScoreCommitmentMismatch,
    ScoresAlreadyCommitted,
    Status,
    UnknownModel,
    VoteAlreadyCommitted,
    VoteCommitmentMismatch,
    VoteNotCommitted,
    WrongAmount,
    WrongPhase,
    WrongRound,
    WrongScoreCount,
    commitment,
    score_commitment,
    vote_commitment,
)
from fedmarket.chain.timecontrol import advance_time, chain_now


def member_clients(market: MarketClient, actors: Actors, model_id: int, round: int) -> list[MarketClient]:
    by_address = {a.address: a for a in actors.validators}
    return [market.with_account(by_address[a]) for a in market.get_round(model_id, round).committee]


# ------------------------------------------------------------------------------ set-up


def test_post_fund_and_read_back(market: MarketClient, actors: Actors, params: ModelParams) -> None:
    assert market.model_count() == 0
    result = market.new_model(params, REWARD)
    assert result.model_id == 1 and market.model_count() == 1
    assert result.gas_used > 0 and result.tx_hash.startswith("0x") and result.block_number > 0
    created = result.event("ModelCreated")
    assert created.args == {
        "modelId": 1,
        "owner": actors.owner.address,
        "aggregator": actors.aggregator.address,
        "specDigest": params.spec_digest,
        "rounds": 2,
    }
    assert result.event("ModelCreationPayment").args["amount"] == REWARD
    info = market.get_model(1)
    assert info.params == params
    assert info.state.owner == actors.owner.address and info.state.status is Status.OPEN
    assert info.state.escrow == REWARD and info.state.global_model_digest == params.initial_model_digest

    funded = market.pay_for_model(1, 500)
    assert funded.event("ModelCreationPayment").args == {"modelId": 1, "owner": actors.owner.address, "amount": 500}
    assert market.get_model(1).state.escrow == REWARD + 500
    assert market.task_balance(1) == REWARD + 500


def test_licences_stakes_and_participant_views(market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    model_id = ready_task(start=False)
    trainers = [t.address for t in actors.trainers[:3]]
    assert market.trainers(model_id) == trainers
    assert market.validators(model_id) == [v.address for v in actors.validators[:3]]
    me = market.participant(model_id, trainers[0])
    assert (me.role, me.stake_remaining, me.earned, me.slashed, me.licensed) == (Role.TRAINER, 10_000, 0, 0, True)
    assert market.participant(model_id, actors.aggregator.address).role is Role.AGGREGATOR
    assert market.participant(model_id, actors.outsider.address).role is Role.NONE
    assert market.credit(actors.owner.address) == 0  # licence fees are held until training starts
    assert market.total_credit() == 0
    state = market.get_model(model_id).state
    assert (state.trainer_count, state.validator_count, state.aggregator_joined) == (3, 3, True)
    assert (state.license_held, state.license_income, state.end_requested) == (3 * 1_000, 0, False)
    assert state.start_deadline > 0
    assert market.task_balance(model_id) == REWARD + 3 * 1_000 + 3 * 10_000 + 3 * 20_000 + 30_000


def test_a_whole_task_through_the_client(w3, market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    model_id = ready_task(start=False)
    started = market.start_training(model_id)
    assert {e.name for e in started.events} == {"TrainingStarted", "LicenseIncomeCredited", "RoundStarted"}
    assert started.event("LicenseIncomeCredited").args["amount"] == 3 * 1_000
    view = market.get_round(model_id, 1)
    assert view.round == 1 and view.phase is Phase.COMMIT and len(view.committee) == 3 and view.phase_deadline > chain_now(w3)
    assert started.event("RoundStarted").args["committee"] == list(view.committee)

    trainers = actors.trainers[:3]
    for t in trainers:
        c = commitment(model_id, 1, update_digest(t.address, 1), 10, salt_of(t.address, 1), t.address)
        assert market.commitment_of(model_id, 1, update_digest(t.address, 1), 10, salt_of(t.address, 1), t.address) == c
        assert market.with_account(t).commit_update(model_id, 1, c).event("UpdateCommitted").args["commitment"] == c
        assert market.has_committed(model_id, 1, t.address)
    assert market.get_round(model_id, 1).phase is Phase.REVEAL  # everyone committed: the phase ended early
    for i, t in enumerate(trainers):
        revealed = market.with_account(t).reveal_update(model_id, 1, update_digest(t.address, 1), 10, salt_of(t.address, 1))
        assert revealed.event("UpdateRevealed").args["index"] == i
        assert market.has_revealed(model_id, 1, t.address)
    assert market.revealed_updates(model_id, 1) == [RevealedUpdate(t.address, update_digest(t.address, 1), 10) for t in trainers]

    members = member_clients(market, actors, model_id, 1)
    scores = [[300_000 + j, 200_000 + j, -5] for j in range(len(members))]
    for j, member in enumerate(members):
        # the commitment computed here is the one the contract checks at the reveal
        value = score_commitment(model_id, 1, member.sender, scores[j], ballot_salt(member.sender, 1, "scores"))
        assert member.commit_scores(model_id, 1, value).event("ScoresCommitted").args["commitment"] == value
        assert market.agent_view(model_id, member.sender).score_committed
        assert member.scores_of(model_id, 1, member.sender) == (False, [])  # committed scores are hidden
    assert market.get_round(model_id, 1).phase is Phase.SCORE_REVEAL  # everyone committed: the phase ended early
    with pytest.raises(ScoreCommitmentMismatch):
        members[0].reveal_scores(model_id, 1, [300_001, 200_000, -5], ballot_salt(members[0].sender, 1, "scores"))
    for j, member in enumerate(members):
        revealed = member.reveal_scores(model_id, 1, scores[j], ballot_salt(member.sender, 1, "scores"))
        assert revealed.event("ScoresRevealed").args["scores"] == scores[j]
        assert member.scores_of(model_id, 1, member.sender) == (True, scores[j])
    assert market.utilities(model_id, 1) == [300_001, 200_001, -5]
    assert market.get_round(model_id, 1).phase is Phase.PUBLISH

    aggregator = market.with_account(actors.aggregator)
    aggregator.publish_global_model(model_id, 1, keccak(text="global 1"), 910_000)
    view = market.get_round(model_id, 1)
    assert (view.phase, view.proposed, view.proposed_digest, view.proposed_metric) == (Phase.VOTE_COMMIT, True, keccak(text="global 1"), 910_000)
    votes = [True] * (len(members) - 1) + [False]
    for member, ok in zip(members, votes, strict=True):
        member.commit_vote(model_id, 1, vote_commitment(model_id, 1, member.sender, ok, ballot_salt(member.sender, 1, "vote")))
        assert member.has_confirmed(model_id, 1, member.sender) == (False, False)  # committed votes are hidden
    assert market.get_round(model_id, 1).phase is Phase.VOTE_REVEAL
    for member in members[:-1]:
        member.reveal_vote(model_id, 1, True, ballot_salt(member.sender, 1, "vote"))
        assert member.has_confirmed(model_id, 1, member.sender) == (True, True)
    closing = members[-1].reveal_vote(model_id, 1, False, ballot_salt(members[-1].sender, 1, "vote"))
    closed = closing.event("RoundClosed").args
    assert closed["round"] == 1 and closed["accepted"] and closed["globalModelDigest"] == keccak(text="global 1")
    assert {e.args["participant"] for e in closing.events_named("RewardAccrued")} >= {t.address for t in trainers[:2]}
    assert market.get_round(model_id, 1).closed
    assert market.get_model(model_id).state.global_model_digest == keccak(text="global 1")

    # round 2: nobody acts; once every window has passed anyone may close it (nobody committed,
    # fewer than minTrainers: the parent model may have been unfetchable, nobody is late-slashed)
    assert market.get_round(model_id, 2).phase is Phase.COMMIT
    with pytest.raises(RoundNotDue):
        market.with_account(actors.outsider).close_round(model_id)
    advance_time(w3, WINDOW + 1)
    assert market.get_round(model_id, 2).phase is Phase.DUE
    late = market.with_account(actors.outsider).close_round(model_id)
    assert late.events_named("Slashed") == []
    assert market.get_model(model_id).state.rounds_closed == 2

    finalized = market.with_account(actors.outsider).finalize_contract(model_id)
    assert finalized.event("ModelFinalized").args["roundsClosed"] == 2
    paid = market.with_account(actors.outsider).generate_training_payments(model_id)
    names = [e.name for e in paid.events]
    assert names.count("ContributionPayment") == 3 and names.count("ValidationPayment") == 3
    assert names.count("OrchestrationPayment") == 1 and names.count("ModelBuyerReturnPayment") == 1
    assert market.get_model(model_id).state.status is Status.SETTLED and market.task_balance(model_id) == 0

    trainer = market.with_account(trainers[0])
    owed = trainer.credit(trainers[0].address)
    assert owed > 10_000  # the whole stake back, plus rewards
    before = w3.eth.get_balance(trainers[0].address)
    withdrawn = trainer.withdraw()
    assert withdrawn.event("Withdrawal").args == {"account": trainers[0].address, "amount": owed}
    gas_cost = withdrawn.gas_used * w3.eth.get_transaction_receipt(withdrawn.tx_hash)["effectiveGasPrice"]
    assert w3.eth.get_balance(trainers[0].address) == before + owed - gas_cost
    assert trainer.credit(trainers[0].address) == 0


def test_cancel_credits_everyone_back(market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    model_id = ready_task(start=False)
    result = market.cancel_model(model_id)
    assert "ModelCancelled" in {e.name for e in result.events}
    assert market.get_model(model_id).state.status is Status.CANCELLED
    assert market.credit(actors.trainers[0].address) == 10_000
    assert market.credit(actors.aggregator.address) == 30_000
    assert market.task_balance(model_id) == 3 * 1_000  # the licence fees, until each licensee leaves
    left = market.with_account(actors.trainers[0]).leave_model(model_id)
    assert left.event("ParticipantLeft").args["feeReturned"] == 1_000
    assert market.credit(actors.trainers[0].address) == 10_000 + 1_000
    assert market.task_balance(model_id) == 2 * 1_000


def test_owner_may_finalize_early(market: MarketClient, ready_task: Callable[..., int]) -> None:
    model_id = ready_task()
    assert market.finalize_contract(model_id).event("ModelFinalized").args["roundsClosed"] == 0
    assert market.get_model(model_id).state.status is Status.FINALIZED


# ------------------------------------------------------------------------------ errors


def test_unknown_task_from_a_view_and_a_transaction(market: MarketClient) -> None:
    with pytest.raises(UnknownModel) as info:
        market.get_model(7)
    assert str(info.value) == "unknown task 7" and info.value.function == "getModel"
    with pytest.raises(UnknownModel, match=r"^unknown task 9$"):
        market.pay_for_model(9, 1)


def test_revert_of_a_mined_transaction_is_decoded(w3, market: MarketClient, actors: Actors, params: ModelParams) -> None:
    model_id = market.new_model(params, REWARD).model_id
    outsider = market.with_account(actors.outsider)
    nonce = w3.eth.get_transaction_count(actors.outsider.address)
    with pytest.raises(NotOwner) as info:
        outsider.pay_for_model(model_id, 5)
    assert str(info.value) == f"{actors.outsider.address} is not the owner of task {model_id}; only the owner may call payForModel"
    assert info.value.tx_hash is not None and info.value.tx_hash.startswith("0x")  # the embedded chain mined it (status 0)
    assert w3.eth.get_transaction_count(actors.outsider.address) == nonce + 1
    assert info.value.fields == {"modelId": model_id, "caller": actors.outsider.address}


def test_joining_errors(market: MarketClient, actors: Actors, params: ModelParams) -> None:
    model_id = market.new_model(params, REWARD).model_id
    trainer = market.with_account(actors.trainers[0])
    with pytest.raises(NoLicense) as info:
        trainer.join_as_trainer(model_id)
    assert str(info.value) == f"{actors.trainers[0].address} has no licence for task {model_id}: buy one first (buyLicense)"
    trainer.buy_license(model_id)
    with pytest.raises(WrongAmount) as wrong:
        trainer.join_as_trainer(model_id, 5)
    assert str(wrong.value) == "joinAsTrainer needs exactly 10000 wei; sent 5 wei"


def test_round_errors_have_exact_messages(w3, market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    model_id = ready_task()
    t0, t1, t2 = (market.with_account(t) for t in actors.trainers[:3])
    a0, a1, a2 = actors.trainers[:3]

    deadline = market.get_round(model_id, 1).phase_deadline
    with pytest.raises(RoundNotDue) as not_due:
        market.close_round(model_id)
    when = __import__("datetime").datetime.fromtimestamp(deadline, __import__("datetime").timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert str(not_due.value) == f"task {model_id} round 1 is not due: its Commit phase runs until {when}"

    with pytest.raises(WrongRound) as wrong_round:
        t0.commit_update(model_id, 2, b"\x01" * 32)
    assert str(wrong_round.value) == f"task {model_id} is in round 1, not round 2"

    c0 = commitment(model_id, 1, update_digest(a0.address, 1), 10, salt_of(a0.address, 1), a0.address)
    t0.commit_update(model_id, 1, c0)
    with pytest.raises(AlreadyCommitted, match=rf"^{a0.address} already committed in task {model_id} round 1$"):
        t0.commit_update(model_id, 1, c0)
    with pytest.raises(WrongPhase) as early:
        t0.reveal_update(model_id, 1, update_digest(a0.address, 1), 10, salt_of(a0.address, 1))
    assert str(early.value) == f"task {model_id} round 1 is in its Commit phase; revealUpdate needs Reveal"

    c1 = commitment(model_id, 1, update_digest(a1.address, 1), 10, salt_of(a1.address, 1), a1.address)
    t1.commit_update(model_id, 1, c1)
    advance_time(w3, WINDOW)  # the commit window passes without trainer 2
    with pytest.raises(WrongPhase) as late:
        t2.commit_update(model_id, 1, b"\x02" * 32)
    assert str(late.value) == f"task {model_id} round 1 is in its Reveal phase; commitUpdate needs Commit"
    assert (late.value.expected, late.value.actual) == (Phase.COMMIT, Phase.REVEAL)

    with pytest.raises(CommitmentMismatch) as mismatch:
        t1.reveal_update(model_id, 1, update_digest(a1.address, 1), 10, b"\x00" * 32)
    assert str(mismatch.value) == (f"the reveal of {a1.address} does not match its commitment in task {model_id} round 1 (other CID, sample count or salt)")
    t0.reveal_update(model_id, 1, update_digest(a0.address, 1), 10, salt_of(a0.address, 1))
    t1.reveal_update(model_id, 1, update_digest(a1.address, 1), 10, salt_of(a1.address, 1))

    committee = set(market.get_round(model_id, 1).committee)
    outsider = next(v for v in actors.validators if v.address not in committee)
    with pytest.raises(NotCommitteeMember, match=rf"^{outsider.address} is not on the committee of task {model_id} round 1$"):
        market.with_account(outsider).commit_scores(model_id, 1, b"\x01" * 32)
    members = member_clients(market, actors, model_id, 1)
    for member in members:
        member.commit_scores(model_id, 1, score_commitment(model_id, 1, member.sender, [1, 2, 3], ballot_salt(member.sender, 1, "scores")))
        if member is members[0]:  # while ScoreCommit lasts (the last commit ends it)
            with pytest.raises(ScoresAlreadyCommitted) as again:
                member.commit_scores(model_id, 1, b"\x01" * 32)
            assert str(again.value) == f"{member.sender} already committed its scores in task {model_id} round 1"
    with pytest.raises(WrongScoreCount) as count:
        members[0].reveal_scores(model_id, 1, [1, 2, 3], ballot_salt(members[0].sender, 1, "scores"))
    assert str(count.value) == "revealScores needs 2 scores, one per revealed update; got 3"
    with pytest.raises(ScoreCommitmentMismatch) as mismatch:
        members[0].reveal_scores(model_id, 1, [1, 2], ballot_salt(members[0].sender, 1, "scores"))
    assert str(mismatch.value) == (f"the scores revealed by {members[0].sender} do not match its commitment in task {model_id} round 1 (other scores or salt)")


def test_vote_commit_reveal_errors(w3, market: MarketClient, actors: Actors, ready_task: Callable[..., int], commit_and_reveal) -> None:
    model_id = ready_task()
    commit_and_reveal(model_id, 1)
    members = member_clients(market, actors, model_id, 1)
    score_by_commit_reveal(members, model_id, 1, [[100_000] * 3] * len(members))
    market.with_account(actors.aggregator).publish_global_model(model_id, 1, keccak(text="global 1"), 900_000)
    first, second, third = members
    with pytest.raises(WrongPhase):
        first.reveal_vote(model_id, 1, True, ballot_salt(first.sender, 1, "vote"))
    first.commit_vote(model_id, 1, vote_commitment(model_id, 1, first.sender, True, ballot_salt(first.sender, 1, "vote")))
    with pytest.raises(VoteAlreadyCommitted) as again:
        first.commit_vote(model_id, 1, b"\x01" * 32)
    assert str(again.value) == f"{first.sender} already committed its vote in task {model_id} round 1"
    second.commit_vote(model_id, 1, vote_commitment(model_id, 1, second.sender, False, ballot_salt(second.sender, 1, "vote")))
    advance_time(w3, WINDOW)  # the third member never commits: VoteCommit ends at its deadline
    assert market.get_round(model_id, 1).phase is Phase.VOTE_REVEAL
    with pytest.raises(VoteNotCommitted) as absent:
        third.reveal_vote(model_id, 1, True, ballot_salt(third.sender, 1, "vote"))
    assert str(absent.value) == f"{third.sender} committed no vote in task {model_id} round 1: nothing to reveal"
    with pytest.raises(VoteCommitmentMismatch) as flipped:  # a vote changed after seeing another's commit
        second.reveal_vote(model_id, 1, True, ballot_salt(second.sender, 1, "vote"))
    assert str(flipped.value) == f"the vote revealed by {second.sender} does not match its commitment in task {model_id} round 1 (other vote or salt)"
    first.reveal_vote(model_id, 1, True, ballot_salt(first.sender, 1, "vote"))
    closing = second.reveal_vote(model_id, 1, False, ballot_salt(second.sender, 1, "vote"))  # the last committed reveal settles
    assert closing.event("RoundClosed").args["accepted"] is False  # 1 ok of 3 seats: no positive majority


def test_nothing_to_withdraw(market: MarketClient, actors: Actors) -> None:
    with pytest.raises(NothingToWithdraw) as info:
        market.with_account(actors.outsider).withdraw()
    assert str(info.value) == f"{actors.outsider.address} has nothing to withdraw"


def test_insufficient_funds_is_caught_before_sending(w3, market: MarketClient, ready_task: Callable[..., int]) -> None:
    model_id = ready_task(start=False, max_validators=6)
    poor: LocalAccount = Account.create()
    with pytest.raises(InsufficientFunds) as info:
        market.with_account(poor).join_as_validator(model_id)
    assert re.fullmatch(rf"not enough funds: {poor.address} holds 0 ETH; joinAsValidator needs 20000 wei \+ up to [0-9.]+ ETH gas", str(info.value))
    assert w3.eth.get_transaction_count(poor.address) == 0


def test_with_account_shares_the_contract_but_not_the_sender(market: MarketClient, actors: Actors) -> None:
    other = market.with_account(actors.trainers[0])
    assert other.sender == actors.trainers[0].address and market.sender == actors.owner.address
    assert other.contract is market.contract and other.address == market.address


def test_pruned_round_data_says_where_to_look(w3, market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    model_id = ready_task(rounds=3)
    for _ in range(2):  # nobody acts: each round is due once its commit window has passed
        advance_time(w3, WINDOW + 1)
        market.close_round(model_id)
    assert market.get_model(model_id).state.current_round == 3
    assert market.revealed_updates(model_id, 2) == []  # the previous round is still kept
    with pytest.raises(RoundDataPruned) as info:
        market.revealed_updates(model_id, 1)
    assert str(info.value) == (
        f"task {model_id} round 1 is pruned: revealedUpdates answers for the current round (3) and the one before; "
        "older rounds are in the UpdateRevealed / ScoresRevealed events"
    )
    assert market.get_round(model_id, 1).closed  # round headers are kept for every round


def test_agent_view_is_one_typed_read_of_a_step(market: MarketClient, actors: Actors, ready_task: Callable[..., int]) -> None:
    """agent_view decodes the contract's AgentView: enums, the global model's CID, the account's
    duties; without an account it is the client's own."""
    model_id = ready_task()
    trainer = market.with_account(actors.trainers[0])
    r = 1
    trainer.commit_update(model_id, r, commitment(model_id, r, update_digest(trainer.sender, r), 10, salt_of(trainer.sender, r), trainer.sender))
    now = trainer.agent_view(model_id)
    assert isinstance(now, AgentView) and now == market.agent_view(model_id, trainer.sender)
    assert (now.status, now.phase, now.role) == (Status.TRAINING, Phase.COMMIT, Role.TRAINER)
    assert now.current_round == 1 and now.rounds_closed == 0 and now.committed and not now.revealed and now.licensed
    assert now.global_model_cid == market.get_model(model_id).params.initial_model_cid
    assert now.phase_deadline == market.get_round(model_id, 1).phase_deadline
    member = market.get_round(model_id, 1).committee[0]
    seat = market.agent_view(model_id, member)
    assert seat.role == Role.VALIDATOR and seat.on_committee and not seat.scored and not seat.voted
    stranger = market.agent_view(model_id, actors.outsider.address)
    assert stranger.role == Role.NONE and not stranger.on_committee and not stranger.committed
