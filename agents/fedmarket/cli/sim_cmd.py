"""`fedmarket sim`: federated averaging with no chain, the reference the market is measured against."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.cli.output import console, err_console, one_line_errors, print_json
from fedmarket.cli.sim_modes import MODES_HELP, run_async_mode, save_figure
from fedmarket.errors import FedmarketError
from fedmarket.files import atomic_write
from fedmarket.fl.semi.config import DEFAULT_FEDASYNC_ALPHA, DEFAULT_STALENESS_EXPONENT, DEFAULT_STEP_COST, DEFAULT_TEMPERATURE, MODES, AsyncConfig

DEFAULTS_NOTE = "defaults: the seed paper's protocol (20 clients, batch 10, lr 0.005, 1 epoch, Dir(0.1), cnn, digits)"


def register(app: typer.Typer) -> None:
    app.command(
        "sim", help=f"Run FedAvg (or, with --mode, semi-centralised async FL, FedAsync, local-only) over simulated clients without a chain; {DEFAULTS_NOTE}."
    )(sim)


def write_outputs(result, out_dir: Path) -> dict[str, str]:
    """metrics.json and a PNG of accuracy (or MSE) and loss per round; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_path = atomic_write(out_dir / "metrics.json", json.dumps(result.to_dict(), indent=2) + "\n")
    rounds = [r.round for r in result.rounds]
    classification = result.rounds[0].metrics.accuracy is not None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if classification:
        left.plot(rounds, [r.metrics.accuracy for r in result.rounds], marker="o", label="accuracy")
        left.plot(rounds, [r.metrics.auc for r in result.rounds], marker=".", label="AUC")
        left.set_ylabel("accuracy / AUC (clients' test sets, weighted)")
        left.legend()
    else:
        left.plot(rounds, [r.metrics.mse for r in result.rounds], marker="o")
        left.set_ylabel("MSE (clients' test sets, weighted)")
    right.plot(rounds, [r.metrics.loss for r in result.rounds], marker="o", label="test loss")
    right.plot(rounds[1:], [r.train_loss for r in result.rounds[1:]], marker=".", label="train loss")
    right.set_ylabel("loss")
    right.legend()
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):
        axis.set_xlabel("round")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    c = result.config
    figure.suptitle(f"{c.aggregation} on {c.dataset}, {c.partition}, {c.clients} clients ({result.model_id})")
    plot_path = save_figure(figure, out_dir / "metrics.png")
    return {"metrics": str(metrics_path), "plot": str(plot_path)}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@one_line_errors
