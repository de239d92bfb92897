"""`fedmarket demo --report` end to end on the embedded chain: the design §6 report, conservation
to the wei, the 70 % trainer pool of every round, and the slashes the script provokes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
E = 10**18


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, float]:
    home = tmp_path_factory.mktemp("demo-home")
    report = home / "out" / "report.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}
    started = time.perf_counter()
    result = subprocess.run([FEDMARKET, "demo", "--report", str(report), "--json"], capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # --json: stdout holds the report alone (progress went to stderr)
    return json.loads(report.read_text()), printed, wall


def test_report_shape(demo: tuple[dict, dict, float]) -> None:
    report, printed, wall = demo
    assert printed == report
    assert set(report) >= {"model_id", "chain", "rounds", "participants", "buyer", "totals", "final", "note"}
    assert report["chain"]["kind"] == "embedded" and report["chain"]["chain_id"] == 131277322940537
    assert len(report["rounds"]) == 3
    for r in report["rounds"]:
        assert set(r) >= {"round", "global_cid", "accuracy", "loss", "accepted", "gas_used", "wall_s", "train_s", "chain_s", "storage_s"}
        assert r["accuracy"] is None and r["loss"] is None and r["global_cid"].startswith("Qm") and r["gas_used"] > 0
    assert report["final"]["accuracy"] is None and report["final"]["auc"] is None
    assert report["final"]["model_cid"] == report["rounds"][-1]["global_cid"]
    assert "nothing is trained" in report["note"]
    roles = sorted(p["role"] for p in report["participants"].values())
    assert roles == ["aggregator"] + ["trainer"] * 4 + ["validator"] * 4
    assert wall < 60, f"the demo took {wall:.1f} s"


def test_conservation(demo: tuple[dict, dict, float]) -> None:
    report, _, _ = demo
    totals, buyer = report["totals"], report["buyer"]
    assert totals["contract_balance_wei"] == 0
    assert totals["deposited_wei"] == totals["withdrawn_wei"]
    deposited = buyer["deposited_wei"] + sum(p["deposited_wei"] for p in report["participants"].values())
    withdrawn = buyer["withdrawn_wei"] + sum(p["withdrawn_wei"] for p in report["participants"].values())
    assert deposited == withdrawn == totals["deposited_wei"]
    # each participant takes out what it put in, plus what it earned, minus what it lost
    trainer_fee = None
    for p in report["participants"].values():
        fee = 0
        if p["role"] == "trainer":
            fee = E // 100
            trainer_fee = fee
        assert p["withdrawn_wei"] == p["deposited_wei"] - fee + p["earned_wei"] - p["slashed_wei"]
    assert buyer["license_income_wei"] == 4 * trainer_fee
    assert buyer["withdrawn_wei"] == buyer["refunded_wei"] + buyer["license_income_wei"]
    assert buyer["deposited_wei"] == 4 * E  # 3 ETH posted + 1 ETH top-up


def test_the_trainer_pool_is_70_percent_of_every_budget(demo: tuple[dict, dict, float]) -> None:
    report, _, _ = demo
    budgets = [r["budget_wei"] for r in report["rounds"]]
    assert sum(budgets) == report["buyer"]["deposited_wei"]  # W split over the rounds, remainder last
    assert budgets == [4 * E // 3, 4 * E // 3, 4 * E - 2 * (4 * E // 3)]
    for r in report["rounds"]:
        pools, earned = r["pools_wei"], r["earned_wei"]
        assert pools["trainer"] == r["budget_wei"] * 7000 // 10000
        assert pools["validator"] == r["budget_wei"] * 2000 // 10000
        assert pools["trainer"] + pools["validator"] + pools["aggregator"] == r["budget_wei"]
        # trainers get their pool plus the round's slashes, less at most a wei of dust per payee
        assert 0 <= pools["trainer"] + r["slashed_wei"] - earned["trainer"] < 10
        # nothing is created: every wei of the budget and the slashes went to someone
        assert earned["trainer"] + earned["validator"] + earned["aggregator"] + r["returned_to_buyer_wei"] == r["budget_wei"] + r["slashed_wei"]
    trainers_total = sum(r["earned_wei"]["trainer"] for r in report["rounds"])
    slashed_total = sum(r["slashed_wei"] for r in report["rounds"])
    assert abs(trainers_total - slashed_total - 7 * sum(budgets) // 10) < 30


def test_slashes_and_who_was_paid(demo: tuple[dict, dict, float]) -> None:
    report, _, _ = demo
    by_label = {p["label"]: p for p in report["participants"].values()}
    stake = E // 10
    assert by_label["trainer C (late)"]["slashed_wei"] == stake // 10  # late once, in round 2
    assert by_label["trainer D (poisoner)"]["slashed_wei"] == stake  # 50 % twice: all of it
    assert by_label["trainer A"]["slashed_wei"] == by_label["trainer B"]["slashed_wei"] == 0
    silent = [p for label, p in by_label.items() if label.startswith("validator") and p["slashed_wei"]]
    assert len(silent) == 1 and silent[0]["slashed_wei"] == (E // 20) // 10
    # A's utility is twice B's every round: A earns about twice what B does
    ratio = by_label["trainer A"]["earned_wei"] / by_label["trainer B"]["earned_wei"]
    assert 1.9 < ratio < 2.1
    reasons = [(r["round"], s["reason"]) for r in report["rounds"] for s in r["slashes"]]
    assert sorted(reasons) == [(1, "poison"), (2, "late"), (2, "late"), (2, "poison")]
    # the poisoner's updates were not accepted in rounds 1 and 2
    poisoner = next(a for a, p in report["participants"].items() if p["label"] == "trainer D (poisoner)")
    assert [poisoner in r["accepted"] for r in report["rounds"]] == [False, False, True]
