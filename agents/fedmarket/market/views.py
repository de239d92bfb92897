"""Read models the CLI shows: a task's and a round's summary (JSON-ready: CIDs for digests, names
for enums), the current round, the model CID of any round, and the task's verified spec and data.
Reads only: nothing here sends a transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedmarket.chain.client import MarketClient, ModelInfo
    from fedmarket.fl.taskspec import TaskData, TaskSpec
    from fedmarket.storage.store import BlobStore


def task_summary(client: Any, model_id: int) -> dict[str, Any]:
    """Everything about one task, JSON-ready (CIDs for digests, names for enums)."""
    from fedmarket.chain.client import Status

    params, state = client.get_model(model_id)
    addresses = [("trainer", a) for a in client.trainers(model_id)] + [("validator", a) for a in client.validators(model_id)]
    if state.aggregator_joined:
        addresses.append(("aggregator", params.aggregator))
    participants = []
    for _, address in addresses:
        view = client.participant(model_id, address)
        participants.append(
            {
                "address": address,
                "role": str(view.role).lower(),
                "stake_remaining_wei": view.stake_remaining,
                "earned_wei": view.earned,
                "slashed_wei": view.slashed,
                "licensed": view.licensed,
            }
        )
    current = None
    if state.status == Status.TRAINING and state.current_round > state.rounds_closed:
        current = round_summary(client, model_id, state.current_round)
    return {
        "model_id": model_id,
        "owner": state.owner,
        "status": str(state.status).lower(),
        "params": params_summary(params),
        "state": {
            "current_round": state.current_round,
            "rounds_closed": state.rounds_closed,
            "reward_wei": state.reward,
            "escrow_wei": state.escrow,
            "stakes_held_wei": state.stakes_held,
            "accrued_wei": state.accrued,
            "license_income_wei": state.license_income,
            "global_model_cid": state.global_model_cid,
            "trainers": state.trainer_count,
            "validators": state.validator_count,
            "aggregator_joined": state.aggregator_joined,
        },
        "task_balance_wei": client.task_balance(model_id),
        "round": current,
        "participants": participants,
    }


def params_summary(params: Any) -> dict[str, Any]:
    return {
        "spec_cid": params.spec_cid,
        "initial_model_cid": params.initial_model_cid,
        "aggregator": params.aggregator,
        "rounds": params.rounds,
        "min_trainers": params.min_trainers,
        "max_trainers": params.max_trainers,
        "committee_size": params.committee_size,
        "max_validators": params.max_validators,
        "windows_s": {
            "commit": params.commit_window,
            "reveal": params.reveal_window,
            "score": params.score_window,
            "publish": params.publish_window,
            "confirm": params.confirm_window,
        },
        "license_fee_wei": params.license_fee,
        "trainer_stake_wei": params.trainer_stake,
        "validator_stake_wei": params.validator_stake,
        "aggregator_stake_wei": params.aggregator_stake,
        "late_slash_bps": params.late_slash_bps,
        "bad_slash_bps": params.bad_slash_bps,
        "shares_bps": {"trainer": params.trainer_share_bps, "validator": params.validator_share_bps, "aggregator": params.aggregator_share_bps},
        "poison_threshold": params.poison_threshold,
        "agreement_tolerance_bps": params.agreement_tolerance_bps,
    }


def round_summary(client: Any, model_id: int, round_number: int) -> dict[str, Any]:
    """One round: phase, deadline, committee and what each of them did, revealed updates and utilities."""
    from fedmarket.storage.cid import digest_to_cid

    view = client.get_round(model_id, round_number)
    updates = client.revealed_updates(model_id, round_number)
    utilities = client.utilities(model_id, round_number) if updates else []
    committee = []
    for member in view.committee:
        scores = client.scores_of(model_id, round_number, member)
        vote = client.has_confirmed(model_id, round_number, member)
        # What a member committed is in agentView, which sees the current round only; a revealed
        # score or vote was committed first.
        duties = client.agent_view(model_id, member)
        current = duties.current_round == round_number
        committee.append({
            "address": member,
            "score_committed": scores.submitted or (current and duties.score_committed),
            "scored": scores.submitted,
            "scores": scores.scores,
            "vote_committed": vote.voted or (current and duties.vote_committed),
            "voted": vote.voted,
            "ok": vote.ok if vote.voted else None,
        })  # fmt: skip
    # The chain keeps a proposal for the current and the previous round (older: digest 0).
    kept = view.proposed and any(view.proposed_digest)
    return {
        "round": view.round,
        "phase": str(view.phase).lower(),
        "phase_deadline": view.phase_deadline,
        "closed": view.closed,
        "commits": view.commits,
        "reveals": view.reveals,
        "score_commits": view.score_commits,
        "scores_submitted": view.scores_submitted,
        "vote_commits": view.vote_commits,
        "proposed": view.proposed,
        "proposed_cid": digest_to_cid(view.proposed_digest) if kept else None,
        "proposed_metric": view.proposed_metric if kept else None,
        "confirmations": view.confirmations,
        "rejections": view.rejections,
        "committee": committee,
        "updates": [
            {
                "index": i,
                "trainer": u.trainer,
                "update_cid": u.update_cid,
                "num_samples": u.num_samples,
                "utility": utilities[i] if i < len(utilities) else None,
            }
            for i, u in enumerate(updates)
        ],
    }


def current_round(client: Any, model_id: int, given: int | None) -> int:
    """--round, or the task's current round (refused when the task is not training)."""
    from fedmarket.chain.client import Status
    from fedmarket.errors import FedmarketError

    if given is not None:
        return given
    state = client.get_model(model_id).state
    if state.status != Status.TRAINING or state.current_round == 0:
        raise FedmarketError(f"task {model_id} is {str(state.status).lower()}: no round is running")
    return int(state.current_round)


