"""`fedmarket up`'s engine: a local devnet where every participant is its own OS process.

One run, in one folder (default `runs/<UTC timestamp>`):

    anvil.log            the dev chain's log (copied when it stops)
    keystores/           one scrypt keystore per participant (throwaway keys, light KDF)
    password             the run's random keystore password (mode 0600)
    store/               the shared embedded blob store (unless --ipfs names a Kubo node)
    state/<name>/        each agent's own state (salts, cursors)
    logs/<name>.jsonl    each agent's JSON lines, one per action
    logs/<name>.err      each agent's stdout + stderr
    supervisor.jsonl     every start / exit / kill / restart / withdrawal of the supervisor
    report.json, report.png

What happens (`Devnet.run()`): anvil starts on a free 127.0.0.1 port with mixed mining (every
transaction mined at once, plus a block a second, so the phase the contract derives from the
latest block's time moves on while nobody sends anything); dev account 0 deploys the
Marketplace and funds one fresh keystore per participant; the buyer stores the task spec and the
initial model and posts the task; every agent (`fedmarket agent trainer|validator|aggregator
--join --withdraw ...`) is launched in its own process group; once all have staked the buyer
starts training; the supervisor watches the chain and the processes, applies the fault plan
(`--fault NAME@ROUND:POINT->RESTART`: the agent SIGKILLs itself at POINT of ROUND and is restarted
at once, when round R opens, or never), and fails with one line when an agent exits unexpectedly
or the task stops moving; after the last round the buyer finalizes and settles, the agents
withdraw and exit, the buyer withdraws, and the supervisor withdraws what an agent that never
came back was credited (it holds every run key), so the contract ends with 0 wei. Whatever
happens (an error, Ctrl-C, SIGTERM), everything started is stopped: agents first (SIGTERM to
their process groups, SIGKILL after a grace period), then anvil.

Three layers, each usable alone (the unit tests drive the first two with dummy processes):

- `parse_fault` / `parse_attack` / `FaultPlan`: the fault and attack specs;
- `ProcessSupervisor`: launch, poll, restart and stop child processes, logging every event;
- `AgentSupervisor`: the agents' processes with the fault plan applied to their exits;
- `Devnet`: the whole run above.

Private keys never leave memory: nothing here prints or logs one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from fedmarket.chain.anvil import AnvilProcess
    from fedmarket.chain.client import MarketClient
    from fedmarket.fl.taskspec import TaskSpec
    from fedmarket.storage.store import BlobStore

ETH = 10**18

POINTS: dict[str, str] = {
    "before-commit": "trainer",
    "before-reveal": "trainer",
    "before-score": "validator",
    "before-confirm": "validator",
    "before-publish": "aggregator",
}
"""Fault points and the role that reaches each."""

KILLED = -signal.SIGKILL
"""Popen's returncode of a process killed by SIGKILL."""

STOP_GRACE_S = 5.0
POLL_S = 0.25
DEFAULT_WINDOW_S = 20
WINDOW_S_PER_AGENT_PER_CORE = 4
"""The automatic window grows past DEFAULT_WINDOW_S when many agents share few cores: a round's
work (training, scoring) runs on every agent at once, ~1-3 s of CPU each for the demo task."""
DEFAULT_JOIN_TIMEOUT_S = 240.0
DEFAULT_EXIT_TIMEOUT_S = 120.0


class DevnetError(FedmarketError):
    """The devnet could not run to the end: an agent died unexpectedly, the task stalled, ..."""


# ============================================================================= fault and attack specs


@dataclass(frozen=True)
class Fault:
    """`NAME@ROUND:POINT->RESTART`: NAME kills itself (SIGKILL) at POINT of ROUND; the supervisor
    restarts it at once (`now`), when round R opens on chain (`rR`), or never."""

    name: str
    round: int
    point: str
    restart: str  # "now" | "round" | "never"
    restart_round: int | None = None

    @property
    def agent_arg(self) -> str:
        """The agent's `--fault` value."""
        return f"{self.round}:{self.point}"

    def __str__(self) -> str:
        restart = f"r{self.restart_round}" if self.restart == "round" else self.restart
        return f"{self.name}@{self.round}:{self.point}->{restart}"


