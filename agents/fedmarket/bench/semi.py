"""`fedmarket bench semi`: the seed paper's semi-centralised asynchronous FL against its baselines.

Every method side by side in one run, on the same clients (fl.partition with the seed), the same
stragglers (fl.semi.clock.choose_stragglers with the seed) and the same virtual clock:

- semi: the seed paper's method (fl.semi.semi_centralised), and its two ablations, loss weights
  off (staleness alone) and staleness compensation off (loss weights alone); with `temperatures`,
  one more semi row per extra softmax temperature (the alternatives to the chosen formula);
- fedasync: FedAsync (fl.semi.fedasync);
- fedavg: synchronous FedAvg (fl.sim, the seed protocol), once on the clock without stragglers
  and once with them. Synchronous training waits for every client, so its models are the same
  either way: one training run, two clocks, and only the virtual times and the compute-time ratio
  differ between the two rows;
- local: every client alone (fl.semi.local), the floor a personalised method must clear.

Metrics per run: the client models' accuracy and micro AUC, each client's model on its own test
split, pooled (a centralised method's client models are its global model); the accuracy of the
average of the client models on the pooled test data; the device compute-time ratio; the virtual
time the run took. Means and standard deviations over the seeds go into the table; the JSON keeps
every run with its accuracy-against-virtual-time curve, and semi.png plots the first seed's
curves, one panel per data set and split.

`methods` runs a subset; `merge` summarises several runs' reports as one table; `jobs` > 1 runs the (data set, split, seed, method) cells in that many
child processes at once (`fedmarket bench semi` for one cell each, one torch thread each, the
report back as JSON on stdout), so a 100-round run uses every core. A cell's result does not
depend on the others: the parallel report's runs are the sequential one's at one thread, in the
same order.
"""

from __future__ import annotations

import io
import json
import os
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import SEED_PROTOCOL

NAME = "semi"
OPTIONAL_DATASETS = ("fmnist", "cifar10")
BASE_METHODS = ("semi", "semi_no_loss_weights", "semi_no_staleness", "fedasync", "fedavg", "fedavg_stragglers", "local")


@dataclass(frozen=True)
class SemiBenchConfig:
    """The paper's protocol by default: 20 clients, half of them x2 slower, 100 rounds, the CNN."""

    datasets: tuple[str, ...] = ("digits", "mnist")
    partitions: tuple[str, ...] = ("dir:0.1", "pat:2")
    seeds: tuple[int, ...] = (0, 1, 2)
    clients: int = 20
    rounds: int = 100
    stragglers: float = 0.5
    slowdown: float = 2.0
    model: str = SEED_PROTOCOL.model
    lr: float = SEED_PROTOCOL.lr
    trust: str = "ring"
    temperatures: tuple[float, ...] = ()  # extra semi rows with these softmax temperatures
    device: str = "cpu"
    methods: tuple[str, ...] = ()  # a subset of the rows; () = all of them
    jobs: int = 1  # cells run at once, each in its own process


Cell = tuple[str, str, int, str]
"""(data set, split, seed, method): one training run."""
Finished = Callable[[Cell, list[dict[str, Any]]], None]


def all_method_names(temperatures: tuple[float, ...]) -> list[str]:
    return [*BASE_METHODS[:3], *(f"semi_T{t:g}" for t in temperatures), *BASE_METHODS[3:]]


def method_names(config: SemiBenchConfig) -> list[str]:
    """The rows this run reports, in the table's order."""
    every = all_method_names(config.temperatures)
    unknown = [m for m in config.methods if m not in every]
    if unknown:
        raise FedmarketError(f"unknown method {unknown[0]!r}: choose from {', '.join(every)}")
    return [m for m in every if not config.methods or m in config.methods]


