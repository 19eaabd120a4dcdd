"""``labelgate review``: reviewers' verdicts, QA inspection of the sample, adjudication.

- ``review BATCH --decisions FILE.csv`` (``review decide``) and ``review queue BATCH``;
- ``review qa BATCH --findings FILE.csv`` and ``review qa-queue BATCH``;
- ``review disputes BATCH`` and ``review adjudicate ID... --keep|--drop|--choice a|b``
  ``[--reason TEXT] [--reason-code CODE]``.

The decisions file is CSV with a header row and the columns ``task_id``, ``object_key``,
``verdict``, ``defect_type`` (any order; other columns are ignored):

- one row per judged object: its key (``object_key`` as listed by ``review queue``),
  ``accept`` or ``reject``, and for a rejection one of the defect types
  (``missing``, ``extra``, ``wrong_class``, ...);
- ``object_key`` ``-1`` with ``reject,missing`` records an object the annotator did not
  draw (the service keeps one such row per task);
- an empty ``object_key`` with ``accept`` accepts the whole task;
- objects of a listed task that no row names are accepted; tasks the file does not list are
  not reviewed and stay in the queue.

Only tasks in the caller's queue are reviewed: a task already reviewed (say, by an earlier
run of the same file), the caller's own work, or a task of another batch is skipped and
reported, so rerunning a file after fixing one bad row never records a verdict twice.
``review queue BATCH --template FILE.csv`` writes a file that accepts every queued object,
ready to edit.
"""

from __future__ import annotations

import csv
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from labelgate.cli._output import console, emit_json, err_console, fail
from labelgate.cli.db import DbOption, JsonFlag
from labelgate.cli.program import (
    ActorOption,
    ProjectOption,
    opened_program,
    progress_bar,
    require_actor,
)
from labelgate.core.annotations import Annotations
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import FormatError, WorkflowError
from labelgate.formats._atomic import refuse_existing, write_bytes_atomic
from labelgate.workflow.program import ADJUDICATION_REASONS, DEFECT_TYPES, SEVERITIES, Program

__all__ = ["TaskDecisions", "read_decisions", "read_findings", "review_app"]

COLUMNS = ("task_id", "object_key", "verdict", "defect_type")


class _DecideByDefault(TyperGroup):
    """``review BATCH ...`` means ``review decide BATCH ...``; ``review queue`` is a subcommand."""

    # ctx is typed Any: typer vendors its own click, whose Context is not public
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["decide", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    name="review",
    cls=_DecideByDefault,
    no_args_is_help=True,
    add_completion=False,
    help="Review tasks (`review BATCH --decisions FILE.csv`, `review queue BATCH`), inspect "
    "the QA sample (`qa`, `qa-queue`), settle disputes (`disputes`, `adjudicate`).",
)

BatchName = Annotated[str, typer.Argument(help="Batch name.")]


@dataclass
class TaskDecisions:
    """The verdicts a decisions file gives one task (object key -1: a missing object)."""

    task_id: int
    decisions: list[tuple[int, str, str | None]] = field(default_factory=list)


