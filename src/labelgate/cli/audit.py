"""``labelgate audit verify|export``: check the hash-chained audit trail, write it as JSONL."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from labelgate.cli._output import EXIT_CHECK_FAILED, console, emit_json, err_console, fail
from labelgate.cli.db import DbOption, JsonFlag, database_error, display_url, open_database
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats._atomic import refuse_existing
from labelgate.workflow.audit import AUDIT_KEY_ENV, export_events, verify_chain

__all__ = ["audit_app"]

audit_app = typer.Typer(
    name="audit",
    no_args_is_help=True,
    add_completion=False,
    help=f"Verify or export the tamper-evident audit trail (HMAC key: ${AUDIT_KEY_ENV}).",
)


@audit_app.command("verify")
def verify_command(db_url: DbOption = None, as_json: JsonFlag = False) -> None:
    """Recompute the hash chain; exit 1 naming the first edited, deleted or moved event.

    The HMAC key, when the chain has one, is read from $LABELGATE_AUDIT_KEY (never from
    the command line, where other users could see it).
    """
    database = open_database(db_url, must_exist=True, as_json=as_json)
    started = time.perf_counter()
    try:
        report = verify_chain(database)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    finally:
        database.dispose()
    seconds = time.perf_counter() - started
    if as_json:
        emit_json(
            {
                "database": display_url(database),
                **report.to_dict(),
                "keyed": bool(os.environ.get(AUDIT_KEY_ENV)),
                "seconds": round(seconds, 3),
            }
        )
    elif report.ok:
        console.print(
            f"[green]intact[/] {display_url(database)}: {report.events:,} events "
            f"verified in {seconds:.2f} s; last hash {report.last_hash}",
            highlight=False,
        )
    else:
        err_console.print(
            f"[bold red]broken:[/] {report.reason}; {report.events:,} events before it are intact",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


@audit_app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="JSON Lines file, one event per line.")],
    db_url: DbOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write every audit event, every column, in chain order as JSON Lines (atomically)."""
    try:
        refuse_existing(out, overwrite=overwrite)
    except FileExistsError:
        fail(FormatError("exists; pass --overwrite to replace it", path=out), as_json=as_json)
    database = open_database(db_url, must_exist=True, as_json=as_json)
    started = time.perf_counter()
    try:
        count = export_events(database, out)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    finally:
        database.dispose()
    seconds = time.perf_counter() - started
    if as_json:
        emit_json(
            {
                "database": display_url(database),
                "path": str(out),
                "events": count,
                "seconds": round(seconds, 3),
            }
        )
        return
    console.print(f"[green]wrote[/] {out}: {count:,} events in {seconds:.2f} s", highlight=False)
