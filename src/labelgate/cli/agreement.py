"""``labelgate agreement``: how much annotators agree, on categorical labels or on geometry.

``--labels FILE.csv`` rates categorical labels; ``A.json B.json [C.json ...]`` (any
format) rates the annotators' objects against each other, per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json, fail
from labelgate.core.agreement import LEVELS, CategoricalAgreement, categorical_agreement
from labelgate.core.annotations import Kind
from labelgate.core.geometry_agreement import GeometryAgreement, geometry_agreement
from labelgate.core.iou import pair_iou
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.ratings import read_ratings
from labelgate.formats.registry import detect_format, read

__all__ = ["agreement_command"]


_SHAPE_KINDS = np.array([Kind.POLYGON, Kind.MASK, Kind.KEYPOINTS], dtype=np.uint8)


def agreement_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Two or more annotators' labels of the same images (any format); the "
            "first file's taxonomy sets the classes and thresholds.",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="CSV with columns item,annotator,label (one row per rating)."
        ),
    ] = None,
    level: Annotated[
        str,
        typer.Option(
            "--level",
            help="Krippendorff's metric: nominal, ordinal, interval or ratio (the last three "
            "need numeric labels).",
        ),
    ] = "nominal",
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Bootstrap resamples of items for the intervals (0: none)."
        ),
    ] = 1000,
    confidence: Annotated[
        float,
        typer.Option("--confidence", min=0.5, max=0.999, help="Coverage of the intervals."),
    ] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    iou_threshold: Annotated[
        float | None,
        typer.Option(
            "--iou-threshold",
            min=0.0,
            max=1.0,
            help="Files only: one IoU threshold for every class (default: each class's tier "
            "threshold from the first file's taxonomy).",
        ),
    ] = None,
    from_format: Annotated[
        str | None,
        typer.Option("--from", help="Files only: format of every file (detected if omitted)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Agreement of annotators: categorical (--labels) or geometric (two or more files).

    Categorical: percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha.
    Geometric: per class and annotator pair, matched rate, mean IoU, F1 and Krippendorff's
    alpha with 1 - IoU as the distance. Both with bootstrap intervals.
    """
    if (labels is None) == (not files):
        fail(
            FormatError(
                "expected either --labels FILE.csv or two or more annotation files, "
                f"got {'both' if labels is not None else 'neither'}",
                path="--labels",
            ),
            as_json=as_json,
        )
    if files:
        _geometry(
            files,
            iou_threshold=iou_threshold,
            from_format=from_format,
            n_resamples=bootstrap,
            confidence=confidence,
            seed=seed,
            as_json=as_json,
        )
        return
    assert labels is not None  # checked above: exactly one of labels and files
    if level not in LEVELS:
        fail(
            FormatError(f"expected one of {', '.join(LEVELS)}, got {level!r}", path="--level"),
            as_json=as_json,
        )
    try:
        ratings = read_ratings(labels, numeric=level != "nominal")
        result = categorical_agreement(
            ratings.item_id,
            ratings.annotator_id,
            ratings.label_id,
            level=level,
            values=ratings.values,
            n_categories=len(ratings.categories),
            n_resamples=bootstrap,
            confidence=confidence,
            seed=seed,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    if as_json:
        emit_json(result.to_dict())
        return
    _render(labels, result, console)


def _geometry(
    files: list[Path],
    *,
    iou_threshold: float | None,
    from_format: str | None,
    n_resamples: int,
    confidence: float,
    seed: int,
    as_json: bool,
) -> None:
    if len(files) < 2:
        fail(
            FormatError(f"expected two or more annotation files, got {len(files)}", path=files[0]),
            as_json=as_json,
        )
    try:
        datasets = [read(path, from_format or detect_format(path)) for path in files]
        taxonomy = datasets[0].taxonomy
        for path, dataset in zip(files[1:], datasets[1:], strict=True):
            _check_same_classes(taxonomy, dataset, path)
        image_ids = np.unique(np.concatenate([dataset.images.id for dataset in datasets]))
        # polygons, masks and keypoints are compared as drawn (exact polygon IoU, RLE IoU,
        # OKS), not by their bounding boxes
        shapes = any(np.isin(d.annotations.kind, _SHAPE_KINDS).any() for d in datasets)
        result = geometry_agreement(
            [dataset.annotations for dataset in datasets],
            taxonomy,
            iou_threshold=iou_threshold,
            pair_iou=pair_iou if shapes else None,
            image_ids=image_ids,
            n_resamples=n_resamples,
            confidence=confidence,
            seed=seed,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    names = [path.name for path in files]
    if as_json:
        emit_json(result.to_dict(names))
        return
    _render_geometry(names, result, console)


def _check_same_classes(taxonomy: Taxonomy, dataset: Any, path: Path) -> None:
    """Every file must use the first file's class ids: otherwise classes cannot be paired."""
    used = set(dataset.annotations.class_id.tolist())
    unknown = sorted(used - set(taxonomy.ids.tolist()))
    if unknown:
        raise FormatError(
            f"uses class ids {unknown[:10]} that the first file does not define; every file "
            "must share one taxonomy",
            path=path,
            field="category_id",
        )


def _render_geometry(names: list[str], result: GeometryAgreement, console: Any) -> None:
    console.print(
        f"[bold]{', '.join(names)}[/]: {result.images:,} images, {len(names)} annotators",
        highlight=False,
    )
    document = result.to_dict(names)
    table = Table("class", "IoU threshold", "matched rate", "mean IoU", "F1", "alpha")
    for row in document["per_class"]:
        table.add_row(
            row["name"],
            f"{row['iou_threshold']:.2f}",
            _num(row["matched_rate"]),
            _num(row["mean_iou"]),
            _num(row["f1"]),
            _num(row["krippendorff_alpha"]),
        )
    overall = document["overall"]
    table.add_row(
        "[bold]overall[/]",
        "",
        _num(overall["matched_rate"]),
        _num(overall["mean_iou"]),
        _num(overall["f1"]),
        _num(overall["krippendorff_alpha"]),
    )
    console.print(table)
    for name, (low, high) in document["ci"].items():
        console.print(
            f"{name}: {result.confidence:.0%} CI {_num(low)} .. {_num(high)}", highlight=False
        )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _render(path: Path, result: CategoricalAgreement, console: Any) -> None:
    console.print(
        f"[bold]{path}[/]: {result.items:,} items, {result.annotators:,} annotators, "
        f"{result.ratings:,} ratings, {result.categories:,} categories",
        highlight=False,
    )
    coverage = f"{result.confidence:.0%} CI"
    table = Table("statistic", "value", coverage, "note")
    rows = (
        ("percent agreement", "percent_agreement", result.percent_agreement, None),
        ("Cohen's kappa", "cohen_kappa", result.cohen_kappa, result.cohen_kappa_reason),
        ("Fleiss' kappa", "fleiss_kappa", result.fleiss_kappa, result.fleiss_kappa_reason),
        (
            f"Krippendorff's alpha ({result.level})",
            "krippendorff_alpha",
            result.krippendorff_alpha,
            None,
        ),
    )
    for title, key, value, note in rows:
        low, high = result.ci.get(key, (None, None))
        interval = "-" if low is None or high is None else f"{_num(low)} .. {_num(high)}"
        table.add_row(title, _num(value), interval, note or "")
    console.print(table)