def read_decisions(path: Path) -> list[TaskDecisions]:
    """Parse a decisions CSV into per-task verdicts, in file order.

    Raises
    ------
    FormatError
        A missing column, or a row whose task id, key, verdict or defect type is malformed,
        naming its line.
    """
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("task_id", "object_key", "verdict") if c not in header]
    if missing:
        raise FormatError(
            f"missing column(s) {', '.join(missing)}; expected a header {','.join(COLUMNS)}",
            path=path,
            record="line 1",
        )
    tasks: dict[int, TaskDecisions] = {}
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        record = f"line {reader.line_num}"
        try:
            task_id = int(row["task_id"])
        except ValueError:
            raise FormatError(
                f"expected an integer, got {row['task_id']!r}",
                path=path,
                record=record,
                field="task_id",
            ) from None
        verdict = row["verdict"].lower()
        if verdict not in ("accept", "reject"):
            raise FormatError(
                f"expected accept or reject, got {row['verdict']!r}",
                path=path,
                record=record,
                field="verdict",
            )
        defect = row.get("defect_type", "") or None
        if verdict == "reject" and defect not in DEFECT_TYPES:
            raise FormatError(
                f"a rejection names a defect type ({', '.join(DEFECT_TYPES)}), got {defect!r}",
                path=path,
                record=record,
                field="defect_type",
            )
        entry = tasks.setdefault(task_id, TaskDecisions(task_id))
        key_text = row["object_key"]
        if not key_text:
            if verdict == "reject":
                raise FormatError(
                    "a rejection names an object key (-1 for an object the annotator missed)",
                    path=path,
                    record=record,
                    field="object_key",
                )
            continue  # accept the whole task: objects no row names are accepted
        try:
            key = int(key_text)
        except ValueError:
            raise FormatError(
                f"expected an integer (or empty to accept the whole task), got {key_text!r}",
                path=path,
                record=record,
                field="object_key",
            ) from None
        entry.decisions.append((key, verdict, defect if verdict == "reject" else None))
    return list(tasks.values())  # a header alone: nothing to record (an empty queue's template)


def _flow(text: str) -> str:
    """Help text as paragraphs: Typer's rich help keeps a docstring's line breaks."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


@review_app.command(
    "decide",
    help=_flow(
        """Record a reviewer's per-object verdicts from a CSV file (also: `review BATCH ...`).

        Columns task_id,object_key,verdict,defect_type. One row per judged object (keys
        from `review queue`); a rejection names a defect type; key -1 with reject,missing
        is an object the annotator missed; an empty key with accept accepts the whole
        task. Unnamed objects of a listed task are accepted; tasks not in your queue are
        skipped.
        """
    ),
)
def decide_command(
    batch: BatchName,
    decisions_path: Annotated[
        Path, typer.Option("--decisions", help="CSV: task_id,object_key,verdict,defect_type.")
    ],
    severity: Annotated[
        str,
        typer.Option("--severity", help=f"Severity of rejections: {', '.join(SEVERITIES)}."),
    ] = "major",
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a reviewer's per-object verdicts from a CSV file (also: `review BATCH ...`)."""
    who = require_actor(actor, as_json=as_json)
    try:
        tasks = read_decisions(decisions_path)
    except FormatError as exc:
        fail(exc, as_json=as_json)
    except OSError as exc:
        fail(exc, as_json=as_json)
    accepted = rejected = 0
    done: list[int] = []
    with opened_program(db_url, project, as_json=as_json) as program:
        queue = set(program.review_queue(who, batch))
        todo = [t for t in tasks if t.task_id in queue]
        skipped = [t.task_id for t in tasks if t.task_id not in queue]
        with progress_bar(f"reviewing {batch}", len(todo), as_json=as_json) as advance:
            for task in todo:
                try:
                    counts = program.review(who, task.task_id, task.decisions, severity=severity)
                except WorkflowError as exc:
                    raise WorkflowError(
                        f"task {task.task_id}: {exc} ({len(done)} earlier task(s) of the file "
                        "were recorded; a rerun skips them)"
                    ) from exc
                accepted += counts["accepted"]
                rejected += counts["rejected"]
                done.append(task.task_id)
                advance()
        left = len(program.review_queue(who, batch))
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": batch,
                "reviewer": who,
                "tasks": len(done),
                "accepted": accepted,
                "rejected": rejected,
                "skipped": skipped,
                "queue_left": left,
            }
        )
        return
    console.print(
        f"[green]reviewed[/] {len(done):,} task(s) of {batch}: {accepted:,} objects accepted, "
        f"{rejected:,} rejected; {left:,} task(s) left in your queue",
        highlight=False,
    )
    if skipped:
        err_console.print(
            f"[yellow]skipped {len(skipped)} task(s) not in your queue[/] (already reviewed, "
            f"your own, or not this batch's): {', '.join(map(str, skipped[:20]))}"
            + (" ..." if len(skipped) > 20 else ""),
            highlight=False,
        )


