"""fedmarket.market.devnet without the chain: the fault and attack specs, and the process
supervisor over dummy children (real processes, real SIGKILL / SIGTERM, real process groups);
plus anvil's mixed mining, which `fedmarket up` relies on."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from devnet_dummies import argv as dummy

from fedmarket.fl.taskspec import TaskSpec
from fedmarket.market.devnet import DEVNET_TERMS, DevnetConfig
from fedmarket.market.plan import (
    DevnetError,
    Fault,
    FaultPlan,
    parse_attack,
    parse_fault,
)
from fedmarket.market.run import default_run_dir
from fedmarket.market.setup import participant_names, window_for_training
from fedmarket.market.supervisor import (
    KILLED,
    AgentLaunch,
    AgentSupervisor,
    EventLog,
    LogTail,
    ProcessSpec,
    ProcessSupervisor,
    last_line,
    read_jsonl,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


# ============================================================================= specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trainer-2@2:before-commit->r3", Fault("trainer-2", 2, "before-commit", "round", 3)),
        ("aggregator@1:before-publish->now", Fault("aggregator", 1, "before-publish", "now")),
        ("validator-3@1:before-score->never", Fault("validator-3", 1, "before-score", "never")),
        ("  trainer-10@4:before-reveal->r4 ", Fault("trainer-10", 4, "before-reveal", "round", 4)),
        ("validator-1@2:before-confirm->now", Fault("validator-1", 2, "before-confirm", "now")),
    ],
)
def test_parse_fault(text: str, expected: Fault) -> None:
    fault = parse_fault(text)
    assert fault == expected
    assert fault.agent_arg == f"{expected.round}:{expected.point}"
    assert str(fault) == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trainer-2@2:before-commit", "give NAME@ROUND:POINT->RESTART"),
        ("trainer-0@2:before-commit->now", "give NAME@ROUND:POINT->RESTART"),
        ("trainer-1@0:before-commit->now", "give NAME@ROUND:POINT->RESTART"),
        ("buyer@1:before-commit->now", "give NAME@ROUND:POINT->RESTART"),
        ("trainer-1@1:before-commit->later", "give NAME@ROUND:POINT->RESTART"),
        ("trainer-1@1:during-commit->now", "unknown point 'during-commit'"),
        ("trainer-1@1:before-score->now", "a trainer never reaches before-score (its points: before-commit, before-reveal)"),
        ("aggregator@1:before-confirm->now", "an aggregator never reaches before-confirm (its points: before-publish)"),
        ("validator-1@1:before-publish->now", "a validator never reaches before-publish"),
        ("trainer-1@3:before-commit->r2", "restart round 2 comes before the fault's round 3"),
    ],
)
def test_parse_fault_refuses(text: str, message: str) -> None:
    with pytest.raises(DevnetError, match="invalid fault") as caught:
        parse_fault(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parse_attack() -> None:
    assert parse_attack("trainer-3=free-ride") == ("trainer-3", "free-ride")
    assert parse_attack("trainer-1=sign-flip@2,3") == ("trainer-1", "sign-flip@2,3")
    assert parse_attack("validator-2=approve-all@1") == ("validator-2", "approve-all@1")
    for bad in ("trainer-3", "trainer-3=", "nobody=free-ride", "trainer-3=free ride", "trainer-3=x@a"):
        with pytest.raises(DevnetError, match="invalid attack"):
            parse_attack(bad)


def test_fault_plan_checks_names_rounds_and_duplicates() -> None:
    plan = FaultPlan.parse(
        ["trainer-2@2:before-commit->r3", "aggregator@1:before-publish->now", "validator-3@1:before-score->never"],
        ["trainer-1=noise@2"],
        trainers=4, validators=3, rounds=4,
    )  # fmt: skip
    assert set(plan.faults) == {"trainer-2", "aggregator", "validator-3"}
    assert plan.attacks == {"trainer-1": "noise@2"}
    cases = [
        (["trainer-5@1:before-commit->now"], [], "names trainer-5, but this devnet has trainer-1..4, validator-1..3 and the aggregator"),
        (["validator-4@1:before-score->now"], [], "names validator-4"),
        (["trainer-1@5:before-commit->now"], [], "is in round 5, but the task has 4 rounds"),
        (["trainer-1@2:before-commit->r5"], [], "restarts in round 5, but the task has 4 rounds"),
        (["trainer-1@1:before-commit->now", "trainer-1@2:before-reveal->now"], [], "two faults for trainer-1"),
        ([], ["trainer-9=noise"], "names trainer-9"),
        ([], ["trainer-1=noise", "trainer-1=scale"], "two attacks for trainer-1"),
    ]
    for faults, attacks, message in cases:
        with pytest.raises(DevnetError) as caught:
            FaultPlan.parse(faults, attacks, trainers=4, validators=3, rounds=4)
        assert message in str(caught.value)


def devnet_config(trainers: int = 4, validators: int = 3, rounds: int = 3, **options: Any) -> DevnetConfig:
    """A DevnetConfig of `trainers` / `validators` and `rounds`, else the devnet's defaults."""
    return DevnetConfig(spec=TaskSpec(trainers=trainers, validators=validators), terms=replace(DEVNET_TERMS, rounds=rounds), **options)


