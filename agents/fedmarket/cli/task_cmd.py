"""`fedmarket task ...`: the buyer's commands (post, fund, start, finalize, cancel), the views
(show, list) and the participants' entry (license, join trainer|validator|aggregator).

Amounts take a unit: "1.5" or "1.5eth" (ETH), "30gwei", "1000wei". Every command prints one
JSON document with --json; a refusal is one line on stderr and a non-zero exit, and sends nothing
(the node's gas estimate or the client's funds check stops it before signing).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.chain.protocol import (
    BPS,
    DEFAULT_AGGREGATOR_SHARE_BPS,
    DEFAULT_AGREEMENT_TOLERANCE_BPS,
    DEFAULT_POISON_THRESHOLD,
    DEFAULT_TRAINER_SHARE_BPS,
    DEFAULT_VALIDATOR_SHARE_BPS,
    MAX_TOLERANCE_BPS,
    MAX_TRAINERS,
    MAX_VALIDATORS,
)
from fedmarket.cli import market_options as opt
from fedmarket.cli import spec_options as so
from fedmarket.cli.output import console, one_line_errors, print_json
from fedmarket.fl.learning import DEMO_TRAINERS, DEMO_VALIDATORS
from fedmarket.market import views

task_app = typer.Typer(help="Post, fund, run, settle and join training tasks.", no_args_is_help=True)
join_app = typer.Typer(help="Stake and join a task as trainer, validator or aggregator.", no_args_is_help=True)
task_app.add_typer(join_app, name="join")

ModelIdArgument = typer.Argument(..., min=1, help="Task id (modelId).")
IpfsOption = typer.Option(None, "--ipfs", help="Kubo RPC URL to store --spec / --initial-model in (default: the embedded store in the data dir).")


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")


# ------------------------------------------------------------------------------ shared


def tx_json(result: Any) -> dict[str, Any]:
    return {"function": result.function, "tx": result.tx_hash, "gas_used": result.gas_used, "block": result.block_number}


def _content_cid(file: Optional[Path], cid: Optional[str], ipfs: Optional[str], what: str) -> str:
    """The CID of --<what> FILE (stored in the blob store) or --<what>-cid CID (validated)."""
    from fedmarket.errors import FedmarketError
    from fedmarket.storage.cid import validate_cid

    if file is not None and cid is not None:
        raise FedmarketError(f"give --{what} FILE or --{what}-cid CID, not both")
    if cid is not None:
        return validate_cid(cid)
    if file is None:
        raise FedmarketError(f"missing --{what} FILE or --{what}-cid CID")
    if not file.is_file():
        raise FedmarketError(f"no such file: {file}")
    from fedmarket.storage.store import open_store

    return open_store(ipfs).add_file(file)


def _check_task_files(
    spec: Optional[Path], spec_cid: Optional[str], model: Optional[Path], model_cid: Optional[str], ipfs: Optional[str], *, elected: bool
) -> None:
    """Refuse, before anything is stored or sent, a spec or an initial model that the agents
    could not use: each parsed as the agents will (format, architecture, shapes), and a spec
    whose committee the parameters contradict (every agent would refuse to join)."""
    from fedmarket.errors import FedmarketError
    from fedmarket.market.views import verify_task_files
    from fedmarket.storage.store import open_store

    def blob(file: Optional[Path], cid: Optional[str]) -> bytes | None:
        if file is not None:
            return file.read_bytes() if file.is_file() else None
        if cid is not None:
            store = open_store(ipfs)
            return store.get(cid) if store.has(cid) else None
        return None

    spec_blob, model_blob = blob(spec, spec_cid), blob(model, model_cid)
    if spec_blob is not None and model_blob is not None:
        verify_task_files(spec_blob, model_blob)
    if spec_blob is not None:
        from fedmarket.fl.taskspec import TaskSpec

        try:
            committee = TaskSpec.from_bytes(spec_blob).committee
        except FedmarketError:
            return  # not a task spec this version reads: checked with its initial model above, when both are at hand
        if (committee == "elected") != elected:
            raise FedmarketError(
                f"the spec's committee is {committee!r} but --max-validators {'is 0 (an elected committee)' if elected else 'takes staked validators'}: "
                "use --max-validators 0 exactly for a spec with committee elected"
            )


# ------------------------------------------------------------------------------ buyer


@task_app.command("spec")
@one_line_errors
@so.with_spec_flags
def spec_files(
    out: Path = typer.Option(..., "--out", "-o", file_okay=False, help="Folder to write spec.json and initial-model.safetensors into."),
    trainers: int = typer.Option(DEMO_TRAINERS, "--trainers", min=1, max=MAX_TRAINERS, help="Task spec: trainers (clients of the simulated split)."),
    validators: int = typer.Option(DEMO_VALIDATORS, "--validators", min=1, max=MAX_VALIDATORS, help="Task spec: validators (held-out slices)."),
    committee: str = so.CommitteeOption,
    as_json: bool = opt.JsonOption,
    *,
    spec_flags: dict[str, Any],
) -> None:
    """Write a task spec and its initial model from the same flags `up`, `demo` and `sim` take,
    ready for `task post --spec OUT/spec.json --initial-model OUT/initial-model.safetensors`."""
    from fedmarket.files import atomic_write
    from fedmarket.fl.taskspec import TaskData
    from fedmarket.storage.cid import cid_of

    validators, spec_flags = so.committee_flags(committee, validators, spec_flags)
    spec = so.spec_of(trainers=trainers, validators=validators, committee=committee, **spec_flags)
    spec_blob = spec.to_bytes()
    model_blob = spec.initial_weights(TaskData.load(spec).dataset)
    spec_path = atomic_write(out / "spec.json", spec_blob)
    model_path = atomic_write(out / "initial-model.safetensors", model_blob)
    data = {"spec": str(spec_path), "spec_cid": cid_of(spec_blob), "initial_model": str(model_path), "initial_model_cid": cid_of(model_blob),
            "trainers": spec.trainers, "validators": spec.validators}  # fmt: skip
    if as_json:
        print_json(data)
        return
    console.print(f"wrote {spec_path} ({data['spec_cid']}) and {model_path} ({data['initial_model_cid']})", highlight=False, soft_wrap=True)
    console.print(f"next: fedmarket task post --spec {spec_path} --initial-model {model_path} --min-trainers {spec.trainers} "
                  f"--max-trainers {spec.trainers} --max-validators {spec.validators} --aggregator NAME --account BUYER", highlight=False, soft_wrap=True)  # fmt: skip
    if spec.committee == "elected":
        console.print(f"(elected: --max-validators 0 and a --committee size of at most {spec.trainers // 2})", highlight=False)


@task_app.command("post")
@one_line_errors
@opt.with_session()
def post(
    account: str = opt.AccountOption,  # first in --help, as it always was; the session signs with it
    aggregator: str = typer.Option(..., "--aggregator", help="The task's aggregator: keystore NAME, 0x ADDRESS or dev:N."),
    reward: str = typer.Option("1eth", "--reward", help="Reward escrowed now: '1.5', '1.5eth', '30gwei', '1000wei'."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Task spec JSON file (stored, its CID goes on chain).", dir_okay=False),
    spec_cid: Optional[str] = typer.Option(None, "--spec-cid", help="CIDv0 (Qm...) of a spec already stored."),
    initial_model: Optional[Path] = typer.Option(None, "--initial-model", help="Initial model weights file (stored, its CID goes on chain).", dir_okay=False),
    initial_model_cid: Optional[str] = typer.Option(None, "--initial-model-cid", help="CIDv0 (Qm...) of the initial model already stored."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Training rounds."),
    min_trainers: int = typer.Option(2, "--min-trainers", min=1, help="Trainers needed to start."),
    max_trainers: int = typer.Option(20, "--max-trainers", min=1, help="Most trainers that may join."),
    committee: int = typer.Option(3, "--committee", min=1, help="Validators scoring each round (also the number needed to start)."),
    max_validators: int = typer.Option(
        9, "--max-validators", min=0, help="Most validators that may join (0: the trainers elect the committee, for a spec with committee elected)."
    ),
    window: int = typer.Option(600, "--window", min=1, help="Every phase window in seconds (a phase ends early once everyone acted)."),
    commit_window: Optional[int] = typer.Option(None, "--commit-window", min=1, help="Commit window (s) (default: --window)."),
    reveal_window: Optional[int] = typer.Option(
        None, "--reveal-window", min=1, help="Reveal window (s): trainers' reveals, then the committee's score and vote reveals (default: --window)."
    ),
    score_window: Optional[int] = typer.Option(
        None, "--score-window", min=1, help="Score-commit window (s): the committee commits to its scores (default: --window)."
    ),
    publish_window: Optional[int] = typer.Option(None, "--publish-window", min=1, help="Publish window (s) (default: --window)."),
    confirm_window: Optional[int] = typer.Option(
        None, "--confirm-window", min=1, help="Vote-commit window (s): the committee commits to its votes (default: --window)."
    ),
    license_fee: str = typer.Option("0", "--license-fee", help="Licence fee trainers pay the buyer."),
    trainer_stake: str = typer.Option("0.01eth", "--trainer-stake", help="Stake of each trainer."),
    validator_stake: str = typer.Option("0.01eth", "--validator-stake", help="Stake of each validator."),
    aggregator_stake: str = typer.Option("0.01eth", "--aggregator-stake", help="Stake of the aggregator."),
    late_slash_bps: int = typer.Option(1000, "--late-slash-bps", min=0, max=BPS, help="Stake lost per late round (basis points)."),
    bad_slash_bps: int = typer.Option(5000, "--bad-slash-bps", min=0, max=BPS, help="Stake lost for poison / a rejected proposal (bps)."),
    trainer_share_bps: int = typer.Option(DEFAULT_TRAINER_SHARE_BPS, "--trainer-share-bps", min=0, max=BPS, help="Trainers' share of each round's budget."),
    validator_share_bps: int = typer.Option(DEFAULT_VALIDATOR_SHARE_BPS, "--validator-share-bps", min=0, max=BPS, help="Validators' share."),
    aggregator_share_bps: int = typer.Option(
        DEFAULT_AGGREGATOR_SHARE_BPS, "--aggregator-share-bps", min=0, max=BPS, help="Aggregator's share (the three sum to 10000)."
    ),
    poison_threshold: int = typer.Option(
        DEFAULT_POISON_THRESHOLD, "--poison-threshold", help="Median utility (micro-units) below which a trainer is bad-slashed."
    ),
    agreement_tolerance_bps: int = typer.Option(
        DEFAULT_AGREEMENT_TOLERANCE_BPS,
        "--agreement-tolerance-bps",
        min=1,
        max=MAX_TOLERANCE_BPS,
        help="How far (bps of the scores' size) a committee member's scores may be from the round's medians, on average, before it earns nothing and is slashed.",
    ),
    ipfs: Optional[str] = IpfsOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Post a training task, escrowing --reward; you become its owner (the model buyer)."""
    from fedmarket.errors import FedmarketError
    from fedmarket.roles import buyer
    from fedmarket.storage.cid import cid_to_digest
    from fedmarket.wallet.accounts import resolve_address

    # Everything that can be checked locally is checked before connecting or unlocking a key.
    reward_wei = opt.parse_amount(reward, "reward")
    if reward_wei <= 0:
        raise FedmarketError("--reward must be more than 0")
    amounts = {
        name: opt.parse_amount(text, name)
        for name, text in (
            ("license fee", license_fee),
            ("trainer stake", trainer_stake),
            ("validator stake", validator_stake),
            ("aggregator stake", aggregator_stake),
        )
    }
    if trainer_share_bps + validator_share_bps + aggregator_share_bps != BPS:
        raise FedmarketError(f"the shares must sum to {BPS} bps, not {trainer_share_bps + validator_share_bps + aggregator_share_bps}")
    _check_task_files(spec, spec_cid, initial_model, initial_model_cid, ipfs, elected=max_validators == 0)
    spec_cid = _content_cid(spec, spec_cid, ipfs, "spec")
    initial_cid = _content_cid(initial_model, initial_model_cid, ipfs, "initial-model")
    market = session.open()
    params = buyer.task_params(
        cid_to_digest(spec_cid), cid_to_digest(initial_cid), resolve_address(aggregator, market.w3, keystore_dir=session.keystore_dir),
        rounds=rounds, trainers=(min_trainers, max_trainers), validators=max_validators, committee=committee, window=window,
        windows={"commit": commit_window, "reveal": reveal_window, "score": score_window, "publish": publish_window, "confirm": confirm_window},
        license_fee=amounts["license fee"], trainer_stake=amounts["trainer stake"], validator_stake=amounts["validator stake"],
        aggregator_stake=amounts["aggregator stake"], late_slash_bps=late_slash_bps, bad_slash_bps=bad_slash_bps,
        trainer_share_bps=trainer_share_bps, validator_share_bps=validator_share_bps, aggregator_share_bps=aggregator_share_bps,
        poison_threshold=poison_threshold, agreement_tolerance_bps=agreement_tolerance_bps,
    )  # fmt: skip
    result = buyer.post_task(market.client, params, reward_wei)
    model_id = result.model_id
    data = {
        "model_id": model_id,
        "owner": market.sender,
        "reward_wei": reward_wei,
        "spec_cid": spec_cid,
        "initial_model_cid": initial_cid,
        "aggregator": params.aggregator,
        **tx_json(result),
    }
    session.print_result(data, f"posted task [bold]{model_id}[/] with {opt.format_eth(reward_wei)} escrowed (owner {market.sender}, tx {result.tx_hash})")