def _cells(config: SemiBenchConfig) -> list[Cell]:
    """(data set, split, seed, method) per training run; FedAvg's is one run for both its rows."""
    methods = method_names(config)
    runs = [m for m in methods if m != "fedavg_stragglers"]
    if "fedavg_stragglers" in methods and "fedavg" not in methods:
        runs.insert(methods.index("fedavg_stragglers"), "fedavg")
    return [(d, p, s, m) for d in config.datasets for p in config.partitions for s in config.seeds for m in runs]


def _async_config(config: SemiBenchConfig, dataset: str, partition: str, seed: int, method: str):
    from fedmarket.fl.semi.config import AsyncConfig

    base = AsyncConfig(dataset=dataset, partition=partition, seed=seed, model=config.model, lr=config.lr, clients=config.clients,
                       rounds=config.rounds, stragglers=config.stragglers, slowdown=config.slowdown, trust=config.trust,
                       device=config.device)  # fmt: skip
    if method == "semi_no_loss_weights":
        return replace(base, loss_weights=False)
    if method == "semi_no_staleness":
        return replace(base, staleness=False)
    if method.startswith("semi_T"):
        return replace(base, temperature=float(method.removeprefix("semi_T")))
    return replace(base, mode="semi" if method == "semi" else method)


def _run_async(config: SemiBenchConfig, data, partition: str, seed: int, method: str) -> dict[str, Any]:
    from fedmarket.fl.semi.run import run_async

    started = time.perf_counter()
    result = run_async(_async_config(config, data.name, partition, seed, method), dataset=data)
    return {
        "client_models": result.client_models.to_dict(),
        "average_model": result.average_model.to_dict(),
        "compute_time_ratio": result.clock["compute_time_ratio"],
        "virtual_time": result.clock["makespan"],
        "curve": [[p.time, p.metrics.accuracy] for p in result.curve],
        "facts": result.extra.get("semi"),
        "wall_s": time.perf_counter() - started,
    }


def _run_fedavg(config: SemiBenchConfig, data, partition: str, seed: int) -> dict[str, dict[str, Any]]:
    """FedAvg once; its rows without and with stragglers (the same models on two clocks)."""
    from fedmarket.fl.semi.clock import sync_clock
    from fedmarket.fl.semi.engine import make_setup, score_clients
    from fedmarket.fl.sim import SimConfig, run_simulation

    started = time.perf_counter()
    sim = SimConfig(dataset=data.name, partition=partition, seed=seed, model=config.model, lr=config.lr, clients=config.clients,
                    rounds=config.rounds, device=config.device)  # fmt: skip
    result = run_simulation(sim, dataset=data)
    setup = make_setup(_async_config(config, data.name, partition, seed, "local"), data)  # the same clients and stragglers
    client_models, average_model = score_clients(setup, [result.final_state] * config.clients)
    wall = time.perf_counter() - started
    sizes = setup.parts.train_sizes()
    rows = {}
    for method, share in (("fedavg", 0.0), ("fedavg_stragglers", config.stragglers)):
        clock = sync_clock(sizes, sim.batch_size, sim.epochs, config.rounds, setup.config.step_cost, share, config.slowdown, seed)
        times = [0.0, *clock["round_end_times"]]
        rows[method] = {
            "client_models": client_models.to_dict(),
            "average_model": average_model.to_dict(),
            "compute_time_ratio": clock["compute_time_ratio"],
            "virtual_time": clock["makespan"],
            "curve": [[t, r.metrics.accuracy] for t, r in zip(times, result.rounds)],
            "facts": None,
            "wall_s": wall,
        }
    return rows


