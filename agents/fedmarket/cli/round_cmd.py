"""`fedmarket round show | commit | reveal | score-commit | score-reveal | publish | vote-commit |
vote-reveal | close`: a round's phases by hand (the agents do the same automatically).

`commit` computes the commitment locally from --update-cid, --samples and a fresh salt, and
stores all three in the data dir *before* sending (roles/salts.py); `reveal` reads them back, so
reveal with the same FEDMARKET_HOME. A committee member's `score-commit` (--scores) and
`vote-commit` (--ok / --reject) do the same with its scores and its vote, and `score-reveal` /
`vote-reveal` reveal what was stored. --round defaults to the task's current round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, one_line_errors, print_json
from fedmarket.cli.task_cmd import ModelIdArgument, tx_json
from fedmarket.market import views

if TYPE_CHECKING:
    from fedmarket.roles.salts import BallotBook

round_app = typer.Typer(
    help="A round's phases by hand: trainers commit and reveal, committee members score-commit and score-reveal, "
    "the aggregator publishes, committee members vote-commit and vote-reveal, anyone closes a due round.",
    no_args_is_help=True,
)
RoundOption = typer.Option(None, "--round", "-r", min=1, help="Round number (default: the task's current round).")


def register(app: typer.Typer) -> None:
    app.add_typer(round_app, name="round")


@round_app.command("show")
@one_line_errors
@opt.with_session(opt.READING)
def show(model_id: int = ModelIdArgument, round_number: Optional[int] = RoundOption, *, session: opt.MarketSession) -> None:
    """A round's phase and deadline, committee (who committed and revealed scores and a vote), revealed updates and utilities."""
    from rich.table import Table

    market = session.open()
    number = views.current_round(market.client, model_id, round_number)
    data = {"model_id": model_id, **views.round_summary(market.client, model_id, number)}
    if session.as_json:
        print_json(data)
        return
    console.print(
        f"[bold]task {model_id} round {number}[/]: {data['phase']} phase"
        + (f" until {data['phase_deadline']}" if data["phase_deadline"] else "")
        + f"; {data['commits']} commits, {data['reveals']} reveals, {data['score_commits']} score commits, {data['scores_submitted']} scores revealed"
        + (
            f"; proposed {data['proposed_cid']} (metric {data['proposed_metric']}), {data['vote_commits']} vote commits, "
            f"{data['confirmations']} votes revealed, {data['rejections']} rejections"
            if data["proposed"]
            else ""
        )
        + ("; closed" if data["closed"] else ""),
        highlight=False,
    )
    if data["updates"]:
        table = Table(title="revealed updates")
        for column in ("#", "trainer", "update CID", "samples", "utility"):
            table.add_column(column, no_wrap=column in ("trainer", "update CID"))
        for u in data["updates"]:
            table.add_row(str(u["index"]), u["trainer"], u["update_cid"], str(u["num_samples"]), str(u["utility"]))
        console.print(table)
    table = Table(title="committee")
    for column in ("validator", "scores", "vote"):
        table.add_column(column, no_wrap=column == "validator")
    for m in data["committee"]:
        scores = ",".join(map(str, m["scores"])) if m["scored"] else ("committed" if m["score_committed"] else "no")
        vote = ("ok" if m["ok"] else "reject") if m["voted"] else ("committed" if m["vote_committed"] else "no")
        table.add_row(m["address"], scores, vote)
    console.print(table)


