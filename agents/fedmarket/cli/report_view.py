"""The market report (fedmarket.market.report) as rich tables for people.

Amounts are shown in ETH to 6 decimals; the report keeps exact wei, and a shown amount that is not
exact carries a "~" (`_eth`). `fedmarket report`, `fedmarket demo` and `fedmarket up` print this.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from fedmarket.chain.protocol import WEI_PER_ETH


def _eth(wei: int) -> str:
    """ETH to 6 decimals for the tables (the report keeps exact wei); tiny amounts in wei."""
    wei = int(wei)
    if wei == 0:
        return "0"
    if abs(wei) < 10**12:
        return f"{wei} wei"
    text = f"{wei / WEI_PER_ETH:.6f}".rstrip("0").rstrip(".")
    return text if wei % 10**12 == 0 else f"~{text}"


WIDE = 150
"""Columns at and above which the rounds fit one table."""


def _metric(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _committee_line(r: dict[str, Any]) -> str:
    """One line per round on the committee's commit-reveal: who revealed, what each validator was
    paid (by agreement with the medians), who was slashed for disagreeing, which reveals were
    refused as duplicates; empty for a report without these fields."""
    actions = r.get("committee_actions")
    if not actions:
        return ""
    revealed = sum(a["scores_revealed"] for a in actions)
    votes = [a["vote"] for a in actions if a["vote"] is not None]
    pay = ", ".join(f"{who} {_eth(wei)}" for who, wei in r.get("validator_pay_wei", {}).items())
    line = (
        f"round {r['round']} committee: {revealed}/{len(actions)} revealed scores, {sum(votes)} ok / {len(votes) - sum(votes)} reject revealed; paid {pay} ETH"
    )
    if r.get("disagreed"):
        line += f"; slashed for disagreeing with the medians: {', '.join(r['disagreed'])}"
    if r.get("refused"):
        line += f"; refused duplicate reveals: {', '.join(f['label'] for f in r['refused'])}"
    return line


def print_report_tables(report: dict[str, Any], console: Console) -> None:
    """Print the round table, the participant table, the conservation line and the final accuracy."""
    from rich.table import Table

    chain = report["chain"]
    title = f"task {report['model_id']} ({report.get('status', '?')}) on the {chain['kind']} chain {chain['chain_id']}, Marketplace {chain['contract']}"
    initial = report.get("initial") or {}
    learning = {
        "round": lambda r: str(r["round"]),
        "accuracy": lambda r: _metric(r.get("accuracy")),
        "loss": lambda r: _metric(r.get("loss")),
        "accepted": lambda r: f"{len(r['accepted'])}/{len(r.get('revealed', r['accepted']))}",
        "proposal": lambda r: "accepted" if r.get("accepted_proposal", True) else "[red]rejected[/]",
    }
    money = {
        "budget": lambda r: _eth(r["budget_wei"]),
        "trainers": lambda r: _eth(r["earned_wei"]["trainer"]),
        "validators": lambda r: _eth(r["earned_wei"]["validator"]),
        "aggregator": lambda r: _eth(r["earned_wei"]["aggregator"]),
        "slashed": lambda r: _eth(r["slashed_wei"]),
        "to buyer": lambda r: _eth(r["returned_to_buyer_wei"]),
    }
    cost = {"gas": lambda r: f"{r['gas_used']:,}", "wall s": lambda r: _seconds(r.get("wall_s"))}
    initial_row = {"round": "0", "accuracy": _metric(initial.get("accuracy")), "loss": _metric(initial.get("loss")), "proposal": "initial"}
    # One table when the terminal is wide enough; else rounds' learning and their money apart.
    if console.width >= WIDE:
        layouts = [(f"{title} (ETH)", {**learning, **money, **cost})]
    else:
        layouts = [(title, {**learning, **cost}), ("money per round (ETH)", {"round": learning["round"], **money})]
    for caption, columns in layouts:
        table = Table(title=caption)
        for column in columns:
            table.add_column(column, justify="left" if column == "proposal" else "right", no_wrap=True)
        if "accuracy" in columns:
            table.add_row(*[initial_row.get(column, "") for column in columns], style="dim")
        for r in report["rounds"]:
            table.add_row(*[cell(r) for cell in columns.values()])
        console.print(table)

    for r in report["rounds"]:
        line = _committee_line(r)
        if line:
            console.print(line, highlight=False)

    narrow = console.width < WIDE
    people = Table(title="who paid in, earned, was slashed and took out (ETH)")
    headers = (
        ("participant", "role", "deposited", "earned", "slashed", "withdrawn")
        if narrow
        else ("participant", "address", "role", "deposited", "earned", "slashed", "withdrawn")
    )
    for column in headers:
        people.add_column(column, justify="left" if column in ("participant", "address", "role") else "right", no_wrap=column != "participant")

    def person(name: str, address: str, role: str, *amounts: str, style: str | None = None) -> None:
        people.add_row(name, *([] if narrow else [address]), role, *amounts, style=style)

    for address, p in report["participants"].items():
        person(
            p.get("label", ""), f"{address[:10]}…", p["role"], _eth(p["deposited_wei"]), _eth(p["earned_wei"]), _eth(p["slashed_wei"]), _eth(p["withdrawn_wei"])
        )
    b = report["buyer"]
    person(
        b.get("label", "buyer"),
        f"{b['address'][:10]}…",
        "buyer",
        _eth(b["deposited_wei"]),
        _eth(b["refunded_wei"] + b["license_income_wei"]),
        "",
        _eth(b["withdrawn_wei"]),
    )
    t = report["totals"]
    person("total", "", "", _eth(t["deposited_wei"]), "", "", _eth(t["withdrawn_wei"]), style="bold")
    console.print(people)

    held, credited, burned = t["task_balance_wei"], t["credited_wei"], t.get("burned_wei", 0)
    same = t["deposited_wei"] == credited + burned + held
    burned_part = f"+ {burned} wei burned (slashed stakes no trainer could take) " if burned else ""
    console.print(
        f"conservation (this task): deposited {t['deposited_wei']} wei {'==' if same else '!='} credited {credited} wei "
        f"{burned_part}+ {held} wei the task still holds{'' if same else ' [bold red]VIOLATED[/]'}; {t['gas_used']:,} gas in the task's transactions.",
        highlight=False,
    )
    console.print(
        f"the buyer's earnings are its refund ({_eth(b['refunded_wei'])}: unspent escrow, unearned shares and rounding dust) "
        f"and the licence fees ({_eth(b['license_income_wei'])}).",
        highlight=False,
    )
    final = report.get("final") or {}
    if final.get("accuracy") is None:
        console.print(f"final model {final.get('model_cid')}: no learning metrics.", highlight=False)
    else:
        console.print(
            f"final model {final['model_cid']}: accuracy {_metric(final['accuracy'])} (initial {_metric(initial.get('accuracy'))}), "
            f"auc {_metric(final.get('auc'))}, loss {_metric(final.get('loss'))}.",
            highlight=False,
        )
    for note in report.get("notes", []):
        console.print(note, style="dim", highlight=False, markup=False)
