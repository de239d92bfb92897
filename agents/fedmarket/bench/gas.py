"""`fedmarket bench gas`: gas of every Marketplace function in a full task, per trainer per round,
and how it grows with the number of trainers.

Scenario (all through MarketClient on the embedded chain, so the figures are the receipts' gasUsed):
a buyer posts a 2-round task; N trainers buy a licence and join; 2c validators join (so that
committees rotate) and the aggregator joins; training starts. Round 1 is a healthy round that
ends early: every trainer commits and reveals, each of the c committee members scores all N
updates (all positive, all accepted), the aggregator publishes, and the last confirmation closes
the round (settlement) and opens round 2. Round 2 ends by deadline: one committee member never
confirms, time passes, and anyone calls closeRound (settlement + a late slash). Then
finalizeContract, generateTrainingPayments and one withdraw. cancelModel is measured on a second
task that every participant joins and the buyer cancels. The worst case runs the same at the caps
(64 trainers, committee 9 of 32 validators) and checks the gas limits the client sends.

Per trainer per round = commit + reveal + (all scores + publish + all confirmations of the round,
the closing one included) / N. Round 2's variant replaces the closing confirmation by closeRound.

Gas is the EVM's (cancun rules on py-evm); anvil and mainnet charge the same for this code.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from fedmarket.cli.output import console, one_line_errors, print_json
from fedmarket.paths import repo_root

if TYPE_CHECKING:
    from fedmarket.chain.client import MarketClient

TARGET_PER_TRAINER_ROUND = 150_000
DEFAULT_TRAINERS = 20
DEFAULT_COMMITTEE = 3
DEFAULT_STEPS = (10, 16, 20, 32, 48, 64)
CAP_TRAINERS = 64
CAP_COMMITTEE = 9
CAP_VALIDATORS = 32
WINDOW = 100
ROUND_FUNCTIONS = ("commitUpdate", "revealUpdate", "submitScores", "publishGlobalModel", "confirmGlobalModel")

NOTES = [
    "Measured on the embedded chain (py-evm, cancun rules) from the receipts' gasUsed; the same code costs the same on anvil or mainnet.",
    "The seed's original Marketplace contract is not available in this repository, so no side-by-side figure for it is given.",
    "Round 1 closes early with the last confirmation (its gas includes the settlement and the opening of round 2); "
    "round 2 closes by closeRound after the deadline, with one committee member late (slashed).",
    "Every trainer's median utility is positive, so every update is accepted and paid: the settlement's most expensive path per trainer.",
]


def _scores(n: int, member: int) -> list[int]:
    # Distinct positive utilities in micro-units; members disagree a little so medians matter.
    return [100_000 + 1_000 * i + 37 * member for i in range(n)]


class _Recorder:
    def __init__(self) -> None:
        self.gas: dict[str, list[int]] = defaultdict(list)

    def add(self, key: str, gas_used: int) -> None:
        self.gas[key].append(int(gas_used))

    def mean(self, key: str) -> float:
        return statistics.fmean(self.gas[key])

    def total(self, key: str) -> int:
        return sum(self.gas[key])

    def table(self) -> dict[str, dict[str, float | int]]:
        return {
            key: {"calls": len(values), "mean": round(statistics.fmean(values)), "min": min(values), "max": max(values)}
            for key, values in self.gas.items()
        }


def measure(n_trainers: int, committee: int, n_validators: int | None = None, *, with_cancel: bool = False) -> dict[str, Any]:
    """Run the scenario with `n_trainers` trainers, a committee of `committee` out of `n_validators`
    validators (default 2 * committee); with `with_cancel`, also a second task that everyone joins
    and the buyer cancels (cancelModel). Returns the gas figures."""
    from eth_utils import keccak

    from fedmarket.chain.anvil import dev_accounts
    from fedmarket.chain.client import MarketClient, ModelParams, commitment
    from fedmarket.chain.deploy import deploy_marketplace
    from fedmarket.chain.embedded import new_embedded_web3
    from fedmarket.chain.timecontrol import advance_time

    n_validators = n_validators or 2 * committee
    w3 = new_embedded_web3(num_accounts=n_trainers + n_validators + 3)
    accounts = dev_accounts(w3)
    owner, aggregator, deployer = accounts[0], accounts[1], accounts[2]
    validators = accounts[3 : 3 + n_validators]
    trainers = accounts[3 + n_validators : 3 + n_validators + n_trainers]
    contract = deploy_marketplace(w3, deployer)
    deploy_gas = int(contract.deployment_receipt["gasUsed"])  # type: ignore[attr-defined]
    market = MarketClient(w3, contract.address, owner)
    rec = _Recorder()

    def send(key: str, client: MarketClient, method: str, *args: Any) -> Any:
        result = getattr(client, method)(*args)
        rec.add(key, result.gas_used)
        return result

    params = ModelParams(
        spec_digest=keccak(text="spec"),
        initial_model_digest=keccak(text="initial model"),
        aggregator=aggregator.address,
        rounds=2,
        min_trainers=n_trainers,
        max_trainers=n_trainers,
        committee_size=committee,
        max_validators=n_validators,
        commit_window=WINDOW,
        reveal_window=WINDOW,
        score_window=WINDOW,
        publish_window=WINDOW,
        confirm_window=WINDOW,
        license_fee=10**15,
        trainer_stake=10**16,
        validator_stake=10**16,
        aggregator_stake=10**16,
    )
    model_id = send("newModel", market, "new_model", params, 10**18).model_id
    send("payForModel", market, "pay_for_model", model_id, 10**17)
    for t in trainers:
        client = market.with_account(t)
        send("buyLicense", client, "buy_license", model_id, params.license_fee)
        send("joinAsTrainer", client, "join_as_trainer", model_id, params.trainer_stake)
    for v in validators:
        send("joinAsValidator", market.with_account(v), "join_as_validator", model_id, params.validator_stake)
    send("joinAsAggregator", market.with_account(aggregator), "join_as_aggregator", model_id, params.aggregator_stake)
    send("startTraining", market, "start_training", model_id)

    by_address = {a.address: a for a in accounts}
    per_round: dict[int, dict[str, Any]] = {}
    for rnd in (1, 2):
        committee_members = [by_address[a] for a in market.get_round(model_id, rnd).committee]
        before = {k: len(v) for k, v in rec.gas.items()}
        for t in trainers:
            c = commitment(model_id, rnd, keccak(text=f"u{t.address}{rnd}"), 100, keccak(text=f"s{t.address}{rnd}"), t.address)
            send("commitUpdate", market.with_account(t), "commit_update", model_id, rnd, c)
        for t in trainers:
            send("revealUpdate", market.with_account(t), "reveal_update", model_id, rnd, keccak(text=f"u{t.address}{rnd}"), 100, keccak(text=f"s{t.address}{rnd}"))
        for j, member in enumerate(committee_members):
            send("submitScores", market.with_account(member), "submit_scores", model_id, rnd, _scores(n_trainers, j))
        send("publishGlobalModel", market.with_account(aggregator), "publish_global_model", model_id, rnd, keccak(text=f"global {rnd}"), 900_000)
        if rnd == 1:
            for member in committee_members[:-1]:
                send("confirmGlobalModel", market.with_account(member), "confirm_global_model", model_id, rnd, True)
            send("confirmGlobalModel (last: closes the round)", market.with_account(committee_members[-1]), "confirm_global_model", model_id, rnd, True)
            closing_key = "confirmGlobalModel (last: closes the round)"
        else:
            for member in committee_members[:-1]:
                send("confirmGlobalModel", market.with_account(member), "confirm_global_model", model_id, rnd, True)
            advance_time(w3, WINDOW + 1)
            send("closeRound", market, "close_round", model_id)
            closing_key = "closeRound"
        new = {k: rec.gas[k][before.get(k, 0) :] for k in rec.gas if len(rec.gas[k]) > before.get(k, 0)}
        shared = sum(sum(new[k]) for k in new if k not in ("commitUpdate", "revealUpdate"))
        commit, reveal = statistics.fmean(new["commitUpdate"]), statistics.fmean(new["revealUpdate"])
        per_round[rnd] = {
            "closed_by": closing_key,
            "commit": round(commit),
            "reveal": round(reveal),
            "scores_per_member": round(statistics.fmean(new["submitScores"])),
            "publish": new["publishGlobalModel"][0],
            "closing": new[closing_key][0],
            "shared_total": shared,
            "shared_per_trainer": round(shared / n_trainers),
            "per_trainer": round(commit + reveal + shared / n_trainers),
            "round_total": sum(sum(v) for v in new.values()),
        }
    send("finalizeContract", market, "finalize_contract", model_id)
    send("generateTrainingPayments", market, "generate_training_payments", model_id)
    send("withdraw", market.with_account(trainers[0]), "withdraw")
    if with_cancel:
        cancelled = market.new_model(params, 10**18).model_id
        for t in trainers:
            market.with_account(t).buy_license(cancelled, params.license_fee)
            market.with_account(t).join_as_trainer(cancelled, params.trainer_stake)
        for v in validators:
            market.with_account(v).join_as_validator(cancelled, params.validator_stake)
        market.with_account(aggregator).join_as_aggregator(cancelled, params.aggregator_stake)
        send("cancelModel", market, "cancel_model", cancelled)
    return {
        "trainers": n_trainers,
        "committee": committee,
        "validators": n_validators,
        "deploy": deploy_gas,
        "functions": rec.table(),
        "rounds": per_round,
    }


def breakdown(result: dict[str, Any], rnd: int = 1) -> dict[str, int]:
    """Per trainer per round, by function: commit, reveal, and each trainer's share of the rest."""
    r = result["rounds"][rnd]
    n, c = result["trainers"], result["committee"]
    scores = r["scores_per_member"] * c
    closing_and_votes = r["shared_total"] - scores - r["publish"]
    return {
        "commitUpdate": r["commit"],
        "revealUpdate": r["reveal"],
        "submitScores (share)": round(scores / n),
        "publishGlobalModel (share)": round(r["publish"] / n),
        f"confirmations + {r['closed_by'].split(' ')[0]} settlement (share)": round(closing_and_votes / n),
    }


