"""`fedmarket bench gas`: gas of every Marketplace function in a full task, per trainer per round,
and how it grows with the number of trainers.

Scenario (all through MarketClient on the embedded chain, so the figures are the receipts' gasUsed):
a buyer posts a 4-round task; N trainers buy a licence and join; 2c validators join (so that
each round draws its committee among more validators than seats) and the aggregator joins; training starts. Then three rounds:

- round 1, healthy: every trainer commits and reveals its update; each of the c committee members
  commits its scores of all N updates (all positive: every update is accepted and paid), then
  reveals them; the aggregator publishes; every member commits its vote, then reveals it, and the
  last revealVote closes the round (settlement) and opens the next one;
- round 2, by deadline: the same, but one committee member commits its vote and never reveals it;
  time passes and anyone calls closeRound (settlement with a late slash);
- round 3, healthy again: the contract keeps per-update data in two buffers by round parity, so
  from round 3 on a round rewrites the storage of round r - 2 instead of filling new slots. This
  is the steady state of a task with many rounds.

The owner then finalizes early (round 4 abandoned), generateTrainingPayments credits everyone and
one trainer withdraws. cancelModel is measured on a second task that everyone joins and the buyer
cancels. The worst case runs the same at the caps (64 trainers, committee 9 of 32 validators) and
checks the gas limits the client sends on the embedded chain.

Per trainer per round = commitUpdate + revealUpdate + (all commitScores + all revealScores +
publish + all commitVote + the revealVotes that do not close the round + the closing transaction
of the round) / N.

Gas is the EVM's (cancun rules on py-evm); anvil and mainnet charge the same for this code.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fedmarket.chain.protocol import MAX_COMMITTEE, MAX_TRAINERS, MAX_VALIDATORS, WEI_PER_ETH, score_commitment, vote_commitment
from fedmarket.paths import repo_root

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedmarket.chain.client import MarketClient

TARGET_PER_TRAINER_ROUND = 150_000
DEFAULT_TRAINERS = 20
DEFAULT_COMMITTEE = 3
DEFAULT_STEPS = (10, 16, 20, 32, 48, 64)
NAME = "gas"
CAP_TRAINERS, CAP_COMMITTEE, CAP_VALIDATORS = MAX_TRAINERS, MAX_COMMITTEE, MAX_VALIDATORS  # the worst case measured
WINDOW = 100
TASK_ROUNDS = 4
FIRST, DEADLINE, STEADY = 1, 2, 3
"""The measured rounds: first use of each buffer, closed by deadline, steady state (storage reused)."""
CLOSING_VOTE = "revealVote (last: closes the round)"

NOTES = [
    "Measured on the embedded chain (py-evm, cancun rules) from the receipts' gasUsed; the same code costs the same on anvil or mainnet.",
    "The seed's original Marketplace contract is not available in this repository, so no side-by-side figure for it is given.",
    "joinAsTrainer creates the per-update slots its seat brings to a round in both buffers (commitment slot; every second seat "
    "the reveal-order word, every eighth the score word of each committee position), and joinAsAggregator the proposal's two "
    "slots in both buffers, so rounds 1 and 2 overwrite non-zero slots too: the first use of storage is paid at join (its max "
    "row: a seat that starts both words). Round 2 closes by "
    "closeRound after the deadline (one committee member late and slashed); round 3 rewrites round 1's buffer with the "
    "same values (a no-op write is cheaper still): the steady state of a long task.",
    "Every trainer's median utility is positive, so every update is accepted and paid: the settlement's most expensive path per trainer.",
    "The committee commits and reveals both its scores and its votes (commitScores, revealScores, commitVote, revealVote): "
    "the last revealScores ends ScoreReveal and reads every median; the last revealVote settles the round.",
    "The closing transaction of rounds 1 and 3 (the last revealVote) also opens the next round; its gas includes that.",
]


def _scores(n: int, member: int) -> list[int]:
    # Distinct positive utilities in micro-units; members disagree a little so medians matter.
    return [100_000 + 1_000 * i + 37 * member for i in range(n)]


class _Recorder:
    """gasUsed per function (several keys may share a function, e.g. the closing revealVote)."""

    def __init__(self) -> None:
        self.gas: dict[str, list[int]] = defaultdict(list)

    def add(self, key: str, gas_used: int) -> None:
        self.gas[key].append(int(gas_used))

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.gas.items()}

    def since(self, counts: dict[str, int]) -> dict[str, list[int]]:
        return {k: v[counts.get(k, 0) :] for k, v in self.gas.items() if len(v) > counts.get(k, 0)}

    def table(self) -> dict[str, dict[str, int]]:
        return {
            key: {"calls": len(values), "mean": round(statistics.fmean(values)), "min": min(values), "max": max(values)} for key, values in self.gas.items()
        }


def measure(n_trainers: int, committee: int, n_validators: int | None = None, *, with_cancel: bool = False) -> dict[str, Any]:
    """Run the scenario with `n_trainers` trainers and a committee of `committee` out of
    `n_validators` validators (default 2 * committee); with `with_cancel`, also a second task that
    everyone joins and the buyer cancels. Returns the gas figures."""
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
        rounds=TASK_ROUNDS,
        min_trainers=n_trainers,
        max_trainers=n_trainers,
        committee_size=committee,
        max_validators=n_validators,
        commit_window=WINDOW,
        reveal_window=WINDOW,
        score_window=WINDOW,
        publish_window=WINDOW,
        confirm_window=WINDOW,
        license_fee=WEI_PER_ETH // 1000,
        trainer_stake=WEI_PER_ETH // 100,
        validator_stake=WEI_PER_ETH // 100,
        aggregator_stake=WEI_PER_ETH // 100,
    )

    def join_everyone(model_id: int, record: bool) -> None:
        act = send if record else (lambda key, client, method, *args: getattr(client, method)(*args))
        for t in trainers:
            client = market.with_account(t)
            act("buyLicense", client, "buy_license", model_id, params.license_fee)
            act("joinAsTrainer", client, "join_as_trainer", model_id, params.trainer_stake)
        for v in validators:
            act("joinAsValidator", market.with_account(v), "join_as_validator", model_id, params.validator_stake)
        act("joinAsAggregator", market.with_account(aggregator), "join_as_aggregator", model_id, params.aggregator_stake)

    model_id = send("newModel", market, "new_model", params, WEI_PER_ETH).model_id
    send("payForModel", market, "pay_for_model", model_id, WEI_PER_ETH // 10)
    join_everyone(model_id, record=True)
    send("startTraining", market, "start_training", model_id)

    by_address = {a.address: a for a in accounts}
    rounds: dict[int, dict[str, Any]] = {}
    for rnd in (FIRST, DEADLINE, STEADY):
        members = [by_address[a] for a in market.get_round(model_id, rnd).committee]
        before = rec.counts()
        for t in trainers:
            c = commitment(model_id, rnd, keccak(text=f"u{t.address}{rnd}"), 100, keccak(text=f"s{t.address}{rnd}"), t.address)
            send("commitUpdate", market.with_account(t), "commit_update", model_id, rnd, c)
        for t in trainers:
            send(
                "revealUpdate",
                market.with_account(t),
                "reveal_update",
                model_id,
                rnd,
                keccak(text=f"u{t.address}{rnd}"),
                100,
                keccak(text=f"s{t.address}{rnd}"),
            )
        scores_of = {member.address: _scores(n_trainers, j) for j, member in enumerate(members)}

        def salt(kind: str, member: LocalAccount, rnd: int = rnd) -> bytes:
            return keccak(text=f"{kind} salt {member.address} {rnd}")

        for member in members:
            sealed = score_commitment(model_id, rnd, member.address, scores_of[member.address], salt("scores", member))
            send("commitScores", market.with_account(member), "commit_scores", model_id, rnd, sealed)
        for member in members:
            send("revealScores", market.with_account(member), "reveal_scores", model_id, rnd, scores_of[member.address], salt("scores", member))
        send("publishGlobalModel", market.with_account(aggregator), "publish_global_model", model_id, rnd, keccak(text=f"global {rnd}"), 900_000)
        for member in members:
            sealed = vote_commitment(model_id, rnd, member.address, True, salt("vote", member))
            send("commitVote", market.with_account(member), "commit_vote", model_id, rnd, sealed)
        for member in members[:-1]:
            send("revealVote", market.with_account(member), "reveal_vote", model_id, rnd, True, salt("vote", member))
        if rnd == DEADLINE:
            # The last member committed its vote and never reveals it: the round waits for the
            # VoteReveal deadline, then anyone closes it (that member is late-slashed).
            advance_time(w3, WINDOW + 1)
            send("closeRound", market, "close_round", model_id)
            closing_key = "closeRound"
        else:
            send(CLOSING_VOTE, market.with_account(members[-1]), "reveal_vote", model_id, rnd, True, salt("vote", members[-1]))
            closing_key = CLOSING_VOTE
        new = rec.since(before)
        commit, reveal = statistics.fmean(new["commitUpdate"]), statistics.fmean(new["revealUpdate"])
        score_commits, score_reveals = sum(new["commitScores"]), sum(new["revealScores"])
        publish = new["publishGlobalModel"][0]
        vote_commits, vote_reveals = sum(new["commitVote"]), sum(new.get("revealVote", []))
        closing = new[closing_key][0]
        shared = score_commits + score_reveals + publish + vote_commits + vote_reveals + closing
        rounds[rnd] = {
            "closed_by": closing_key,
            "commit": round(commit),
            "reveal": round(reveal),
            "score_commit_per_member": round(score_commits / len(members)),
            "score_reveal_per_member": round(score_reveals / len(members)),
            "publish": publish,
            "vote_commit_per_member": round(vote_commits / len(members)),
            "vote_reveals": vote_reveals,
            "closing": closing,
            "shared_per_trainer": round(shared / n_trainers),
            "per_trainer": round(commit + reveal + shared / n_trainers),
            "breakdown": {
                "commitUpdate": round(commit),
                "revealUpdate": round(reveal),
                "commitScores (share)": round(score_commits / n_trainers),
                "revealScores (share)": round(score_reveals / n_trainers),
                "publishGlobalModel (share)": round(publish / n_trainers),
                "commitVote (share)": round(vote_commits / n_trainers),
                "revealVote, not closing (share)": round(vote_reveals / n_trainers),
                f"{closing_key.split(' ')[0]} closing the round (share)": round(closing / n_trainers),
            },
            "round_total": sum(sum(v) for v in new.values()),
        }
    send("finalizeContract (owner, early)", market, "finalize_contract", model_id)
    send("generateTrainingPayments", market, "generate_training_payments", model_id)
    send("withdraw", market.with_account(trainers[0]), "withdraw")
    if with_cancel:
        cancelled = market.new_model(params, WEI_PER_ETH).model_id
        join_everyone(cancelled, record=False)
        send("cancelModel", market, "cancel_model", cancelled)
    return {
        "trainers": n_trainers,
        "committee": committee,
        "validators": n_validators,
        "deploy": deploy_gas,
        "functions": rec.table(),
        "rounds": rounds,
    }


def _dominant(result: dict[str, Any], rnd: int) -> str:
    parts = result["rounds"][rnd]["breakdown"]
    name, value = max(parts.items(), key=lambda kv: kv[1])
    return f"{name}: {value:,} of {result['rounds'][rnd]['per_trainer']:,}"


def _contract_provenance() -> dict[str, Any]:
    """Which contract sources were measured: their hash, the git commit, and whether they differ from it."""
    from fedmarket.chain.compile import source_hash

    info: dict[str, Any] = {"source_hash": source_hash(include_test=False)}
    root = repo_root()
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--", "contracts"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        info["contracts_modified_since_commit"] = bool(dirty.strip())
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def run(trainers: int, committee: int, steps: list[int], *, worst_case: bool = True, progress: Any = None) -> dict[str, Any]:
    """The whole benchmark: the main scenario, the scaling series and the worst case at the caps."""
    from fedmarket.chain.compile import compiler_version
    from fedmarket.chain.deploy import MARKETPLACE_GAS_LIMITS

    started = time.perf_counter()
    say = progress or (lambda text: None)
    provenance = _contract_provenance()
    say(f"{trainers} trainers, committee {committee}")
    main = measure(trainers, committee, with_cancel=True)
    scaling = []
    for n in steps:
        say(f"scaling: {n} trainers")
        result = main if n == trainers else measure(n, committee)
        first, late, steady = (result["rounds"][r] for r in (FIRST, DEADLINE, STEADY))
        scaling.append({
            "trainers": n,
            "commitUpdate": steady["commit"],
            "revealUpdate": steady["reveal"],
            "commitScores": steady["score_commit_per_member"],
            "revealScores": steady["score_reveal_per_member"],
            "publishGlobalModel": steady["publish"],
            "commitVote": steady["vote_commit_per_member"],
            "revealVote_closing": steady["closing"],
            "closeRound": late["closing"],
            "per_trainer_steady": steady["per_trainer"],
            "per_trainer_first_round": first["per_trainer"],
            "per_trainer_deadline_round": late["per_trainer"],
        })  # fmt: skip
    worst: dict[str, Any] | None = None
    if worst_case:
        say(f"worst case: {CAP_TRAINERS} trainers, committee {CAP_COMMITTEE} of {CAP_VALIDATORS} validators")
        result = measure(CAP_TRAINERS, CAP_COMMITTEE, CAP_VALIDATORS, with_cancel=True)
        limits = {}
        for name, values in result["functions"].items():
            function = name.split(" ", 1)[0]
            limit = MARKETPLACE_GAS_LIMITS.get(function)
            limits[name] = {
                "gas": values["max"],
                "limit": limit,
                "fits": limit is not None and values["max"] <= limit,
                "headroom": round(1 - values["max"] / limit, 3) if limit else None,
            }
        worst = {
            "trainers": CAP_TRAINERS,
            "committee": CAP_COMMITTEE,
            "validators": CAP_VALIDATORS,
            "per_trainer_steady": result["rounds"][STEADY]["per_trainer"],
            "per_trainer_first_round": result["rounds"][FIRST]["per_trainer"],
            "functions": limits,
        }
    steady, first = main["rounds"][STEADY]["per_trainer"], main["rounds"][FIRST]["per_trainer"]
    series = [row["per_trainer_steady"] for row in scaling]
    return {
        "benchmark": "gas",
        "chain": "embedded (eth-tester, py-evm)",
        "compiler": f"solc {compiler_version()}",
        "contract": provenance,
        "target_per_trainer_per_round": TARGET_PER_TRAINER_ROUND,
        "scenario": {"trainers": trainers, "committee": committee, "validators": 2 * committee, "task_rounds": TASK_ROUNDS, "measured_rounds": 3},
        "main": main,
        "per_trainer_per_round": {"steady": steady, "first_round": first, "deadline_round": main["rounds"][DEADLINE]["per_trainer"]},
        "meets_target": {"steady": steady <= TARGET_PER_TRAINER_ROUND, "first_round": first <= TARGET_PER_TRAINER_ROUND},
        "dominant": {"steady": _dominant(main, STEADY), "first_round": _dominant(main, FIRST)},
        "scaling": scaling,
        "flatness": {"min": min(series), "max": max(series), "max_over_min": round(max(series) / min(series), 3)} if series else None,
        "worst_case": worst,
        "notes": NOTES,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def to_markdown(report: dict[str, Any]) -> str:
    main = report["main"]
    rounds = main["rounds"]
    r1, r2, r3 = rounds[FIRST], rounds[DEADLINE], rounds[STEADY]
    per, meets, target = report["per_trainer_per_round"], report["meets_target"], report["target_per_trainer_per_round"]
    contract = report.get("contract", {})
    measured = f"contract sources {contract.get('source_hash', '?')[:12]}"
    if "git_commit" in contract:
        measured += f" (at commit {contract['git_commit']}{', with uncommitted changes' if contract.get('contracts_modified_since_commit') else ''})"
    lines = [
        "# Gas of the Marketplace",
        "",
        f"{report['chain']}, {report['compiler']}, {measured}. Scenario: {main['trainers']} trainers, committee "
        f"{main['committee']} of {main['validators']} validators, three rounds measured. Regenerate with `fedmarket bench gas`.",
        "",
        f"**Per trainer per round: {per['steady']:,} gas in the steady state** (round 3 on, storage reused), "
        f"{per['first_round']:,} in round 1 (first use of its buffer); target <= {target:,}: "
        f"{'met' if meets['steady'] else 'missed'} in the steady state, {'met' if meets['first_round'] else 'missed'} in round 1.",
        f"Largest part, steady state: {report['dominant']['steady']}; round 1: {report['dominant']['first_round']}.",
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
        "## Per trainer per round, by function",
        "",
        "| part | round 1 (first use of its buffer, closed by the last revealVote) | round 2 (closed by closeRound, one member late) | round 3: steady state |",
        "|---|---:|---:|---:|",
    ]
    labels = list(r1["breakdown"])
    deadline_labels = list(r2["breakdown"])
    for i, label in enumerate(labels):
        lines.append(f"| {label} | {r1['breakdown'][label]:,} | {r2['breakdown'][deadline_labels[i]]:,} | {r3['breakdown'][label]:,} |")
    lines += [
        f"| **total** | **{r1['per_trainer']:,}** | **{r2['per_trainer']:,}** | **{r3['per_trainer']:,}** |",
        "",
        "(Round 2's closing row is closeRound: one member committed its vote and never revealed it.)",
        "",
        f"## Scaling (committee {main['committee']})",
        "",
        "| trainers | commitUpdate | revealUpdate | commitScores (each member) | revealScores (each member) | publish | commitVote (each member) "
        "| closing revealVote | closeRound | per trainer per round: steady | round 1 | round 2 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["scaling"]:
        lines.append(
            f"| {row['trainers']} | {row['commitUpdate']:,} | {row['revealUpdate']:,} | {row['commitScores']:,} | {row['revealScores']:,} "
            f"| {row['publishGlobalModel']:,} | {row['commitVote']:,} | {row['revealVote_closing']:,} | {row['closeRound']:,} "
            f"| {row['per_trainer_steady']:,} | {row['per_trainer_first_round']:,} | {row['per_trainer_deadline_round']:,} |"
        )
    if report.get("flatness"):
        f = report["flatness"]
        lines += [
            "",
            f"Steady-state gas per trainer per round ranges {f['min']:,} .. {f['max']:,} over the series (max/min {f['max_over_min']}): "
            "each round has a fixed part (publish, votes, the round's bookkeeping) that fewer trainers share.",
        ]
    worst = report.get("worst_case")
    if worst:
        lines += [
            "",
            f"## Worst case at the caps ({worst['trainers']} trainers, committee {worst['committee']} of {worst['validators']} validators) "
            "against the gas limits the client sends on the embedded chain",
            "",
            "| function | highest gas | limit (deploy.MARKETPLACE_GAS_LIMITS) | headroom | fits |",
            "|---|---:|---:|---:|---|",
        ]
        for name, v in worst["functions"].items():
            limit = f"{v['limit']:,}" if v["limit"] is not None else "none"
            headroom = f"{v['headroom']:.0%}" if v["headroom"] is not None else ""
            lines.append(f"| {name} | {v['gas']:,} | {limit} | {headroom} | {'yes' if v['fits'] else '**no**'} |")
        lines += [
            "",
            f"Per trainer per round at the caps: {worst['per_trainer_steady']:,} gas steady, {worst['per_trainer_first_round']:,} in round 1.",
        ]
    lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)
