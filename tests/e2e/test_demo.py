"""`fedmarket demo` end to end, as a user runs it: the whole market with learning agents on the
embedded chain and store, checked through its report (design §6) and the agents' logs.

- the defaults: conservation to the wei, the 70 / 20 / 10 split of every round's budget,
  accuracy above the initial model's, and global models equal to `fedmarket sim`'s, CID for CID;
- adversaries: a free rider earns nothing, a sign-flipper is excluded and unpaid, a
  wrong aggregate is rejected by the committee and its aggregator slashed;
- bad input: a corrupted blob behind its CID, wrong shapes, a pickle, a reveal that does not
  match its commit: each refused with a clear log line while the task goes on.

The attacks of "pay only for real work" (public information, copies, withheld models, lying
metrics, oversized blobs, huge sample counts) run in process: tests/e2e/test_demo_attacks.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
BPS = 10_000


def _env(home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}


def run_demo(home: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the demo with --json; return its report and every agent's log records."""
    report, logs = home / "report.json", home / "logs"
    result = subprocess.run(
        [FEDMARKET, "demo", "--report", str(report), "--logs", str(logs), "--json", *args], capture_output=True, text=True, env=_env(home), timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout)  # --json: stdout holds the report alone
    assert printed == json.loads(report.read_text())
    records = [json.loads(line) for path in sorted(logs.glob("*.jsonl")) for line in path.read_text().splitlines()]
    return printed, records


def by_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["label"]: {"address": a, **p} for a, p in report["participants"].items()}


def slashes_of(report: dict[str, Any], address: str) -> list[tuple[int, str]]:
    return [(r["round"], s["reason"]) for r in report["rounds"] for s in r["slashes"] if s["participant"] == address]


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    home = tmp_path_factory.mktemp("demo-honest")
    report, logs = run_demo(home)
    return report, logs, home


