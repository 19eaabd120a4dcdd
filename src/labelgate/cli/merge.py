"""``labelgate merge A B [C ...] --out merged.json``: one consensus set from several annotators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from labelgate.cli._output import console, emit_json, fail
from labelgate.core.dataset import Dataset
from labelgate.core.merge import MergeResult, merge
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.coco import write_coco
from labelgate.formats.registry import detect_format, read

__all__ = ["merge_command"]


def merge_command(
    inputs: Annotated[
        list[Path], typer.Argument(help="One label file per annotator (at least two).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Merged labels, written as COCO.")],
    quorum: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fraction of annotators that must draw an object for it to be merged.",
        ),
    ] = 0.5,
    iou_threshold: Annotated[
        float | None,
        typer.Option(
            "--iou-threshold",
            min=0.0,
            max=1.0,
            help="One IoU threshold for joining a cluster (default: each class's tier "
            "threshold from the first input's taxonomy).",
        ),
    ] = None,
    adjudication: Annotated[
        Path | None,
        typer.Option(
            "--adjudication",
            help="Write the objects below quorum here (COCO, attribute cluster_id).",
        ),
    ] = None,
    from_format: Annotated[
        str | None, typer.Option("--from", help="Format of every input (detected if omitted).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Cluster the annotators' objects, label by vote, merge by median, score the agreement."""
    if len(inputs) < 2:
        fail(
            FormatError(f"expected at least two inputs, got {len(inputs)}", path="inputs"),
            as_json=as_json,
        )
    try:
        datasets = [read(path, from_format or detect_format(path)) for path in inputs]
        first = datasets[0]
        for dataset, path in zip(datasets[1:], inputs[1:]):
            _check_compatible(first, dataset, path)
        result = merge(
            [d.annotations for d in datasets],
            iou_threshold=iou_threshold,
            taxonomy=first.taxonomy if iou_threshold is None else None,
            quorum=quorum,
        )
        targets = [(out, result.annotations)]
        if adjudication is not None:
            targets.append((adjudication, result.adjudication))
        for target, _ in targets:  # refuse before writing anything
            if target.exists() and not overwrite:
                raise FileExistsError(target)
        for target, annotations in targets:
            write_coco(first.replace(annotations=annotations), target, overwrite=overwrite)
    except FileExistsError as exc:
        fail(
            FormatError("exists; pass --overwrite to replace it", path=Path(str(exc))),
            as_json=as_json,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    if as_json:
        emit_json(result.to_dict())
        return
    _render(result, out, adjudication)


def _check_compatible(first: Dataset, other: Dataset, path: Path) -> None:
    """Every input must use the first input's image ids, file names and class ids."""
    order = np.argsort(first.images.id, kind="stable")
    sorted_ids = first.images.id[order]
    position = np.searchsorted(sorted_ids, other.images.id)
    known = position < len(sorted_ids)
    known[known] = sorted_ids[position[known]] == other.images.id[known]
    if not known.all():
        unknown = other.images.id[~known][:10].tolist()
        raise FormatError(
            f"has image ids {unknown} that the first input does not; all inputs must label "
            "the same images",
            path=path,
            field="images",
        )
    names = first.images.file_name[order[position]]
    differ = np.flatnonzero(names != other.images.file_name)
    if len(differ):
        row = int(differ[0])
        raise FormatError(
            f"image id {int(other.images.id[row])} is {other.images.file_name[row]!r} here "
            f"but {names[row]!r} in the first input",
            path=path,
            field="file_name",
        )
    unknown_classes = sorted(
        set(other.annotations.class_id.tolist()) - set(first.taxonomy.ids.tolist())
    )
    if unknown_classes:
        raise FormatError(
            f"uses class ids {unknown_classes[:10]} that the first input does not define; all "
            "inputs must share one taxonomy",
            path=path,
            field="category_id",
        )


def _render(result: MergeResult, out: Path, adjudication: Path | None) -> None:
    summary = result.to_dict()
    mean_score = summary["mean_score"]
    threshold = summary["iou_threshold"]
    console.print(
        f"[bold]merge[/] of {summary['annotators']} annotators at IoU "
        f"{'per-class tiers' if threshold is None else threshold}, quorum {summary['quorum']}: "
        f"{summary['clusters']:,} clusters, {summary['merged']:,} merged "
        f"(mean score {'-' if mean_score is None else f'{mean_score:.3f}'}), "
        f"{summary['adjudication']:,} below quorum",
        highlight=False,
    )
    console.print(f"merged: {out}", highlight=False)
    if adjudication is not None:
        console.print(f"adjudication: {adjudication}", highlight=False)
