"""`fedmarket bench cid`: MB/s of CID computation and of blob-store put / get.

For each size (random bytes, 1 MB = 10**6 bytes), the best of --repeats runs of:
- sha256: plain hashlib over the bytes, the ceiling a CID computation can reach;
- cid_of: the Kubo-default CIDv0 of bytes in memory (every 256 KiB leaf hashed in place);
- cid_of_file: the same from a file (in the page cache, so disk speed is not measured);
- embedded put / get: EmbeddedStore.add (hash + temp file + fsync + rename) and .get (read +
  verify) in a fresh temporary store; put is timed on a store that does not hold the blob yet;
- kubo put / get, with --ipfs URL: KuboStore.add (local CID + HTTP upload + CID check) and .get.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedmarket.bench import machine_facts, markdown_table

NAME = "cid"
DEFAULT_SIZES_MB = "1,16,64"
MB = 10**6


def _best_seconds(run: Callable[[], object], repeats: int, before: Callable[[], object] | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def measure(sizes_mb: list[int], repeats: int, ipfs: str | None, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Throughput in MB/s per size and operation; see the module docstring for what each times."""
    import hashlib

    from fedmarket.storage.cid import cid_of, cid_of_file
    from fedmarket.storage.embedded import EmbeddedStore
    from fedmarket.storage.kubo import KuboStore

    rows = []
    load_before = round(os.getloadavg()[0], 2)  # other processes share the cores: say how busy they were
    kubo = KuboStore(ipfs) if ipfs else None
    kubo_version = kubo.version() if kubo else None
    scratch = Path(tempfile.mkdtemp(prefix="fedmarket-bench-cid-"))
    try:
        for size_mb in sizes_mb:
            data = os.urandom(size_mb * MB)
            source = scratch / f"blob-{size_mb}"
            source.write_bytes(data)
            cid = cid_of(data)
            store_root = scratch / "store"

            def fresh_store() -> None:
                shutil.rmtree(store_root, ignore_errors=True)

            timings = {}
            progress(f"{size_mb} MB: hashing")
            timings["sha256"] = _best_seconds(lambda: hashlib.sha256(data).digest(), repeats)
            timings["cid_of"] = _best_seconds(lambda: cid_of(data), repeats)
            timings["cid_of_file"] = _best_seconds(lambda: cid_of_file(source), repeats)
            progress(f"{size_mb} MB: embedded store")
            timings["embedded_put"] = _best_seconds(lambda: EmbeddedStore(store_root).add(data), repeats, before=fresh_store)
            store = EmbeddedStore(store_root)
            assert store.get(cid) == data
            timings["embedded_get"] = _best_seconds(lambda: store.get(cid), repeats)
            if kubo is not None:
                progress(f"{size_mb} MB: Kubo at {ipfs}")
                timings["kubo_put"] = _best_seconds(lambda: kubo.add(data), repeats)
                timings["kubo_get"] = _best_seconds(lambda: kubo.get(cid), repeats)
            rows.append(
                {
                    "size_mb": size_mb,
                    "cid": cid,
                    "seconds": {op: round(s, 6) for op, s in timings.items()},
                    "mb_per_s": {op: round(size_mb / s, 1) for op, s in timings.items()},
                }
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if kubo is not None:
            kubo.close()
    return {
        "benchmark": NAME,
        "repeats": repeats,
        "unit": "MB/s (1 MB = 10**6 bytes), best of repeats",
        "kubo": {"url": ipfs, "version": kubo_version} if kubo else None,
        "machine": machine_facts() | {"load_average_1m_before": load_before, "load_average_1m_after": round(os.getloadavg()[0], 2)},
        "results": rows,
    }


def to_markdown(report: dict[str, Any]) -> str:
    operations = list(report["results"][0]["mb_per_s"]) if report["results"] else []
    table = markdown_table(
        ["size (MB)", *operations],
        [[row["size_mb"], *(row["mb_per_s"][op] for op in operations)] for row in report["results"]],
    )
    machine = report["machine"]
    kubo = report["kubo"]
    lines = [
        "# CID and blob-store throughput (`fedmarket bench cid`)",
        "",
        f"MB/s, best of {report['repeats']} runs, random bytes; 1 MB = 10^6 bytes.",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, Python {machine['python']}, measured {machine['measured_at']};",
        f"1-minute load average {machine['load_average_1m_before']} before, {machine['load_average_1m_after']} after (other work on the same cores).",
        f"Kubo: {kubo['url']} (version {kubo['version']})." if kubo else "Kubo: not measured (no --ipfs).",
        "",
        table,
        "",
        "sha256 = hashlib alone (the ceiling); cid_of = Kubo-default CIDv0 in memory; cid_of_file = from a",
        "cached file; embedded put = hash + temp file + fsync + rename; embedded get = read + verify.",
    ]
    return "\n".join(lines)
