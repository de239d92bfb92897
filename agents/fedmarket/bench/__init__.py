"""Benchmarks behind `fedmarket bench`: one module per benchmark, results in bench/results/.

Each module is pure: `run` (or `measure`) -> a JSON-able dict, `to_markdown(dict)` -> its page;
the typer commands that parse options and print live in fedmarket.cli.bench_cmd. Shared here:
the facts about the machine a result was measured on, and writing a result as JSON plus a
markdown table beside it. Modules import torch and the market inside their functions, so that
registering the commands keeps `fedmarket --help` fast.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedmarket.files import atomic_write
from fedmarket.paths import repo_root


def results_dir() -> Path:
    return repo_root() / "bench" / "results"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """CPU, core count, torch version and threads, GPU name when one is visible."""
    import torch

    facts: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def write_results(name: str, report: dict[str, Any], markdown: str, directory: Path | None = None) -> tuple[Path, Path]:
    """Write <directory>/<name>.json (keys in the report's order) and <name>.md; return both paths."""
    directory = directory or results_dir()
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    atomic_write(json_path, json.dumps(report, indent=2) + "\n")
    atomic_write(md_path, markdown.rstrip() + "\n")
    return json_path, md_path


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
