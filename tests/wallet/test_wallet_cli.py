"""`fedmarket wallet ...` as a user runs it: key import from a file and from a hidden prompt,
password sources, refusals, and no private key in any output or file but the encrypted one."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from eth_account import Account

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
KEY_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(bytes.fromhex(KEY_HEX)).address


def run(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "FEDMARKET_HOME": str(home), "COLUMNS": "200", **(env or {})}
    full_env.pop("FEDMARKET_PASSWORD", None) if "FEDMARKET_PASSWORD" not in (env or {}) else None
    return subprocess.run([FEDMARKET, *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=60)


def run_here(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    """The same command in this process (typer's runner): no interpreter start-up per call."""
    from typer.testing import CliRunner

    from fedmarket.cli.app import app

    full_env = {"FEDMARKET_HOME": str(home), "COLUMNS": "200", "FEDMARKET_PASSWORD": None, **(env or {})}
    result = CliRunner().invoke(app, list(args), input=stdin, env=full_env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    result.returncode = result.exit_code  # type: ignore[attr-defined]
    return result


def assert_one_line_error(result, fragment: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def secrets(tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "key.txt"
    key_file.write_text("0x" + KEY_HEX + "\n")
    password_file = tmp_path / "pw.txt"
    password_file.write_text("hunter2\n")
    return key_file, password_file


def test_import_from_file_then_list_and_export(home: Path, secrets: tuple[Path, Path]) -> None:
    key_file, password_file = secrets
    result = run(home, "wallet", "import", "alice", "--key-file", str(key_file), "--password-file", str(password_file), "--light-kdf", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["address"] == ADDRESS and created["name"] == "alice"
    assert Path(created["path"]) == home / "keystores" / "alice.json"

    listed = json.loads(run(home, "wallet", "list", "--json").stdout)
    assert [(a["name"], a["address"]) for a in listed["accounts"]] == [("alice", ADDRESS)]
    exported = run(home, "wallet", "export-address", "alice")
    assert exported.stdout.strip() == ADDRESS


def test_import_from_stdin_and_keystore_dir_option(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    result = run_here(
        home,
        "wallet",
        "import",
        "bob",
        "--key-file",
        "-",
        "--keystore-dir",
        str(elsewhere),
        "--light-kdf",
        stdin=KEY_HEX + "\n",
        env={"FEDMARKET_PASSWORD": "pw"},
    )
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "bob.json").exists() and not (home / "keystores").exists()


def test_new_creates_distinct_random_keys(home: Path, secrets: tuple[Path, Path]) -> None:
    _, password_file = secrets
    first = json.loads(run_here(home, "wallet", "new", "a1", "--password-file", str(password_file), "--light-kdf", "--json").stdout)
    second = json.loads(run_here(home, "wallet", "new", "a2", "--password-file", str(password_file), "--light-kdf", "--json").stdout)
    assert first["address"] != second["address"]
    assert first["scrypt_n"] == 2**12


def test_refusals_are_one_line(home: Path, secrets: tuple[Path, Path]) -> None:
    key_file, password_file = secrets
    run_here(home, "wallet", "import", "alice", "--key-file", str(key_file), "--password-file", str(password_file), "--light-kdf")
    before = (home / "keystores" / "alice.json").read_bytes()
    assert_one_line_error(run_here(home, "wallet", "new", "alice", "--password-file", str(password_file), "--light-kdf"), "already exists")
    assert_one_line_error(
        run_here(home, "wallet", "import", "again", "--key-file", str(key_file), "--password-file", str(password_file), "--light-kdf"),
        "already in keystore 'alice'",
    )
    assert_one_line_error(run_here(home, "wallet", "new", "bad name", "--password-file", str(password_file)), "invalid account name")
    assert_one_line_error(run_here(home, "wallet", "export-address", "nobody"), "no keystore named 'nobody'")
    assert_one_line_error(run_here(home, "wallet", "new", "carol"), "no password for new keystore carol")
    assert_one_line_error(run_here(home, "wallet", "import", "carol", "--password-file", str(password_file)), "no private key")
    assert (home / "keystores" / "alice.json").read_bytes() == before
    assert sorted(p.name for p in (home / "keystores").iterdir()) == ["alice.json"]


def _run_on_terminal(home: Path, args: list[str], answers: list[str], timeout: float = 30.0) -> tuple[int, str]:
    """Run fedmarket with a pseudo-terminal as its controlling terminal, typing `answers` to prompts."""
    env = {**os.environ, "FEDMARKET_HOME": str(home)}
    env.pop("FEDMARKET_PASSWORD", None)
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(FEDMARKET, [FEDMARKET, *args], env)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            # answer only once the prompt is out and echo is off: typing earlier would be echoed,
            # and getpass flushes pending input when it turns echo off
            if pending and output.endswith(b": ") and not termios.tcgetattr(fd)[3] & termios.ECHO:
                os.write(fd, (pending.pop(0) + "\n").encode())
                output += b"<answered>"
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_import_and_password_from_hidden_prompts(home: Path) -> None:
    code, output = _run_on_terminal(home, ["wallet", "import", "alice", "--light-kdf"], [KEY_HEX, "s3cret", "s3cret"])
    assert code == 0, output
    assert "Private key:" in output and "Password for new keystore alice:" in output
    assert KEY_HEX not in output  # hidden input is not echoed
    assert "s3cret" not in output
    account = Account.from_key(bytes.fromhex(KEY_HEX))
    from fedmarket.wallet import KeystoreDir

    assert KeystoreDir(home / "keystores").load("alice", "s3cret").address == account.address


def test_private_key_never_in_any_output_or_file(home: Path, secrets: tuple[Path, Path], tmp_path: Path) -> None:
    key_file, password_file = secrets
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    bad_key = tmp_path / "bad.txt"
    bad_key.write_text(KEY_HEX[:-1] + "g\n")  # one typo: the error must not echo it either
    commands = [
        ["wallet", "import", "alice", "--key-file", str(key_file), "--password-file", str(password_file), "--light-kdf"],
        ["wallet", "import", "typo", "--key-file", str(bad_key), "--password-file", str(password_file), "--light-kdf"],
        ["wallet", "import", "json", "--key-file", str(key_file), "--password-file", str(password_file), "--light-kdf", "--json"],
        ["wallet", "list", "--json"],
        ["wallet", "export-address", "alice", "--json"],
        ["wallet", "send", "alice", "1wei", "--account", "alice", "--password-file", str(wrong), "--rpc", "http://127.0.0.1:9"],
        ["wallet", "send", "alice", "1wei", "--account", "alice", "--password-file", str(password_file), "--rpc", "http://127.0.0.1:9"],
    ]
    forms = {KEY_HEX, KEY_HEX.upper(), "0x" + KEY_HEX, KEY_HEX[:-1] + "g", KEY_HEX[8:40]}
    for args in commands:
        result = run(home, *args)
        text = result.stdout + result.stderr
        for form in forms:
            assert form not in text, (args, text)
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for form in forms:
                assert form.encode() not in content, path
            assert bytes.fromhex(KEY_HEX) not in content, path