@review_app.command("queue")
def queue_command(
    batch: BatchName,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template", help="Also write a decisions CSV accepting every queued object."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing template.")] = False,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the caller's review queue: tasks with their objects' keys, classes and boxes."""
    who = require_actor(actor, as_json=as_json)
    _refuse_template(template, overwrite=overwrite, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        entries = _load_entries(
            program, program.review_queue(who, batch), program.review_labels, who,
            f"loading {batch}'s queue", as_json=as_json,
        )  # fmt: skip
        if template is not None:
            _write_template(template, entries)
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": batch,
                "reviewer": who,
                "tasks": entries,
                "template": str(template) if template is not None else None,
            }
        )
        return
    _render_entries(entries, f"{who}'s review queue: {batch}")
    if template is not None:
        console.print(
            f"[green]wrote[/] {template}: edit verdicts, then "
            f"labelgate review {batch} --decisions {template}",
            highlight=False,
        )


def _refuse_template(template: Path | None, *, overwrite: bool, as_json: bool) -> None:
    """Exit 2 before any work when the template file exists and --overwrite is not given."""
    if template is None:
        return
    try:
        refuse_existing(template, overwrite=overwrite)
    except FileExistsError:
        fail(FormatError("exists; pass --overwrite to replace it", path=template), as_json=as_json)


def _load_entries(
    program: Program,
    task_ids: list[int],
    labels_of: Callable[[str, int], Annotations],
    who: str,
    message: str,
    *,
    as_json: bool,
) -> list[dict[str, Any]]:
    """One queue entry per task (its objects' keys, classes and boxes), with progress."""
    taxonomy = program.spec().taxonomy()
    entries: list[dict[str, Any]] = []
    with progress_bar(message, len(task_ids), as_json=as_json) as advance:
        for task_id in task_ids:
            entries.append(_entry(task_id, labels_of(who, task_id), taxonomy))
            advance()
    return entries


def _entry(task_id: int, labels: Annotations, taxonomy: Taxonomy) -> dict[str, Any]:
    """One queued task as JSON: its image (None without objects) and its objects."""
    names = taxonomy.names_of(labels.class_id) if len(labels) else []
    return {
        "task_id": task_id,
        "image_id": int(labels.image_id[0]) if len(labels) else None,
        "objects": [
            {
                "key": int(key),
                "class_id": int(class_id),
                "class": name,
                "bbox": [round(float(v), 2) for v in box],
            }
            for key, class_id, name, box in zip(
                labels.id.tolist(),
                labels.class_id.tolist(),
                names,
                labels.bbox.tolist(),
                strict=True,
            )
        ],
    }


def _render_entries(entries: list[dict[str, Any]], title: str) -> None:
    if not entries:
        console.print(f"{title}: empty", highlight=False)
        return
    table = Table("task", "image", "objects", "classes", title=title)
    for entry in entries:
        counts: dict[str, int] = {}
        for obj in entry["objects"]:
            counts[obj["class"]] = counts.get(obj["class"], 0) + 1
        table.add_row(
            str(entry["task_id"]),
            "-" if entry["image_id"] is None else str(entry["image_id"]),
            str(len(entry["objects"])),
            ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
    console.print(table)


def _write_template(path: Path, entries: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        if not entry["objects"]:
            writer.writerow([entry["task_id"], "", "accept", ""])
        for obj in entry["objects"]:
            writer.writerow([entry["task_id"], obj["key"], "accept", ""])
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))


# --- QA inspection of the sample ---------------------------------------------------------

QA_COLUMNS = ("task_id", "object_key", "defect_type")


def read_findings(path: Path) -> dict[int, list[tuple[int, str]]]:
    """Parse a QA findings CSV into each inspected task's defects (``[]``: a clean item).

    Columns ``task_id``, ``object_key``, ``defect_type``: a row with an empty defect type
    marks the item clean; a defect on an empty or ``-1`` key is an item-level one (an
    object nobody drew).

    Raises
    ------
    FormatError
        A missing column, or a malformed task id, key or defect type, naming its line.
    """
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in QA_COLUMNS if c not in header]
    if missing:
        raise FormatError(
            f"missing column(s) {', '.join(missing)}; expected a header {','.join(QA_COLUMNS)}",
            path=path,
            record="line 1",
        )
    findings: dict[int, list[tuple[int, str]]] = {}
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        record = f"line {reader.line_num}"
        try:
            task_id = int(row["task_id"])
            key = int(row["object_key"]) if row["object_key"] else -1
        except ValueError:
            raise FormatError(
                f"expected integers, got task_id {row['task_id']!r}, "
                f"object_key {row['object_key']!r}",
                path=path,
                record=record,
            ) from None
        defects = findings.setdefault(task_id, [])
        defect = row["defect_type"]
        if not defect:
            continue
        if defect not in DEFECT_TYPES:
            raise FormatError(
                f"expected one of {', '.join(DEFECT_TYPES)}, got {defect!r}",
                path=path,
                record=record,
                field="defect_type",
            )
        defects.append((key, defect))
    return findings


