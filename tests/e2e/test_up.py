"""`fedmarket up` end to end on a busy machine (both cores kept busy by two other processes):
anvil, 4 trainers, 3 validators and the aggregator as separate processes, two rounds of real
training, and four crashes injected by the supervisor, all in round 1:

- trainer-2 SIGKILLs itself before committing in round 1 and is restarted when round 2 opens:
  late-slashed exactly once (round 1), back in round 2 (the README's `up` run);
- the aggregator SIGKILLs itself before publishing in round 1 and is restarted at once: it still
  publishes round 1's global model (and round 2's), and is never slashed;
- validator-3 SIGKILLs itself before scoring in round 1 and never comes back: with a committee
  of 3 out of 3 it sits on every committee, so it is late-slashed once in every round; the
  supervisor withdraws what it is still owed at the end;
- validator-1 SIGKILLs itself between its score commit and its score reveal in round 1 and is
  restarted at once: it reveals the scores it committed (stored with their salt before the
  commit), so it is neither late nor slashed.

Then: the task is Settled, nothing is created or lost (deposited == withdrawn + burned), nobody
but the two dead is slashed, supervisor.jsonl shows the four -9 exits and the three restarts, and
no process the run started is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
ROUNDS = 2
FAULTS = (
    "trainer-2@1:before-commit->r2",
    "aggregator@1:before-publish->now",
    "validator-3@1:before-score->never",
    "validator-1@1:before-score-reveal->now",
)
RUN_PASSWORD = "a password only this test knows"
AGENTS = ["aggregator", "trainer-1", "trainer-2", "trainer-3", "trainer-4", "validator-1", "validator-2", "validator-3"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(900)
def test_up_with_crashes_settles_slashes_exactly_the_dead_and_leaves_nothing(tmp_path: Path, busy_cores: None) -> None:
    """On a busy machine (both cores kept busy by other processes): settles, slashes only the dead."""
    run = tmp_path / "run"
    copy, png = tmp_path / "copies" / "report.json", tmp_path / "copies" / "report.png"
    command = [FEDMARKET, "up", "--trainers", "4", "--validators", "3", "--rounds", str(ROUNDS), "--run-dir", str(run),
               "--report", str(copy), "--png", str(png), "--json"]  # fmt: skip
    for fault in FAULTS:
        command += ["--fault", fault]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}
    env["FEDMARKET_HOME"] = str(tmp_path / "home")
    env["FEDMARKET_PASSWORD"] = RUN_PASSWORD  # so that the test can open the run's keystores afterwards
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=870)
    wall = time.monotonic() - started
    assert done.returncode == 0, f"fedmarket up failed ({wall:.0f} s): {done.stderr[-3000:]}"
    result = json.loads(done.stdout)
    print(f"fedmarket up: {wall:.1f} s; rounds {result['round_wall_s']}")
    check_run(run, result, done.stdout + done.stderr, copy, png)


def check_run(run: Path, result: dict, output: str, copy: Path, png: Path) -> None:
    """Everything the run folder, the report and the supervisor's record must show."""

    # ---------------------------------------------------------------- the run folder
    assert Path(result["run_dir"]) == run
    for name in ("anvil.log", "report.json", "report.png", "supervisor.jsonl"):
        assert (run / name).is_file(), name
    assert not any("password" in p.name for p in run.rglob("*")), "the run folder keeps no password"
    assert sorted(p.stem for p in (run / "keystores").glob("*.json")) == sorted(["buyer", *AGENTS])
    assert (run / "store").is_dir()
    for name in AGENTS:
        assert (run / "logs" / f"{name}.jsonl").is_file() and (run / "logs" / f"{name}.log").is_file(), name
    assert copy.read_text() == (run / "report.json").read_text()
    assert png.read_bytes() == (run / "report.png").read_bytes() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # ---------------------------------------------------------------- the task and its money
    report = json.loads((run / "report.json").read_text())
    assert report == result["report"]
    assert report["status"] == "settled"
    assert [r["round"] for r in report["rounds"]] == list(range(1, ROUNDS + 1))
    totals = report["totals"]
    assert totals["deposited_wei"] == totals["withdrawn_wei"] + totals["contract_balance_wei"]
    assert totals["contract_balance_wei"] == totals["burned_wei"] and totals["task_balance_wei"] == 0 and totals["conserved"]
    address = {p["label"]: a for a, p in report["participants"].items()}
    assert sorted(address) == sorted(AGENTS)
    for label, a in address.items():
        participant = report["participants"][a]
        assert participant["earned_wei"] + participant["stake_returned_wei"] == participant["withdrawn_wei"], label

    # ---------------------------------------------------------------- who was slashed, when
    slashes = [(r["round"], s["label"], s["reason"]) for r in report["rounds"] for s in r["slashes"]]
    trainer_slashes = [s for s in slashes if s[1] == "trainer-2"]
    assert trainer_slashes == [(1, "trainer-2", "late")]
    dead = address["validator-3"]
    on_committee = [r["round"] for r in report["rounds"] if dead in r["committee"]]
    assert on_committee == list(range(1, ROUNDS + 1))  # committee 3 of 3
    assert [s for s in slashes if s[1] == "validator-3"] == [(r, "validator-3", "late") for r in on_committee]
    assert [s for s in slashes if s[1] not in ("trainer-2", "validator-3")] == []  # the honest and the restarted never miss a deadline
    assert report["participants"][address["aggregator"]]["slashed_wei"] == 0
    revealed = {r["round"]: r["revealed"] for r in report["rounds"]}
    assert address["trainer-2"] not in revealed[1] and address["trainer-2"] in revealed[2]

    # ---------------------------------------------------------------- the restarted aggregator published round 1 and the rest
    assert all(r["accepted_proposal"] for r in report["rounds"])
    aggregator = [(r["round"], r["action"]) for r in jsonl(run / "logs" / "aggregator.jsonl")]
    assert (1, "fault") in aggregator
    assert aggregator.index((1, "publish")) > aggregator.index((1, "fault"))
    assert [r for r, action in aggregator if action == "publish"] == list(range(1, ROUNDS + 1))
    validator3 = [(r["round"], r["action"]) for r in jsonl(run / "logs" / "validator-3.jsonl")]
    assert (1, "fault") in validator3 and not any(action in ("commit-scores", "reveal-scores", "commit-vote", "reveal-vote") for _r, action in validator3)
    # ---------------------------------------------------------------- the validator restarted between commit and reveal
    validator1 = jsonl(run / "logs" / "validator-1.jsonl")
    steps = [(r["round"], r["action"]) for r in validator1]
    assert steps.index((1, "commit-scores")) < steps.index((1, "fault")) < steps.index((1, "reveal-scores"))
    assert [r for r, action in steps if action == "commit-scores"] == list(range(1, ROUNDS + 1))  # committed once per round
    committed = next(r["detail"] for r in validator1 if (r["round"], r["action"]) == (1, "commit-scores"))
    revealed = next(r["detail"] for r in validator1 if (r["round"], r["action"]) == (1, "reveal-scores"))
    assert revealed.split(" ") == [pair.split("=")[1] for pair in committed.split(" ")]  # the scores it committed
    assert report["participants"][address["validator-1"]]["slashed_wei"] == 0

    # ---------------------------------------------------------------- the supervisor's record
    events = jsonl(run / "supervisor.jsonl")
    exits = [(e["name"], e["code"]) for e in events if e["event"] == "exit" and e["name"] != "anvil"]
    assert sorted(n for n, code in exits if code == -9) == ["aggregator", "trainer-2", "validator-1", "validator-3"]
    assert sorted(n for n, code in exits if code == 0) == sorted(n for n in AGENTS if n != "validator-3")
    assert len(exits) == len(AGENTS) + 3  # three restarted
    restarts = {e["name"]: e for e in events if e["event"] == "restart"}
    assert sorted(restarts) == ["aggregator", "trainer-2", "validator-1"]
    assert all("--fault" not in e["argv"] for e in restarts.values())
    firsts = {e["name"]: e for e in events if e["event"] == "start" and e["name"] != "anvil"}
    assert {n for n, e in firsts.items() if "--fault" in e["argv"]} == {"aggregator", "trainer-2", "validator-1", "validator-3"}
    opened2 = next(e["t"] for e in events if e["event"] == "round-opened" and e["round"] == 2)
    killed2 = next(e["t"] for e in events if e["event"] == "fault" and e["name"] == "trainer-2")
    assert restarts["trainer-2"]["t"] >= opened2 > killed2
    assert any(e["event"] == "withdrawal" and e["name"] == "validator-3" and e["by"] == "supervisor" for e in events)

    # ---------------------------------------------------------------- nothing left behind, no key leaked
    pids = [e["pid"] for e in events if e["event"] in ("start", "restart")]
    assert len(pids) == len(AGENTS) + 3 + 1  # agents, three restarts, anvil
    assert [pid for pid in pids if alive(pid)] == []
    from eth_account import Account

    password = RUN_PASSWORD
    keys = [bytes(Account.decrypt(json.loads(p.read_text()), password)).hex() for p in sorted((run / "keystores").glob("*.json"))]
    texts = [output, (run / "supervisor.jsonl").read_text()]
    texts += [p.read_text(errors="replace") for p in (run / "logs").iterdir()]
    assert not any(key in text for key in keys for text in texts)
    assert password not in output + (run / "supervisor.jsonl").read_text()


@pytest.fixture
def busy_cores():
    """Two processes that keep both cores of the CI machine busy for as long as the test runs (and
    at most 10 minutes): the load under which the agents' windows and races must still hold."""
    burners = [subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 600\nwhile time.time() < end: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