@task_app.command("fund")
@one_line_errors
@opt.with_session()
def fund(
    model_id: int = ModelIdArgument,
    amount: str = typer.Option(..., "--amount", help="Amount to add to the escrow: '1.5', '1.5eth', '30gwei', '1000wei'."),
    *,
    session: opt.MarketSession,
) -> None:
    """Top the escrow of an open task up (owner only)."""
    from fedmarket.roles import buyer

    wei = opt.parse_amount(amount, "amount")
    market = session.open()
    result = buyer.fund_task(market.client, model_id, wei)
    escrow = market.client.get_model(model_id).state.escrow
    session.print_result(
        {"model_id": model_id, "amount_wei": wei, "escrow_wei": escrow, **tx_json(result)},
        f"task {model_id}: added {opt.format_eth(wei)}, escrow now {opt.format_eth(escrow)}",
    )


@task_app.command("start")
@one_line_errors
@opt.with_session()
def start(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """Start training: fix the reward and open round 1 (owner or aggregator)."""
    from fedmarket.roles import buyer

    market = session.open()
    result = buyer.start_task(market.client, model_id)
    view = market.client.get_round(model_id, 1)
    data = {
        "model_id": model_id,
        "reward_wei": market.client.get_model(model_id).state.reward,
        "round": 1,
        "committee": list(view.committee),
        "phase_deadline": view.phase_deadline,
        **tx_json(result),
    }
    session.print_result(data, f"task {model_id} started: round 1 committee {', '.join(view.committee)}")


@task_app.command("cancel")
@one_line_errors
@opt.with_session()
def cancel(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """Cancel an open task (owner only): escrow and stakes are credited back for withdrawal."""
    from fedmarket.roles import buyer

    market = session.open()
    result = buyer.cancel_task(market.client, model_id)
    payouts = buyer.payouts_of(result)
    data = {"model_id": model_id, "payouts": [_payout_json(p) for p in payouts], **tx_json(result)}
    session.print_result(
        data, f"task {model_id} cancelled: {opt.format_eth(sum(p.total for p in payouts))} credited back to {len(payouts)} accounts (`fedmarket withdraw`)"
    )


@task_app.command("finalize")
@one_line_errors
@opt.with_session()
def finalize(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """End the task and credit every payee (finalizeContract, then generateTrainingPayments).

    Anyone may finalize after the last round; the owner may stop earlier (the unspent budget
    returns to it). A task already finalized is only settled.
    """
    from rich.table import Table

    from fedmarket.roles import buyer

    market = session.open()
    settlement = buyer.finalize_and_settle(market.client, model_id)
    data = {
        "model_id": model_id,
        "finalize": tx_json(settlement.finalized) if settlement.finalized else None,
        "payments": tx_json(settlement.payments),
        "payouts": [_payout_json(p) for p in settlement.payouts],
        "credited_wei": settlement.credited,
        "task_balance_wei": market.client.task_balance(model_id),
    }
    if session.as_json:
        print_json(data)
        return
    table = Table(title=f"task {model_id} settled: {opt.format_eth(settlement.credited)} credited")
    for column in ("role", "address", "earned", "stake returned", "total"):
        table.add_column(column, justify="left" if column in ("role", "address") else "right", no_wrap=column == "address")
    for p in settlement.payouts:
        table.add_row(p.role, p.address, opt.format_eth(p.earned), opt.format_eth(p.stake_returned), opt.format_eth(p.total))
    console.print(table)
    console.print("each payee pulls its credit with `fedmarket withdraw`", style="dim")


def _payout_json(p: Any) -> dict[str, Any]:
    return {"role": p.role, "address": p.address, "earned_wei": p.earned, "stake_returned_wei": p.stake_returned, "total_wei": p.total}


# ------------------------------------------------------------------------------ views


@task_app.command("show")
@one_line_errors
@opt.with_session(opt.READING)
def show(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """A task's parameters, state, current round and participants."""
    from rich.table import Table

    market = session.open()
    data = views.task_summary(market.client, model_id)
    if session.as_json:
        print_json(data)
        return
    s, p = data["state"], data["params"]
    console.print(f"[bold]task {model_id}[/] ({data['status']}) owner {data['owner']}", highlight=False)
    console.print(f"  spec {p['spec_cid']}  global model {s['global_model_cid']}", highlight=False)
    console.print(
        f"  rounds {s['rounds_closed']}/{p['rounds']} closed, escrow {opt.format_eth(s['escrow_wei'])}, reward {opt.format_eth(s['reward_wei'])}, "
        f"stakes held {opt.format_eth(s['stakes_held_wei'])}, accrued {opt.format_eth(s['accrued_wei'])}",
        highlight=False,
    )
    console.print(
        f"  trainers {s['trainers']}/{p['min_trainers']}..{p['max_trainers']}, validators {s['validators']} (committee {p['committee_size']}), "
        f"aggregator {p['aggregator']}{'' if s['aggregator_joined'] else ' (not joined)'}",
        highlight=False,
    )
    console.print(
        f"  licence {opt.format_eth(p['license_fee_wei'])}; stakes trainer {opt.format_eth(p['trainer_stake_wei'])}, validator {opt.format_eth(p['validator_stake_wei'])}, "
        f"aggregator {opt.format_eth(p['aggregator_stake_wei'])}; slash late {p['late_slash_bps']} / bad {p['bad_slash_bps']} bps; "
        f"agreement tolerance {p['agreement_tolerance_bps']} bps",
        highlight=False,
    )
    if data["round"]:
        r = data["round"]
        console.print(
            f"  round {r['round']}: {r['phase']} phase until {r['phase_deadline']}, {r['commits']} commits, {r['reveals']} reveals, "
            f"{r['score_commits']} score commits, {r['scores_submitted']} scores revealed, {r['vote_commits']} vote commits",
            highlight=False,
        )
    if data["participants"]:
        table = Table()
        for column in ("role", "address", "stake", "earned", "slashed"):
            table.add_column(column, justify="left" if column in ("role", "address") else "right", no_wrap=column == "address")
        for row in data["participants"]:
            table.add_row(
                row["role"], row["address"], opt.format_eth(row["stake_remaining_wei"]), opt.format_eth(row["earned_wei"]), opt.format_eth(row["slashed_wei"])
            )
        console.print(table)


@task_app.command("list")
@one_line_errors
@opt.with_session((*opt.READING, "keystore_dir"))
def list_tasks(
    owner: Optional[str] = typer.Option(None, "--owner", help="Only tasks of this owner (keystore NAME, 0x ADDRESS or dev:N)."),
    status: Optional[str] = typer.Option(None, "--status", help="Only tasks in this status (open, training, finalized, settled, cancelled)."),
    *,
    session: opt.MarketSession,
) -> None:
    """Every task of the marketplace: id, owner, status, reward, round, participants."""
    from rich.table import Table

    from fedmarket.errors import FedmarketError
    from fedmarket.wallet.accounts import resolve_address

    statuses = ("open", "training", "finalized", "settled", "cancelled")
    if status is not None and status.lower() not in statuses:
        raise FedmarketError(f"unknown status {status!r}: one of {', '.join(statuses)}")
    market = session.open()
    owner_address = resolve_address(owner, market.w3, keystore_dir=session.keystore_dir) if owner else None
    rows = []
    for model_id in range(1, market.client.model_count() + 1):
        params, state = market.client.get_model(model_id)
        row = {
            "model_id": model_id,
            "owner": state.owner,
            "status": str(state.status).lower(),
            "escrow_wei": state.escrow,
            "reward_wei": state.reward,
            "rounds": params.rounds,
            "rounds_closed": state.rounds_closed,
            "current_round": state.current_round,
            "trainers": state.trainer_count,
            "validators": state.validator_count,
            "spec_cid": params.spec_cid,
        }
        if owner_address and state.owner != owner_address:
            continue
        if status and row["status"] != status.lower():
            continue
        rows.append(row)
    if session.as_json:
        print_json({"contract": market.address, "tasks": rows})
        return
    if not rows:
        console.print("no tasks")
        return
    table = Table(title=f"tasks on {market.address}")
    for column in ("id", "status", "owner", "escrow", "rounds", "trainers", "validators"):
        table.add_column(column, no_wrap=column == "owner")
    for row in rows:
        table.add_row(
            str(row["model_id"]),
            row["status"],
            row["owner"],
            opt.format_eth(row["escrow_wei"]),
            f"{row['rounds_closed']}/{row['rounds']}",
            str(row["trainers"]),
            str(row["validators"]),
        )
    console.print(table)


# ------------------------------------------------------------------------------ participants


@task_app.command("leave")
@one_line_errors
@opt.with_session()
def leave(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """Leave an open task (your stake and licence fee are credited back), or take back your licence
    fee once the task is cancelled; then `fedmarket withdraw`."""
    market = session.open()
    result = market.client.leave_model(model_id)
    left = result.event("ParticipantLeft").args
    back = int(left["stakeReturned"]) + int(left["feeReturned"])
    session.print_result(
        {"model_id": model_id, "participant": market.sender, "stake_returned_wei": int(left["stakeReturned"]),
         "fee_returned_wei": int(left["feeReturned"]), **tx_json(result)},
        f"{market.sender} left task {model_id}: {opt.format_eth(back)} credited back (`fedmarket withdraw`)",
    )  # fmt: skip


@task_app.command("license")
@one_line_errors
@opt.with_session()
def license_(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """Buy the task's licence (its exact fee is held by the task until training starts, then goes to
    the owner; refunded if the task is cancelled); trainers need one to join."""
    market = session.open()
    fee = market.client.get_model(model_id).params.license_fee
    result = market.client.buy_license(model_id, fee)
    session.print_result(
        {"model_id": model_id, "licensee": market.sender, "fee_wei": fee, **tx_json(result)},
        f"{market.sender} licensed task {model_id} for {opt.format_eth(fee)}",
    )


class JoinRole(StrEnum):
    trainer = "trainer"
    validator = "validator"
    aggregator = "aggregator"


def _join(role: JoinRole, model_id: int, session: opt.MarketSession) -> None:
    market = session.open()
    params = market.client.get_model(model_id).params
    stake = {JoinRole.trainer: params.trainer_stake, JoinRole.validator: params.validator_stake, JoinRole.aggregator: params.aggregator_stake}[role]
    join = {
        JoinRole.trainer: market.client.join_as_trainer,
        JoinRole.validator: market.client.join_as_validator,
        JoinRole.aggregator: market.client.join_as_aggregator,
    }[role]
    result = join(model_id, stake)
    data = {"model_id": model_id, "role": role.value, "participant": market.sender, "stake_wei": stake, **tx_json(result)}
    session.print_result(data, f"{market.sender} joined task {model_id} as {role.value}, staking {opt.format_eth(stake)}")


def _make_join(role: JoinRole) -> None:
    def command(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
        _join(role, model_id, session)

    command.__doc__ = f"Stake the task's exact {role.value} stake and join it as {role.value}."
    command.__name__ = f"join_{role.value}"
    join_app.command(role.value)(one_line_errors(opt.with_session()(command)))


for _role in JoinRole:
    _make_join(_role)
