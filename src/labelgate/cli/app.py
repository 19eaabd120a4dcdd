"""The ``labelgate`` command line.

Commands parse their arguments, call one function of the layers below, and render the
result: a rich table for people, exactly one JSON document with ``--json``. Exit codes:
0 ok, 1 a check failed, 2 bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._lazy import LazyGroup
from labelgate.cli._output import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    console,
    emit_json,
    err_console,
    error_fields,
    fail,
)
from labelgate.core.dataset import Dataset
from labelgate.core.summary import summarize
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats._base import ErrorLog
from labelgate.formats.registry import FORMATS, detect_format, read, write

if TYPE_CHECKING:
    from labelgate.formats.demo import DemoResult

__all__ = ["app", "main"]

app = typer.Typer(
    name="labelgate",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    help="Quality-gated image annotation: measure labels early, block bad batches.",
)

FormatName = Annotated[
    str | None,
    typer.Option("--from", help=f"Input format ({', '.join(FORMATS)}); detected when omitted."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ImageSize = Annotated[
    str | None,
    typer.Option(
        "--image-size",
        metavar="WxH",
        help="YOLO: size of images that are not beside their labels, e.g. 1920x1080.",
    ),
]


def _parse_size(text: str | None, *, as_json: bool) -> tuple[int, int] | None:
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        fail(
            FormatError(
                f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}", path="--image-size"
            ),
            as_json=as_json,
        )
    return int(width), int(height)


def _read_input(
    path: Path, from_format: str | None, size: tuple[int, int] | None, log: ErrorLog | None = None
) -> tuple[str, Dataset]:
    """Detect the format unless given, then read; errors propagate to the command."""
    name = from_format or detect_format(path)
    return name, read(path, name, errors=log, image_size=size)


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="Annotation file or folder.")],
    from_format: FormatName = None,
    image_size: ImageSize = None,
    as_json: JsonFlag = False,
) -> None:
    """Count images, annotations, classes and objects per image."""
    size = _parse_size(image_size, as_json=as_json)
    try:
        name, dataset = _read_input(path, from_format, size)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    summary = summarize(dataset)
    if as_json:
        emit_json({"format": name, **summary.to_dict()})
        return
    console.print(
        f"[bold]{path}[/]  format [cyan]{name}[/]  images {summary.images:,}  "
        f"annotations {summary.annotations:,}",
        highlight=False,
    )
    if summary.per_kind:
        console.print("kinds: " + ", ".join(f"{k} {v:,}" for k, v in summary.per_kind.items()))
    table = Table("class", "annotations", title="per class")
    for class_name, count in sorted(summary.per_class.items(), key=lambda kv: -kv[1]):
        table.add_row(class_name, f"{count:,}")
    console.print(table)
    stats = summary.objects_per_image
    console.print(
        f"objects per image: mean {stats['mean']}, median {stats['median']}, "
        f"p90 {stats['p90']}, max {stats['max']}"
    )
    console.print(
        "density: " + ", ".join(f"{label}: {count:,}" for label, count in stats["buckets"].items())
    )


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Annotation file or folder.")],
    from_format: FormatName = None,
    image_size: ImageSize = None,
    as_json: JsonFlag = False,
) -> None:
    """List every problem in a file, not just the first (exit 1 when there are any)."""
    size = _parse_size(image_size, as_json=as_json)
    log = ErrorLog(path, collect=True)
    name: str | None = from_format
    dataset: Dataset | None = None
    try:
        name, dataset = _read_input(path, from_format, size, log)
    except FormatError as exc:  # nothing could be read: still a list of problems
        if exc not in log.errors:
            log.errors.append(exc)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    problems = [error_fields(e) for e in log.errors]
    if as_json:
        emit_json(
            {
                "path": str(path),
                "format": name,
                "valid": not problems,
                "images": len(dataset.images) if dataset is not None else None,
                "annotations": len(dataset.annotations) if dataset is not None else None,
                "problems": problems,
            }
        )
    elif problems:
        table = Table("file", "record", "field", "problem", title=f"{len(problems)} problem(s)")
        for p in problems:
            table.add_row(Path(p["file"]).name, p["record"] or "", p["field"] or "", p["message"])
        console.print(table)
    else:
        assert dataset is not None  # no problems means the read succeeded
        console.print(
            f"[green]ok[/] {path} ({name}): {len(dataset.images):,} images, "
            f"{len(dataset.annotations):,} annotations",
            highlight=False,
        )
    if dataset is None:
        raise typer.Exit(EXIT_BAD_INPUT)
    if problems:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="Input file or folder.")],
    target: Annotated[Path, typer.Argument(help="Output file or folder.")],
    to: Annotated[str, typer.Option("--to", help=f"Output format: {', '.join(FORMATS)}.")],
    from_format: FormatName = None,
    image_size: ImageSize = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Convert between formats; says what the target format could not hold."""
    size = _parse_size(image_size, as_json=as_json)
    if to not in FORMATS:
        fail(
            FormatError(
                f"unknown output format {to!r}; expected one of {', '.join(FORMATS)}", path=target
            ),
            as_json=as_json,
        )
    started = time.perf_counter()
    try:
        _, dataset = _read_input(source, from_format, size)
        report = write(dataset, target, to, overwrite=overwrite)
    except FileExistsError:
        fail(FormatError("exists; pass --overwrite to replace it", path=target), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({**report.to_dict(), "seconds": round(seconds, 3)})
        return
    console.print(
        f"[green]wrote[/] {target} ({to}): {report.images:,} images, "
        f"{report.annotations:,} annotations in {seconds:.2f} s",
        highlight=False,
    )
    for dropped in report.dropped:
        detail = f" ({dropped.detail})" if dropped.detail else ""
        err_console.print(
            f"[yellow]dropped:[/] {dropped.count:,} {dropped.what}{detail}", highlight=False
        )


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "labelgate-demo"
    ),
    images: Annotated[
        int, typer.Option(min=20, help="Generated production images (~20 objects each).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the generator and simulated people.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier demo's outputs.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a whole quality-gated program on simulated annotators (SQLite, no downloads).

    Writes the generated data, every format's round trip, labelgate.db, report.json and
    report.html into OUT.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from labelgate.reports.demo import run_program_demo

    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True
        ) as bar:
            task = bar.add_task("simulating the program", total=None)
            result = run_program_demo(
                out,
                images=images,
                seed=seed,
                overwrite=overwrite,
                progress=lambda stage, _done, _total: bar.update(task, description=stage),
            )
    except FileExistsError:
        fail(FormatError("holds an earlier demo; pass --overwrite", path=out), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    if as_json:
        emit_json(result.to_dict())
    else:
        _render_demo(result.formats)
        _render_program(result.report)
        console.print(
            f"wrote {result.database}, {result.report_json}, {result.report_html} and the "
            f"rendered images in {result.images}/ in {result.seconds:.1f} s; audit chain "
            f"{'intact' if result.audit_ok else 'BROKEN'}",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _render_program(report: dict[str, Any]) -> None:
    pilots = Table("annotator", "cohort", "pilot attempts (F1)", "qualified", title="pilot")
    for name, q in report["demo"]["qualifications"].items():
        pilots.add_row(
            name,
            q["cohort"],
            ", ".join(f"{a:.3f}" for a in q["attempts"]),
            "[green]yes[/]" if q["passed"] else "[red]no[/]",
        )
    console.print(pilots)
    gates = Table(
        "batch", "cycle", "stage", "gate", "value", "threshold", "verdict", title="gate timeline"
    )
    for g in report["stages"]:
        verdict = "[green]passed[/]" if g["passed"] else f"[red]{g['outcome']}[/]"
        value = "—" if g["value"] is None else f"{g['value']:.4g}"
        threshold = "—" if g["threshold"] is None else f"{g['threshold']:.4g}"
        gates.add_row(g["batch"], str(g["cycle"]), g["name"], g["gate"], value, threshold, verdict)
    console.print(gates)
    model = report["cost"].get("model")
    measured = report["cost"].get("measured")
    truth = report["quality"].get("delivered_vs_truth", {}).get("overall", {})
    if model:
        console.print(
            f"delivered vs truth: precision {truth.get('precision', 0):.3f}, recall "
            f"{truth.get('recall', 0):.3f}; defects found {report['defects']['total']:,}; "
            f"modelled cost ${model['total_usd']:,.2f} (hidden {model['hidden_cost_fraction']:.0%} "
            f"over the quoted labour)",
            highlight=False,
        )
    if measured:
        console.print(
            f"measured cost (work log, {measured['total_hours']:,.1f} h): "
            f"${measured['total_usd']:,.2f} = "
            f"direct ${measured['direct_usd']:,.2f} + QA/review "
            f"${measured['qa_review_usd']:,.2f} + rework ${measured['rework_usd']:,.2f} + "
            f"downstream ${measured['downstream_usd']:,.2f}"
            + (
                f"; {measured['ratio_to_model']:.2f}x the modelled cost"
                if measured.get("ratio_to_model") is not None
                else ""
            ),
            highlight=False,
        )
    _render_prelabel(report["batches"])


def _render_prelabel(batches: list[dict[str, Any]]) -> None:
    """One line per pre-labelled batch: decisions and the time saved with its interval."""
    for batch in batches:
        metrics = batch.get("prelabel")
        if not metrics or not metrics.get("proposals"):
            continue
        saved = metrics["time"]["time_saved_fraction"]
        interval = (
            f"time saved {saved['estimate']:.0%} [{saved['ci_low']:.0%}, {saved['ci_high']:.0%}]"
            if saved and saved.get("estimate") is not None
            else "time saved not measurable (needs 2 or more timed tasks in each group)"
        )
        console.print(
            f"pre-labels {batch['name']}: {metrics['proposals']:,} proposals, accepted "
            f"{metrics['acceptance_rate']:.0%}, adjusted {metrics['adjust_rate']:.0%}, "
            f"rejected {metrics['reject_rate']:.0%}; {interval} "
            f"({metrics['tasks']['prelabelled']} pre-labelled vs "
            f"{metrics['tasks']['control']} control tasks)",
            highlight=False,
        )


def _render_demo(result: DemoResult) -> None:
    summary = result.summary
    stats = summary.objects_per_image
    console.print(
        f"[bold]labelgate demo[/] (seed {result.seed}) -> {result.out}\n"
        f"reference: {summary.images:,} images, {summary.annotations:,} boxes, "
        f"{len(summary.per_class)} classes, generated in {result.generate_seconds:.2f} s; "
        f"objects per image mean {stats['mean']}, p90 {stats['p90']}, max {stats['max']}",
        highlight=False,
    )
    console.print(
        "density: " + ", ".join(f"{label}: {count:,}" for label, count in stats["buckets"].items())
    )
    noise = Table(
        "label set",
        "rows",
        "missed",
        "missed <32px",
        "missed >=96px",
        "swapped",
        "duplicates",
        "false pos.",
        title="derived label sets (known noise)",
    )
    for name, n in (("annotator B", result.annotator), ("model", result.model)):
        noise.add_row(
            name,
            f"{n.rows:,}",
            f"{n.missed_rate:.1%}",
            f"{n.missed_rate_small:.1%}",
            f"{n.missed_rate_large:.1%}",
            f"{n.swapped_rate:.1%}",
            f"{n.duplicates:,}",
            f"{n.false_positives:,}",
        )
    console.print(noise)
    table = Table(
        "format",
        "write s",
        "read s",
        "boxes back",
        "max error px",
        title="round trip of the reference through every format",
    )
    for trip in result.roundtrips:
        agreement = trip.agreement
        assert agreement is not None  # roundtrip() always compares
        status = "[green]identical[/]" if agreement.identical else "[red]differs[/]"
        table.add_row(
            trip.format,
            f"{trip.write_seconds:.2f}",
            f"{trip.read_seconds:.2f}",
            f"{agreement.right:,} {status}",
            f"{agreement.max_error_px:.1e}",
        )
    console.print(table)
    for trip in result.roundtrips:
        if trip.dropped:
            dropped = ", ".join(f"{d.what} {d.count:,}" for d in trip.dropped)
            console.print(f"[yellow]{trip.format} cannot hold:[/] {dropped}", highlight=False)
    for name, path in result.files.items():
        console.print(f"{name}: {path}", highlight=False)
    verdict = (
        "[green]all formats kept every box and class[/]"
        if result.ok
        else "[red]a format lost boxes[/]"
    )
    console.print(verdict)


@app.command()
def formats() -> None:
    """List the supported formats."""
    table = Table("name", "layout", "what")
    for f in FORMATS.values():
        table.add_row(f.name, f.layout, f.description)
    console.print(table)


# every other command is imported when it runs: labelgate.cli._lazy.LAZY_COMMANDS


def main() -> None:
    """Entry point of the ``labelgate`` console script."""
    app()
