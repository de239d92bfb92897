"""The join policy: the task parameters an agent refuses before any wei moves (design.md §8).

A buyer writes the task's parameters, so a task can be a trap: phase windows too short for
anyone to act in (and a late slash that then takes every stake), a late slash of the whole
stake, a poison threshold above zero that slashes honest trainers whose updates merely help
little, an agreement tolerance so tight that an honest committee member's scores, measured on its
own data, land outside it and are slashed (Disagreed), a stake larger than the participant means
to risk. Each agent checks the task against
its own policy before it buys a licence or stakes, and refuses with one line naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedmarket.chain.protocol import BPS
from fedmarket.errors import FedmarketError

if TYPE_CHECKING:
    from fedmarket.chain.client import ModelParams


class PolicyRefusal(FedmarketError):
    """The task breaks the agent's join policy: it does not join."""


@dataclass(frozen=True)
class JoinPolicy:
    """What an agent accepts. The defaults fit a local dev chain; on a real network raise
    `min_window_s` to minutes."""

    min_window_s: int = 2  # `fedmarket up --window` takes 2 s at the least
    max_late_slash_bps: int = 5_000
    max_bad_slash_bps: int = BPS
    max_stake_wei: int | None = None  # None: any stake
    max_license_fee_wei: int | None = None
    min_agreement_tolerance_bps: int = BPS // 2  # validators: honest scores differ from the medians by sampling

    def check(self, params: ModelParams, role: str) -> None:
        """Raise PolicyRefusal naming the first rule `params` breaks for an agent of `role`."""
        windows = {
            "commit": params.commit_window, "reveal": params.reveal_window, "score": params.score_window,
            "publish": params.publish_window, "confirm": params.confirm_window,
        }  # fmt: skip
        short = {phase: w for phase, w in windows.items() if w < self.min_window_s}
        if short:
            named = ", ".join(f"{phase} {w} s" for phase, w in short.items())
            raise PolicyRefusal(f"refusing the task: its windows ({named}) are shorter than this agent's minimum of {self.min_window_s} s")
        if params.late_slash_bps > self.max_late_slash_bps:
            raise PolicyRefusal(
                f"refusing the task: a late slash of {params.late_slash_bps} bps is above this agent's maximum of {self.max_late_slash_bps} bps"
            )
        if params.bad_slash_bps > self.max_bad_slash_bps:
            raise PolicyRefusal(f"refusing the task: a bad slash of {params.bad_slash_bps} bps is above this agent's maximum of {self.max_bad_slash_bps} bps")
        if role == "trainer" and params.poison_threshold > 0:
            raise PolicyRefusal(
                f"refusing the task: its poison threshold {params.poison_threshold} is above 0, so an honest update that helps little is slashed"
            )
        if role == "validator" and params.agreement_tolerance_bps < self.min_agreement_tolerance_bps:
            raise PolicyRefusal(
                f"refusing the task: its agreement tolerance of {params.agreement_tolerance_bps} bps is below this agent's minimum of "
                f"{self.min_agreement_tolerance_bps} bps, so honest scores measured on other data could be slashed as disagreeing"
            )
        stake = {"trainer": params.trainer_stake, "validator": params.validator_stake, "aggregator": params.aggregator_stake}[role]
        if self.max_stake_wei is not None and stake > self.max_stake_wei:
            raise PolicyRefusal(f"refusing the task: its {role} stake of {stake} wei is above this agent's maximum of {self.max_stake_wei} wei")
        if role == "trainer" and self.max_license_fee_wei is not None and params.license_fee > self.max_license_fee_wei:
            raise PolicyRefusal(
                f"refusing the task: its licence fee of {params.license_fee} wei is above this agent's maximum of {self.max_license_fee_wei} wei"
            )