def run(config: SemiBenchConfig, on_result: Callable[[dict[str, Any]], None] = lambda _entry: None) -> dict[str, Any]:
    load_before = os.getloadavg()
    cpu_before = _cpu_s()
    started = time.perf_counter()
    methods = method_names(config)
    cells = _cells(config)
    by_cell: dict[Cell, list[dict[str, Any]]] = {}

    def finished(cell: Cell, entries: list[dict[str, Any]]) -> None:
        by_cell[cell] = [e for e in entries if e["method"] in methods]  # fedavg's run when only fedavg_stragglers was asked for
        for entry in by_cell[cell]:
            on_result(entry)  # reported as each finishes: a long run shows progress

    (_run_cells_in_processes if config.jobs > 1 else _run_cells_here)(config, cells, finished)
    runs = [entry for cell in cells for entry in by_cell[cell]]  # the table's order, whichever finished first
    return {
        "benchmark": NAME,
        "settings": {**asdict(config), "methods": methods, "batch_size": SEED_PROTOCOL.batch_size, "local_epochs": SEED_PROTOCOL.epochs},
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "summary": summarise(runs, methods),
        "runs": runs,
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu_s() - cpu_before,
    }


def _cpu_s() -> float:
    """CPU seconds of this process and of the child processes it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _run_cells_here(config: SemiBenchConfig, cells: list[Cell], finished: Finished) -> None:
    from fedmarket.fl.datasets import load_dataset

    data, loaded = None, None
    for cell in cells:
        name, partition, seed, method = cell
        if loaded != name:
            data, loaded = load_dataset(name, download=False), name
        if method == "fedavg":
            rows = _run_fedavg(config, data, partition, seed)  # and fedavg_stragglers
        else:
            rows = {method: _run_async(config, data, partition, seed, method)}
        finished(cell, [{"dataset": name, "partition": partition, "seed": seed, "method": done, **row} for done, row in rows.items()])


def _cell_command(config: SemiBenchConfig, cell: Cell, out: Path) -> list[str]:
    """`fedmarket bench semi` for one cell, one torch thread, the report as JSON on stdout."""
    name, partition, seed, method = cell
    rows = "fedavg,fedavg_stragglers" if method == "fedavg" else method  # one run, both clocks' rows
    return [
        sys.executable, "-m", "fedmarket.cli.app", "bench", "semi", "--datasets", name, "--partitions", partition,
        "--seeds", str(seed), "--methods", rows, "--clients", str(config.clients), "--rounds", str(config.rounds),
        "--stragglers", repr(config.stragglers), "--slowdown", repr(config.slowdown), "--model", config.model,
        "--lr", repr(config.lr), "--trust", config.trust, "--temperatures", ",".join(f"{t:g}" for t in config.temperatures),
        "--device", config.device, "--threads", "1", "--out", str(out), "--json",
    ]  # fmt: skip


def _run_cells_in_processes(config: SemiBenchConfig, cells: list[Cell], finished: Finished) -> None:
    """Every cell in its own child process, `config.jobs` at a time; the first failure stops them all."""
    waiting = list(cells)
    running: dict[subprocess.Popen[bytes], tuple[Path, Cell]] = {}
    with tempfile.TemporaryDirectory(prefix="fedmarket-semi-") as scratch:
        try:
            while waiting or running:
                while waiting and len(running) < config.jobs:
                    cell = waiting.pop(0)
                    out = Path(scratch) / str(len(waiting))
                    out.mkdir()
                    with open(out / "stdout", "wb") as stdout, open(out / "stderr", "wb") as stderr:
                        running[subprocess.Popen(_cell_command(config, cell, out), stdout=stdout, stderr=stderr)] = (out, cell)
                proc = _wait_any(list(running))
                out, cell = running.pop(proc)
                if proc.returncode != 0:
                    lines = (out / "stderr").read_text(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"]
                    raise FedmarketError(f"bench semi cell {' '.join(map(str, cell))} failed: {lines[-1]}")
                finished(cell, json.loads((out / "stdout").read_text())["runs"])
        finally:
            for proc in running:
                proc.kill()
                proc.wait()


def _wait_any(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The first of `procs` to exit, reaped; woken by the kernel (pidfds), never reaping others."""
    fds = {os.pidfd_open(proc.pid): proc for proc in procs}
    try:
        with selectors.DefaultSelector() as selector:
            for fd in fds:
                selector.register(fd, selectors.EVENT_READ)
            ready = selector.select()
        proc = fds[ready[0][0].fd]
        proc.wait()
        return proc
    finally:
        for fd in fds:
            os.close(fd)


