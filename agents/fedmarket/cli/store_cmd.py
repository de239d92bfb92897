"""`fedmarket store add FILE | get CID [-o FILE] | cid FILE`: content-addressed blobs.

The embedded store (under the data dir) by default, a Kubo node with --ipfs URL. CIDs are the
ones Kubo's default `ipfs add` gives, so either store, or any IPFS node, serves the same file
under the same CID; `get` verifies the content against its CID before writing a byte.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from fedmarket.cli.output import console, fail, one_line_errors, print_json

store_app = typer.Typer(help="Content-addressed blobs: the embedded store, or a Kubo node with --ipfs.", no_args_is_help=True)

IpfsOption = typer.Option(None, "--ipfs", envvar="FEDMARKET_IPFS", help="Kubo RPC API URL (e.g. http://127.0.0.1:5001) [default: the embedded store].")
StoreDirOption = typer.Option(None, "--store-dir", help="Embedded store directory [default: <data dir>/blobs].", file_okay=False)
JsonOption = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")


def _facts(cid: str, size: int) -> dict[str, Any]:
    from fedmarket.storage import cid_to_digest

    return {"cid": cid, "digest": "0x" + cid_to_digest(cid).hex(), "size": size}


@store_app.command("add")
@one_line_errors
def add(
    file: Path = typer.Argument(..., help="File to store.", dir_okay=False),
    ipfs: Optional[str] = IpfsOption,
    store_dir: Optional[Path] = StoreDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Store FILE; print its CID (the one `ipfs add FILE` gives)."""
    from fedmarket.storage import open_store

    store = open_store(ipfs, store_dir)
    cid = store.add_file(file)
    facts = _facts(cid, file.stat().st_size) | {"file": str(file), "store": store.location}
    if as_json:
        print_json(facts)
    else:
        console.print(f"added {cid} {file} ({facts['size']} bytes, {store.location})", highlight=False, soft_wrap=True)


@store_app.command("get")
@one_line_errors
def get(
    cid: str = typer.Argument(..., help="CIDv0 (Qm...) of the blob."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the content here [default: stdout].", dir_okay=False),
    ipfs: Optional[str] = IpfsOption,
    store_dir: Optional[Path] = StoreDirOption,
    as_json: bool = JsonOption,
) -> None:
    """Fetch CID, verify it, and write it to FILE (or stdout)."""
    from fedmarket.storage import open_store, validate_cid

    validate_cid(cid)
    if as_json and output is None:
        fail("--json needs -o FILE: the content itself goes to the file, the JSON to stdout")
    data = open_store(ipfs, store_dir).get(cid)  # verified against the CID inside get
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    if as_json:
        print_json(_facts(cid, len(data)) | {"file": str(output)})
    else:
        console.print(f"wrote {len(data)} bytes of {cid} to {output} (verified)", highlight=False, soft_wrap=True)


@store_app.command("cid")
@one_line_errors
def cid(
    file: Path = typer.Argument(..., help="File to hash.", dir_okay=False),
    as_json: bool = JsonOption,
) -> None:
    """Print FILE's CID without storing it (what `ipfs add --only-hash FILE` prints)."""
    from fedmarket.storage import cid_of_file

    value = cid_of_file(file)
    if as_json:
        print_json(_facts(value, file.stat().st_size) | {"file": str(file)})
    else:
        console.print(value, highlight=False, soft_wrap=True)