_NAME = r"(?:trainer-[1-9][0-9]*|validator-[1-9][0-9]*|aggregator)"
_FAULT = re.compile(rf"^(?P<name>{_NAME})@(?P<round>[1-9][0-9]*):(?P<point>[a-z-]+)->(?P<restart>r[1-9][0-9]*|now|never)$")
_ATTACK = re.compile(rf"^(?P<name>{_NAME})=(?P<attack>[A-Za-z0-9_.:,+-]+(?:@[0-9,:+-]+)?)$")


def role_of(name: str) -> str:
    """trainer-3 -> trainer, validator-1 -> validator, aggregator -> aggregator."""
    return name.split("-", 1)[0]


def parse_fault(text: str) -> Fault:
    """A `--fault` spec, e.g. `trainer-2@2:before-commit->r3`; a malformed one is one clear line."""
    match = _FAULT.match(text.strip())
    if not match:
        raise DevnetError(
            f"invalid fault {text!r}: give NAME@ROUND:POINT->RESTART, e.g. trainer-2@2:before-commit->r3 "
            "(NAME trainer-I | validator-J | aggregator; RESTART rR | now | never)"
        )
    name, point, restart = match["name"], match["point"], match["restart"]
    if point not in POINTS:
        raise DevnetError(f"invalid fault {text!r}: unknown point {point!r}; choose one of {', '.join(POINTS)}")
    if POINTS[point] != role_of(name):
        points = ", ".join(p for p, role in POINTS.items() if role == role_of(name))
        article = "an" if role_of(name) == "aggregator" else "a"
        raise DevnetError(f"invalid fault {text!r}: {article} {role_of(name)} never reaches {point} (its points: {points})")
    fault_round = int(match["round"])
    if restart.startswith("r"):
        restart_round = int(restart[1:])
        if restart_round < fault_round:
            raise DevnetError(f"invalid fault {text!r}: restart round {restart_round} comes before the fault's round {fault_round}")
        return Fault(name, fault_round, point, "round", restart_round)
    return Fault(name, fault_round, point, restart)


def parse_attack(text: str) -> tuple[str, str]:
    """An `--attack NAME=KIND[@ROUNDS]` spec -> (NAME, the agent's `--attack` value KIND[@ROUNDS])."""
    match = _ATTACK.match(text.strip())
    if not match:
        raise DevnetError(f"invalid attack {text!r}: give NAME=KIND[@ROUNDS], e.g. trainer-3=free-rider or trainer-1=sign-flip@2,3")
    return match["name"], match["attack"]


def participant_names(trainers: int, validators: int) -> list[str]:
    """The agents of a devnet, in launch order: aggregator, trainer-1..N, validator-1..K."""
    return ["aggregator", *(f"trainer-{i}" for i in range(1, trainers + 1)), *(f"validator-{j}" for j in range(1, validators + 1))]


@dataclass(frozen=True)
class FaultPlan:
    """Every fault and attack of a run, checked against the participants and the rounds."""

    faults: dict[str, Fault] = field(default_factory=dict)
    attacks: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, faults: Sequence[str], attacks: Sequence[str], *, trainers: int, validators: int, rounds: int) -> FaultPlan:
        names = set(participant_names(trainers, validators))
        plan_faults: dict[str, Fault] = {}
        for text in faults:
            fault = parse_fault(text)
            if fault.name not in names:
                raise DevnetError(f"fault {text!r} names {fault.name}, but this devnet has {_roster(trainers, validators)}")
            if fault.name in plan_faults:
                raise DevnetError(f"two faults for {fault.name} ({plan_faults[fault.name]} and {text}): one per agent")
            if fault.round > rounds:
                raise DevnetError(f"fault {text!r} is in round {fault.round}, but the task has {rounds} rounds")
            if fault.restart_round is not None and fault.restart_round > rounds:
                raise DevnetError(f"fault {text!r} restarts in round {fault.restart_round}, but the task has {rounds} rounds")
            plan_faults[fault.name] = fault
        plan_attacks: dict[str, str] = {}
        for text in attacks:
            name, attack = parse_attack(text)
            if name not in names:
                raise DevnetError(f"attack {text!r} names {name}, but this devnet has {_roster(trainers, validators)}")
            if name in plan_attacks:
                raise DevnetError(f"two attacks for {name}: one per agent")
            plan_attacks[name] = attack
        return cls(plan_faults, plan_attacks)