def test_defaults_conserve_every_wei(honest) -> None:
    report, _logs, home = honest
    totals = report["totals"]
    assert report["status"] == "settled" or report["status"].lower() == "settled"
    assert totals["deposited_wei"] == totals["withdrawn_wei"] + totals["contract_balance_wei"]
    assert totals["contract_balance_wei"] == totals["burned_wei"]  # burned: slashed wei no trainer could take
    paid_in = report["buyer"]["deposited_wei"] + sum(p["deposited_wei"] for p in report["participants"].values())
    taken_out = report["buyer"]["withdrawn_wei"] + sum(p["withdrawn_wei"] for p in report["participants"].values())
    assert paid_in == taken_out == totals["deposited_wei"]
    assert (home / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_defaults_split_each_budget_70_20_10(honest) -> None:
    report, _logs, _home = honest
    assert len(report["rounds"]) == 5
    distributed = trainers = 0
    for r in report["rounds"]:
        budget, earned = r["budget_wei"], r["earned_wei"]
        assert len(r["accepted"]) == 5 and r["accepted_proposal"] and not r["slashes"]
        # Every share is paid in full but for the rounding dust (< 1 wei a payee): the trainers'
        # pro rata to utility, the validators' in equal shares.
        assert budget * 7_000 // BPS - 5 <= earned["trainer"] <= budget * 7_000 // BPS
        assert budget * 2_000 // BPS - 3 <= earned["validator"] <= budget * 2_000 // BPS
        assert earned["aggregator"] == budget - budget * 7_000 // BPS - budget * 2_000 // BPS
        assert earned["trainer"] + earned["validator"] + earned["aggregator"] + r["returned_to_buyer_wei"] == budget
        distributed += earned["trainer"] + earned["validator"] + earned["aggregator"]
        trainers += earned["trainer"]
    assert abs(trainers - distributed * 7 / 10) <= 5 * len(report["rounds"])
    people = by_label(report)
    assert sum(people[f"trainer-{i}"]["earned_wei"] for i in range(1, 6)) == trainers


def test_defaults_learn(honest) -> None:
    report, _logs, _home = honest
    initial = report["initial"]["accuracy"]
    accuracies = [r["accuracy"] for r in report["rounds"]]
    assert all(a > initial for a in accuracies), (initial, accuracies)
    assert report["final"]["accuracy"] == accuracies[-1] > initial + 0.5
    assert report["final"]["model_cid"] == report["rounds"][-1]["global_cid"]


def test_the_market_changes_no_number(honest) -> None:
    """Same seed and settings, no update rejected: every round's global model is the sim's, byte for byte."""
    report, _logs, home = honest
    result = subprocess.run(
        [FEDMARKET, "sim", "--dataset", "digits", "--partition", "dir:0.5", "--clients", "5", "--rounds", "5", "--lr", "0.05",
         "--model", "mlp", "--seed", "0", "--holdout", "400", "--threads", "1", "--json"],
        capture_output=True, text=True, env=_env(home), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    sim = json.loads(result.stdout)["rounds"]
    assert sim[0]["global_cid"] == report["initial"]["model_cid"]
    assert [r["global_cid"] for r in sim[1:]] == [r["global_cid"] for r in report["rounds"]]
    assert [round(r["metrics"]["accuracy"], 6) for r in sim[1:]] == [r["accuracy"] for r in report["rounds"]]


def test_agents_log_every_transaction_without_secrets(honest) -> None:
    report, logs, home = honest
    sent = [r for r in logs if r["tx"]]
    assert {r["action"] for r in sent} >= {
        "buy-licence",
        "join",
        "commit",
        "reveal",
        "commit-scores",
        "reveal-scores",
        "publish",
        "commit-vote",
        "reveal-vote",
        "withdraw",
    }
    assert all(r["gas"] > 0 and r["tx"].startswith("0x") and "round" in r and "phase" in r for r in sent)
    text = "\n".join(p.read_text() for p in (home / "logs").glob("*.jsonl"))
    assert "private" not in text.lower() and "password" not in text.lower()
    # eth-tester's dev keys are 0x...01, 0x...02, ...: none appears in any log.
    assert not any(f"{i:064x}" in text for i in range(1, 12))


def test_adversaries_are_not_paid_and_a_wrong_aggregate_is_slashed(tmp_path: Path) -> None:
    """A free rider and a sign-flipper earn nothing; neither is poison-slashed at the default
    threshold (-0.5: honest non-IID updates score down to -0.42 at issue scale, and a sign flip
    is not told apart from them by a stake slash, only by its pay; bench/results/fairness.md,
    "The poison threshold"); the committee rejects a wrong aggregate and its aggregator is slashed."""
    report, logs = run_demo(
        tmp_path, "--rounds", "3", "--attack", "trainer-4=free-ride", "--attack", "trainer-5=sign-flip", "--attack", "aggregator=wrong-aggregate@2"
    )
    people = by_label(report)
    free_rider, flipper, aggregator = people["trainer-4"], people["trainer-5"], people["aggregator"]
    for r in report["rounds"]:
        assert r["utilities"][free_rider["address"]] == 0  # an unchanged model is worth exactly nothing
        assert -500_000 <= r["utilities"][flipper["address"]] < 0  # worth less than nothing, above the poison threshold
        assert free_rider["address"] not in r["accepted"] and flipper["address"] not in r["accepted"]
    assert free_rider["earned_wei"] == 0 and free_rider["slashed_wei"] == 0
    assert flipper["earned_wei"] == 0 and flipper["slashed_wei"] == 0 and flipper["withdrawn_wei"] == 10**17  # its stake back, nothing more
    # Round 2: the committee recomputed the aggregate, voted the proposal down, the old model stayed.
    r1, r2, r3 = report["rounds"]
    assert r1["accepted_proposal"] and not r2["accepted_proposal"] and r3["accepted_proposal"]
    assert r2["global_cid"] == r1["global_cid"] and r2["earned_wei"]["aggregator"] == 0
    assert slashes_of(report, aggregator["address"]) == [(2, "rejected")]
    votes = [r for r in logs if r["action"] == "commit-vote" and r["round"] == 2]
    assert len(votes) == 3 and all("is not the aggregate" in r["detail"] for r in votes)
    honest_trainers = [people[f"trainer-{i}"] for i in (1, 2, 3)]
    assert all(p["earned_wei"] > 0 and p["slashed_wei"] == 0 for p in honest_trainers)
    assert report["totals"]["conserved"] and report["totals"]["contract_balance_wei"] == report["totals"]["burned_wei"]


def _rejections(logs: list[dict[str, Any]], address: str) -> list[str]:
    return [r["detail"] for r in logs if r["action"] == "reject-update" and r.get("trainer") == address]


def test_bad_input_is_refused_with_one_line_and_the_task_goes_on(tmp_path: Path) -> None:
    """Four of five trainers send something broken; the honest one loses nothing (a malformed
    update once made the loss guard judge it at weight 0.56 and slash it: see protocol.md)."""
    report, logs = run_demo(
        tmp_path,
        "--rounds",
        "2",
        "--attack",
        "trainer-2=corrupt-blob",
        "--attack",
        "trainer-3=wrong-shape",
        "--attack",
        "trainer-4=pickle",
        "--attack",
        "trainer-5=bad-reveal@1",
    )
    people = by_label(report)
    corrupt, misshapen, pickled = (people[f"trainer-{i}"]["address"] for i in (2, 3, 4))
    assert _rejections(logs, corrupt) and all("does not match" in d for d in _rejections(logs, corrupt))
    assert _rejections(logs, misshapen) and all("shape" in d for d in _rejections(logs, misshapen))
    # A pickle of the model is larger than its safetensors file: refused by the size bound before any parsing.
    assert _rejections(logs, pickled) and all("safetensors" in d or "larger than" in d for d in _rejections(logs, pickled))
    assert len(_rejections(logs, corrupt)) == 2 * 3  # every committee member, every round
    for r in report["rounds"]:
        assert r["utilities"][corrupt] == r["utilities"][misshapen] == r["utilities"][pickled] == -1_000_000
        assert r["accepted_proposal"]
    for address in (corrupt, misshapen, pickled):
        assert slashes_of(report, address) == [(1, "poison"), (2, "poison")]
    # The mismatched reveal: refused by the contract, logged, nothing changed; then the trainer
    # revealed what it committed, was scored and paid.
    revealer = people["trainer-5"]["address"]
    refused = [r for r in logs if r["action"] == "refused" and r["address"] == revealer]
    assert len(refused) == 1 and refused[0]["round"] == 1 and "does not match its commitment" in refused[0]["detail"]
    assert revealer in report["rounds"][0]["revealed"] and revealer in report["rounds"][0]["accepted"]
    for label in ("trainer-1", "trainer-5"):
        assert people[label]["slashed_wei"] == 0 and people[label]["earned_wei"] > 0
    assert report["status"].lower() == "settled" and report["totals"]["conserved"]


@pytest.mark.anvil
def test_on_anvil_the_market_makes_the_same_models(honest, tmp_path: Path) -> None:
    """`demo --rpc`: the same market on a real JSON-RPC node gives the same global models."""
    from fedmarket.chain.anvil import AnvilProcess

    with AnvilProcess() as node:
        report, _logs = run_demo(tmp_path, "--rounds", "2", "--rpc", node.url)
    assert report["chain"]["kind"] == "anvil" and report["totals"]["conserved"]
    assert report["totals"]["contract_balance_wei"] == report["totals"]["burned_wei"]
    embedded = honest[0]
    assert [r["global_cid"] for r in report["rounds"]] == [r["global_cid"] for r in embedded["rounds"][:2]]


# ---------------------------------------------------------------------- an elected committee

ELECTED_TRAINERS = 7  # committee 3: four train each round, so the election has a choice


@pytest.fixture(scope="module")
def elected(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict[str, Any]], Path, list[tuple[int, ...]]]:
    """A 3-round market whose committee the trainers elect (CMFL / BlockFL), and its committees as trainer seats."""
    home = tmp_path_factory.mktemp("demo-elected")
    report, logs = run_demo(home, "--committee", "elected", "--rounds", "3", "--trainers", str(ELECTED_TRAINERS))
    seat = {p["address"].lower(): int(label.split("-")[1]) - 1 for label, p in by_label(report).items() if label.startswith("trainer")}
    committees = [tuple(sorted(seat[a.lower()] for a in r["committee"])) for r in report["rounds"]]
    return report, logs, home, committees


def _seats(report: dict[str, Any]) -> dict[str, int]:
    return {p["address"].lower(): int(label.split("-")[1]) - 1 for label, p in by_label(report).items() if label.startswith("trainer")}


def test_elected_committees_follow_the_election_rule_from_the_chain(elected) -> None:
    """Each round's committee (from the chain's events) is fl.committee.elect of the previous round's
    utilities: members never train the round they serve, and the sitting committee is never re-elected."""
    from fedmarket.fl.committee import elect

    report, _logs, _home, committees = elected
    seat = _seats(report)
    assert [len(c) for c in committees] == [3, 3, 3]
    assert not any(p["role"] == "validator" for p in report["participants"].values())
    for r, committee in zip(report["rounds"], committees):
        utilities = {seat[a.lower()]: u for a, u in r["utilities"].items()}
        assert set(utilities) == set(range(ELECTED_TRAINERS)) - set(committee), (r["round"], committee, utilities)
        assert r["slashes"] == [] and r["accepted_proposal"]
    for r, sitting, following in zip(report["rounds"], committees, committees[1:]):
        utilities = {seat[a.lower()]: u for a, u in r["utilities"].items()}
        assert following == elect(utilities, sitting, 3, ELECTED_TRAINERS)
        assert not set(following) & set(sitting)


def test_elected_members_earn_the_validator_pool_on_their_trainer_seats(elected) -> None:
    """The validator pool (20 %) goes to the sitting members' trainer seats, in equal shares (the
    dust to the buyer), and every wei deposited is credited."""
    report, _logs, _home, committees = elected
    for r, committee in zip(report["rounds"], committees, strict=True):
        members = {f"trainer-{s + 1}" for s in committee}
        pool = r["budget_wei"] * 2_000 // BPS
        assert set(r["validator_pay_wei"]) == members
        assert sum(r["validator_pay_wei"].values()) == r["earned_wei"]["validator"] == pool - pool % len(members)
    totals = report["totals"]
    assert totals["conserved"] and totals["deposited_wei"] == totals["credited_wei"] and totals["task_balance_wei"] == 0


def test_the_elected_market_equals_the_elected_sim(elected) -> None:
    """`fedmarket sim --committee elected`, given the chain's first committee, makes the same
    committees, utilities and global models, CID for CID."""
    report, _logs, home, committees = elected
    seat = _seats(report)
    result = subprocess.run(
        [FEDMARKET, "sim", "--committee", "elected", "--first-committee", ",".join(map(str, committees[0])), "--clients", str(ELECTED_TRAINERS),
         "--rounds", "3", "--dataset", "digits", "--partition", "dir:0.5", "--model", "mlp", "--lr", "0.05", "--seed", "0",
         "--holdout", "400", "--threads", "1", "--json"],
        capture_output=True, text=True, env=_env(home), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    sim = json.loads(result.stdout)
    assert [r["global_cid"] for r in sim["rounds"][1:]] == [r["global_cid"] for r in report["rounds"]]
    assert [tuple(c["committee"]) for c in sim["committee_rounds"]] == committees
    chain_utilities = [{str(seat[a.lower()]): u for a, u in r["utilities"].items()} for r in report["rounds"]]
    assert [c["utilities"] for c in sim["committee_rounds"]] == chain_utilities


def test_elected_members_score_instead_of_training(elected) -> None:
    report, logs, _home, committees = elected
    for r, committee in zip(report["rounds"], committees, strict=True):
        members = {f"trainer-{s + 1}" for s in committee}
        did = {(rec["agent"], rec["action"]) for rec in logs if rec["round"] == r["round"] and rec["tx"]}
        assert {a for a, action in did if action == "commit"} == {f"trainer-{i}" for i in range(1, ELECTED_TRAINERS + 1)} - members
        assert {a for a, action in did if action == "commit-scores"} == members
        assert {a for a, action in did if action == "reveal-vote"} == members