@round_app.command("commit")
@one_line_errors
@opt.with_session()
def commit(
    model_id: int = ModelIdArgument,
    update_cid: str = typer.Option(..., "--update-cid", help="CIDv0 (Qm...) of the trained update."),
    samples: int = typer.Option(..., "--samples", min=1, help="Number of training samples behind the update."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Commit to an update (trainers, Commit phase); the salt is stored in the data dir for the reveal."""
    from fedmarket.errors import FedmarketError
    from fedmarket.roles.salts import SaltBook
    from fedmarket.storage.cid import validate_cid

    validate_cid(update_cid)
    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    if client.has_committed(model_id, number, market.sender):
        raise FedmarketError(f"{market.sender} already committed in task {model_id} round {number}")
    stored = SaltBook().prepare(client.chain_id, client.address, model_id, number, market.sender, update_cid, samples)
    result = client.commit_update(model_id, number, stored.commitment_bytes)
    data = {
        "model_id": model_id,
        "round": number,
        "trainer": market.sender,
        "update_cid": update_cid,
        "num_samples": samples,
        "commitment": stored.commitment,
        **tx_json(result),
    }
    session.print_result(
        data, f"committed to {update_cid} ({samples} samples) in task {model_id} round {number}; reveal it with `fedmarket round reveal {model_id}`"
    )


@round_app.command("reveal")
@one_line_errors
@opt.with_session()
def reveal(model_id: int = ModelIdArgument, round_number: Optional[int] = RoundOption, *, session: opt.MarketSession) -> None:
    """Reveal the committed update (trainers, Reveal phase), from the salt stored at commit time."""
    from fedmarket.roles.salts import SaltBook

    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    stored = SaltBook().load(client.chain_id, client.address, model_id, number, market.sender)
    result = client.reveal_update(model_id, number, stored.update_cid, stored.num_samples, stored.salt_bytes)
    index = int(result.event("UpdateRevealed").args["index"])
    data = {
        "model_id": model_id,
        "round": number,
        "trainer": market.sender,
        "update_cid": stored.update_cid,
        "num_samples": stored.num_samples,
        "index": index,
        **tx_json(result),
    }
    session.print_result(data, f"revealed {stored.update_cid} in task {model_id} round {number} (update #{index})")


def parse_scores(text: str) -> list[int]:
    """ "1,2,-3" -> [1, 2, -3] (micro-units; int64)."""
    from fedmarket.errors import FedmarketError

    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    try:
        scores = [int(p) for p in parts]
    except ValueError:
        raise FedmarketError(f"invalid --scores {text!r}: comma-separated integers in micro-units, e.g. 1000,250000,-30000") from None
    if any(not -(2**63) <= s < 2**63 for s in scores):
        raise FedmarketError("a score does not fit in int64")
    return scores


@round_app.command("score-commit")
@one_line_errors
@opt.with_session()
def score_commit(
    model_id: int = ModelIdArgument,
    scores: str = typer.Option(..., "--scores", help="One utility per revealed update, in reveal order, micro-units: '1000,250000,-30000'."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Commit to your scores of every revealed update (committee members, ScoreCommit phase); the
    scores and a fresh salt are stored in the data dir for `round score-reveal`."""
    from fedmarket.errors import FedmarketError

    values = parse_scores(scores)
    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    # The contract counts the scores only at the reveal: a wrong count is refused here, before a commit is wasted.
    revealed = len(client.revealed_updates(model_id, number))
    if len(values) != revealed:
        raise FedmarketError(
            f"task {model_id} round {number} has {revealed} revealed updates: give {revealed} scores, one per update in reveal order; got {len(values)}"
        )
    stored = _ballots().prepare_scores(client.chain_id, client.address, model_id, number, market.sender, values)
    result = client.commit_scores(model_id, number, stored.commitment_bytes)
    session.print_result(
        {"model_id": model_id, "round": number, "validator": market.sender, "scores": values, "commitment": stored.commitment, **tx_json(result)},
        f"committed to scores {values} in task {model_id} round {number}; reveal them with `fedmarket round score-reveal {model_id}`",
    )


@round_app.command("score-reveal")
@one_line_errors
@opt.with_session()
def score_reveal(model_id: int = ModelIdArgument, round_number: Optional[int] = RoundOption, *, session: opt.MarketSession) -> None:
    """Reveal the committed scores (committee members, ScoreReveal phase), from the data dir."""
    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    stored = _ballots().load(client.chain_id, client.address, model_id, number, market.sender, "scores")
    result = client.reveal_scores(model_id, number, stored.scores, stored.salt_bytes)
    session.print_result(
        {"model_id": model_id, "round": number, "validator": market.sender, "scores": stored.scores, **tx_json(result)},
        f"revealed scores {stored.scores} in task {model_id} round {number}",
    )


def _ballots() -> BallotBook:
    """The data dir's stored score and vote commits (imported late: `--help` stays fast)."""
    from fedmarket.roles.salts import BallotBook

    return BallotBook()


@round_app.command("publish")
@one_line_errors
@opt.with_session()
def publish(
    model_id: int = ModelIdArgument,
    model_cid: str = typer.Option(..., "--model-cid", help="CIDv0 (Qm...) of the aggregated global model."),
    metric: int = typer.Option(0, "--metric", help="The model's metric in micro-units (e.g. accuracy * 1e6)."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Propose the round's global model (the aggregator, Publish phase)."""
    from fedmarket.storage.cid import validate_cid

    validate_cid(model_cid)
    market = session.open()
    number = views.current_round(market.client, model_id, round_number)
    result = market.client.publish_global_model(model_id, number, model_cid, metric)
    session.print_result(
        {"model_id": model_id, "round": number, "model_cid": model_cid, "metric": metric, **tx_json(result)},
        f"proposed {model_cid} for task {model_id} round {number}",
    )


@round_app.command("vote-commit")
@one_line_errors
@opt.with_session()
def vote_commit(
    model_id: int = ModelIdArgument,
    ok: bool = typer.Option(True, "--ok/--reject", help="Accept the proposal (default) or reject it."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Commit to your vote on the proposed global model (committee members, VoteCommit phase); the
    vote and a fresh salt are stored in the data dir for `round vote-reveal`."""
    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    stored = _ballots().prepare_vote(client.chain_id, client.address, model_id, number, market.sender, ok)
    result = client.commit_vote(model_id, number, stored.commitment_bytes)
    session.print_result(
        {"model_id": model_id, "round": number, "ok": ok, "commitment": stored.commitment, **tx_json(result)},
        f"committed to {'accept' if ok else 'reject'} the proposal of task {model_id} round {number}; reveal it with `fedmarket round vote-reveal {model_id}`",
    )


@round_app.command("vote-reveal")
@one_line_errors
@opt.with_session()
def vote_reveal(model_id: int = ModelIdArgument, round_number: Optional[int] = RoundOption, *, session: opt.MarketSession) -> None:
    """Reveal the committed vote (committee members, VoteReveal phase); the last reveal closes the round."""
    market = session.open()
    client = market.client
    number = views.current_round(client, model_id, round_number)
    stored = _ballots().load(client.chain_id, client.address, model_id, number, market.sender, "vote")
    result = client.reveal_vote(model_id, number, stored.ok, stored.salt_bytes)
    closed = [e for e in result.events if e.name == "RoundClosed"]
    data = {"model_id": model_id, "round": number, "ok": stored.ok, "round_closed": bool(closed), **tx_json(result)}
    session.print_result(
        data,
        f"revealed {'acceptance' if stored.ok else 'rejection'} of the proposal of task {model_id} round {number}"
        + ("; the round is closed" if closed else ""),
    )


@round_app.command("close")
@one_line_errors
@opt.with_session()
def close(model_id: int = ModelIdArgument, *, session: opt.MarketSession) -> None:
    """Settle the current round once it is due (anyone): stragglers are slashed, the next round opens."""
    market = session.open()
    result = market.client.close_round(model_id)
    closed = result.event("RoundClosed").args
    from fedmarket.chain.client import SlashReason

    slashes = [
        {"participant": e.args["participant"], "reason": SlashReason(int(e.args["reason"])).name.lower(), "amount_wei": int(e.args["amount"])}
        for e in result.events_named("Slashed")
    ]
    data = {
        "model_id": model_id,
        "round": int(closed["round"]),
        "accepted": bool(closed["accepted"]),
        "budget_wei": int(closed["budget"]),
        "returned_to_buyer_wei": int(closed["returnedToBuyer"]),
        "slashes": slashes,
        **tx_json(result),
    }
    session.print_result(data, f"closed task {model_id} round {data['round']}: budget {opt.format_eth(data['budget_wei'])}, {len(slashes)} slashed")
