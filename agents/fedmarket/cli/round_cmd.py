"""`fedmarket round show | commit | reveal | score | publish | confirm | close`: a round's phases
by hand (the agents do the same automatically).

`commit` computes the commitment locally from --update-cid, --samples and a fresh salt, and
stores all three in the data dir *before* sending (roles/salts.py); `reveal` reads them back, so
reveal with the same FEDMARKET_HOME. --round defaults to the task's current round.
"""

from __future__ import annotations

from typing import Optional

import typer

from fedmarket.cli import market_options as opt
from fedmarket.cli.output import console, one_line_errors, print_json
from fedmarket.cli.task_cmd import ModelIdArgument, tx_json
from fedmarket.market import views

round_app = typer.Typer(help="A round's phases by hand: commit, reveal, score, publish, confirm, close.", no_args_is_help=True)
RoundOption = typer.Option(None, "--round", "-r", min=1, help="Round number (default: the task's current round).")


def register(app: typer.Typer) -> None:
    app.add_typer(round_app, name="round")


@round_app.command("show")
@one_line_errors
@opt.with_session(opt.READING)
def show(model_id: int = ModelIdArgument, round_number: Optional[int] = RoundOption, *, session: opt.MarketSession) -> None:
    """A round's phase and deadline, committee (who scored, who voted), revealed updates and utilities."""
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
        + f"; {data['commits']} commits, {data['reveals']} reveals, {data['scores_submitted']} scores"
        + (
            f"; proposed {data['proposed_cid']} (metric {data['proposed_metric']}), {data['confirmations']} votes, {data['rejections']} rejections"
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
    for column in ("validator", "scored", "scores", "voted"):
        table.add_column(column, no_wrap=column == "validator")
    for m in data["committee"]:
        table.add_row(m["address"], "yes" if m["scored"] else "no", ",".join(map(str, m["scores"])), ("ok" if m["ok"] else "reject") if m["voted"] else "no")
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


@round_app.command("score")
@one_line_errors
@opt.with_session()
def score(
    model_id: int = ModelIdArgument,
    scores: str = typer.Option(..., "--scores", help="One utility per revealed update, in reveal order, micro-units: '1000,250000,-30000'."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Score every revealed update (committee members, Score phase)."""
    values = parse_scores(scores)
    market = session.open()
    number = views.current_round(market.client, model_id, round_number)
    result = market.client.submit_scores(model_id, number, values)
    session.print_result(
        {"model_id": model_id, "round": number, "validator": market.sender, "scores": values, **tx_json(result)},
        f"scored task {model_id} round {number}: {values}",
    )


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


@round_app.command("confirm")
@one_line_errors
@opt.with_session()
def confirm(
    model_id: int = ModelIdArgument,
    ok: bool = typer.Option(True, "--ok/--reject", help="Accept the proposal (default) or reject it."),
    round_number: Optional[int] = RoundOption,
    *,
    session: opt.MarketSession,
) -> None:
    """Vote on the proposed global model (committee members, Confirm phase); the last vote closes the round."""
    market = session.open()
    number = views.current_round(market.client, model_id, round_number)
    result = market.client.confirm_global_model(model_id, number, ok)
    closed = [e for e in result.events if e.name == "RoundClosed"]
    data = {"model_id": model_id, "round": number, "ok": ok, "round_closed": bool(closed), **tx_json(result)}
    session.print_result(
        data, f"{'confirmed' if ok else 'rejected'} the proposal of task {model_id} round {number}" + ("; the round is closed" if closed else "")
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
