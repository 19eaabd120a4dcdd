"""``labelgate prelabel``: a model's proposals as pre-labels of a batch, and what they saved.

Two modes of one command:

- ``labelgate prelabel --batch B --predictions PRED.json`` (a COCO results list a model
  wrote elsewhere) or ``--cascade NAME --class CLASS --images DIR`` (an OpenCV cascade run
  here) stores proposals on the batch's open tasks, chunk by chunk with a progress bar;
  rerunning resumes and, once done, does nothing;
- ``labelgate prelabel --batch B --metrics`` reports acceptance, adjustment IoU, proposal
  precision/recall per class and time saved against the control group.

The rules (managers only, per-class thresholds, control group, no unreviewed proposal
reaching review) are the workflow's. Exit 0 ok, 2 bad input or refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json
from labelgate.cli.db import DbOption, JsonFlag
from labelgate.cli.program import (
    ActorOption,
    ProjectOption,
    counted_progress,
    opened_program,
    require_actor,
)
from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.errors import LabelgateError
from labelgate.ml.predictors import CascadePredictor, PredictionsFile, Predictor
from labelgate.ml.prelabel import prelabel_batch
from labelgate.workflow.prelabel import prelabel_metrics
from labelgate.workflow.program import Program

__all__ = ["prelabel_command"]


def _class_id(program: Program, text: str) -> int:
    """A class of the newest spec by name or id."""
    spec = program.spec()
    for c in spec.classes:
        if c.name == text or str(c.id) == text:
            return c.id
    names = ", ".join(f"{c.id} {c.name}" for c in spec.classes)
    raise LabelgateError(f"--class {text!r}: no such class (classes: {names})")


def _predictor(
    program: Program,
    predictions: Path | None,
    cascade: str | None,
    class_name: str | None,
    images: Path | None,
) -> tuple[Predictor, str]:
    """The predictor the options name, and its default model name."""
    if (predictions is None) == (cascade is None):
        raise LabelgateError("name one model: --predictions PRED.json or --cascade NAME")
    if predictions is not None:
        _, table = program.images()
        reference = Dataset(Annotations.empty(), table, program.spec().taxonomy())
        return PredictionsFile(predictions, reference=reference), predictions.stem
    assert cascade is not None
    if class_name is None:
        raise LabelgateError("--cascade needs --class CLASS: the class it detects")
    if images is None:
        raise LabelgateError("--cascade needs --images DIR: the folder of the batch's images")
    return CascadePredictor({_class_id(program, class_name): cascade}), Path(cascade).stem


def prelabel_command(
    batch: Annotated[str, typer.Option("--batch", metavar="B", help="Batch name.")],
    predictions: Annotated[
        Path | None,
        typer.Option("--predictions", help="Model predictions: a COCO results JSON list."),
    ] = None,
    cascade: Annotated[
        str | None,
        typer.Option(
            "--cascade",
            metavar="NAME",
            help="An OpenCV cascade (a file in cv2.data.haarcascades, or a path).",
        ),
    ] = None,
    class_name: Annotated[
        str | None, typer.Option("--class", metavar="CLASS", help="Class the cascade detects.")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", metavar="DIR", help="Folder the images' file names are in."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Model name for the audit trail (default: file stem)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Confidence threshold instead of the spec's \\[prelabel] threshold "
            "(its per-class values still apply).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images per prediction call.")
    ] = 64,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Report what pre-labeling did instead.")
    ] = False,
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="--metrics: precision/recall against the 'submitted' labels of each task "
            "or the 'delivered' labels of each item (after review).",
        ),
    ] = "submitted",
    confidence: Annotated[
        float,
        typer.Option("--confidence", min=0.5, max=0.999, help="Level of the intervals."),
    ] = 0.95,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Store a model's proposals as pre-labels of a batch, or report what they saved."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        if metrics:
            document = prelabel_metrics(
                program, batch, actor=who, against=against, confidence=confidence
            )
            _emit_metrics({"project": program.name, **document}, as_json=as_json)
            return
        # bad options raise LabelgateError: opened_program turns it into exit 2
        predictor, default_name = _predictor(program, predictions, cascade, class_name, images)
        with counted_progress(as_json=as_json) as bar:
            task = bar.add_task(f"pre-labeling {batch}", total=None)
            run = prelabel_batch(
                program,
                batch,
                predictor,
                model=model or default_name,
                actor=who,
                root=images,
                batch_size=batch_size,
                threshold=threshold,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    document = {"project": program.name, "model": model or default_name, **run.to_dict()}
    if as_json:
        emit_json(document)
        return
    stored = run.stored
    rate = document["images_per_second"]
    console.print(
        f"[green]pre-labelled[/] {batch}: {stored['tasks']:,} tasks, {stored['objects']:,} "
        f"objects ({stored['below_threshold']:,} below threshold) from {run.images:,} images"
        + (f" at {rate:,.1f} images/s" if rate else "")
        + f"; control group {run.plan.control_tasks:,} tasks",
        highlight=False,
    )


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _emit_metrics(document: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        emit_json(document)
        return
    decisions = document["decisions"]
    console.print(
        f"[bold]{document['batch']}[/]: {document['proposals']:,} proposals: "
        f"{decisions['accept']:,} accepted, {decisions['adjust']:,} adjusted, "
        f"{decisions['reject']:,} rejected (acceptance {_fmt(document['acceptance_rate'])}); "
        f"adjusted IoU median {_fmt(document['adjustment_iou']['median'])}; precision "
        f"{_fmt(document['precision'])}, recall {_fmt(document['recall'])}",
        highlight=False,
    )
    shown = Table(
        "class", "threshold", "proposed", "accept", "adjust", "reject", "precision", "recall",
        title="pre-labels per class",
    )  # fmt: skip
    for row in document["per_class"]:
        shown.add_row(
            row["name"], _fmt(row["confidence_threshold"], 2), str(row["proposed"]),
            str(row["accept"]), str(row["adjust"]), str(row["reject"]),
            _fmt(row["precision"]), _fmt(row["recall"]),
        )  # fmt: skip
    console.print(shown)
    time = document["time"]
    saved = time["time_saved_fraction"]
    seconds = time["seconds_saved_per_task"]
    console.print(
        f"time per task: pre-labelled {_fmt(time['prelabelled']['seconds_per_task'], 1)} s "
        f"({time['prelabelled']['tasks']} tasks), control "
        f"{_fmt(time['control']['seconds_per_task'], 1)} s ({time['control']['tasks']} tasks)"
        + (
            f"; saved {_fmt(seconds['estimate'], 1)} s a task "
            f"[{_fmt(seconds['ci_low'], 1)}, {_fmt(seconds['ci_high'], 1)}]"
            if seconds
            else ""
        )
        + (
            f", {saved['estimate']:.1%} [{saved['ci_low']:.1%}, {saved['ci_high']:.1%}] "
            f"at {time['confidence']:.0%}"
            if saved
            else "; time saved not measurable (needs timed pre-labelled and control tasks)"
        ),
        highlight=False,
    )
