"""The task-spec flags, declared once: `fedmarket task spec`, `demo` and `up` take the same ones,
and `spec_of` turns them into a TaskSpec. Defaults are the demo task's (fl.learning.DEMO_TASK,
TaskSpec's defaults); fl.learning imports nothing heavy, so `--help` stays quick."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import typer

from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import DEMO_HOLDOUT, DEMO_TASK

if TYPE_CHECKING:
    from fedmarket.fl.taskspec import TaskSpec

DatasetOption = typer.Option(DEMO_TASK.dataset, "--dataset", help="Task spec: digits, mnist, fmnist, cifar10 or diabetes.")
PartitionOption = typer.Option(DEMO_TASK.partition, "--partition", help="Task spec: how the trainers' data is split: iid, pat:K or dir:ALPHA.")
ModelOption = typer.Option(DEMO_TASK.model, "--model", help="Task spec: cnn, fedavgcnn (PFLlib's unpadded CNN), mlp, linear or auto.")
InputScalingOption = typer.Option(
    DEMO_TASK.input_scaling, "--input-scaling", help="Task spec: image pixels scaled by mean/std (standard) or to [-1, 1] as PFLlib does (pm1)."
)
EpochsOption = typer.Option(DEMO_TASK.epochs, "--epochs", min=1, help="Task spec: local epochs per round.")
BatchSizeOption = typer.Option(DEMO_TASK.batch_size, "--batch-size", min=1, help="Task spec: local minibatch size.")
LrOption = typer.Option(DEMO_TASK.lr, "--lr", help="Task spec: local SGD learning rate.")
MomentumOption = typer.Option(DEMO_TASK.momentum, "--momentum", min=0.0, max=0.999, help="Task spec: local SGD momentum.")
ProxMuOption = typer.Option(DEMO_TASK.prox_mu, "--prox-mu", min=0.0, help="Task spec: FedProx proximal weight mu (0: plain FedAvg).")
AggregationOption = typer.Option(
    DEMO_TASK.aggregation, "--aggregation", help="Task spec: fedavg, weighted, median, trimmed_mean[:beta], krum[:f], multikrum[:f[:m]]."
)
UtilityOption = typer.Option(None, "--utility", help="Task spec: the validators' scoring function [default: the task spec's default utility].")
HoldoutOption = typer.Option(DEMO_HOLDOUT, "--holdout", min=2, help="Task spec: samples held out for the validators and the aggregator.")
SeedOption = typer.Option(DEMO_TASK.seed, "--seed", help="Task spec: seed of the data split, the initial model and every batch order.")


# parameter name -> (annotation, typer option), in the order --help lists them
SPEC_FLAGS: dict[str, tuple[Any, Any]] = {
    "dataset": (str, DatasetOption), "partition": (str, PartitionOption), "model": (str, ModelOption),
    "epochs": (int, EpochsOption), "batch_size": (int, BatchSizeOption), "lr": (float, LrOption),
    "momentum": (float, MomentumOption), "prox_mu": (float, ProxMuOption), "aggregation": (str, AggregationOption),
    "utility": (Optional[str], UtilityOption), "holdout": (int, HoldoutOption), "seed": (int, SeedOption),
    "input_scaling": (str, InputScalingOption),
}  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def with_spec_flags(command: F) -> F:
    """Give a command every task-spec flag as one keyword-only `spec_flags: dict` argument (for
    `spec_of(trainers=..., validators=..., **spec_flags)`); --help lists the flags after the
    command's own options."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name != "spec_flags"]
    keyword = [p for p in own if p.kind == inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in own if p.kind != inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(command)
    def with_flags(*args: Any, **kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name) for name in SPEC_FLAGS}
        return command(*args, spec_flags=flags, **kwargs)

    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind) for name, (kind, option) in SPEC_FLAGS.items()]
    with_flags.__signature__ = inspect.Signature([*positional, *added, *keyword])  # type: ignore[attr-defined]
    with_flags.__annotations__ = {**{k: v for k, v in command.__annotations__.items() if k != "spec_flags"}, **{n: k for n, (k, _) in SPEC_FLAGS.items()}}
    return with_flags  # type: ignore[return-value]


def spec_of(
    *, dataset: str, partition: str, model: str, trainers: int, validators: int, holdout: int = DEMO_HOLDOUT,
    epochs: int = DEMO_TASK.epochs, batch_size: int = DEMO_TASK.batch_size, lr: float = DEMO_TASK.lr,
    momentum: float = DEMO_TASK.momentum, prox_mu: float = DEMO_TASK.prox_mu, aggregation: str = DEMO_TASK.aggregation,
    utility: Optional[str] = None, seed: int = DEMO_TASK.seed, input_scaling: str = DEMO_TASK.input_scaling,
    committee: str = "validators",
) -> TaskSpec:  # fmt: skip
    """The TaskSpec of the flags (checked: a bad value is one line)."""
    from fedmarket.fl.taskspec import TaskSpec

    return TaskSpec(
        dataset=dataset, partition=partition, model=model, trainers=trainers, validators=validators, holdout=holdout,
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, prox_mu=prox_mu, aggregation=aggregation,
        seed=seed, input_scaling=input_scaling, committee=committee, **({"utility": utility} if utility else {}),
    )  # fmt: skip


CommitteeOption = typer.Option(
    "validators",
    "--committee",
    help="Task spec: validators (staked validators score) or elected (CMFL / BlockFL: the trainers serve on a committee elected each round "
    "from the best-scored trainers; no validators, the utility defaults to cmfl_distance and the aggregation to cmfl_s1).",
)


def committee_flags(committee: str, validators: int, spec_flags: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The validators and spec flags of `--committee`: an elected task has no validators, and
    cmfl_distance / cmfl_s1 unless the flags chose otherwise."""
    if committee == "validators":
        return validators, spec_flags
    if committee != "elected":
        raise FedmarketError(f"--committee must be validators or elected, not {committee!r}")
    from fedmarket.fl.elected_sim import ELECTED_AGGREGATION, ELECTED_UTILITY

    flags = dict(spec_flags)
    if flags.get("aggregation") == DEMO_TASK.aggregation:
        flags["aggregation"] = ELECTED_AGGREGATION
    flags["utility"] = flags.get("utility") or ELECTED_UTILITY
    return 0, flags
