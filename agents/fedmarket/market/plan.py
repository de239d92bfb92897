"""The fault and attack plan of a `fedmarket up` run: which agent kills itself where, how it is
restarted, and which agents misbehave.

    --fault NAME@ROUND:POINT->RESTART   NAME SIGKILLs itself at POINT of ROUND; restarted at once
                                        (`now`), when round R opens on chain (`rR`), or never
    --attack NAME=KIND[@ROUNDS]         NAME runs the adversarial behaviour KIND (fedmarket.roles.adversary)

Names are `participant_names`'s: aggregator, trainer-1..N, validator-1..K. The fault points
themselves are fedmarket.roles.faults', shared with the agents that reach them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedmarket.errors import FedmarketError
from fedmarket.market.setup import participant_names, role_of
from fedmarket.roles.faults import FAULT_POINTS

if TYPE_CHECKING:
    pass


class DevnetError(FedmarketError):
    """The devnet could not run to the end: a bad plan, an agent died unexpectedly, the task stalled, ..."""


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


def parse_fault(text: str) -> Fault:
    """A `--fault` spec, e.g. `trainer-2@2:before-commit->r3`; a malformed one is one clear line."""
    match = _FAULT.match(text.strip())
    if not match:
        raise DevnetError(
            f"invalid fault {text!r}: give NAME@ROUND:POINT->RESTART, e.g. trainer-2@2:before-commit->r3 "
            "(NAME trainer-I | validator-J | aggregator; RESTART rR | now | never)"
        )
    name, point, restart = match["name"], match["point"], match["restart"]
    if point not in FAULT_POINTS:
        raise DevnetError(f"invalid fault {text!r}: unknown point {point!r}; choose one of {', '.join(FAULT_POINTS)}")
    if FAULT_POINTS[point] != role_of(name):
        points = ", ".join(p for p, role in FAULT_POINTS.items() if role == role_of(name))
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
        raise DevnetError(
            f"invalid attack {text!r}: give NAME=KIND[@ROUNDS] with NAME trainer-I, validator-J or aggregator, e.g. trainer-3=free-ride or trainer-1=sign-flip@2,3"
        )
    return match["name"], match["attack"]


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