def test_config_checks_before_anything_starts(tmp_path: Path) -> None:
    assert devnet_config(window=20).stall_timeout() == 100.0 and devnet_config().stall_timeout(40) == 140.0
    assert devnet_config(window=7).phase_window == 7
    cores = len(os.sched_getaffinity(0))
    assert devnet_config(window=7).window_for(30.0) == (7, window_for_training(30.0, 4, cores))  # --window is kept
    assert devnet_config().window_for(30.0)[0] == max(devnet_config().phase_window, window_for_training(30.0, 4, cores))
    assert window_for_training(2.5, 4, 2) == 15 + 15 and window_for_training(2.5, 5, 2) == 23 + 15  # 3 x 2.5 s x trainers per core + a restart
    assert devnet_config(trainers=4, validators=3).phase_window == max(20, -(-8 * 4 // cores))
    assert devnet_config(trainers=40, validators=9).phase_window == max(20, -(-50 * 4 // cores))
    for config, message in [
        (devnet_config(trainers=65), "at most 64 trainers"),
        (devnet_config(rounds=1001), "rounds must be 1 .. 1000, not 1001"),
        (devnet_config(window=1), "too short"),
        (devnet_config(device="tpu"), "unknown device"),
        (devnet_config(rounds=2, faults=("trainer-1@3:before-commit->now",)), "the task has 2 rounds"),
    ]:
        with pytest.raises(DevnetError, match=message):
            config.check()
    assert participant_names(2, 1) == ["aggregator", "trainer-1", "trainer-2", "validator-1"]


def test_default_run_dir_is_new_under_runs(tmp_path: Path) -> None:
    first = default_run_dir(tmp_path)
    assert first.parent == tmp_path / "runs" and first.name.endswith("Z")
    first.mkdir(parents=True)
    second = default_run_dir(tmp_path)
    assert second != first and second.parent == first.parent


def test_jsonl_helpers(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1, 2]\n\n{"b": 2}\n{"c": ')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    tail = LogTail(path)
    assert tail.read() == [{"a": 1}, {"b": 2}]  # the torn last line waits
    with path.open("a") as handle:
        handle.write('3}\n{"d": 4}\n')
    assert tail.read() == [{"c": 3}, {"d": 4}]
    assert tail.read() == []
    err = tmp_path / "x.err"
    err.write_text("Traceback...\n\nerror: the node is gone\n\n")
    assert last_line(err) == "error: the node is gone"
    assert last_line(tmp_path / "none.err") == ""


def test_signals_during_clean_up_are_held_back_then_raised() -> None:
    from fedmarket.market.supervisor import signals_deferred, sigterm_as_interrupt

    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises before this ends
    steps = []
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            steps.append("cleaned up")
    assert steps == ["cleaned up"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    with pytest.raises(ValueError):  # an exception already leaving wins
        try:
            raise ValueError("the run failed")
        finally:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)


# ============================================================================= processes


def test_supervisor_sees_a_self_sigkill_and_logs_start_and_exit(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "supervisor.jsonl")
    supervisor = ProcessSupervisor(events)
    fast = supervisor.launch(ProcessSpec("a", dummy("exit", "0", "0.1"), tmp_path / "a.err"))
    killed = supervisor.launch(ProcessSpec("b", [*dummy("sleep"), "--fault", "1:before-commit"], tmp_path / "b.err"))
    failing = supervisor.launch(ProcessSpec("c", dummy("exit", "3", "0.1"), tmp_path / "c.err"))
    seen: dict[str, int] = {}
    wait_for(lambda: seen.update({e.name: e.code for e in supervisor.poll()}) or len(seen) == 3)
    assert seen == {"a": 0, "b": KILLED, "c": 3}
    assert not supervisor.running
    assert not any(alive(pid) for pid in (fast, killed, failing))
    records = events.read()
    starts = {r["name"]: r["pid"] for r in records if r["event"] == "start"}
    exits = {r["name"]: (r["pid"], r["code"]) for r in records if r["event"] == "exit"}
    assert starts == {"a": fast, "b": killed, "c": failing}
    assert exits == {"a": (fast, 0), "b": (killed, -9), "c": (failing, 3)}
    assert (tmp_path / "b.err").read_text() == "reached fault 1:before-commit\n"
    assert last_line(tmp_path / "c.err") == "exiting with code 3"
    assert supervisor.leftovers() == []


def test_stop_all_terms_then_kills_whole_groups(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "supervisor.jsonl")
    supervisor = ProcessSupervisor(events)
    polite = supervisor.launch(ProcessSpec("polite", dummy("sleep"), tmp_path / "polite.err"))
    stubborn = supervisor.launch(ProcessSpec("stubborn", dummy("stubborn"), tmp_path / "stubborn.err"))
    parent = supervisor.launch(ProcessSpec("parent", dummy("parent"), tmp_path / "parent.err"))
    wait_for(lambda: "ignoring" in (tmp_path / "stubborn.err").read_text() and "grandchild" in (tmp_path / "parent.err").read_text())
    grandchild = int((tmp_path / "parent.err").read_text().split()[1])
    assert alive(grandchild)
    started = time.monotonic()
    exits = {e.name: e.code for e in supervisor.stop_all(grace=1.0)}
    took = time.monotonic() - started
    assert exits == {"polite": -signal.SIGTERM, "stubborn": KILLED, "parent": -signal.SIGTERM}
    assert 1.0 <= took < 5.0
    wait_for(lambda: not alive(grandchild), timeout=5)  # SIGKILLed with its group although its parent had ended
    assert not any(alive(pid) for pid in (polite, stubborn, parent))
    assert supervisor.leftovers() == []
    kills = [(r["name"], r["signal"]) for r in events.read() if r["event"] == "kill"]
    assert sorted(kills) == [("parent", "SIGTERM"), ("polite", "SIGTERM"), ("stubborn", "SIGKILL"), ("stubborn", "SIGTERM")]
    assert supervisor.stop_all() == []  # twice is harmless


def test_a_name_runs_once_at_a_time(tmp_path: Path) -> None:
    supervisor = ProcessSupervisor(EventLog(tmp_path / "s.jsonl"))
    supervisor.launch(ProcessSpec("a", dummy("sleep"), tmp_path / "a.err"))
    try:
        with pytest.raises(DevnetError, match="a already runs"):
            supervisor.launch(ProcessSpec("a", dummy("sleep"), tmp_path / "a.err"))
    finally:
        supervisor.stop_all(grace=2)
    assert supervisor.stop("a") is None


# ============================================================================= the fault plan over processes


def _agents(tmp_path: Path, plan: dict[str, tuple[list[str], str | None]], **options: Any) -> tuple[AgentSupervisor, EventLog]:
    """An AgentSupervisor over dummies: name -> (dummy argv, fault spec or None); no crash restarts
    unless `options` say so."""
    events = EventLog(tmp_path / "supervisor.jsonl")
    launches = [
        AgentLaunch(name, ProcessSpec(name, argv, tmp_path / f"{name}.err", {**os.environ, "DUMMY_TRACE": str(tmp_path / "trace")}), parse_fault(fault) if fault else None)
        for name, (argv, fault) in plan.items()
    ]  # fmt: skip
    return AgentSupervisor(ProcessSupervisor(events), launches, **{"crash_restarts": 0, **options}), events


def _check_until(agents: AgentSupervisor, condition, *, current_round: int | None = 1, finished: bool = False, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        agents.check(current_round, finished=finished)
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {agents.status}")
        time.sleep(0.05)


def test_faults_fire_and_restart_now_in_round_or_never(tmp_path: Path) -> None:
    notes: list[str] = []
    agents, events = _agents(
        tmp_path,
        {
            "aggregator": (dummy("exit", "0", "1.0"), "aggregator@1:before-publish->now"),
            "trainer-2": (dummy("exit", "0", "0.5"), "trainer-2@2:before-commit->r3"),
            "validator-3": (dummy("sleep"), "validator-3@1:before-score->never"),
            "trainer-1": (dummy("exit", "0", "0.5"), None),
        },
    )
    agents.on_note = notes.append
    agents.start_all()
    status = agents.status
    try:
        # Everyone's first launch: the faulted ones SIGKILL themselves; the aggregator comes back at once.
        _check_until(
            agents,
            lambda: status["validator-3"].state == "down" and status["trainer-2"].state == "restarting" and status["aggregator"].launches == 2,
            current_round=2,
        )
        assert status["validator-3"].exits == [KILLED] and status["validator-3"].fault_fired
        assert status["trainer-2"].detail == "restart in round 3"
        # trainer-1 ends with 0 while the task is not over: an error, not a success.
        with pytest.raises(DevnetError, match="trainer-1 \\(pid \\d+\\) exited 0 \\(done\\) while the task had not ended"):
            _check_until(agents, lambda: False, current_round=2)
        # Round 3 opens: trainer-2 is restarted, without --fault this time.
        _check_until(agents, lambda: status["trainer-2"].launches == 2, current_round=3)
        _check_until(agents, lambda: status["aggregator"].state == "done" and status["trainer-2"].state == "done", current_round=3, finished=True)
        assert status["aggregator"].exits == [KILLED, 0]
        assert status["trainer-2"].exits == [KILLED, 0]
        assert status["validator-3"].launches == 1  # never
    finally:
        agents.stop_all(grace=1)
    launched = [line.split()[2:] for line in (tmp_path / "trace").read_text().splitlines()]  # "start PID ARGS..."
    assert len(launched) == 6  # 4 first launches (3 with --fault), the aggregator and trainer-2 again (without)
    assert sum("--fault" in args for args in launched) == 3
    records = events.read()
    restarts = [(r["name"], r["why"]) for r in records if r["event"] == "restart"]
    assert restarts == [
        ("aggregator", "fault aggregator@1:before-publish->now: restart now"),
        ("trainer-2", "fault trainer-2@2:before-commit->r3: round 3 opened"),
    ]
    first = {r["name"]: r for r in records if r["event"] == "start"}
    assert first["trainer-2"]["fault"] == "trainer-2@2:before-commit->r3" and first["trainer-2"]["argv"][-2:] == ["--fault", "2:before-commit"]
    assert "--fault" not in next(r for r in records if r["event"] == "restart" and r["name"] == "trainer-2")["argv"]
    kills = [(r["name"], r["code"]) for r in records if r["event"] == "exit" and r["code"] == -9]
    assert sorted(kills) == [("aggregator", -9), ("trainer-2", -9), ("validator-3", -9)]
    assert {r["name"] for r in records if r["event"] == "fault"} == {"aggregator", "trainer-2", "validator-3"}
    assert any("validator-3" in note and "killed itself" in note for note in notes)
    assert agents.processes.leftovers() == []


@pytest.mark.parametrize(
    ("argv", "fault", "message"),
    [
        (dummy("exit", "3", "0.1"), None, "trainer-1 \\(pid \\d+\\) exited with code 3: exiting with code 3"),
        ([*dummy("sleep"), "--fault", "1:before-commit"], None, "was killed \\(SIGKILL\\) without a planned fault: reached fault"),
        (dummy("exit", "0", "0.1"), None, "exited 0 \\(done\\) while the task had not ended"),
    ],
)
def test_unexpected_exits_fail_with_one_line(tmp_path: Path, argv: list[str], fault: str | None, message: str) -> None:
    agents, _ = _agents(tmp_path, {"trainer-1": (argv, fault)})
    agents.start_all()
    try:
        with pytest.raises(DevnetError, match=message) as caught:
            _check_until(agents, lambda: False)
        assert "\n" not in str(caught.value)
        assert agents.status["trainer-1"].state == "failed"
    finally:
        agents.stop_all(grace=1)


def test_a_crashed_agent_is_restarted_with_backoff_up_to_the_limit(tmp_path: Path) -> None:
    notes: list[str] = []
    agents, events = _agents(tmp_path, {"trainer-1": (dummy("exit", "3", "0.05"), None)}, crash_restarts=2, backoff_s=0.1)
    agents.on_note = notes.append
    agents.start_all()
    try:
        with pytest.raises(DevnetError, match=r"trainer-1 \(pid \d+\) exited with code 3: exiting with code 3 \(after 2 restarts\)"):
            _check_until(agents, lambda: False)
        records = events.read()
        crashes = [r for r in records if r["event"] == "crash"]
        assert [(r["crashes"], r["restart_in_s"]) for r in crashes] == [(1, 0.1), (2, 0.2)]
        assert [r["why"] for r in records if r["event"] == "restart"] == ["crash 1", "crash 2"]
        assert agents.status["trainer-1"].launches == 3 and agents.status["trainer-1"].state == "failed"
        assert any("restarting in 0 s (crash 1 of 2 allowed)" in note for note in notes)
    finally:
        agents.stop_all(grace=1)


def test_a_second_sigkill_after_the_fault_is_unexpected(tmp_path: Path) -> None:
    # The restarted process is launched without --fault; a dummy that still dies by SIGKILL is a crash.
    agents, _ = _agents(tmp_path, {"trainer-1": ([*dummy("sleep"), "--fault", "9:x"], "trainer-1@1:before-commit->now")})
    agents.start_all()
    try:
        with pytest.raises(DevnetError, match="without a planned fault"):
            _check_until(agents, lambda: False)
        assert agents.status["trainer-1"].exits == [KILLED, KILLED]
    finally:
        agents.stop_all(grace=1)


def test_stop_all_marks_running_agents_stopped(tmp_path: Path) -> None:
    agents, events = _agents(tmp_path, {"validator-1": (dummy("sleep"), None), "validator-2": (dummy("stubborn"), None)})
    agents.start_all()
    pids = [agents.status[n].pid for n in ("validator-1", "validator-2")]
    wait_for(lambda: (tmp_path / "validator-2.err").exists() and "ignoring" in (tmp_path / "validator-2.err").read_text())
    agents.stop_all(grace=0.5)
    assert {s.state for s in agents.status.values()} == {"stopped"}
    assert not any(alive(pid) for pid in pids)
    assert [json.dumps(r) for r in events.read() if r["event"] == "kill" and r["signal"] == "SIGKILL"]


# ============================================================================= anvil's mixed mining


@pytest.mark.anvil
def test_anvil_mixed_mining_mines_at_once_and_every_second() -> None:
    from fedmarket.chain.anvil import AnvilError, AnvilProcess, _command, dev_accounts

    with pytest.raises(AnvilError, match="mixed mining needs a block time"):
        _command(8545, 1, 1, None, None, True)
    assert _command(8545, 1, 1, None, 1, True)[-3:] == ["--block-time", "1", "--mixed-mining"]
    assert "--mixed-mining" not in _command(8545, 1, 1, None, 1.5)
    with AnvilProcess(accounts=2, block_time=1, mixed_mining=True) as anvil:
        w3 = anvil.web3()
        first = w3.eth.get_block("latest")
        time.sleep(2.6)
        idle = w3.eth.get_block("latest")
        assert idle.number >= first.number + 2 and idle.timestamp >= first.timestamp + 2  # blocks while nobody sends
        sender, to = dev_accounts(w3)[:2]
        started = time.monotonic()
        tx = {"to": to.address, "value": 1, "gas": 21_000, "nonce": w3.eth.get_transaction_count(sender.address), "chainId": w3.eth.chain_id,
              "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}  # fmt: skip
        receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction), poll_latency=0.01)
        assert receipt.status == 1
        assert time.monotonic() - started < 0.5  # mined at once, not at the next interval


# ============================================================================= the devnet's failure paths, on anvil


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the agents' Python: `body` is its shell script."""
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _started_pids(run: Path) -> list[int]:
    return [r["pid"] for r in read_jsonl(run / "supervisor.jsonl") if r["event"] in ("start", "restart")]


@pytest.mark.anvil
def test_an_agent_that_fails_stops_the_run_with_one_line_and_nothing_left(tmp_path: Path) -> None:
    from fedmarket.market.devnet import Devnet

    run = tmp_path / "run"
    python = _fake_python(tmp_path, 'echo "error: no such command: $3" >&2; exit 2')
    config = devnet_config(trainers=1, validators=1, rounds=1, run_dir=run, python=python, plot=False)
    with pytest.raises(DevnetError) as caught:
        Devnet(config).run()
    message = str(caught.value)
    assert "exited with code 2: error: no such command: agent (after 3 restarts)" in message and "\n" not in message
    pids = _started_pids(run)
    assert len(pids) == 1 + 3 * 4  # anvil, and three agents launched once and restarted three times each
    assert not any(alive(pid) for pid in pids)
    records = read_jsonl(run / "supervisor.jsonl")
    assert [r["event"] for r in records][:5] == ["window", "start", "funded", "deployed", "posted"]
    assert records[-1] == {**records[-1], "event": "exit", "name": "anvil"}
    assert (run / "anvil.log").is_file() and "Listening on 127.0.0.1" in (run / "anvil.log").read_text()
    assert sorted(p.name for p in (run / "keystores").iterdir()) == ["aggregator.json", "buyer.json", "trainer-1.json", "validator-1.json"]
    assert not (run / "password").exists()  # the keystores' password is in no file of the run
    accounts = json.loads((run / "accounts.json").read_text())
    assert set(accounts) == {"buyer", "aggregator", "trainer-1", "validator-1"}


@pytest.mark.anvil
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_devnet_stops_everything_it_started(tmp_path: Path, sig: int) -> None:
    import subprocess
    import sys

    run = tmp_path / "run"
    python = _fake_python(tmp_path, "exec sleep 600")  # agents that never join
    driver = (
        "import sys; from dataclasses import replace; from pathlib import Path\n"
        "from fedmarket.fl.taskspec import TaskSpec; from fedmarket.market.devnet import DEVNET_TERMS, Devnet, DevnetConfig\n"
        "spec, terms = TaskSpec(trainers=2, validators=1), replace(DEVNET_TERMS, rounds=1)\n"
        f"Devnet(DevnetConfig(spec=spec, terms=terms, run_dir=Path({str(run)!r}), python={python!r}, plot=False)).run()\n"
    )
    process = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(_started_pids(run)) == 5, timeout=60)  # anvil + 4 agents
        pids = _started_pids(run)
        assert all(alive(pid) for pid in pids)
        process.send_signal(sig)
        output, _ = process.communicate(timeout=90)  # the report and the shutdown, on a busy machine
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "KeyboardInterrupt" in output
    assert not any(alive(pid) for pid in pids)
    kills = {r["name"] for r in read_jsonl(run / "supervisor.jsonl") if r["event"] == "kill"}
    assert kills == {"anvil", "aggregator", "trainer-1", "trainer-2", "validator-1"}


def test_up_refuses_a_bad_plan_before_starting_anything(tmp_path: Path) -> None:
    import subprocess
    import sys

    fedmarket = str(Path(sys.executable).with_name("fedmarket"))
    run = tmp_path / "run"
    done = subprocess.run(
        [fedmarket, "up", "--trainers", "2", "--run-dir", str(run), "--fault", "trainer-3@1:before-commit->now"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "error: fault 'trainer-3@1:before-commit->now' names trainer-3, but this devnet has trainer-1..2, validator-1..3 and the aggregator"
    )
    assert not run.exists()
