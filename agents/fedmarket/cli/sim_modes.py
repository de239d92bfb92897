"""`fedmarket sim --mode semi|fedasync|local`: the asynchronous and per-client runs (fl.semi).

`sim_cmd` parses the options; this runs the method on the virtual clock, prints its progress
(one line per round's worth of client updates, on stderr), the final metrics, and writes
metrics.json, the records (semi: records.jsonl) and a PNG of accuracy against virtual time.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fedmarket.cli.output import console, err_console, print_json
from fedmarket.files import atomic_write

MODES_HELP = (
    "sync: FedAvg / FedProx rounds (every client waits for the slowest); semi: the seed paper's semi-centralised asynchronous FL "
    "(trust graph, gossip, loss weights x staleness, no global model); fedasync: FedAsync (the server mixes each arriving model, "
    "weighted down by its staleness); local: every client trains alone."
)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def save_figure(figure, path: Path) -> Path:
    """Lay out `figure`, write it to `path` as a PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    return atomic_write(path, png.getvalue())


def write_async_outputs(result, out_dir: Path) -> dict[str, str]:
    """metrics.json, records.jsonl (semi) and metrics.png (client-model accuracy vs virtual time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {"metrics": str(atomic_write(out_dir / "metrics.json", json.dumps(result.to_dict(), indent=2) + "\n"))}
    if result.records is not None:
        lines = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in result.records.records)
        written["records"] = str(atomic_write(out_dir / "records.jsonl", lines))
    figure, axis = plt.subplots(figsize=(6, 4))
    values = [p.metrics.accuracy if p.metrics.accuracy is not None else p.metrics.mse for p in result.curve]
    axis.plot([p.time for p in result.curve], values, marker="o")
    axis.set_xlabel("virtual time (s)")
    axis.set_ylabel("client models' accuracy (own test splits, pooled)" if result.curve[0].metrics.accuracy is not None else "MSE")
    axis.grid(alpha=0.3)
    c = result.config
    axis.set_title(f"{c.mode} on {c.dataset}, {c.partition}, {c.clients} clients")
    written["plot"] = str(save_figure(figure, out_dir / "metrics.png"))
    return written


def run_async_mode(config, out: Path | None, as_json: bool) -> None:
    """Run `config` (an fl.semi AsyncConfig) and print or write its results."""
    from fedmarket.fl.semi.run import run_async

    def on_point(point) -> None:
        m = point.metrics
        err_console.print(
            f"{point.updates / config.clients:g}/{config.rounds} rounds of updates at virtual time {point.time:.3f}: "
            f"acc {_fmt(m.accuracy)} auc {_fmt(m.auc)} loss {_fmt(m.loss)}",
            highlight=False,
            soft_wrap=True,
        )

    result = run_async(config, on_point=on_point)
    written = write_async_outputs(result, out) if out is not None else {}
    if as_json:
        print_json({**result.to_dict(), "files": written})
        return
    console.print(result.partition)
    own, avg = result.client_models, result.average_model
    console.print(
        f"{config.mode}: client models (own test splits, pooled) acc {_fmt(own.accuracy)} auc {_fmt(own.auc)} loss {_fmt(own.loss)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"average of the client models (pooled test data): acc {_fmt(avg.accuracy)} loss {_fmt(avg.loss)}", highlight=False, soft_wrap=True)
    clock = result.clock
    console.print(f"device compute-time ratio {clock['compute_time_ratio']:.1%}, virtual makespan {clock['makespan']:.3f} s", highlight=False, soft_wrap=True)
    if result.records is not None:
        counts = result.records.counts()
        console.print(f"records: {counts['upload']} uploads, {counts['download']} downloads, {counts['score']} scores", highlight=False, soft_wrap=True)
    for what, path in written.items():
        console.print(f"wrote {what}: {path}", highlight=False, soft_wrap=True)
