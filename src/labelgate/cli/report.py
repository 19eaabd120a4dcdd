"""``labelgate report``: the delivery report of a program, as report.html and report.json.

Reads the program's database (:func:`labelgate.reports.program_report.write_report`):
gate timeline, per-class IoU distributions, annotator bias and spread, missing rate by
density, defect Pareto, the QA plan's OC curve, crowd vs managed cost and rework cycles.
The HTML is one self-contained file (figures inlined) that opens without a network. Exit
codes: 0 written, 1 written but the audit chain is broken, 2 bad input (no database, an
unmigrated one, no such project, an output that is not ``.html``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from labelgate.cli._output import EXIT_CHECK_FAILED, console, emit_json, err_console, fail
from labelgate.cli.db import DbOption, JsonFlag, database_error, display_url, open_database
from labelgate.errors import FormatError, LabelgateError, StoreError
from labelgate.reports.program_report import write_report

__all__ = ["report_command"]


def report_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="The HTML file; the JSON goes beside it (same name, .json)."),
    ],
    db_url: DbOption = None,
    project: Annotated[
        str | None, typer.Option("--project", help="Project name (default: the first).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the delivery report (HTML with figures, and its JSON) for a program database.

    An earlier report is replaced: it is drawn from the database and can be drawn again.
    """
    if out.suffix.lower() not in (".html", ".htm"):
        fail(FormatError("expected an .html file name", path=out), as_json=as_json)
    if not out.parent.is_dir():
        fail(FormatError("no such folder", path=out.parent), as_json=as_json)
    database = open_database(db_url, must_exist=True, as_json=as_json)
    started = time.perf_counter()
    try:
        if not database.has_schema():
            raise StoreError(
                f"{display_url(database)} holds no labelgate program; "
                "run `labelgate db upgrade` and `labelgate init` first"
            )
        written = write_report(database, out, project=project)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    finally:
        database.dispose()
    seconds = time.perf_counter() - started
    report = written.report
    audit_ok = bool(report["audit"]["ok"])
    if as_json:
        emit_json(
            {
                "database": display_url(database),
                "report_html": str(written.html_path),
                "report_json": str(written.json_path),
                "figures": list(written.figures),
                "audit_ok": audit_ok,
                "seconds": round(seconds, 3),
                "report": report,
            }
        )
    else:
        batches = report["batches"]
        delivered = sum(b["state"] == "delivered" for b in batches)
        console.print(
            f"[green]wrote[/] {written.html_path} and {written.json_path}: project "
            f"{report['project']}, {delivered}/{len(batches)} batches delivered, "
            f"{len(written.figures)} figures, in {seconds:.2f} s",
            highlight=False,
        )
        if not audit_ok:
            err_console.print(
                f"[bold red]audit chain broken:[/] {report['audit']['reason']}", highlight=False
            )
    if not audit_ok:
        raise typer.Exit(EXIT_CHECK_FAILED)
