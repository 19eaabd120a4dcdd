"""What every command shares: consoles, exit codes, the JSON printer and error rendering."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import orjson
import typer
from rich.console import Console

from labelgate.errors import FormatError, LabelgateError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CHECK_FAILED",
    "EXIT_OK",
    "console",
    "emit_json",
    "err_console",
    "error_fields",
    "fail",
]

console = Console()
err_console = Console(stderr=True)

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def error_fields(error: BaseException) -> dict[str, Any]:
    """File, record, field and message of a :class:`FormatError`; empty for other errors."""
    if isinstance(error, FormatError):
        return {
            "file": str(error.path),
            "record": error.record,
            "field": error.field,
            "message": error.reason,
        }
    return {}


def fail(error: LabelgateError | OSError, *, as_json: bool) -> NoReturn:
    """Report bad input (a JSON document under ``--json``) and exit 2."""
    if as_json:
        emit_json({"error": str(error), **error_fields(error)})
    else:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False)
    raise typer.Exit(EXIT_BAD_INPUT)
