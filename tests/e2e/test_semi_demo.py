"""`fedmarket demo --mode semi` end to end in process: deploy SemiMarket, post, join, the clients'
rounds on the virtual clock, settle the epochs, withdraw; the JSON report and its figures."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fedmarket.cli.app import app


def test_demo_mode_semi_reports_accuracy_ratio_records_and_payouts(tmp_path: Path) -> None:
    report = tmp_path / "semi.json"
    args = ["demo", "--mode", "semi", "--trainers", "3", "--rounds", "2", "--stragglers", "0.34", "--trust", "none", "--report", str(report), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["mode"] == "semi" and data["final"]["client_models"]["accuracy"] > 0.3
    assert data["compute_time_ratio"] == 1.0  # nobody waits, stragglers or not
    assert sum(p["straggler"] for p in data["participants"].values()) == 1
    # trust none: every client downloads every other's latest upload and scores it
    assert data["records"]["upload"] == 6 and data["records"]["verified"]
    assert data["records"]["score"] >= data["records"]["download"] > 0
    assert data["totals"]["conserved"] and data["totals"]["contract_balance_wei"] == 0
    assert sum(p["earned_wei"] for p in data["participants"].values()) + data["buyer"]["refunded_wei"] == 10**18


def test_demo_mode_semi_refuses_attacks() -> None:
    result = CliRunner().invoke(app, ["demo", "--mode", "semi", "--attack", "trainer-1=free-ride"])
    assert result.exit_code != 0 and "Marketplace's roles" in result.output
