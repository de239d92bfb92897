"""The settings of an asynchronous or per-client simulation (fl.semi), importable without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import Learning

MODES = ("semi", "fedasync", "local")
DEFAULT_TEMPERATURE = 0.1  # docs/semi.md "Aggregation weights": measured against 1, 0.3 and 0.03
DEFAULT_STALENESS_EXPONENT = 0.5  # FedAsync's a
DEFAULT_FEDASYNC_ALPHA = 0.6  # FedAsync's mixing rate (its paper tries 0.6 and 0.9)
DEFAULT_STEP_COST = 0.01  # virtual seconds per local SGD step (fl.semi.clock)


@dataclass(frozen=True)
class AsyncConfig(Learning):
    """One run: the learning settings, the method, the clock and the method's knobs.

    `rounds` is every client's own number of local rounds: asynchronous clients finish at
    different virtual times, the run ends when the last one has done its `rounds`.
    """

    mode: str = "semi"
    clients: int = 20
    rounds: int = 10
    stragglers: float = 0.0  # share of clients slowed down
    slowdown: float = 2.0  # a straggler's compute time = cost x slowdown
    step_cost: float = DEFAULT_STEP_COST
    trust: str = "ring"  # fl.semi.trust spec
    block_time: float = 0.0  # an upload can be downloaded at the next multiple of it (0: at once)
    temperature: float = DEFAULT_TEMPERATURE
    staleness_exponent: float = DEFAULT_STALENESS_EXPONENT
    loss_weights: bool = True  # ablation: False weighs models by staleness alone
    staleness: bool = True  # ablation: False weighs models by loss alone
    fedasync_alpha: float = DEFAULT_FEDASYNC_ALPHA
    device: str = "cpu"
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in MODES:
            raise FedmarketError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)} (or sync, fl.sim)")
        if self.clients < 1 or self.rounds < 0:
            raise FedmarketError("clients must be >= 1 and rounds >= 0")
        if not 0 <= self.stragglers <= 1 or not self.slowdown >= 1 or not self.step_cost > 0:
            raise FedmarketError("--stragglers must lie in [0, 1], --slowdown be >= 1 and the step cost > 0")
        if not self.temperature > 0 or self.staleness_exponent < 0 or self.block_time < 0:
            raise FedmarketError("the temperature must be > 0, the staleness exponent and block time >= 0")
        if not 0 < self.fedasync_alpha <= 1:
            raise FedmarketError(f"FedAsync's alpha must lie in (0, 1], got {self.fedasync_alpha}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        return out