def sim(
    dataset: str = typer.Option("digits", "--dataset", help="digits, mnist, fmnist, cifar10 or diabetes."),
    partition: str = typer.Option("dir:0.1", "--partition", help="iid, pat:K (K labels per client) or dir:ALPHA."),
    clients: int = typer.Option(20, "--clients", min=1, help="Number of simulated clients."),
    rounds: int = typer.Option(10, "--rounds", min=0, help="Communication rounds."),
    batch_size: int = typer.Option(10, "--batch-size", min=1, help="Local minibatch size."),
    lr: float = typer.Option(0.005, "--lr", help="Local SGD learning rate."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Local epochs per round."),
    model: str = typer.Option("auto", "--model", help="cnn, fedavgcnn (PFLlib's unpadded CNN), mlp, linear, or auto (cnn for images, linear for tabular)."),
    input_scaling: str = typer.Option("standard", "--input-scaling", help="Image pixels scaled by mean/std (standard) or to [-1, 1] as PFLlib does (pm1)."),
    aggregation: Optional[str] = typer.Option(
        None,
        "--aggregation",
        help="fedavg, weighted, median, trimmed_mean[:beta], krum[:f], multikrum[:f[:m]]; with --committee elected also CMFL's cmfl_s1[:k] (the k best-scored) and cmfl_s2[:k] (k spread over the ranking) [default: fedavg; elected: cmfl_s1].",
    ),
    committee: str = typer.Option(
        "validators",
        "--committee",
        help="validators: every client trains; elected: CMFL / BlockFL, the clients also serve on a committee elected each round from the best-scored trainers (members score, they do not train).",
    ),
    committee_size: Optional[int] = typer.Option(None, "--committee-size", min=1, help="elected: committee members per round [default: 3]."),
    utility: Optional[str] = typer.Option(None, "--utility", help="elected: the utility the members score with (fl.utility) [default: cmfl_distance]."),
    first_committee: Optional[str] = typer.Option(
        None,
        "--first-committee",
        help="elected: round 1's committee as comma-separated seats (0-based), e.g. the one a market's chain drew [default: drawn from the seed].",
    ),
    prox_mu: float = typer.Option(0.0, "--prox-mu", min=0.0, help="FedProx proximal weight mu (0: plain FedAvg)."),
    momentum: float = typer.Option(0.0, "--momentum", min=0.0, max=0.999, help="Local SGD momentum."),
    seed: int = typer.Option(0, "--seed", help="Seed of the partition, the initial model and every batch order."),
    holdout: int = typer.Option(
        0,
        "--holdout",
        min=0,
        help="Samples held out before partitioning, as a market task's validators hold them (the task spec's holdout): the same value reproduces a market's global models.",
    ),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Worker processes training a round's clients in parallel, one torch thread each (0: one at a time in this process)."
    ),
    backend: str = typer.Option(
        "local",
        "--backend",
        help="local: this process (or --workers processes); ray: Ray tasks, one CPU each, on a local instance of --workers CPUs (2 by default) or --address.",
    ),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="ray: a running Ray cluster (auto, HOST:6379, or ray://HOST:10001) instead of a local instance; every node needs fedmarket and its torch.",
    ),
    clients_per_round: Optional[int] = typer.Option(None, "--clients-per-round", min=1, help="Clients trained per round, drawn from the seed [default: all]."),
    fraction: Optional[float] = typer.Option(
        None, "--fraction", help="FedAvg's C: the fraction of clients trained per round (instead of --clients-per-round)."
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch [default: one per core]; 1 avoids thrashing when other jobs share the cores."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    batched: bool = typer.Option(
        False,
        "--batched/--sequential",
        help="Train all clients of a round together (vmap; faster on a GPU, equal up to float rounding) or one at a time (bit-identical to the market's trainers).",
    ),
    data_dir: Optional[Path] = typer.Option(
        None,
        "--data-dir",
        file_okay=False,
        help="Folder holding the fmnist / cifar10 files [default: $FEDMARKET_DATA/<dataset>, else <data dir>/datasets/<dataset>].",
    ),
    mode: str = typer.Option("sync", "--mode", help=MODES_HELP),
    stragglers: float = typer.Option(0.0, "--stragglers", min=0.0, max=1.0, help="Share of clients that compute slowly (a seeded choice), e.g. 0.5."),
    slowdown: float = typer.Option(2.0, "--slowdown", min=1.0, help="A straggler's compute time = its cost x this."),
    step_cost: float = typer.Option(
        DEFAULT_STEP_COST, "--step-cost", min=1e-9, help="Virtual seconds per local SGD step (a client's round costs steps x this)."
    ),
    trust: str = typer.Option(
        "ring", "--trust", help="semi: the trust graph: ring, kregular:K, random:D (D-regular), none, or a file of 'a b' edges / JSON {edges}."
    ),
    block_time: float = typer.Option(
        0.0, "--block-time", min=0.0, help="semi: an upload is downloadable from the chain at the next multiple of this (0: at once)."
    ),
    temperature: float = typer.Option(DEFAULT_TEMPERATURE, "--temperature", min=1e-9, help="semi: loss weights softmax(-loss / T) on one batch of own data."),
    staleness_exponent: float = typer.Option(
        DEFAULT_STALENESS_EXPONENT, "--staleness-exponent", min=0.0, help="semi, fedasync: staleness weight (lag + 1)^-a."
    ),
    loss_weights: bool = typer.Option(True, "--loss-weights/--no-loss-weights", help="semi: weigh models by loss (off: the ablation, staleness alone)."),
    staleness: bool = typer.Option(True, "--staleness/--no-staleness", help="semi, fedasync: staleness compensation (off: the ablation)."),
    fedasync_alpha: float = typer.Option(DEFAULT_FEDASYNC_ALPHA, "--fedasync-alpha", min=1e-9, max=1.0, help="fedasync: the server's mixing rate alpha."),
    out: Optional[Path] = typer.Option(None, "--out", file_okay=False, help="Write metrics.json and metrics.png here."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """Run FedAvg over simulated clients without a chain."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from fedmarket.fl.elected_sim import ElectedConfig, check_elected, run_elected
    from fedmarket.fl.learning import learning_fields
    from fedmarket.fl.semi.clock import sync_clock
    from fedmarket.fl.sim import SimConfig, check_config, run_simulation  # loads torch: only when the command runs
    from fedmarket.fl.sim import clients_per_round as per_round_of
    from fedmarket.fl.taskspec import COMMITTEES

    if fraction is not None and clients_per_round is not None:
        raise FedmarketError("give --clients-per-round or --fraction, not both")
    per_round = per_round_of(clients, fraction) if fraction is not None else (clients_per_round or 0)

    if committee not in COMMITTEES:
        raise FedmarketError(f"unknown committee {committee!r}; choose one of: {', '.join(COMMITTEES)}")
    elected = committee == "elected"
    if not elected and (committee_size is not None or utility is not None or first_committee is not None):
        raise FedmarketError("--committee-size, --utility and --first-committee apply to --committee elected only")
    if elected and mode != "sync":
        raise FedmarketError(f"--committee elected runs in rounds (--mode sync), not {mode}")
    seats = None
    if first_committee is not None:
        try:
            seats = tuple(int(part) for part in first_committee.split(","))
        except ValueError:
            raise FedmarketError(f"--first-committee takes comma-separated seat numbers, e.g. 0,3,5; got {first_committee!r}") from None
    chosen = dict(aggregation=aggregation, committee_size=committee_size, utility=utility, first_committee=seats)
    chosen = {k: v for k, v in chosen.items() if v is not None}
    config = (ElectedConfig if elected else SimConfig)(
        dataset=dataset,
        partition=partition,
        clients=clients,
        rounds=rounds,
        batch_size=batch_size,
        lr=lr,
        epochs=epochs,
        model=model,
        input_scaling=input_scaling,
        prox_mu=prox_mu,
        momentum=momentum,
        seed=seed,
        device=device,
        batched=batched,
        data_dir=data_dir,
        holdout=holdout,
        workers=workers,
        clients_per_round=per_round,
        backend=backend,
        address=address,
        **chosen,
    )
    if elected:
        check_elected(config)
    else:
        check_config(config)
    clock = dict(stragglers=stragglers, slowdown=slowdown, step_cost=step_cost)
    if mode != "sync":
        if mode not in MODES:
            raise FedmarketError(f"unknown mode {mode!r}; choose sync, {', '.join(MODES)}")
        if holdout or batched or backend != "local":
            raise FedmarketError(f"--holdout, --batched and --backend ray apply to --mode sync only, not {mode}")
        knobs = dict(trust=trust, block_time=block_time, temperature=temperature, staleness_exponent=staleness_exponent)
        knobs |= dict(loss_weights=loss_weights, staleness=staleness, fedasync_alpha=fedasync_alpha)
        semi_config = AsyncConfig(**learning_fields(config), mode=mode, clients=clients, rounds=rounds, device=device, data_dir=data_dir, **clock, **knobs)
        run_async_mode(semi_config, out, as_json)
        return
    # Progress goes to stderr so that --json leaves stdout a single JSON document; it vanishes
    # when done (the round table says the same) and so never sits above an error line.
    progress = Progress(
        TextColumn("[bold]round"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    # Not on a terminal (a log file, CI): one plain line per round instead of a live bar. With
    # --out, every round is appended to rounds.jsonl as it ends, so an interrupted run keeps
    # what it measured.
    live = err_console.is_terminal
    rounds_file = out / "rounds.jsonl" if out is not None else None
    if rounds_file is not None:
        rounds_file.parent.mkdir(parents=True, exist_ok=True)
        rounds_file.write_text("")
    with progress if live else contextlib.nullcontext():
        task = progress.add_task("sim", total=rounds, status="loading data") if live else None

        def on_round(entry) -> None:
            m = entry.metrics
            status = f"acc {_fmt(m.accuracy)} auc {_fmt(m.auc)} loss {_fmt(m.loss)}" if m.accuracy is not None else f"mse {_fmt(m.mse)}"
            if rounds_file is not None:
                with rounds_file.open("a") as handle:
                    handle.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
            if live:
                progress.update(task, completed=entry.round, status=status)
            else:
                err_console.print(f"round {entry.round}/{rounds}: {status} ({entry.wall_s:.2f} s)", highlight=False, soft_wrap=True)

        result = (run_elected if elected else run_simulation)(config, on_round=on_round)
    written = write_outputs(result, out) if out is not None else {}
    train_sizes = [c.train for c in result.partition.clients]
    timing = sync_clock(train_sizes, batch_size, epochs, rounds, step_cost, stragglers, slowdown, seed, trained=_trained_per_round(result))
    if as_json:
        print_json({**result.to_dict(), "clock": timing, "files": written})
        return
    console.print(result.partition)
    _print_rounds(result)
    for c in getattr(result, "committees", ()):
        console.print(f"round {c.round}: committee {list(c.committee)}, accepted {list(c.accepted)}, next committee {list(c.next_committee)}", highlight=False)
    console.print(
        f"device compute-time ratio {timing['compute_time_ratio']:.1%} on the virtual clock (every round waits for the slowest client)", highlight=False
    )
    for what, path in written.items():
        console.print(f"wrote {what}: {path}", highlight=False)


def _print_rounds(result) -> None:
    from rich.table import Table

    classification = result.rounds[0].metrics.accuracy is not None
    table = Table(title=f"{result.config.aggregation} on {result.config.dataset} ({result.model_id}, {result.device})")
    columns = ["round", "accuracy", "auc", "loss"] if classification else ["round", "mse"]
    for column in columns + ["train loss", "wall s"]:
        table.add_column(column, justify="right", no_wrap=True)
    for r in result.rounds:
        m = r.metrics
        values = [_fmt(m.accuracy), _fmt(m.auc), _fmt(m.loss)] if classification else [_fmt(m.mse)]
        table.add_row(str(r.round), *values, _fmt(r.train_loss), f"{r.wall_s:.2f}")
    console.print(table)
    # CIDs on lines of their own: 46 characters each, they must never be cut to fit a table.
    console.print("global model CIDs:", highlight=False)
    for r in result.rounds:
        console.print(f"  round {r.round}: {r.global_cid}", highlight=False, soft_wrap=True)


def _trained_per_round(result: Any) -> list[list[int]] | None:
    """Who trained in each round when not everybody did: an elected committee's trainers (its
    members score), or the clients sampled; None when every client trained every round."""
    committees = getattr(result, "committees", ())
    if committees:
        return [list(c.trainers) for c in committees]
    sampled = [list(r.clients) for r in result.rounds if r.round > 0]
    if sampled and all(sampled) and any(len(s) < len(result.partition.clients) for s in sampled):
        return sampled
    return None