PROTOCOL_KEYS = ("clients", "rounds", "stragglers", "slowdown", "model", "lr", "trust", "device", "batch_size", "local_epochs")
"""Settings that must agree for runs to be summarised together."""


def merge(reports: list[dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """One report from several runs of one protocol (a long table split across sessions, machines
    or seeds): their runs side by side, summarised again; each cell may come from one run only."""
    first = reports[0]["settings"]
    for report, source in zip(reports[1:], sources[1:]):
        for key in PROTOCOL_KEYS:
            if report["settings"].get(key) != first.get(key):
                raise FedmarketError(f"{source} ran another protocol: {key} {report['settings'].get(key)!r}, {sources[0]} {first.get(key)!r}")
    runs: list[dict[str, Any]] = []
    seen: dict[Cell, str] = {}
    for report, source in zip(reports, sources):
        for entry in report["runs"]:
            cell = (entry["dataset"], entry["partition"], entry["seed"], entry["method"])
            if cell in seen:
                raise FedmarketError(f"{' '.join(map(str, cell))} is in both {seen[cell]} and {source}: merge each run once")
            seen[cell] = source
            runs.append(entry)

    def ordered(key: str) -> list[Any]:
        return list(dict.fromkeys(v for report in reports for v in report["settings"][key]))

    datasets, partitions = ordered("datasets"), ordered("partitions")
    temperatures = sorted({t for report in reports for t in report["settings"].get("temperatures", ())})
    table = all_method_names(tuple(temperatures))
    methods = [m for m in table if any(r["method"] == m for r in runs)]
    runs.sort(key=lambda r: (datasets.index(r["dataset"]), partitions.index(r["partition"]), r["seed"], table.index(r["method"])))
    return {
        "benchmark": NAME,
        "settings": {
            **first,
            "datasets": datasets,
            "partitions": partitions,
            "seeds": sorted({r["seed"] for r in runs}),
            "methods": methods,
            "temperatures": temperatures,
            "jobs": max(report["settings"].get("jobs", 1) for report in reports),
        },  # fmt: skip
        "machine": reports[0]["machine"],
        "merged_from": [
            {
                "source": source,
                "measured_at": report["machine"]["measured_at"],
                "load_average_before": report["machine"]["load_average_before"],
                "load_average_after": report["machine"]["load_average_after"],
                "seeds": report["settings"]["seeds"],
                "methods": [m for m in methods if any(r["method"] == m for r in report["runs"])],
                "wall_s": report["wall_s"],
                "cpu_s": report["cpu_s"],
            }
            for report, source in zip(reports, sources)
        ],  # fmt: skip
        "summary": summarise(runs, methods),
        "runs": runs,
        "wall_s": sum(report["wall_s"] for report in reports),
        "cpu_s": sum(report["cpu_s"] for report in reports),
    }


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def summarise(runs: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Mean and standard deviation over the seeds, per data set, split and method."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["partition"]), []).append(r)
    rows = []
    for (dataset, partition), group in groups.items():
        for method in methods:
            mine = [r for r in group if r["method"] == method]
            if not mine:  # a merged report need not have every method on every split
                continue
            rows.append({
                "dataset": dataset, "partition": partition, "method": method, "seeds": len(mine),
                "accuracy": _mean_std([r["client_models"]["accuracy"] for r in mine]),
                "auc": _mean_std([r["client_models"]["auc"] for r in mine]),
                "average_model_accuracy": _mean_std([r["average_model"]["accuracy"] for r in mine]),
                "compute_time_ratio": _mean_std([r["compute_time_ratio"] for r in mine]),
                "virtual_time": _mean_std([r["virtual_time"] for r in mine]),
            })  # fmt: skip
    return rows


def _pm(pair: list[float], percent: bool = True) -> str:
    mean, std = pair
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if percent else f"{mean:.2f} ± {std:.2f}"


def to_markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    rows = [[r["dataset"], r["partition"], r["method"], str(r["seeds"]), _pm(r["accuracy"]), _pm(r["auc"]), _pm(r["average_model_accuracy"]),
             _pm(r["compute_time_ratio"]), _pm(r["virtual_time"], percent=False)] for r in report["summary"]]  # fmt: skip
    headers = ["data", "split", "method", "seeds", "accuracy %", "AUC %", "avg-model acc %", "compute-time ratio %", "virtual time s"]
    jobs, merged = s.get("jobs", 1), report.get("merged_from", [])
    model = "auto (cnn for images: McMahan et al.'s two-conv CNN)" if s["model"] == "auto" else s["model"]
    threads = f"{jobs} processes of 1 thread, one run each" if jobs > 1 else f"{m['torch_threads']} threads"
    load = _load(m)
    return (
        "# bench semi: semi-centralised asynchronous FL (the seed paper) vs FedAsync, FedAvg and Local\n\n"
        f"{s['clients']} clients, {s['rounds']} rounds per client, {s['stragglers']:.0%} stragglers x{s['slowdown']:g} "
        f"(FedAvg also without), model {model}, lr {s['lr']}, batch {s['batch_size']}, {s['local_epochs']} local epoch, "
        f"trust graph {s['trust']}, seeds {', '.join(map(str, s['seeds']))} (mean ± std).\n"
        "Accuracy and AUC: each client's model on its own test split, pooled (FedAvg, FedAsync: the global model); "
        "avg-model: the mean of the client models on the pooled test data. FedAvg's two rows are one training run on two clocks.\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({threads}), device {s['device']}; "
        + (
            f"{len(merged)} runs merged, {report['wall_s']:.0f} s wall and {report['cpu_s']:.0f} s CPU in all:\n"
            + "".join(f"{_source_line(x)}\n" for x in merged)
            if merged
            else f"measured {m['measured_at']}; load average {load}; whole run {report['wall_s']:.0f} s wall, {report['cpu_s']:.0f} s CPU.\n"
        )
        + "\n"
        + markdown_table(headers, rows)
        + "\n\nAccuracy against virtual time (first seed): semi.png\n"
    )


def _load(facts: dict[str, Any]) -> str:
    """The load averages before -> after, as `facts` (a report's machine, a merged source) has them."""
    return ", ".join(f"{v:.2f}" for v in facts["load_average_before"]) + " -> " + ", ".join(f"{v:.2f}" for v in facts["load_average_after"])


def _source_line(source: dict[str, Any]) -> str:
    return (
        f"- {source['source']}: seeds {', '.join(map(str, source['seeds']))}, {', '.join(source['methods'])}; "
        f"measured {source['measured_at']}, load average {_load(source)}, {source['wall_s']:.0f} s wall, {source['cpu_s']:.0f} s CPU."
    )


def plot(report: dict[str, Any], path: Path) -> Path:
    """semi.png: client-model accuracy against virtual time, one line per method, first seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedmarket.files import atomic_write

    first = report["settings"]["seeds"][0]
    panels = sorted({(r["dataset"], r["partition"]) for r in report["runs"]})
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, (dataset, partition) in zip(axes[0], panels):
        for r in report["runs"]:
            if (r["dataset"], r["partition"], r["seed"]) == (dataset, partition, first):
                axis.plot([p[0] for p in r["curve"]], [p[1] for p in r["curve"]], label=r["method"], linewidth=1.2)
        axis.set_title(f"{dataset} {partition} (seed {first})")
        axis.set_xlabel("virtual time (s)")
        axis.set_ylabel("client models' accuracy")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    return atomic_write(path, png.getvalue())