@review_app.command(
    "qa",
    help=_flow(
        """Record the QA inspection of sampled items: their defects, or clean.

        Columns task_id,object_key,defect_type (tasks from `review qa-queue`). A row with
        an empty defect type marks the item clean; each row with one records a defect (key
        -1 or empty: an object nobody drew; two missing objects are two rows).
        """
    ),
)
def qa_command(
    batch: BatchName,
    findings_path: Annotated[
        Path, typer.Option("--findings", help="CSV: task_id,object_key,defect_type.")
    ],
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the QA inspection of sampled items: their defects, or clean (empty type)."""
    who = require_actor(actor, as_json=as_json)
    try:
        findings = read_findings(findings_path)
    except (FormatError, OSError) as exc:
        fail(exc, as_json=as_json)
    done: list[int] = []
    with opened_program(db_url, project, as_json=as_json) as program:
        queue = set(program.qa_queue(who, batch))
        todo = [t for t in findings if t in queue]
        skipped = [t for t in findings if t not in queue]
        with progress_bar(f"inspecting {batch}", len(todo), as_json=as_json) as advance:
            for task_id in todo:
                try:
                    program.qa_inspect(who, task_id, findings[task_id])
                except WorkflowError as exc:
                    raise WorkflowError(
                        f"task {task_id}: {exc} ({len(done)} earlier task(s) of the file "
                        "were recorded; a rerun skips them)"
                    ) from exc
                done.append(task_id)
                advance()
        left = len(program.qa_queue(who, batch))
    defective = sum(1 for t in done if findings[t])
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": batch,
                "inspector": who,
                "inspected": len(done),
                "defective_items": defective,
                "defects": sum(len(findings[t]) for t in done),
                "skipped": skipped,
                "queue_left": left,
            }
        )
        return
    console.print(
        f"[green]inspected[/] {len(done):,} sampled item(s) of {batch}: {defective:,} "
        f"defective; {left:,} left in your QA queue",
        highlight=False,
    )
    if skipped:
        err_console.print(
            f"[yellow]skipped {len(skipped)} task(s) not in your QA queue[/]: "
            + ", ".join(map(str, skipped[:20]))
            + (" ..." if len(skipped) > 20 else ""),
            highlight=False,
        )


@review_app.command("qa-queue")
def qa_queue_command(
    batch: BatchName,
    template: Annotated[
        Path | None,
        typer.Option("--template", help="Also write a findings CSV marking every item clean."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing template.")] = False,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the caller's QA sample: each sampled item's final labels."""
    who = require_actor(actor, as_json=as_json)
    _refuse_template(template, overwrite=overwrite, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        entries = _load_entries(
            program, program.qa_queue(who, batch), program.qa_labels, who,
            f"loading {batch}'s sample", as_json=as_json,
        )  # fmt: skip
        if template is not None:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(QA_COLUMNS)
            for entry in entries:
                writer.writerow([entry["task_id"], "", ""])
            write_bytes_atomic(template, buffer.getvalue().encode("utf-8"))
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": batch,
                "inspector": who,
                "tasks": entries,
                "template": str(template) if template is not None else None,
            }
        )
        return
    _render_entries(entries, f"{who}'s QA sample: {batch}")
    if template is not None:
        console.print(
            f"[green]wrote[/] {template}: add a row per defect, then "
            f"labelgate review qa {batch} --findings {template}",
            highlight=False,
        )