def _dominant(result: dict[str, Any]) -> str:
    parts = breakdown(result)
    name, value = max(parts.items(), key=lambda kv: kv[1])
    return f"{name}: {value:,} of {result['rounds'][1]['per_trainer']:,} gas per trainer per round"


def run(trainers: int, committee: int, steps: list[int], *, worst_case: bool = True, progress: Any = None) -> dict[str, Any]:
    """The whole benchmark: the main scenario, the scaling series and the worst case at the caps."""
    from fedmarket.chain.compile import compiler_version
    from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS

    started = time.perf_counter()
    say = progress or (lambda text: None)
    say(f"round with {trainers} trainers, committee {committee}")
    main = measure(trainers, committee, with_cancel=True)
    scaling = []
    for n in steps:
        say(f"scaling: {n} trainers")
        result = main if n == trainers else measure(n, committee)
        r1, r2 = result["rounds"][1], result["rounds"][2]
        scaling.append({
            "trainers": n,
            "commitUpdate": r1["commit"],
            "revealUpdate": r1["reveal"],
            "submitScores": r1["scores_per_member"],
            "publishGlobalModel": r1["publish"],
            "confirmGlobalModel_last": r1["closing"],
            "closeRound": r2["closing"],
            "per_trainer_per_round": r1["per_trainer"],
            "per_trainer_per_round_closeRound": r2["per_trainer"],
        })  # fmt: skip
    worst: dict[str, Any] | None = None
    if worst_case:
        say(f"worst case: {CAP_TRAINERS} trainers, committee {CAP_COMMITTEE} of {CAP_VALIDATORS} validators")
        result = measure(CAP_TRAINERS, CAP_COMMITTEE, CAP_VALIDATORS, with_cancel=True)
        highest = {name: values["max"] for name, values in result["functions"].items()}
        limits = {}
        for name, gas in highest.items():
            function = name.split(" ", 1)[0]
            limit = MARKETPLACE_GAS_LIMITS.get(function)
            limits[name] = {"gas": gas, "limit": limit, "fits": limit is not None and gas <= limit}
        worst = {"trainers": CAP_TRAINERS, "committee": CAP_COMMITTEE, "validators": CAP_VALIDATORS, "per_trainer_per_round": result["rounds"][1]["per_trainer"], "functions": limits}
    per_trainer = main["rounds"][1]["per_trainer"]
    series = [row["per_trainer_per_round"] for row in scaling]
    return {
        "benchmark": "gas",
        "chain": "embedded (eth-tester, py-evm)",
        "compiler": f"solc {compiler_version()}",
        "target_per_trainer_per_round": TARGET_PER_TRAINER_ROUND,
        "scenario": {"trainers": trainers, "committee": committee, "validators": 2 * committee, "rounds": 2},
        "main": main,
        "per_trainer_per_round": per_trainer,
        "meets_target": per_trainer <= TARGET_PER_TRAINER_ROUND,
        "dominant": _dominant(main),
        "breakdown": breakdown(main),
        "scaling": scaling,
        "flatness": {"min": min(series), "max": max(series), "max_over_min": round(max(series) / min(series), 3)} if series else None,
        "worst_case": worst,
        "notes": NOTES,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def to_markdown(report: dict[str, Any]) -> str:
    main = report["main"]
    r1, r2 = main["rounds"][1], main["rounds"][2]
    lines = [
        "# Gas of the Marketplace",
        "",
        f"{report['chain']}, {report['compiler']}. Scenario: {main['trainers']} trainers, committee {main['committee']} "
        f"of {main['validators']} validators, 2 rounds. Regenerate with `fedmarket bench gas`.",
        "",
        f"**Per trainer per round: {r1['per_trainer']:,} gas** (target <= {report['target_per_trainer_per_round']:,}: "
        f"{'met' if report['meets_target'] else 'missed'}); largest part: {report['dominant']}.",
        "",
        f"## Every function ({main['trainers']} trainers, committee {main['committee']})",
        "",
        "| function | calls | gas (mean) | min | max |",
        "|---|---:|---:|---:|---:|",
        f"| deploy Marketplace | 1 | {main['deploy']:,} | {main['deploy']:,} | {main['deploy']:,} |",
    ]
    for name, v in main["functions"].items():
        lines.append(f"| {name} | {v['calls']} | {v['mean']:,} | {v['min']:,} | {v['max']:,} |")
    lines += [
        "",
        "## Per trainer per round",
        "",
        "| part | round 1 (closed by the last confirmation) | round 2 (closed by closeRound, one member late) |",
        "|---|---:|---:|",
        f"| commitUpdate | {r1['commit']:,} | {r2['commit']:,} |",
        f"| revealUpdate | {r1['reveal']:,} | {r2['reveal']:,} |",
        f"| share of scores, publish, confirmations, closing | {r1['shared_per_trainer']:,} | {r2['shared_per_trainer']:,} |",
        f"| **total** | **{r1['per_trainer']:,}** | **{r2['per_trainer']:,}** |",
        "",
        "Round 1 by function: " + ", ".join(f"{name} {gas:,}" for name, gas in report["breakdown"].items()) + ".",
        "",
        f"## Scaling (committee {main['committee']})",
        "",
        "| trainers | commit | reveal | submitScores (each member) | publish | last confirm (closes) | closeRound | per trainer per round | (closeRound round) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["scaling"]:
        lines.append(
            f"| {row['trainers']} | {row['commitUpdate']:,} | {row['revealUpdate']:,} | {row['submitScores']:,} | {row['publishGlobalModel']:,} "
            f"| {row['confirmGlobalModel_last']:,} | {row['closeRound']:,} | {row['per_trainer_per_round']:,} | {row['per_trainer_per_round_closeRound']:,} |"
        )
    if report.get("flatness"):
        f = report["flatness"]
        lines += ["", f"Per trainer per round ranges {f['min']:,} .. {f['max']:,} gas over the series (max/min {f['max_over_min']})."]
    worst = report.get("worst_case")
    if worst:
        lines += [
            "",
            f"## Worst case at the caps ({worst['trainers']} trainers, committee {worst['committee']} of {worst['validators']} validators) "
            "against the gas limits the client sends on the embedded chain",
            "",
            "| function | highest gas | limit (deploy.MARKETPLACE_GAS_LIMITS) | fits |",
            "|---|---:|---:|---|",
        ]
        for name, v in worst["functions"].items():
            limit = f"{v['limit']:,}" if v["limit"] is not None else "none"
            lines.append(f"| {name} | {v['gas']:,} | {limit} | {'yes' if v['fits'] else '**no**'} |")
        lines += ["", f"Per trainer per round at the caps: {worst['per_trainer_per_round']:,} gas."]
    lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def write_results(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "gas.json", directory / "gas.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("gas")
    @one_line_errors
    def gas(
        trainers: int = typer.Option(DEFAULT_TRAINERS, "--trainers", min=1, max=CAP_TRAINERS, help="Trainers of the main scenario."),
        committee: int = typer.Option(DEFAULT_COMMITTEE, "--committee", min=1, max=CAP_COMMITTEE, help="Committee size."),
        steps: str = typer.Option(",".join(map(str, DEFAULT_STEPS)), "--steps", help="Trainer counts of the scaling series (comma-separated)."),
        worst_case: bool = typer.Option(True, "--worst-case/--no-worst-case", help=f"Also measure the caps ({CAP_TRAINERS} trainers, committee {CAP_COMMITTEE} of {CAP_VALIDATORS})."),
        out: Path = typer.Option(repo_root() / "bench" / "results", "--out", help="Directory for gas.json and gas.md."),
        json_out: bool = typer.Option(False, "--json", help="Print the JSON report."),
    ) -> None:
        """Gas of every Marketplace function and per trainer per round; results in bench/results/gas.{json,md}."""
        from fedmarket.errors import FedmarketError

        try:
            series = sorted({int(s) for s in steps.split(",") if s.strip()})
        except ValueError as exc:
            raise FedmarketError(f"--steps takes comma-separated trainer counts, not {steps!r}") from exc
        if any(not 1 <= n <= CAP_TRAINERS for n in series):
            raise FedmarketError(f"--steps must lie in 1..{CAP_TRAINERS}: {series}")
        with console.status("measuring gas") as status:
            report = run(trainers, committee, series, worst_case=worst_case, progress=lambda text: status.update(f"measuring gas: {text}"))
        json_path, md_path = write_results(report, out)
        if json_out:
            print_json(report)
            return
        console.print(to_markdown(report), markup=False, highlight=False)
        console.print(f"written {json_path} and {md_path}", style="dim")
