"""Child processes under supervision: launch, poll, restart and stop, every event logged.

- `ProcessSupervisor`: any child process in its own process group; stop = SIGTERM to the group,
  SIGKILL after a grace period; every start / exit / kill goes to supervisor.jsonl (`EventLog`);
- `AgentSupervisor`: the market's agents over a ProcessSupervisor, with the fault plan applied to
  their exits (a planned SIGKILL is restarted as the plan says; anything else is reported);
- signal helpers (`sigterm_as_interrupt`, `signals_deferred`) so that a run's clean-up always
  runs to the end, and `LogTail` / `read_jsonl` for the JSON-lines files the agents write.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.market.plan import DevnetError, Fault
from fedmarket.market.setup import role_of

if TYPE_CHECKING:
    pass

KILLED = -signal.SIGKILL
STOP_GRACE_S = 5.0
CRASH_RESTARTS = 3
"""Unplanned exits an agent is restarted after (it resumes from the chain) before the run fails."""
CRASH_BACKOFF_S = 1.0
"""The wait before the first crash restart; it doubles with each crash."""
POLL_S = 0.25


def _now() -> float:
    return round(time.time(), 3)


class EventLog:
    """supervisor.jsonl: one JSON object per line, {"t": unix seconds, "event": ..., ...}; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"t": _now(), "event": event, **fields}
        line = json.dumps(record, default=str) + "\n"
        with self._lock, self.path.open("a") as handle:
            handle.write(line)
        return record

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a torn or foreign line is skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return json_records(text.splitlines())


def json_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The JSON objects among `lines`; blank, torn or foreign lines are skipped."""
    records = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


@dataclass
class ProcessSpec:
    """How to start one supervised process: argv, environment, where its stdout + stderr go."""

    name: str
    argv: list[str]
    output: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None


@dataclass
class Exit:
    """A supervised process that ended: `code` is Popen's (-9: killed by SIGKILL)."""

    name: str
    pid: int
    code: int
    launch: int  # 1 for the first launch, 2 for the first restart, ...