# --- adjudication of dual-annotation disputes ----------------------------------------------


@review_app.command("disputes")
def disputes_command(
    batch: BatchName,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List a batch's open disputes: objects the two annotators of an item disagree on."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        disputes = program.adjudications(batch, actor=who)
        taxonomy = program.spec().taxonomy()
    for dispute in disputes:
        class_id = dispute["payload"].get("class_id")
        dispute["class"] = taxonomy.by_id(class_id).name if class_id in taxonomy.ids else None
    if as_json:
        emit_json({"project": program.name, "batch": batch, "disputes": disputes})
        return
    if not disputes:
        console.print(f"no open disputes in {batch}", highlight=False)
        return
    table = Table("id", "image (store id)", "class", "bbox", "reason", title=f"disputes: {batch}")
    for d in disputes:
        box_text = ", ".join(f"{v:.1f}" for v in d["payload"].get("bbox", []))
        table.add_row(str(d["id"]), str(d["image_id"]), d["class"] or "-", box_text, d["reason"])
    console.print(table)
    console.print(
        "decide each: labelgate review adjudicate ID --keep | --drop | --choice a|b --reason TEXT",
        highlight=False,
    )


@review_app.command("adjudicate")
def adjudicate_command(
    dispute_ids: Annotated[list[int], typer.Argument(help="Dispute ids (review disputes).")],
    keep: Annotated[
        bool | None,
        typer.Option(
            "--keep/--drop",
            help="Keep the disputed object in the final labels, or drop it (or give --choice).",
        ),
    ] = None,
    choice: Annotated[
        str | None,
        typer.Option(
            "--choice",
            help="Take annotator a's or b's version (the item's first or second blind task; "
            "decides the dispute's whole group); needs --reason or --reason-code.",
            case_sensitive=False,
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why (free text, audited with the decision)."),
    ] = None,
    reason_code: Annotated[
        str | None,
        typer.Option("--reason-code", help=f"One of: {', '.join(ADJUDICATION_REASONS)}."),
    ] = None,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Decide disputes: keep or drop each disputed object, or take version a or b, with a reason.

    The reason (``--reason``, ``--reason-code``) is stored in each adjudication's decision
    and its audit event; a ``--choice`` needs one (adjudicators, managers).
    """
    who = require_actor(actor, as_json=as_json)
    if (keep is None) == (choice is None):
        fail(WorkflowError("give --keep or --drop, or --choice a|b (one of them)"), as_json=as_json)
    if choice is not None:
        choice = choice.lower()
        if choice not in ("a", "b"):
            fail(WorkflowError(f"--choice must be a or b, got {choice!r}"), as_json=as_json)
    resolved: list[int] = []
    kept: list[int] = []
    with opened_program(db_url, project, as_json=as_json) as program:
        for dispute_id in dispute_ids:
            if dispute_id in resolved:  # decided with an earlier one of its group
                continue
            outcome = program.adjudicate(
                dispute_id,
                keep=keep,
                choice=choice,
                reason=reason,
                reason_code=reason_code,
                actor=who,
            )
            resolved += outcome["resolved"]
            kept += outcome["kept"]
    if as_json:
        emit_json(
            {
                "project": program.name,
                "decided": dispute_ids,
                "resolved": resolved,
                "kept": kept,
                "keep": keep,
                "choice": choice,
                "reason": reason,
                "reason_code": reason_code,
                "adjudicator": who,
            }
        )
        return
    verb = f"took version {choice} of" if choice is not None else "kept" if keep else "dropped"
    console.print(
        f"[green]{verb}[/] {len(dispute_ids)} disputed object(s)"
        + (f" ({len(resolved)} resolved, {len(kept)} kept)" if choice is not None else ""),
        highlight=False,
    )
