"""How every command speaks: rich tables for people, --json for machines, one line for errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from fedmarket.errors import FedmarketError

console = Console(log_path=False)  # a log line names the event, not our source file
err_console = Console(stderr=True, log_path=False)

F = TypeVar("F", bound=Callable[..., Any])


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")


def fail(message: str, code: int = 1) -> None:
    """Print one error line on stderr and exit non-zero."""
    # Text, not markup: a message may hold brackets ("[0, 1]") that rich would swallow.
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def one_line_errors(func: F) -> F:
    """Turn a FedmarketError raised anywhere below a command into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FedmarketError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]