@dataclass
class _Running:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    launch: int
    started: float


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`, from /proc; where there is no
    /proc, [pgid] while the group exists."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after the command: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited_unreaped(pid: int) -> bool:
    """True once child `pid` has ended, without reaping it (its zombie keeps the pid and the group id)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


class ProcessSupervisor:
    """Child processes, each the leader of its own process group, and a log of what became of them.

    `launch` starts one (stdout + stderr appended to its output file); `poll` returns those that
    ended since the last poll (after killing whatever they left in their process group: the group
    is cleaned up while the exited leader's zombie still holds its pid); `stop_all` sends SIGTERM to
    every running group, then SIGKILL after `grace` seconds, and reaps them all. Every event goes
    to the EventLog: start / restart (pid, argv without secrets: argv never holds one), exit (code),
    kill (signal sent at stop).
    """

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.running: dict[str, _Running] = {}
        self.launches: dict[str, int] = {}
        self.pids: list[int] = []
        self._lock = threading.RLock()

    def launch(self, spec: ProcessSpec, *, note: dict[str, Any] | None = None) -> int:
        """Start `spec` (a name may be launched again once its last process ended); its pid."""
        with self._lock:
            if spec.name in self.running:
                raise DevnetError(f"{spec.name} already runs (pid {self.running[spec.name].process.pid})")
            spec.output.parent.mkdir(parents=True, exist_ok=True)
            launch = self.launches.get(spec.name, 0) + 1
            with spec.output.open("ab") as out:
                process = subprocess.Popen(
                    spec.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=spec.env,
                    cwd=spec.cwd,
                    start_new_session=True,  # its own process group; a terminal's Ctrl-C does not reach it
                )
            self.launches[spec.name] = launch
            self.pids.append(process.pid)
            self.running[spec.name] = _Running(spec, process, launch, time.monotonic())
            self.events.write("start" if launch == 1 else "restart", name=spec.name, pid=process.pid, launch=launch, argv=spec.argv[-40:], **(note or {}))
            return process.pid

    def pid(self, name: str) -> int | None:
        running = self.running.get(name)
        return running.process.pid if running else None

    def poll(self) -> list[Exit]:
        """The processes that ended since the last call (their groups cleaned up, their exits logged)."""
        exits = []
        with self._lock:
            for name, running in list(self.running.items()):
                pid = running.process.pid
                if not _exited_unreaped(pid):
                    continue
                _kill_group(pid, signal.SIGKILL)  # whatever it left behind in its group
                code = running.process.wait()
                del self.running[name]
                self.events.write("exit", name=name, pid=pid, code=code, launch=running.launch, ran_s=round(time.monotonic() - running.started, 3))
                exits.append(Exit(name, pid, code, running.launch))
        return exits

    def stop(self, name: str, *, grace: float = STOP_GRACE_S, reason: str = "stop") -> Exit | None:
        """Stop one process (SIGTERM to its group, SIGKILL after `grace`); None if it was not running."""
        with self._lock:
            if name not in self.running:
                return None
            exits = self._stop([name], grace, reason)
            return exits[0] if exits else None

    def stop_all(self, *, grace: float = STOP_GRACE_S, reason: str = "stop") -> list[Exit]:
        """Stop every running process: SIGTERM to each group, SIGKILL to what is left after `grace`."""
        with self._lock:
            return self._stop(list(self.running), grace, reason)

    def _stop(self, names: list[str], grace: float, reason: str) -> list[Exit]:
        exits = self.poll()
        targets = [(name, self.running[name]) for name in names if name in self.running]
        for name, running in targets:
            pid = running.process.pid
            self.events.write("kill", name=name, pid=pid, signal="SIGTERM", reason=reason)
            _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        waiting = dict(targets)
        while waiting and time.monotonic() < deadline:
            for name, running in list(waiting.items()):
                if _exited_unreaped(running.process.pid):
                    waiting.pop(name)
            time.sleep(0.02)
        for name, running in waiting.items():
            self.events.write("kill", name=name, pid=running.process.pid, signal="SIGKILL", reason=f"{reason}: still running {grace:g} s after SIGTERM")
            _kill_group(running.process.pid, signal.SIGKILL)
        for name, running in targets:
            pid = running.process.pid
            _kill_group(pid, signal.SIGKILL)  # children that outlived their leader
            code = running.process.wait()
            del self.running[name]
            self.events.write("exit", name=name, pid=pid, code=code, launch=running.launch, ran_s=round(time.monotonic() - running.started, 3))
            exits.append(Exit(name, pid, code, running.launch))
        return exits

    def leftovers(self) -> list[int]:
        """Live processes left in the process groups this supervisor started: [] after stop_all."""
        return [member for pid in self.pids for member in group_members(pid)]


# ============================================================================= agents with a fault plan


@dataclass
class AgentLaunch:
    """One agent: its process spec (without --fault) and the fault of its first launch, if any."""

    name: str
    spec: ProcessSpec
    fault: Fault | None = None

    @property
    def role(self) -> str:
        return role_of(self.name)


@dataclass
class AgentStatus:
    """What the supervisor knows of one agent (for the progress view and the result)."""

    name: str
    role: str
    pid: int | None = None
    state: str = "waiting"  # waiting | running | killed | restarting | down | done | failed
    launches: int = 0
    exits: list[int] = field(default_factory=list)
    fault: str | None = None
    fault_fired: bool = False
    crashes: int = 0  # unplanned exits so far (each restarted while under the supervisor's limit)
    detail: str = ""


def last_line(path: Path, limit: int = 400) -> str:
    """The last non-empty line of a text file ('' when none), for one-line error messages."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


class AgentSupervisor:
    """The agents' processes with the fault plan applied to how each one exits.

    `check(current_round, finished)` polls the processes: an agent with a fault that exits -9 is
    the fault firing (expected); it is restarted per its plan (now, once round R has opened, or
    never), without --fault; exit 0 is an agent that is done (accepted only once `finished` says
    the task has ended); anything else is a crash: the agent is restarted after a backoff
    (`backoff_s`, doubling) up to `crash_restarts` times, since an agent resumes from the chain;
    past that, DevnetError names the agent and its .log file's last line.
    """

    def __init__(
        self,
        processes: ProcessSupervisor,
        agents: Sequence[AgentLaunch],
        *,
        on_note: Callable[[str], None] | None = None,
        crash_restarts: int = CRASH_RESTARTS,
        backoff_s: float = CRASH_BACKOFF_S,
    ) -> None:
        self.processes = processes
        self.on_note = on_note or (lambda _text: None)
        self.agents = {agent.name: agent for agent in agents}
        self.status = {agent.name: AgentStatus(agent.name, agent.role, fault=str(agent.fault) if agent.fault else None) for agent in agents}
        self.pending: dict[str, Fault] = {}  # fired faults waiting for their restart
        self.crash_restarts = crash_restarts
        self.backoff_s = backoff_s
        self.crashed: dict[str, float] = {}  # crashed agents -> monotonic time of their restart

    @property
    def events(self) -> EventLog:
        return self.processes.events

    def start(self, name: str) -> int:
        agent = self.agents[name]
        spec = agent.spec
        note = None
        if agent.fault is not None:
            spec = ProcessSpec(spec.name, [*spec.argv, "--fault", agent.fault.agent_arg], spec.output, spec.env, spec.cwd)
            note = {"fault": str(agent.fault)}
        return self._launched(name, self.processes.launch(spec, note=note))

    def start_all(self) -> None:
        for name in self.agents:
            self.start(name)

    def _launched(self, name: str, pid: int) -> int:
        status = self.status[name]
        status.pid, status.state, status.launches = pid, "running", status.launches + 1
        return pid

    def restart(self, name: str, why: str) -> int:
        """Launch `name` again with its plain command (no --fault), appending to the same logs."""
        self.pending.pop(name, None)
        self.crashed.pop(name, None)
        agent = self.agents[name]
        pid = self._launched(name, self.processes.launch(agent.spec, note={"why": why}))
        self.status[name].detail = f"restarted ({why})"
        self.on_note(f"{name} restarted as pid {pid} ({why})")
        return pid

    def check(self, current_round: int | None, *, finished: bool | Callable[[], bool] = False) -> list[Exit]:
        """Handle exits and due restarts; raise DevnetError on an unexpected exit."""
        exits = self.processes.poll()
        failures: list[str] = []
        for ended in exits:
            status = self.status[ended.name]
            status.exits.append(ended.code)
            status.pid = None
            fault = self.agents[ended.name].fault
            if ended.code == KILLED and fault is not None and not status.fault_fired and ended.launch == 1:
                status.fault_fired = True
                status.state = "killed"
                self.events.write("fault", name=ended.name, pid=ended.pid, fault=str(fault), restart=fault.restart, restart_round=fault.restart_round)
                self.on_note(f"{ended.name} (pid {ended.pid}) killed itself at its fault {fault}")
                if fault.restart == "now":
                    self.restart(ended.name, f"fault {fault}: restart now")
                elif fault.restart == "round":
                    status.state = "restarting"
                    status.detail = f"restart in round {fault.restart_round}"
                    self.pending[ended.name] = fault
                else:
                    status.state = "down"
                    status.detail = "killed for good"
                continue
            if ended.code == 0 and (finished() if callable(finished) else finished):
                status.state = "done"
                continue
            if ended.code == 0:
                what = f"exited 0 (done) while the task had not ended; see {self.agents[ended.name].spec.output}"
            else:
                why = last_line(self.agents[ended.name].spec.output) or "no output"
                how = (
                    "was killed (SIGKILL) without a planned fault"
                    if ended.code == KILLED
                    else (f"was killed by signal {-ended.code}" if ended.code < 0 else f"exited with code {ended.code}")
                )
                what = f"{how}: {why}"
            if status.crashes < self.crash_restarts:
                delay = self.backoff_s * 2**status.crashes
                status.crashes += 1
                status.state, status.detail = "restarting", f"crashed ({what}); restart in {delay:.0f} s"
                self.crashed[ended.name] = time.monotonic() + delay
                self.events.write("crash", name=ended.name, pid=ended.pid, code=ended.code, crashes=status.crashes, restart_in_s=delay, why=what)
                self.on_note(f"{ended.name} (pid {ended.pid}) {what}; restarting in {delay:.0f} s (crash {status.crashes} of {self.crash_restarts} allowed)")
                continue
            status.state = "failed"
            after = f" (after {status.crashes} restarts)" if status.crashes else ""
            failures.append(f"{ended.name} (pid {ended.pid}) {what}{after}")
        if failures:
            raise DevnetError("; ".join(failures))
        for name, fault in list(self.pending.items()):
            if fault.restart_round is not None and current_round is not None and current_round >= fault.restart_round:
                self.restart(name, f"fault {fault}: round {fault.restart_round} opened")
        for name, when in list(self.crashed.items()):
            if time.monotonic() >= when:
                del self.crashed[name]
                self.restart(name, f"crash {self.status[name].crashes}")
        return exits

    def running(self) -> list[str]:
        return list(self.processes.running)

    def stop_all(self, *, grace: float = STOP_GRACE_S, reason: str = "stop") -> None:
        for ended in self.processes.stop_all(grace=grace, reason=reason):
            status = self.status[ended.name]
            status.exits.append(ended.code)
            status.pid = None
            if status.state == "running":
                status.state = "stopped"


class LogTail:
    """Reads the new complete lines of a growing JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return json_records(chunk[: end + 1].decode(errors="replace").splitlines())


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM (and SIGHUP) raise KeyboardInterrupt in the main thread, so `finally`
    blocks run and nothing started is left behind; outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """While inside, SIGINT / SIGTERM / SIGHUP are held back (main thread only); the first one that
    came is re-raised as KeyboardInterrupt on the way out, unless an exception is already leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    leaving = sys.exc_info()[0] is not None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught and not leaving:
        raise KeyboardInterrupt(f"signal {caught[0]}")
