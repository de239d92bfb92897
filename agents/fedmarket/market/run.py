"""A `fedmarket up` run's state: where it lives (`default_run_dir`), what a progress display
shows while it runs (`DevnetView`, updated in place), its round timings and its result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.market.supervisor import AgentStatus


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


def default_run_dir(base: Path | None = None) -> Path:
    """runs/<UTC timestamp> under `base` (default: the current directory); never an existing folder."""
    root = (base or Path.cwd()) / "runs"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path
