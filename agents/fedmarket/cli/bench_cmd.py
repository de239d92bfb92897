"""`fedmarket bench`: every benchmark's command; the benchmarks themselves are fedmarket.bench's.

Each command parses its options, calls the benchmark's pure `run` (or `measure`), writes
bench/results/<name>.json and the markdown beside it, and prints. Claims of speed live in those
results, never in timed tests. torch, web3 and the market load inside the commands, so that
`fedmarket --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.bench import accuracy as accuracy_bench
from fedmarket.bench import cid as cid_bench
from fedmarket.bench import fairness as fairness_bench
from fedmarket.bench import gas as gas_bench
from fedmarket.bench import overhead as overhead_bench
from fedmarket.bench import results_dir, write_results
from fedmarket.bench import scale as scale_bench
from fedmarket.bench import semi as semi_bench
from fedmarket.bench import train as train_bench
from fedmarket.chain.protocol import MAX_TRAINERS, MAX_VALIDATORS
from fedmarket.cli.output import console, err_console, one_line_errors, print_json
from fedmarket.errors import FedmarketError

bench_app = typer.Typer(help="Benchmarks; results in bench/results/.", no_args_is_help=True)

THREADS_HELP = "CPU threads for torch [default: one per core]; 1 avoids thrashing when other jobs share the cores."


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def _publish(name: str, report: dict[str, Any], markdown: str, out: Path, as_json: bool, page: Callable[[str, Path, Path], None]) -> None:
    """Write <out>/<name>.json and .md; print the report as JSON (--json), else `page(markdown, json, md)`."""
    json_path, md_path = write_results(name, report, markdown, out)
    if as_json:
        print_json(report)
    else:
        page(markdown, json_path, md_path)


def _echo_page(markdown: str, json_path: Path, md_path: Path) -> None:
    typer.echo(markdown)
    console.print(f"wrote {json_path} and {md_path}", highlight=False)


def _rich_page(markdown: str, json_path: Path, md_path: Path) -> None:
    console.print(markdown, highlight=False, soft_wrap=True, markup=False)
    console.print(f"\nwrote {json_path} and {md_path}", highlight=False, soft_wrap=True)


def _gas_page(markdown: str, json_path: Path, md_path: Path) -> None:
    console.print(markdown, markup=False, highlight=False)
    console.print(f"written {json_path} and {md_path}", style="dim")


def _accuracy_page(markdown: str, json_path: Path, md_path: Path) -> None:
    typer.echo(markdown)
    typer.echo(f"wrote {json_path} and {md_path}")


def _use_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _read_report(path: Path, benchmark: str) -> dict[str, Any]:
    """A results file this command wrote, or one clear error."""
    import json

    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FedmarketError(f"cannot read {path}: {exc}") from None
    if not isinstance(report, dict) or report.get("benchmark") != benchmark:
        raise FedmarketError(f"{path} is not a bench {benchmark} report")
    return report


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str, error: str) -> list[int]:
    """Comma-separated integers; anything else is `error`, in one line."""
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise FedmarketError(error) from None


# --------------------------------------------------------------------------------------- gas


@bench_app.command(gas_bench.NAME)
@one_line_errors
def gas(
    trainers: int = typer.Option(gas_bench.DEFAULT_TRAINERS, "--trainers", min=1, max=gas_bench.CAP_TRAINERS, help="Trainers of the main scenario."),
    committee: int = typer.Option(gas_bench.DEFAULT_COMMITTEE, "--committee", min=1, max=gas_bench.CAP_COMMITTEE, help="Committee size."),
    steps: str = typer.Option(",".join(map(str, gas_bench.DEFAULT_STEPS)), "--steps", help="Trainer counts of the scaling series (comma-separated)."),
    worst_case: bool = typer.Option(
        True,
        "--worst-case/--no-worst-case",
        help=f"Also measure the caps ({gas_bench.CAP_TRAINERS} trainers, committee {gas_bench.CAP_COMMITTEE} of {gas_bench.CAP_VALIDATORS}).",
    ),
    out: Path = typer.Option(results_dir(), "--out", help="Directory for gas.json and gas.md."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """Gas of every Marketplace function and per trainer per round; results in bench/results/gas.{json,md}."""
    series = sorted(set(_ints(steps, f"--steps takes comma-separated trainer counts, not {steps!r}")))
    if any(not 1 <= n <= gas_bench.CAP_TRAINERS for n in series):
        raise FedmarketError(f"--steps must lie in 1..{gas_bench.CAP_TRAINERS}: {series}")
    with console.status("measuring gas") as status:
        report = gas_bench.run(trainers, committee, series, worst_case=worst_case, progress=lambda text: status.update(f"measuring gas: {text}"))
    _publish(gas_bench.NAME, report, gas_bench.to_markdown(report), out, json_out, _gas_page)


# ------------------------------------------------------------------------------------- train


@bench_app.command(train_bench.NAME)
@one_line_errors
def train(
    scenarios: str = typer.Option(train_bench.DEFAULT_SCENARIOS, "--scenarios", help="Comma-separated DATASET:PARTITION pairs."),
    clients: int = typer.Option(train_bench.Settings.clients, "--clients", min=1, help="Simulated clients."),
    rounds: int = typer.Option(train_bench.Settings.rounds, "--rounds", min=1, help="Timed rounds per mode (after one warm-up round)."),
    model: str = typer.Option(train_bench.Settings.model, "--model", help="The model of the timed rounds (fedavgcnn: PFLlib's, like for like)."),
    input_scaling: str = typer.Option(train_bench.Settings.input_scaling, "--input-scaling", help="standard or pm1 (PFLlib's [-1, 1])."),
    modes: str = typer.Option(",".join(train_bench.MODES), "--modes", help="Comma-separated: sequential, workers."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes of the workers mode [default: one per core]."),
    target_rounds: int = typer.Option(
        0, "--target-rounds", min=0, help="Also run our default CNN in workers until the target accuracy, for at most this many rounds (0: skip)."
    ),
    target_accuracy: float = typer.Option(train_bench.Settings.target_accuracy, "--target-accuracy", min=0.0, max=1.0),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    out: Path = typer.Option(results_dir(), "--out", file_okay=False, help="Directory for train.json and train.md."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """Seconds per round like for like with PFLlib, sequential vs worker processes, and time to 85 %; bench/results/train.{json,md}."""
    _use_threads(threads)
    settings = train_bench.Settings(clients=clients, rounds=rounds, model=model, input_scaling=input_scaling, workers=workers, seed=seed,
                                    target_accuracy=target_accuracy, target_rounds=target_rounds)  # fmt: skip

    def show(entry: dict[str, Any]) -> None:
        timings = ", ".join(f"{mode} {entry[mode]['seconds_per_round']:.2f} s/round" for mode in train_bench.MODES if mode in entry)
        err_console.print(f"{entry['dataset']} {entry['partition']} ({entry['model']}): {timings}", highlight=False)

    report = train_bench.run(train_bench.parse_scenarios(scenarios), settings, tuple(_csv(modes)), on_result=show)
    _publish(train_bench.NAME, report, train_bench.to_markdown(report), out, as_json, _echo_page)


# ---------------------------------------------------------------------------------- accuracy


@bench_app.command(accuracy_bench.NAME)
@one_line_errors
def accuracy(
    datasets: str = typer.Option("auto", "--datasets", help="Comma-separated; auto: digits, mnist, and fmnist / cifar10 when their files are present."),
    partitions: str = typer.Option(accuracy_bench.DEFAULT_PARTITIONS, "--partitions", help="Comma-separated partition schemes."),
    rounds: str = typer.Option("digits=40,mnist=10,fmnist=10,cifar10=10", "--rounds", help="N for all, or DATASET=N,..."),
    clients: int = typer.Option(20, "--clients", min=1),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    batched: bool = typer.Option(True, "--batched/--sequential"),
    out: Path = typer.Option(results_dir(), "--out", file_okay=False, help="Directory for accuracy.json and accuracy.md."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """FedAvg (seed protocol, PAT and Dir(0.1)) next to centralised training; bench/results/accuracy.{json,md}."""
    _use_threads(threads)
    from fedmarket.fl.datasets import dataset_available
    from fedmarket.fl.partition import parse_scheme
    from fedmarket.fl.training import resolve_device

    if datasets == "auto":
        names = ["digits", "mnist"] + [d for d in accuracy_bench.OPTIONAL_DATASETS if dataset_available(d)]
    else:
        names = _csv(datasets)
    schemes = [str(parse_scheme(p)) for p in _csv(partitions)]
    dev = str(resolve_device(device))

    def show(entry: dict[str, Any]) -> None:
        f, c = entry["fedavg"]["final"], entry["centralised"]["metrics"]
        err_console.print(
            f"{entry['dataset']} {entry['partition']} ({entry['rounds']} rounds): FedAvg acc {f['accuracy']:.3f}, centralised acc {c['accuracy']:.3f}",
            highlight=False,
        )

    report = accuracy_bench.run(names, schemes, accuracy_bench.parse_rounds(rounds, names), clients, seed, dev, batched, on_result=show)
    _publish(accuracy_bench.NAME, report, accuracy_bench.to_markdown(report), out, as_json, _accuracy_page)


# ---------------------------------------------------------------------------------- fairness


@bench_app.command(fairness_bench.NAME)
@one_line_errors
def fairness(
    dataset: str = typer.Option(fairness_bench.FairnessConfig.dataset, "--dataset"),
    partitions: str = typer.Option(
        fairness_bench.FairnessConfig.partition, "--partitions", "--partition", help="Comma-separated splits (iid, pat:K, dir:ALPHA), one scenario each."
    ),
    clients: int = typer.Option(fairness_bench.FairnessConfig.clients, "--clients", min=2, help="Trainers, attackers among them."),
    rounds: int = typer.Option(fairness_bench.FairnessConfig.rounds, "--rounds", min=1),
    seeds: str = typer.Option(",".join(map(str, fairness_bench.FairnessConfig.seeds)), "--seeds", help="Comma-separated seeds; roles rotate with the seed."),
    scenarios: str = typer.Option(
        fairness_bench.DEFAULT_SCENARIOS, "--scenarios", help="Comma-separated MODEL:LR pairs, one scenario each (models: cnn, mlp, linear)."
    ),
    validators: int = typer.Option(fairness_bench.FairnessConfig.validators, "--validators", min=1),
    validator_samples: int = typer.Option(fairness_bench.FairnessConfig.validator_samples, "--validator-samples", min=10),
    attacks: str = typer.Option(",".join(fairness_bench.SEAT_CYCLE), "--attacks", help="Attack kinds dealt to the attacking seats in turn."),
    attack_share: float = typer.Option(fairness_bench.FairnessConfig.attack_share, "--attack-share", min=0.0, max=0.49),
    clean_min: float = typer.Option(
        fairness_bench.FairnessConfig.clean_min, "--clean-min", min=0.0, max=1.0, help="The dirtiest honest trainer's share of clean labels."
    ),
    utilities: str = typer.Option("", "--utilities", help="Comma-separated utilities (default: all)."),
    device: str = typer.Option(fairness_bench.FairnessConfig.device, "--device"),
    out: Path = typer.Option(results_dir(), "--out", file_okay=False, help="Directory for fairness.json and .md."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """Payment share of honest vs dishonest trainers under each utility; bench/results/fairness.{json,md}."""
    seed_list = tuple(_ints(seeds, "--seeds takes comma-separated integers"))
    if not seed_list:
        raise FedmarketError("give at least one seed")
    kinds = tuple(_csv(attacks))
    unknown = sorted(set(kinds) - set(fairness_bench.ATTACK_ROLES))
    if unknown:
        raise FedmarketError(f"unknown attack {', '.join(unknown)}; choose from {', '.join(fairness_bench.ATTACK_ROLES)}")
    reports = []
    for model, lr in fairness_bench.parse_scenarios(scenarios):
        for split in _csv(partitions):
            config = fairness_bench.FairnessConfig(
                dataset=dataset,
                partition=split,
                clients=clients,
                rounds=rounds,
                seeds=seed_list,
                model=model,
                lr=lr,
                validators=validators,
                validator_samples=validator_samples,
                attacks=kinds,
                attack_share=attack_share,
                clean_min=clean_min,
                utilities=tuple(_csv(utilities)),
                device=device,
            )

            def show(name: str, summary: dict[str, Any], label: str = f"{model} lr {lr} {split}") -> None:
                roles = summary["roles"]
                pct = fairness_bench.percent
                err_console.print(
                    f"{label} {name}: "
                    + ", ".join(f"{r} {pct(v['pool_share'])}" for r, v in roles.items())
                    + f"; targets met {sum(summary['checks'].values())}/{len(summary['checks'])} ({summary['wall_s']:.0f} s)",
                    highlight=False,
                )

            reports.append(fairness_bench.run(config, on_result=show))
    report, markdown = fairness_bench.merge_reports(reports)
    _publish(fairness_bench.NAME, report, markdown, out, as_json, _echo_page)


# --------------------------------------------------------------------------------------- cid


@bench_app.command(cid_bench.NAME)
@one_line_errors
def cid(
    sizes: str = typer.Option(cid_bench.DEFAULT_SIZES_MB, "--sizes", help="Blob sizes in MB (10**6 bytes), comma-separated."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs per measurement; the best counts."),
    ipfs: str = typer.Option(None, "--ipfs", help="Also measure the Kubo node at this RPC URL."),
    out: Path = typer.Option(None, "--out", help="Directory for cid.json and cid.md [default: bench/results].", file_okay=False),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """MB/s of CID computation and embedded (and Kubo) store put/get; results in bench/results/cid.{json,md}."""
    sizes_mb = _ints(sizes, f"--sizes takes comma-separated whole MB, not {sizes!r}")
    if not sizes_mb or any(s < 1 for s in sizes_mb):
        raise FedmarketError(f"--sizes must be whole MB >= 1: {sizes!r}")
    with console.status("benchmarking CIDs") as status:
        report = cid_bench.measure(sizes_mb, repeats, ipfs, progress=lambda text: status.update(f"benchmarking CIDs: {text}"))
    _publish(cid_bench.NAME, report, cid_bench.to_markdown(report), out or results_dir(), json_out, _rich_page)


# ---------------------------------------------------------------------------------- overhead

Settings = overhead_bench.Settings  # its defaults are the options'


@bench_app.command(overhead_bench.NAME)
@one_line_errors
def overhead(
    trainers: int = typer.Option(Settings.trainers, "--trainers", min=1, max=MAX_TRAINERS, help="Trainers."),
    validators: int = typer.Option(Settings.validators, "--validators", min=1, max=MAX_VALIDATORS, help="Validators (the committee is up to 3)."),
    rounds: int = typer.Option(Settings.rounds, "--rounds", min=1, help="Training rounds per market."),
    dataset: str = typer.Option(Settings.dataset, "--dataset", help="digits, mnist, fmnist, cifar10 or diabetes."),
    model: str = typer.Option(Settings.model, "--model", help="cnn, mlp, linear or auto."),
    partition: str = typer.Option(Settings.partition, "--partition", help="iid, pat:K or dir:ALPHA."),
    lr: float = typer.Option(Settings.lr, "--lr", help="Local SGD learning rate."),
    seed: int = typer.Option(Settings.seed, "--seed"),
    chains: str = typer.Option(",".join(overhead_bench.CHAINS), "--chains", help="Comma-separated: embedded, anvil."),
    devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated torch devices [default: cpu, and cuda when present]."),
    threads: int = typer.Option(Settings.threads, "--threads", min=1, help="torch CPU threads (the agents use 1)."),
    ipfs: Optional[str] = typer.Option(None, "--ipfs", help="Kubo RPC URL (default: a fresh embedded store per market)."),
    out: Optional[Path] = typer.Option(None, "--out", file_okay=False, help="Directory for overhead.json and overhead.md [default: bench/results]."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report."),
) -> None:
    """(chain + storage) / round wall time of a whole market, on the embedded chain and anvil, per device; gas per round.
    Results in bench/results/overhead.{json,md}."""
    chain_list = _csv(chains)
    unknown = [c for c in chain_list if c not in overhead_bench.CHAINS]
    if not chain_list or unknown:
        raise FedmarketError(f"--chains takes {' and/or '.join(overhead_bench.CHAINS)}, not {chains!r}")
    device_list = _csv(devices) if devices else overhead_bench.default_devices()
    if not device_list:
        raise FedmarketError("--devices needs at least one device")
    import torch

    if any(d.startswith("cuda") for d in device_list) and not torch.cuda.is_available():
        raise FedmarketError("--devices names cuda but torch sees no GPU on this machine")
    settings = Settings(trainers=trainers, validators=validators, rounds=rounds, dataset=dataset, model=model,
                        partition=partition, lr=lr, seed=seed, threads=threads)  # fmt: skip
    settings.spec()  # a bad dataset / model / partition fails here, in one line
    with console.status("measuring chain overhead") as status:
        report = overhead_bench.run(settings, chain_list, device_list, ipfs, progress=lambda text: status.update(f"measuring chain overhead: {text}"))
    _publish(overhead_bench.NAME, report, overhead_bench.to_markdown(report), out or results_dir(), as_json, _rich_page)


# -------------------------------------------------------------------------------------- semi

SemiDefaults = semi_bench.SemiBenchConfig  # its defaults are the options'


@bench_app.command(semi_bench.NAME)
@one_line_errors
def semi(
    datasets: str = typer.Option("auto", "--datasets", help="Comma-separated; auto: digits, mnist, and fmnist / cifar10 when their files are present."),
    partitions: str = typer.Option(",".join(SemiDefaults.partitions), "--partitions", help="Comma-separated partition schemes."),
    seeds: str = typer.Option(",".join(map(str, SemiDefaults.seeds)), "--seeds", help="Comma-separated seeds."),
    clients: int = typer.Option(SemiDefaults.clients, "--clients", min=1),
    rounds: int = typer.Option(SemiDefaults.rounds, "--rounds", min=1, help="Local rounds per client."),
    stragglers: float = typer.Option(SemiDefaults.stragglers, "--stragglers", min=0.0, max=1.0),
    slowdown: float = typer.Option(SemiDefaults.slowdown, "--slowdown", min=1.0),
    model: str = typer.Option(SemiDefaults.model, "--model", help="cnn, fedavgcnn, mlp, linear or auto."),
    lr: float = typer.Option(SemiDefaults.lr, "--lr"),
    trust: str = typer.Option(SemiDefaults.trust, "--trust", help="ring, kregular:K, random:D, none or a file of edges."),
    temperatures: str = typer.Option("", "--temperatures", help="Extra semi rows with these loss-weight temperatures (comma-separated)."),
    methods: str = typer.Option(
        "all",
        "--methods",
        help="Comma-separated rows to run (semi, semi_no_loss_weights, semi_no_staleness, semi_T<t>, fedasync, fedavg, fedavg_stragglers, local) or all.",
    ),
    jobs: int = typer.Option(
        SemiDefaults.jobs, "--jobs", min=1, help="Runs at once, each its own process with one torch thread (one per core uses every core)."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    device: str = typer.Option(SemiDefaults.device, "--device", help="cpu, cuda or auto."),
    out: Path = typer.Option(results_dir(), "--out", file_okay=False, help="Directory for semi.json, semi.md and semi.png."),
    merge: str = typer.Option(
        "", "--merge", help="Comma-separated semi.json files of earlier runs of one protocol: one table of all their runs, nothing trained."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """Semi-centralised async FL, its ablations, FedAsync, FedAvg (with and without stragglers) and Local; bench/results/semi.{json,md,png}."""
    if merge:
        sources = _csv(merge)
        report = semi_bench.merge([_read_report(Path(source), semi_bench.NAME) for source in sources], sources)
        semi_bench.plot(report, out / "semi.png")
        _publish(semi_bench.NAME, report, semi_bench.to_markdown(report), out, as_json, _echo_page)
        return
    _use_threads(threads)
    from fedmarket.fl.datasets import dataset_available
    from fedmarket.fl.partition import parse_scheme

    names = ["digits", "mnist"] + [d for d in semi_bench.OPTIONAL_DATASETS if dataset_available(d)] if datasets == "auto" else _csv(datasets)
    try:
        extra = tuple(float(t) for t in _csv(temperatures))
    except ValueError:
        raise FedmarketError(f"--temperatures takes comma-separated numbers, not {temperatures!r}") from None
    config = semi_bench.SemiBenchConfig(
        datasets=tuple(names),
        partitions=tuple(str(parse_scheme(p)) for p in _csv(partitions)),
        seeds=tuple(_ints(seeds, "--seeds takes comma-separated integers")),
        clients=clients, rounds=rounds, stragglers=stragglers, slowdown=slowdown, model=model, lr=lr, trust=trust,
        temperatures=extra, device=device, methods=() if methods == "all" else tuple(_csv(methods)), jobs=jobs,
    )  # fmt: skip
    semi_bench.method_names(config)  # an unknown --methods name fails here, before any training
    if not config.seeds:
        raise FedmarketError("give at least one seed")

    def show(entry: dict[str, Any]) -> None:
        err_console.print(
            f"{entry['dataset']} {entry['partition']} seed {entry['seed']} {entry['method']}: acc {entry['client_models']['accuracy']:.3f}, "
            f"compute-time ratio {entry['compute_time_ratio']:.1%} ({entry['wall_s']:.0f} s)",
            highlight=False,
        )

    report = semi_bench.run(config, on_result=show)
    semi_bench.plot(report, out / "semi.png")
    _publish(semi_bench.NAME, report, semi_bench.to_markdown(report), out, as_json, _echo_page)


# ------------------------------------------------------------------------------------- scale


@bench_app.command(scale_bench.NAME)
@one_line_errors
def scale(
    datasets: str = typer.Option(scale_bench.DEFAULT_DATASETS, "--datasets", help="Comma-separated data sets (tiled until every client gets 8 samples)."),
    clients: int = typer.Option(scale_bench.Settings.clients, "--clients", min=1),
    fraction: float = typer.Option(scale_bench.Settings.fraction, "--fraction", help="FedAvg's C: the share of clients trained per round."),
    rounds: int = typer.Option(scale_bench.Settings.rounds, "--rounds", min=1, help="Timed rounds per mode (after one warm-up round)."),
    partition: str = typer.Option(scale_bench.Settings.partition, "--partition"),
    model: str = typer.Option(scale_bench.Settings.model, "--model", help="cnn, fedavgcnn, mlp, linear or auto."),
    modes: str = typer.Option(",".join(scale_bench.MODES), "--modes", help="Comma-separated: sequential, workers, ray."),
    cpus: int = typer.Option(scale_bench.Settings.cpus, "--cpus", min=1, help="Worker processes of the workers mode and CPUs of the local Ray instance."),
    address: Optional[str] = typer.Option(None, "--address", help="ray mode: a running Ray cluster (auto, HOST:6379, ray://HOST:10001)."),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    out: Path = typer.Option(results_dir(), "--out", file_okay=False, help="Directory for scale.json and scale.md."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON on stdout."),
) -> None:
    """1,000 clients at C = 0.05: seconds per round, one at a time vs worker processes vs Ray tasks; bench/results/scale.{json,md}."""
    _use_threads(threads)
    settings = scale_bench.Settings(clients=clients, fraction=fraction, rounds=rounds, partition=partition, model=model, cpus=cpus, seed=seed, address=address)

    def show(entry: dict[str, Any]) -> None:
        timings = ", ".join(f"{mode} {entry[mode]['seconds_per_round']:.2f} s/round" for mode in scale_bench.MODES if mode in entry)
        err_console.print(f"{entry['dataset']} ({entry['samples']} x {entry['copies']}): {timings}", highlight=False)

    report = scale_bench.run(_csv(datasets), settings, tuple(_csv(modes)), on_result=show)
    _publish(scale_bench.NAME, report, scale_bench.to_markdown(report), out, as_json, _echo_page)
