"""`fedmarket up --mode semi` end to end: anvil, SemiMarket, 4 clients as separate processes (2 of
them slowed down), 2 rounds each of the tiny digits MLP, gossip over loopback, and one crash:
client-2 SIGKILLs itself right after recording round 1 and is restarted (it resumes from the
chain and records round 2).

The trust graph is the triangle 0 - 1 - 2 plus client 3 alone: 3 gets every model from the chain
(and the others get 3's from there). Checked: the task settles and every wei is accounted for,
the records' hash chain verifies, and from the agents' logs that gossip messages were exchanged
and verified: every accepted one came from the trusted component through a trusted neighbour,
the triangle clients that never went down got each other's models of both rounds, none was
refused (forwarding over several hops is tests/roles/test_gossip.py's); the crash, the restart
and the resume are in the logs, and every process ended with code 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
EDGES = [[0, 1], [1, 2], [0, 2]]
NEIGHBOURS = {0: {1, 2}, 1: {0, 2}, 2: {0, 1}, 3: set()}
COMPONENT = {0: {0, 1, 2}, 1: {0, 1, 2}, 2: {0, 1, 2}, 3: {3}}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(600)
def test_up_mode_semi_settles_conserves_wei_verifies_records_and_gossips(tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps({"clients": 4, "edges": EDGES}))
    run, report_copy = tmp_path / "run", tmp_path / "semi-up.json"
    command = [FEDMARKET, "up", "--mode", "semi", "--trainers", "4", "--rounds", "2", "--stragglers", "0.5", "--slowdown", "2",
               "--trust", str(trust), "--fault", "client-2@1", "--run-dir", str(run), "--report", str(report_copy), "--json"]  # fmt: skip
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
    crashed = index[accounts["client-2"]]
    steady = [i for i in (0, 1, 2) if i != crashed]  # up from before the start to the settlement
    # Direct neighbours in the triangle hear each other's every round a receiver can still use: the
    # last round's announcement may race the settlement (the receiver exits once the task settles,
    # and nobody aggregates after the last round), so only the rounds before it are required.
    for receiver in steady:
        heard = {(index[m["sender"]], m["round"]) for m in accepted[receiver]}
        assert {(sender, 1) for sender in steady if sender != receiver} <= heard
    assert accepted[3] == [] and data["gossip"]["accepted"] >= 4 and data["gossip"]["refused"] == 0

    # the crash, the restart and the resume
    assert data["restarts"] == {"client-2": 1}
    actions = [r["action"] for r in logs[crashed]]
    assert actions.count("fault") == 1 and actions.count("resume") == 1 and actions.count("round") == 2
    assert actions.index("fault") < actions.index("resume") < actions.index("final")
    events = jsonl(run / "supervisor.jsonl")
    assert [e["event"] for e in events if e.get("name") == "client-2"] == ["start", "exit", "restart", "exit"]
    assert [e["code"] for e in events if e.get("name") == "client-2" and e["event"] == "exit"] == [-9, 0]
    last_exits = {e["name"]: e["code"] for e in events if e["event"] == "exit" and e["name"].startswith("client-")}
    assert last_exits == {f"client-{k}": 0 for k in range(1, 5)}
