"""Fault injection: the points where an agent can be told to die, shared by the agents (which
reach them) and by `fedmarket up`'s fault plan (which names them).

An agent started with `--fault ROUND:POINT` SIGKILLs itself on reaching POINT in ROUND, as a
crash or `kill -9` would: the crash tests use it to show that a restarted agent resumes from
chain state and never submits twice.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from fedmarket.errors import FedmarketError

FAULT_POINTS: dict[str, str] = {
    "before-commit": "trainer",
    "before-reveal": "trainer",
    "before-score": "validator",  # before its score commit
    "before-score-reveal": "validator",  # between its score commit and reveal
    "before-publish": "aggregator",
    "before-confirm": "validator",  # before its vote commit
    "before-vote-reveal": "validator",  # between its vote commit and reveal
}
"""Every fault point, and the role whose agent reaches it."""


@dataclass(frozen=True)
class Fault:
    """Die by SIGKILL on reaching `point` in `round`."""

    round: int
    point: str

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`ROUND:POINT`, e.g. `2:before-commit`."""
        round_text, _, point = text.partition(":")
        if not round_text.isdigit() or int(round_text) < 1 or point not in FAULT_POINTS:
            raise FedmarketError(f"invalid fault {text!r}: give ROUND:POINT with POINT one of {', '.join(FAULT_POINTS)}")
        return cls(int(round_text), point)

    def fires(self, round: int, point: str) -> bool:
        return self.round == round and self.point == point

    def __str__(self) -> str:
        return f"{self.round}:{self.point}"


def die() -> None:
    """End this process as kill -9 would: no clean-up, no flush, no exit code of its own."""
    os.kill(os.getpid(), signal.SIGKILL)