def _roster(trainers: int, validators: int) -> str:
    return f"trainer-1..{trainers}, validator-1..{validators} and the aggregator"


# ============================================================================= processes


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
    the task has ended); anything else raises DevnetError naming the agent and its .err file's
    last line.
    """

    def __init__(self, processes: ProcessSupervisor, agents: Sequence[AgentLaunch], *, on_note: Callable[[str], None] | None = None) -> None:
        self.processes = processes
        self.on_note = on_note or (lambda _text: None)
        self.agents = {agent.name: agent for agent in agents}
        self.status = {agent.name: AgentStatus(agent.name, agent.role, fault=str(agent.fault) if agent.fault else None) for agent in agents}
        self.pending: dict[str, Fault] = {}  # fired faults waiting for their restart

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
            if ended.code == 0:
                done = finished() if callable(finished) else finished
                if done:
                    status.state = "done"
                    continue
                status.state = "failed"
                failures.append(f"{ended.name} exited 0 (done) while the task had not ended; see {self.agents[ended.name].spec.output}")
                continue
            status.state = "failed"
            why = last_line(self.agents[ended.name].spec.output) or "no output"
            what = "was killed (SIGKILL) without a planned fault" if ended.code == KILLED else (
                f"was killed by signal {-ended.code}" if ended.code < 0 else f"exited with code {ended.code}"
            )
            failures.append(f"{ended.name} (pid {ended.pid}) {what}: {why}")
        if failures:
            raise DevnetError("; ".join(failures))
        for name, fault in list(self.pending.items()):
            if fault.restart_round is not None and current_round is not None and current_round >= fault.restart_round:
                self.restart(name, f"fault {fault}: round {fault.restart_round} opened")
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


# ============================================================================= the devnet


@dataclass(frozen=True)
class DevnetConfig:
    """Everything `fedmarket up` takes."""

    trainers: int = 4
    validators: int = 3
    rounds: int = 3
    run_dir: Path | None = None
    ipfs: str | None = None
    window: int | None = None  # every phase window, seconds; None: `phase_window`'s automatic choice
    faults: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    dataset: str = "digits"
    partition: str = "dir:0.5"
    model: str = "mlp"
    lr: float = 0.05
    seed: int = 0
    device: str = "cpu"
    reward_wei: int = ETH
    license_fee_wei: int = ETH // 100
    stake_wei: int = ETH // 100
    fund_wei: int = ETH  # per participant, on top of nothing (stakes, licence and gas come out of it)
    poison_threshold: int = -100_000
    join_timeout_s: float = DEFAULT_JOIN_TIMEOUT_S
    exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S
    stall_timeout_s: float | None = None  # default: derived from the window
    python: str = sys.executable
    plot: bool = True

    def check(self) -> FaultPlan:
        if self.trainers < 1:
            raise DevnetError("a devnet needs at least 1 trainer")
        if self.validators < 1:
            raise DevnetError("a devnet needs at least 1 validator")
        if self.trainers > 64 or self.validators > 32:
            raise DevnetError("the contract takes at most 64 trainers and 32 validators")
        if not 1 <= self.rounds <= 1000:
            raise DevnetError("rounds must be 1 .. 1000")
        if self.window is not None and self.window < 2:
            raise DevnetError(f"a window of {self.window} s is too short for agents in separate processes (2 s at least)")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise DevnetError(f"unknown device {self.device!r}: cpu, cuda or auto")
        return FaultPlan.parse(self.faults, self.attacks, trainers=self.trainers, validators=self.validators, rounds=self.rounds)

    @property
    def committee_size(self) -> int:
        return min(self.validators, 3)

    @property
    def stall_timeout(self) -> float:
        """How long the task may show no change at all (phase, counts, round) before the run fails.

        A phase ends at the latest at its deadline, so something changes at least every window;
        twice the window plus a minute leaves room for slow agents and a loaded machine."""
        return self.stall_timeout_s if self.stall_timeout_s is not None else 2.0 * self.phase_window + 60.0

    @property
    def phase_window(self) -> int:
        """--window, else DEFAULT_WINDOW_S (20 s), or WINDOW_S_PER_AGENT_PER_CORE seconds per agent
        per CPU core when that is more: a round with a dead participant still ends within a few
        windows, while honest agents sharing the machine never miss a deadline."""
        if self.window is not None:
            return self.window
        agents = self.trainers + self.validators + 1
        cores = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
        return max(DEFAULT_WINDOW_S, -(-agents * WINDOW_S_PER_AGENT_PER_CORE // cores))


@dataclass
class RoundTimes:
    opened: dict[int, float] = field(default_factory=dict)
    closed: dict[int, float] = field(default_factory=dict)

    def wall_s(self) -> dict[int, float]:
        return {r: round(self.closed[r] - self.opened[r], 3) for r in self.closed if r in self.opened}


@dataclass
class DevnetView:
    """The live state of a run, for a progress display (updated in place by `Devnet.run`)."""

    stage: str = "starting"
    run_dir: Path | None = None
    rpc: str | None = None
    contract: str | None = None
    model_id: int | None = None
    rounds: int = 0
    current_round: int = 0
    rounds_closed: int = 0
    phase: str = ""
    phase_left_s: int | None = None
    status: str = ""
    joined: str = ""
    started_at: float = field(default_factory=time.monotonic)
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    last_action: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at


@dataclass
class DevnetResult:
    run_dir: Path
    model_id: int
    rpc: str
    contract: str
    report: dict[str, Any]
    report_path: Path
    png_path: Path | None
    wall_s: float
    round_wall_s: dict[int, float]
    window: int
    agents: dict[str, AgentStatus]
    notes: list[str]
    problems: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model_id": self.model_id,
            "rpc": self.rpc,
            "contract": self.contract,
            "report_path": str(self.report_path),
            "png_path": str(self.png_path) if self.png_path else None,
            "wall_s": round(self.wall_s, 3),
            "window_s": self.window,
            "round_wall_s": {str(r): s for r, s in self.round_wall_s.items()},
            "agents": {
                name: {"role": s.role, "launches": s.launches, "exit_codes": s.exits, "fault": s.fault, "fault_fired": s.fault_fired, "state": s.state}
                for name, s in self.agents.items()
            },
            "notes": self.notes,
            "problems": self.problems,
            "report": self.report,
        }


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


def default_run_dir(base: Path | None = None) -> Path:
    """runs/<UTC timestamp> under `base` (default: the current directory); never an existing folder."""
    root = (base or Path.cwd()) / "runs"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


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


def _transfer(w3: Any, sender: LocalAccount, recipients: Sequence[tuple[str, int]]) -> None:
    """Send ether from `sender` to each (address, wei), nonces in sequence; wait for every receipt."""
    chain_id = int(w3.eth.chain_id)
    nonce = int(w3.eth.get_transaction_count(sender.address, "pending"))
    base = int(w3.eth.get_block("latest").get("baseFeePerGas") or 0)
    tip = 10**9
    hashes = []
    for offset, (to, wei) in enumerate(recipients):
        tx = {
            "to": to, "value": int(wei), "gas": 21_000, "nonce": nonce + offset, "chainId": chain_id,
            "maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip,
        }  # fmt: skip
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
        if receipt["status"] != 1:
            raise DevnetError(f"funding transfer 0x{bytes(tx_hash).hex()} failed")


class Devnet:
    """One `fedmarket up` run. `run()` does everything and returns a DevnetResult; `view` is its
    live state and `on_update(view)` / `on_note(text)` are called as it changes."""

    def __init__(
        self,
        config: DevnetConfig,
        *,
        on_update: Callable[[DevnetView], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.plan = config.check()
        self.view = DevnetView(rounds=config.rounds)
        self.on_update = on_update or (lambda _view: None)
        self.on_note = on_note or (lambda _text: None)
        self.run_dir = Path(config.run_dir) if config.run_dir is not None else default_run_dir()
        self.events: EventLog | None = None
        self.anvil: AnvilProcess | None = None
        self.agents: AgentSupervisor | None = None
        self.tails: dict[str, LogTail] = {}
        self.accounts: dict[str, LocalAccount] = {}
        self.times = RoundTimes()
        self.problems: list[str] = []
        self._password = ""

    # ------------------------------------------------------------------ helpers

    def _stage(self, text: str) -> None:
        self.view.stage = text
        self.on_update(self.view)

    def _note(self, text: str) -> None:
        self.view.notes.append(text)
        self.on_note(text)

    def _log(self, event: str, **fields: Any) -> None:
        assert self.events is not None
        self.events.write(event, **fields)

    # ------------------------------------------------------------------ the run

    def run(self) -> DevnetResult:
        started = time.monotonic()
        self._prepare_dir()
        with sigterm_as_interrupt():
            try:
                return self._run(started)
            finally:
                with signals_deferred():  # a second Ctrl-C must not cut the clean-up short
                    self._shutdown()

    def _prepare_dir(self) -> None:
        run = self.run_dir
        if run.exists() and any(run.iterdir()):
            raise DevnetError(f"run folder {run} is not empty: give a new --run-dir")
        for sub in ("keystores", "logs", "state"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        path = run / "password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        self._password = password
        self.events = EventLog(run / "supervisor.jsonl")
        self.view.run_dir = run

    def _run(self, started: float) -> DevnetResult:
        from fedmarket.chain.anvil import AnvilProcess, dev_accounts
        from fedmarket.chain.client import MarketClient
        from fedmarket.chain.deploy import deploy_marketplace
        from fedmarket.fl.taskspec import TaskData, TaskSpec
        from fedmarket.storage.store import open_store

        cfg, run = self.config, self.run_dir
        # ---------------------------------------------------------------- chain
        self._stage("starting anvil")
        self.anvil = AnvilProcess(accounts=1, block_time=1, mixed_mining=True)
        self.anvil.start()
        self._log("start", name="anvil", pid=self.anvil.pid, url=self.anvil.url)
        self.view.rpc = self.anvil.url
        w3 = self.anvil.web3()
        dev = dev_accounts(w3)[0]
        self._stage("deploying the Marketplace")
        contract = deploy_marketplace(w3, dev)
        deploy_block = int(contract.deployment_receipt["blockNumber"])  # type: ignore[attr-defined]
        self.view.contract = contract.address
        self._log("deployed", contract=contract.address, block=deploy_block, chain_id=int(w3.eth.chain_id))

        # ---------------------------------------------------------------- keys and funds
        self._stage("creating keystores")
        from eth_account import Account

        from fedmarket.wallet import LIGHT_SCRYPT_N, KeystoreDir

        keystores = KeystoreDir(run / "keystores")
        names = ["buyer", *participant_names(cfg.trainers, cfg.validators)]
        for name in names:
            account = Account.create()
            keystores.create(name, account.key, self._password, scrypt_n=LIGHT_SCRYPT_N)
            self.accounts[name] = account
        labels = {account.address: name for name, account in self.accounts.items()}
        (run / "accounts.json").write_text(json.dumps({name: a.address for name, a in self.accounts.items()}, indent=2) + "\n")
        self._stage("funding the participants")
        funding = [(self.accounts["buyer"].address, cfg.reward_wei + cfg.fund_wei)]
        funding += [(self.accounts[name].address, cfg.fund_wei) for name in names[1:]]
        _transfer(w3, dev, funding)
        self._log("funded", accounts={name: wei for (address, wei), name in zip(funding, names, strict=True)})

        # ---------------------------------------------------------------- the task
        self._stage("posting the task")
        store: BlobStore = open_store(cfg.ipfs, root=run / "store")
        spec = TaskSpec(
            dataset=cfg.dataset, partition=cfg.partition, trainers=cfg.trainers, validators=cfg.validators,
            model=cfg.model, lr=cfg.lr, seed=cfg.seed,
        )  # fmt: skip
        task_data = TaskData.load(spec)
        spec_cid = store.add(spec.to_bytes())
        initial_cid = store.add(spec.initial_weights(task_data.dataset))
        buyer_market = MarketClient(w3, contract.address, self.accounts["buyer"])
        model_id = self._post_task(buyer_market, spec_cid, initial_cid)
        self.view.model_id = model_id
        self._log("posted", model_id=model_id, spec_cid=spec_cid, initial_cid=initial_cid, rounds=cfg.rounds, window=cfg.phase_window)

        # ---------------------------------------------------------------- the agents
        self._stage("launching the agents")
        assert self.events is not None
        launches = [self._agent_launch(name, model_id, contract.address) for name in names[1:]]
        self.agents = AgentSupervisor(ProcessSupervisor(self.events), launches, on_note=self._note)
        self.view.agents = self.agents.status
        self.tails = {name: LogTail(run / "logs" / f"{name}.jsonl") for name in names[1:]}
        self.agents.start_all()
        self._wait_for_joins(buyer_market, model_id)

        from fedmarket.roles import buyer

        self._stage("training")
        start = buyer.start_task(buyer_market, model_id)
        self.times.opened[1] = time.time()
        self._log("training-started", model_id=model_id, tx=start.tx_hash, block=start.block_number)
        self._log("round-opened", round=1)
        self._watch_rounds(buyer_market, model_id)

        # ---------------------------------------------------------------- the end
        self._stage("settling")
        self._settle(buyer_market, model_id)
        self._stage("waiting for the agents to withdraw and exit")
        self._wait_for_exits(buyer_market, model_id)
        self._withdraw_leftovers(buyer_market)

        # ---------------------------------------------------------------- report
        self._stage("writing the report")
        from fedmarket.roles.report import build_report, check_conservation, write_report

        report = build_report(
            buyer_market, model_id, store=store, task_data=task_data, labels=labels, round_wall_s=self.times.wall_s(),
            agent_logs=self.agent_records(), chain_kind="anvil", start_block=deploy_block,
        )  # fmt: skip
        report_path = run / "report.json"
        write_report(report, report_path)
        png_path: Path | None = None
        if cfg.plot:
            from fedmarket.roles.report_plot import plot_report

            png_path = run / "report.png"
            plot_report(report, png_path)
        check_conservation(report)
        if report["totals"]["contract_balance_wei"] != 0:
            self.problems.append(f"the contract still holds {report['totals']['contract_balance_wei']} wei")
        self._stage("done")
        return DevnetResult(
            run_dir=run, model_id=model_id, rpc=self.anvil.url, contract=contract.address, report=report,
            report_path=report_path, png_path=png_path, wall_s=time.monotonic() - started, round_wall_s=self.times.wall_s(), window=cfg.phase_window,
            agents=self.agents.status, notes=list(self.view.notes), problems=self.problems,
        )  # fmt: skip

    def _post_task(self, market: MarketClient, spec_cid: str, initial_cid: str) -> int:
        from fedmarket.chain.client import ModelParams
        from fedmarket.roles import buyer

        cfg, w = self.config, self.config.phase_window
        params = ModelParams(
            spec_digest=spec_cid, initial_model_digest=initial_cid, aggregator=self.accounts["aggregator"].address,
            rounds=cfg.rounds, min_trainers=cfg.trainers, max_trainers=cfg.trainers,
            committee_size=cfg.committee_size, max_validators=cfg.validators,
            commit_window=w, reveal_window=w, score_window=w, publish_window=w, confirm_window=w,
            license_fee=cfg.license_fee_wei, trainer_stake=cfg.stake_wei, validator_stake=cfg.stake_wei, aggregator_stake=cfg.stake_wei,
            poison_threshold=cfg.poison_threshold,
        )  # fmt: skip
        return buyer.post_task(market, params, cfg.reward_wei).model_id

    def _agent_launch(self, name: str, model_id: int, contract: str) -> AgentLaunch:
        cfg, run = self.config, self.run_dir
        argv = [
            cfg.python, "-m", "fedmarket.cli.app",
            "agent", role_of(name),
            "--model-id", str(model_id),
            "--account", name,
            "--name", name,
            "--keystore-dir", str(run / "keystores"),
            "--password-file", str(run / "password"),
            "--rpc", self.view.rpc or "",
            "--contract", contract,
            *(["--ipfs", cfg.ipfs] if cfg.ipfs else ["--store-dir", str(run / "store")]),
            "--data", "auto",
            "--device", cfg.device,
            "--threads", "1",
            "--join",
            "--withdraw",
            "--state-dir", str(run / "state" / name),
            "--log", str(run / "logs" / f"{name}.jsonl"),
        ]  # fmt: skip
        if name in self.plan.attacks:
            argv += ["--attack", self.plan.attacks[name]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDMARKET_") or k in ("FEDMARKET_HOME", "FEDMARKET_DATA")}
        env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
        spec = ProcessSpec(name, argv, run / "logs" / f"{name}.err", env, cwd=Path.cwd())
        return AgentLaunch(name, spec, self.plan.faults.get(name))

    # ------------------------------------------------------------------ watching

    def agent_records(self) -> list[dict[str, Any]]:
        """Every JSON record of every agent log of this run."""
        records: list[dict[str, Any]] = []
        for path in sorted((self.run_dir / "logs").glob("*.jsonl")):
            records += read_jsonl(path)
        return records

    def _read_tails(self) -> None:
        for name, tail in self.tails.items():
            for record in tail.read():
                action = record.get("action")
                if action:
                    where = f"r{record['round']} " if record.get("round") else ""
                    self.view.last_action[name] = f"{where}{action}"

    def _refresh(self, market: MarketClient, model_id: int) -> tuple[Any, Any]:
        """Read the task's state and its current round into the view; (state, round view or None)."""
        from fedmarket.chain.timecontrol import chain_now

        state = market.get_model(model_id).state
        self.view.status = str(state.status)
        self.view.current_round, self.view.rounds_closed = int(state.current_round), int(state.rounds_closed)
        round_view = None
        if state.current_round > 0:
            round_view = market.get_round(model_id, int(state.current_round))
            self.view.phase = "Closed" if round_view.closed else str(round_view.phase)
            self.view.phase_left_s = max(0, int(round_view.phase_deadline) - chain_now(market.w3)) if not round_view.closed else None
        self._read_tails()
        self.on_update(self.view)
        return state, round_view

    def _check_agents(self, current_round: int | None, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import Status

        def finished() -> bool:
            return market.get_model(model_id).state.status in (Status.FINALIZED, Status.SETTLED, Status.CANCELLED)

        assert self.agents is not None
        self.agents.check(current_round, finished=finished)

    def _wait_for_joins(self, market: MarketClient, model_id: int) -> None:
        cfg = self.config
        self._stage("waiting for every agent to join")
        deadline = time.monotonic() + cfg.join_timeout_s
        while True:
            state, _ = self._refresh(market, model_id)
            self.view.joined = f"{state.trainer_count}/{cfg.trainers} trainers, {state.validator_count}/{cfg.validators} validators, aggregator {'in' if state.aggregator_joined else 'not in'}"
            self._check_agents(None, market, model_id)
            if state.trainer_count == cfg.trainers and state.validator_count == cfg.validators and state.aggregator_joined:
                self._log("joined", model_id=model_id, trainers=state.trainer_count, validators=state.validator_count)
                return
            if time.monotonic() > deadline:
                raise DevnetError(f"not everyone joined within {cfg.join_timeout_s:.0f} s: {self.view.joined}; see {self.run_dir / 'logs'}")
            time.sleep(POLL_S)

    def _watch_rounds(self, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import Status

        cfg = self.config
        last_key: tuple[Any, ...] | None = None
        last_change = time.monotonic()
        seen_round, seen_closed = 1, 0
        while True:
            state, round_view = self._refresh(market, model_id)
            now = time.time()
            while seen_closed < state.rounds_closed:
                seen_closed += 1
                self.times.closed[seen_closed] = now
                self._log("round-closed", round=seen_closed, wall_s=round(now - self.times.opened.get(seen_closed, now), 3))
                self._note(f"round {seen_closed} closed after {now - self.times.opened.get(seen_closed, now):.1f} s")
            while seen_round < state.current_round:
                seen_round += 1
                self.times.opened.setdefault(seen_round, now)
                self._log("round-opened", round=seen_round)
            self._check_agents(int(state.current_round), market, model_id)
            if state.rounds_closed >= cfg.rounds or state.status != Status.TRAINING:
                return
            key = (
                int(state.status), int(state.current_round), int(state.rounds_closed),
                *((int(round_view.phase), round_view.commits, round_view.reveals, round_view.scores_submitted, round_view.proposed,
                   round_view.confirmations, round_view.rejections) if round_view is not None else ()),
            )  # fmt: skip
            if key != last_key:
                last_key, last_change = key, time.monotonic()
            elif time.monotonic() - last_change > cfg.stall_timeout:
                raise DevnetError(
                    f"task {model_id} made no progress for {cfg.stall_timeout:.0f} s (round {state.current_round}, phase {self.view.phase}); "
                    f"see {self.run_dir / 'logs'}"
                )
            time.sleep(POLL_S)

    def _settle(self, market: MarketClient, model_id: int) -> None:
        from fedmarket.chain.client import ContractRevert, Status
        from fedmarket.roles import buyer

        for attempt in range(3):
            status = market.get_model(model_id).state.status
            if status == Status.SETTLED:
                self._log("settled", by="someone else")
                return
            try:
                settlement = buyer.finalize_and_settle(market, model_id)
            except ContractRevert:
                if attempt == 2:
                    raise
                time.sleep(0.5)  # an agent finalized or settled meanwhile: look again
                continue
            self._log("settled", by="buyer", credited_wei=settlement.credited, gas=settlement.gas_used)
            self._note(f"task {model_id} settled: {len(settlement.payouts)} payees credited")
            return

    def _wait_for_exits(self, market: MarketClient, model_id: int) -> None:
        assert self.agents is not None
        deadline = time.monotonic() + self.config.exit_timeout_s
        while True:
            self._refresh(market, model_id)
            self._check_agents(int(self.view.current_round), market, model_id)
            if not self.agents.running() and not self.agents.pending:
                return
            if time.monotonic() > deadline:
                left = ", ".join(self.agents.running())
                self.problems.append(f"agents still running {self.config.exit_timeout_s:.0f} s after settlement, stopped: {left}")
                self._log("exit-timeout", names=self.agents.running())
                self.agents.stop_all(reason="exit timeout after settlement")
                return
            time.sleep(POLL_S)

    def _withdraw_leftovers(self, market: MarketClient) -> None:
        """The buyer withdraws; so does the supervisor for every participant still credited (an
        agent killed for good, or one that did not withdraw), with its key."""
        from fedmarket.roles import buyer

        assert self.agents is not None
        for name, account in self.accounts.items():
            credit = market.credit(account.address)
            if credit == 0:
                continue
            amount, tx = buyer.withdraw(market.with_account(account))
            if name == "buyer":
                self._log("withdrawal", name=name, amount_wei=amount, tx=tx.tx_hash)
                continue
            status = self.agents.status[name]
            why = "killed for good" if status.state == "down" else f"left {amount} wei credited ({status.state})"
            self._log("withdrawal", name=name, amount_wei=amount, tx=tx.tx_hash, by="supervisor", why=why)
            self._note(f"the supervisor withdrew {amount} wei for {name} ({why})")
            if status.state != "down":
                self.problems.append(f"{name} exited without withdrawing its credit ({amount} wei); the supervisor withdrew it")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Stop everything this run started: the agents (SIGTERM, then SIGKILL), then anvil."""
        if self.agents is not None:
            try:
                self.agents.stop_all(reason="shutdown")
            finally:
                leftovers = self.agents.processes.leftovers()
                if leftovers and self.events is not None:
                    self._log("leftovers", pids=leftovers)
        if self.anvil is not None:
            anvil, self.anvil = self.anvil, None
            process = anvil.process
            pid = process.pid if process is not None else None
            with contextlib.suppress(Exception):
                if anvil.home is not None and anvil.log.exists():
                    shutil.copyfile(anvil.log, self.run_dir / "anvil.log")
            if pid is not None and self.events is not None:
                self._log("kill", name="anvil", pid=pid, signal="SIGTERM", reason="shutdown")
            anvil.stop()
            if pid is not None and self.events is not None:
                self._log("exit", name="anvil", pid=pid, code=process.returncode if process is not None else None)
