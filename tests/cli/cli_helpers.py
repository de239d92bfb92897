"""Running `fedmarket` the way a user does: a subprocess with its own data dir, the chain and the
address book in the environment, every output kept for the key-leak check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
CID_A = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # b"hello world\n"
CID_B = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"  # the empty file
CID_C = "Qmf5S8JCEUSRGf9EvC7y4ARoZSwcJfwwUxE72We8t8ARzf"  # 3 MiB of i % 256

# The tasks of conftest's post_task fixture (wei, seconds).
WINDOW = 900  # seconds: long enough that no phase expires in real time while a loaded CI runs the CLI
LICENSE_FEE = 1_000
TRAINER_STAKE = 10**15
VALIDATOR_STAKE = 2 * 10**15
AGGREGATOR_STAKE = 3 * 10**15
REWARD = 10**17
# Roles by dev account index: 0 buyer, 1 aggregator, 2-4 trainers, 5-7 validators, 8-11 outsiders.
BUYER, AGGREGATOR, TRAINERS, VALIDATORS = 0, 1, (2, 3, 4), (5, 6, 7)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass
class Cli:
    """`fedmarket` for one test: FEDMARKET_HOME, --rpc and --address-book preset through the environment."""

    home: Path
    rpc: str
    address_book: Path
    outputs: list[str] = field(default_factory=list)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_")}
        env.update({"FEDMARKET_HOME": str(self.home), "FEDMARKET_RPC": self.rpc, "FEDMARKET_ADDRESS_BOOK": str(self.address_book), "COLUMNS": "200"})
        env.update(extra or {})
        return env

    def run(self, *args: Any, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([FEDMARKET, *map(str, args)], input=stdin, capture_output=True, text=True, env=self.env(env), timeout=120)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def ok(self, *args: Any, env: dict[str, str] | None = None) -> Any:
        """Run with --json; it must succeed; return the parsed JSON."""
        result = self.run(*args, "--json", env=env)
        assert result.returncode == 0, f"fedmarket {' '.join(map(str, args))} failed: {result.stderr}"
        return json.loads(result.stdout)

    def ok_all(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several independent commands (different accounts) at once, each as `ok`."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda args: self.ok(*args), commands))

    def fails(self, *args: Any, fragment: str, env: dict[str, str] | None = None) -> str:
        """Run; it must fail with one line on stderr containing `fragment`, no traceback; return the line."""
        result = self.run(*args, env=env)
        assert result.returncode != 0, f"fedmarket {' '.join(map(str, args))} succeeded: {result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"not one line: {result.stderr}"
        assert "Traceback" not in result.stderr
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
        return lines[0]
