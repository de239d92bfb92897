"""The command line as a whole: every command group of design §6 is there and answers --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))

GROUPS = ["demo", "up", "agent", "report", "model", "sim", "chain", "deploy", "wallet", "task", "round", "withdraw", "store", "bench"]
BENCHMARKS = ["gas", "train", "accuracy", "fairness", "cid", "overhead"]


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([FEDMARKET, *args], capture_output=True, text=True, env=env, timeout=120)


def test_version(tmp_path: Path) -> None:
    result = run("--version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("fedmarket ")


@pytest.mark.parametrize("group", GROUPS)
def test_every_command_group_answers_help(group: str, tmp_path: Path) -> None:
    result = run(group, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_is_registered(name: str, tmp_path: Path) -> None:
    result = run("bench", name, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr


def test_unknown_command_exits_non_zero(tmp_path: Path) -> None:
    result = run("no-such-command", home=tmp_path)
    assert result.returncode != 0
