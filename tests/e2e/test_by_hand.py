"""The by-hand market of the README, exactly as a new user types it, every step a `fedmarket`
subprocess: a dev chain with `chain start` on a port of its own (every later command finds it
through the data dir's record, no --rpc), keystores with `wallet new`, funds with `wallet send`,
`deploy`, `task spec` for the spec and initial model, `task post`, one `agent ... --join` process
per participant, `task start`, the rounds, `task finalize`, `withdraw`, `report` and
`model download`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fedmarket.chain.anvil import free_port

pytestmark = [pytest.mark.slow, pytest.mark.anvil]

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
AGENTS = {"aggregator": "aggregator", "trainer-1": "trainer", "trainer-2": "trainer", "validator-1": "validator"}


def _run(env: dict[str, str], *args: Any) -> Any:
    done = subprocess.run([FEDMARKET, *map(str, args), "--json"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, f"fedmarket {' '.join(map(str, args))}: {done.stderr}"
    return json.loads(done.stdout)


def _wait(condition, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"not reached within {timeout:.0f} s: {what}")


def test_the_readme_by_hand_market_runs_as_typed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}
    env.update(FEDMARKET_HOME=str(tmp_path / "home"), FEDMARKET_PASSWORD="by-hand password", FEDMARKET_ADDRESS_BOOK=str(tmp_path / "book"), COLUMNS="200")
    run = lambda *args: _run(env, *args)  # noqa: E731
    port = free_port()
    run("chain", "start", "--port", port, "--accounts", 2)
    agents: list[subprocess.Popen[str]] = []
    try:
        for name in ("buyer", *AGENTS):
            run("wallet", "new", name, "--light-kdf")
            run("wallet", "send", name, "2", "--account", "dev:0")
        run("deploy")
        files = run("task", "spec", "--out", tmp_path / "task", "--trainers", 2, "--validators", 1, "--holdout", 100)
        posted = run(
            "task", "post", "--account", "buyer", "--aggregator", "aggregator", "--reward", "1", "--spec", files["spec"],
            "--initial-model", files["initial_model"], "--rounds", 2, "--min-trainers", 2, "--max-trainers", 2, "--committee", 1,
            "--max-validators", 1, "--window", 120, "--license-fee", "0.01",
        )  # fmt: skip
        task = posted["model_id"]
        assert posted["spec_cid"] == files["spec_cid"] and posted["initial_model_cid"] == files["initial_model_cid"]
        for name, role in AGENTS.items():
            log = (tmp_path / f"{name}.log").open("w")
            agents.append(subprocess.Popen(
                [FEDMARKET, "agent", role, "--model-id", str(task), "--account", name, "--name", name, "--join", "--poll", "0.3",
                 "--log", str(tmp_path / f"{name}.jsonl")],
                stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
            ))  # fmt: skip
        joined = lambda: (s := run("task", "show", task)["state"])["trainers"] == 2 and s["validators"] == 1 and s["aggregator_joined"]  # noqa: E731
        _wait(joined, "every agent staked", 180)
        run("task", "start", task, "--account", "buyer")
        _wait(lambda: run("task", "show", task)["state"]["rounds_closed"] == 2, "both rounds closed", 300)
        settled = run("task", "finalize", task, "--account", "buyer")
        assert settled["model_id"] == task
        for process in agents:
            assert process.wait(timeout=120) == 0, (tmp_path / f"{process.args[8]}.log").read_text()[-2000:]
        run("withdraw", "--account", "buyer")
        report = run("report", "--model-id", task)
        assert [r["round"] for r in report["rounds"]] == [1, 2]
        assert all(r["accepted"] for r in report["rounds"])
        assert report["totals"]["contract_balance_wei"] == report["totals"]["burned_wei"]
        assert report["totals"]["deposited_wei"] == report["totals"]["withdrawn_wei"] + report["totals"]["burned_wei"]
        assert report["final"]["accuracy"] is not None
        downloaded = run("model", "download", "--model-id", task, "-o", tmp_path / "final.safetensors")
        assert downloaded["cid"] == report["final"]["model_cid"] and (tmp_path / "final.safetensors").is_file()
    finally:
        for process in agents:
            if process.poll() is None:
                process.kill()
                process.wait()
        subprocess.run([FEDMARKET, "chain", "stop"], env=env, capture_output=True, timeout=60)
