"""`fedmarket up --mode semi` end to end: anvil, SemiMarket, 4 clients as separate processes (2 of
them slowed down), 2 rounds each of the tiny digits MLP, gossip over loopback.

The trust graph is the path 0 - 1 - 2 plus client 3 alone: 0's models reach 2 only when 1
forwards them, and client 3 gets every model from the chain (and the others get 3's from there).
Checked: the task settles and every wei is accounted for, the records' hash chain verifies,
and from the agents' logs that gossip messages were exchanged, verified and forwarded exactly
within the trusted component, none refused; every process exited 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
EDGES = [[0, 1], [1, 2]]
NEIGHBOURS = {0: {1}, 1: {0, 2}, 2: {1}, 3: set()}
COMPONENT = {0: {0, 1, 2}, 1: {0, 1, 2}, 2: {0, 1, 2}, 3: {3}}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(600)
def test_up_mode_semi_settles_conserves_wei_verifies_records_and_gossips(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"clients": 4, "edges": EDGES}))
    run, report_copy = tmp_path / "run", tmp_path / "semi-up.json"
    command = [FEDMARKET, "up", "--mode", "semi", "--trainers", "4", "--rounds", "2", "--stragglers", "0.5", "--slowdown", "2",
               "--trust", str(trust), "--run-dir", str(run), "--report", str(report_copy), "--json"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data == json.loads(report_copy.read_text())
    assert data["processes"] and data["bit_reproducible"] is False

    # settled, and every wei accounted for
    totals = data["totals"]
    assert totals["conserved"] and totals["contract_balance_wei"] == 0 and totals["withdrawn_wei"] == totals["deposited_wei"]
    participants = data["participants"].values()
    assert sum(p["earned_wei"] for p in participants) + data["buyer"]["refunded_wei"] == 10**18
    assert [e["epoch"] for e in data["epochs"]] == [0]
    assert all(p["rounds"] == 2 for p in participants) and sum(p["straggler"] for p in participants) == 2

    # the seed paper's records, hash chain re-verified from the events
    records = data["records"]
    assert records["verified"] and records["upload"] == 8
    assert records["download"] > 0 and records["score"] >= records["download"]
    assert 0.0 < data["compute_time_ratio"] <= 1.0 and data["final"]["client_models"]["accuracy"] > 0.2

    # gossip, from the agents' logs: client index by address, then every accepted message
    accounts = json.loads((run / "accounts.json").read_text())
    index = {address: p["index"] for address, p in data["participants"].items()}
    logs = {index[accounts[f"client-{k}"]]: jsonl(run / "logs" / f"client-{k}.jsonl") for k in range(1, 5)}
    accepted = {i: [r for r in records_ if r["action"] == "gossip-accepted"] for i, records_ in logs.items()}
    assert all(r["action"] != "gossip-refused" for records_ in logs.values() for r in records_)
    for receiver, messages in accepted.items():
        for m in messages:
            assert index[m["sender"]] in COMPONENT[receiver] - {receiver}
            assert index[m["relay"]] in NEIGHBOURS[receiver]
    for receiver in (0, 1, 2):  # each hears both others' models, 2 rounds each
        assert {(index[m["sender"]], m["round"]) for m in accepted[receiver]} == {(a, r) for a in COMPONENT[receiver] - {receiver} for r in (1, 2)}
    assert any(index[m["relay"]] != index[m["sender"]] for m in accepted[2])  # 0's models, forwarded by 1
    assert accepted[3] == [] and data["gossip"]["accepted"] == 12 and data["gossip"]["refused"] == 0

    exits = [e for e in jsonl(run / "supervisor.jsonl") if e["event"] == "exit" and e["name"].startswith("client-")]
    assert sorted(e["name"] for e in exits) == [f"client-{k}" for k in range(1, 5)] and all(e["code"] == 0 for e in exits)
