"""Dummy child processes for the supervisor tests: real processes, real signals.

`python devnet_dummies.py MODE [ARGS ...] [--fault R:P]` behaves by MODE:

- `exit CODE SECONDS`: sleep, then exit with CODE (after printing a line naming the code);
- `sleep`: sleep until killed (SIGTERM ends it);
- `stubborn`: ignore SIGTERM, sleep until SIGKILLed;
- `parent`: start a grandchild that sleeps (and ignores SIGTERM), print its pid, sleep;
- with `--fault` anywhere: SIGKILL itself after 0.2 s instead (as an agent reaching its fault point).

Every start appends "start <pid> <argv>" to the file named by $DUMMY_TRACE, if set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def argv(mode: str, *args: str) -> list[str]:
    """The command line of a dummy."""
    return [sys.executable, str(HERE), mode, *args]


def main(args: list[str]) -> int:
    trace = os.environ.get("DUMMY_TRACE")
    if trace:
        with open(trace, "a") as handle:
            handle.write(f"start {os.getpid()} {' '.join(args)}\n")
    if "--fault" in args:
        print(f"reached fault {args[args.index('--fault') + 1]}", flush=True)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    mode = args[0]
    if mode == "exit":
        code, seconds = int(args[1]), float(args[2])
        time.sleep(seconds)
        print(f"exiting with code {code}", flush=True)
        return code
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
    if mode == "parent":
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print(f"grandchild {child.pid}", flush=True)
    time.sleep(600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
