"""``labelgate batch create|status|advance``: batches and their gated stages.

``advance`` evaluates the current stage's gate once and prints what happened; it exits 1
when the gate did not pass (work still open, items sent back as rework, or the batch is
blocked), so a script can loop ``until labelgate batch advance b1; do ...; done``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from labelgate.cli._output import EXIT_CHECK_FAILED, console, emit_json
from labelgate.cli.db import DbOption, JsonFlag
from labelgate.cli.program import (
    ActorOption,
    ProjectOption,
    opened_program,
    require_actor,
    working,
)
from labelgate.errors import FormatError

__all__ = ["batch_app", "read_image_ids"]

batch_app = typer.Typer(
    name="batch",
    no_args_is_help=True,
    add_completion=False,
    help="Create batches, show their gate history, advance them through the stages.",
)

BatchName = Annotated[str, typer.Argument(help="Batch name.")]


def read_image_ids(path: Path) -> list[int]:
    """Image ids from a text file: integers separated by whitespace or commas; ``#`` comments.

    Raises
    ------
    FormatError
        A token that is not an integer, naming its line; or a file with no ids.
    """
    ids: list[int] = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        for token in re.split(r"[\s,]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            try:
                ids.append(int(token))
            except ValueError:
                raise FormatError(
                    f"expected an integer image id, got {token!r}",
                    path=path,
                    record=f"line {number}",
                ) from None
    if not ids:
        raise FormatError("no image ids in the file", path=path)
    return ids


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@batch_app.command("create")
def create_command(
    name: BatchName,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="File of image ids (as in the imported file), whitespace/comma separated; "
            "default: every image not yet in a batch and not gold/honeypot.",
        ),
    ] = None,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a batch at stage ``spec`` under the newest spec version."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        image_ids = read_image_ids(images) if images is not None else None
        program.create_batch(name, image_ids, actor=who)
        status = program.batch_status(name)
    count = sum(status["items"].values())
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": name,
                "id": status["id"],
                "stage": status["stage"],
                "images": count,
            }
        )
        return
    console.print(
        f"[green]created[/] batch {name} (id {status['id']}): {count:,} images, "
        f"stage {status['stage']}; next: labelgate batch advance {name}",
        highlight=False,
    )


@batch_app.command("status")
def status_command(
    name: BatchName,
    db_url: DbOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Stage, item states and every gate evaluation of a batch."""
    with opened_program(db_url, project, as_json=as_json) as program:
        status = program.batch_status(name)
    if as_json:
        emit_json({"project": program.name, **status})
        return
    _render_status(status)


def _render_status(status: dict[str, Any]) -> None:
    items = ", ".join(f"{state} {count:,}" for state, count in sorted(status["items"].items()))
    console.print(
        f"[bold]{status['batch']}[/] (id {status['id']}): stage [cyan]{status['stage']}[/], "
        f"{status['state']}, rework cycle {status['rework_cycle']}; items: {items or '-'}",
        highlight=False,
    )
    if not status["gates"]:
        console.print("no gate evaluated yet: labelgate batch advance " + status["batch"])
        return
    table = Table(
        title=f"gate history of {status['batch']}", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0)
    )
    for column in ("stage", "gate", "cycle", "value", "threshold", "passed", "outcome"):
        table.add_column(column, no_wrap=column == "gate")
    for gate in status["gates"]:
        table.add_row(
            gate["name"],
            gate["gate"],
            str(gate["cycle"]),
            _fmt(gate["value"]),
            _fmt(gate["threshold"]),
            "[green]yes[/]" if gate["passed"] else "[red]no[/]",
            gate["outcome"] or "-",
        )
    console.print(table)


@batch_app.command("advance")
def advance_command(
    name: BatchName,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the QA sample drawn on entering qa.")
    ] = 0,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate the batch's current gate; move on, send rework, or wait (exit 1 unless passed)."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        with working(f"evaluating the gate of {name}", as_json=as_json):
            result = program.advance(name, actor=who, seed=seed)
        status = program.batch_status(name)
    document = {
        "project": program.name,
        "batch": name,
        "stage": str(result.stage),
        **result.to_dict(),
        "stage_now": status["stage"],
        "rework_cycle": status["rework_cycle"],
    }
    if as_json:
        emit_json(document)
    else:
        verdict = "[green]passed[/]" if result.passed else "[red]not passed[/]"
        console.print(
            f"{name}: {result.stage} gate [bold]{result.gate}[/] = {_fmt(result.value)} "
            f"vs {_fmt(result.threshold)}: {verdict} -> {result.outcome}; "
            f"now at [cyan]{status['stage']}[/] (rework cycle {status['rework_cycle']})",
            highlight=False,
        )
        shown = {k: v for k, v in result.inputs.items() if not isinstance(v, dict | list) or v}
        if shown:
            console.print(
                "inputs: " + ", ".join(f"{k} {v}" for k, v in shown.items()),
                highlight=False,
                soft_wrap=True,
            )
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