def round_model_cid(market: MarketClient, model_id: int, info: ModelInfo, round_number: int | None, start_block: int) -> tuple[str, str]:
    from fedmarket.chain.events import EventCursor
    from fedmarket.errors import FedmarketError
    from fedmarket.storage.cid import digest_to_cid

    if round_number is None:
        return info.state.global_model_cid, f"the latest global model (after round {info.state.rounds_closed})"
    if round_number == 0:
        return info.params.initial_model_cid, "the initial model"
    if round_number > info.state.rounds_closed:
        raise FedmarketError(f"task {model_id} has closed {info.state.rounds_closed} of {info.params.rounds} rounds; round {round_number} has no model yet")
    cursor = EventCursor(market.w3, market.address, model_id=model_id, names=["RoundClosed"], start_block=start_block)
    for event in cursor.poll(commit=False):
        if event.args["round"] == round_number:
            return digest_to_cid(event.args["globalModelDigest"]), f"the global model after round {round_number}"
    raise FedmarketError(f"no RoundClosed event of task {model_id} round {round_number} from block {start_block}")


def load_task_data(market: MarketClient, model_id: int, store: BlobStore, data_dir: Path | None = None) -> tuple[TaskData | None, str | None]:
    """(the task's data, None), or (None, why not) when the store lacks its spec or the spec is no
    learning task. The spec is checked against the CID on chain before it is parsed."""
    from fedmarket.errors import FedmarketError
    from fedmarket.fl.taskspec import TaskData, TaskSpec
    from fedmarket.storage.cid import cid_of

    spec_cid = market.get_model(model_id).params.spec_cid
    try:
        if not store.has(spec_cid):
            return None, f"the {store.location} does not hold the task spec {spec_cid}: accuracy, loss and auc are null"
        data = store.get(spec_cid)
        if cid_of(data) != spec_cid:  # the stores verify too; the chain's CID is the one that counts
            return None, f"the task spec from the {store.location} does not match {spec_cid}: accuracy, loss and auc are null"
        spec = TaskSpec.from_bytes(data)
        return TaskData.load(spec, data_dir), None
    except FedmarketError as exc:
        return None, f"no learning metrics ({exc})"


def verify_task_files(spec_blob: bytes, model_blob: bytes, data_dir: Path | None = None) -> tuple[TaskSpec, int]:
    """Parse a task's spec and initial model as every agent will: the spec must be a well-formed
    spec of this format, the model a safetensors file of the spec's architecture with its exact
    shapes, for round 0. Returns (the spec, the model's parameter count); refuses with one line."""
    from fedmarket.errors import FedmarketError
    from fedmarket.fl.taskspec import TaskData, TaskSpec
    from fedmarket.storage.weights import decode_weights, expected_layout

    try:
        spec = TaskSpec.from_bytes(spec_blob)
    except FedmarketError as exc:
        raise FedmarketError(f"the spec is refused: {exc}") from None
    model_spec = TaskData.load(spec, data_dir).model_spec
    try:
        state, meta = decode_weights(model_blob, expected_layout(model_spec.init_state(0)), model_spec.id)
    except FedmarketError as exc:
        raise FedmarketError(f"the initial model is refused: {exc}") from None
    if meta.round != 0 or meta.parent_cid is not None:
        raise FedmarketError(f"the initial model is refused: it is round {meta.round}'s model (parent {meta.parent_cid}), not a round-0 model")
    return spec, sum(int(t.numel()) for t in state.values())
