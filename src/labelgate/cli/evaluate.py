"""``labelgate eval GT DT``: COCO evaluation of detections, equal to pycocotools' numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json, fail
from labelgate.cli._ray import RayAddress, Shards
from labelgate.core._typing import IntArray
from labelgate.core.dataset import Dataset
from labelgate.core.evaluate import Evaluation, IouType, evaluate, rasterize_polygons
from labelgate.core.masks import rle_from_string
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.coco import read_coco

__all__ = ["eval_command", "evaluation_to_dict"]


def eval_command(
    gt: Annotated[Path, typer.Argument(help="Ground truth: a COCO instances file.")],
    dt: Annotated[Path, typer.Argument(help="Detections: a COCO results list (with scores).")],
    iou_type: Annotated[
        str, typer.Option("--iou-type", help="bbox, segm (RLE mask IoU) or keypoints (OKS).")
    ] = "bbox",
    per_class_tier: Annotated[
        bool,
        typer.Option(
            "--per-class-tier",
            help="Evaluate each class at its own taxonomy IoU threshold (its precision tier).",
        ),
    ] = False,
    ray: RayAddress = None,
    shards: Shards = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """COCO AP/AR of DT against GT: pycocotools' 12 stats, and AP per class."""
    try:
        if iou_type not in ("bbox", "segm", "keypoints"):
            raise FormatError(
                f"expected bbox, segm or keypoints, got {iou_type!r}", path="--iou-type"
            )
        truth = read_coco(gt)
        found = read_coco(dt, reference=truth).annotations
        if iou_type == "segm":
            # COCOeval compares polygons as masks rasterized by pycocotools
            truth = Dataset(
                rasterize_polygons(truth.annotations, truth.images, _rasterize),
                truth.images,
                truth.taxonomy,
            )
            found = rasterize_polygons(found, truth.images, _rasterize)
        thresholds = (
            np.array([c.threshold for c in sorted(truth.taxonomy.classes, key=lambda c: c.id)])
            if per_class_tier
            else None
        )
        if ray is None and shards is None:
            result = evaluate(
                truth,
                found,
                iou_type=cast(IouType, iou_type),
                per_class_thresholds=thresholds,
            )
        else:
            from labelgate.ml.distributed import evaluate_sharded  # imports Ray

            result = evaluate_sharded(
                truth,
                found,
                iou_type=cast(IouType, iou_type),
                per_class_thresholds=thresholds,
                shards=shards,
                address=ray,
            )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    document = evaluation_to_dict(result, truth)
    if as_json:
        emit_json(document)
        return
    console.print(
        f"[bold]{gt.name}[/] vs [bold]{dt.name}[/] ({result.iou_type}): {result.images:,} images, "
        f"{result.gt:,} ground truth, {result.dt:,} detections",
        highlight=False,
    )
    stats = Table("metric", "value", title="COCO stats (pycocotools order)")
    for name, value in zip(document["stats_names"], document["stats"]):
        stats.add_row(name, f"{value:.3f}")
    console.print(stats)
    per_class = Table("class", "AP", "AP50", "AP75", title="per class")
    for row in document["per_class"]:
        per_class.add_row(row["name"], *(_cell(row[key]) for key in ("ap", "ap50", "ap75")))
    console.print(per_class)


def _rasterize(rings: list[list[float]], height: int, width: int) -> IntArray:
    """Rasterize like pycocotools' ``annToRLE``: each ring, then merged into one mask."""
    from pycocotools import mask as coco_mask  # imported on use: segm only

    merged = coco_mask.merge(coco_mask.frPyObjects(rings, height, width))
    counts = merged["counts"]
    return rle_from_string(counts.decode("ascii") if isinstance(counts, bytes) else counts)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def evaluation_to_dict(result: Evaluation, truth: Dataset) -> dict[str, Any]:
    """The ``labelgate eval --json`` document (see docs/eval.md)."""
    ap = result.class_ap()
    if result.class_thresholds is not None:
        # each class at its own threshold: AP is at that threshold; AP50/AP75 do not apply
        ap50 = ap75 = np.full(len(ap), -1.0)
    else:
        ap50, ap75 = result.class_ap(0.5), result.class_ap(0.75)
    names = dict(zip(truth.taxonomy.ids.tolist(), truth.taxonomy.names))

    def value(x: float) -> float | None:
        return None if x < 0 else float(x)

    per_class: list[dict[str, Any]] = []
    for index, class_id in enumerate(result.class_ids.tolist()):
        row: dict[str, Any] = {
            "class_id": class_id,
            "name": names.get(class_id, "all"),
            "ap": value(ap[index]),
            "ap50": value(ap50[index]),
            "ap75": value(ap75[index]),
        }
        if result.class_thresholds is not None:
            row["iou_threshold"] = float(result.class_thresholds[index])
        per_class.append(row)
    return {
        "iou_type": result.iou_type,
        "stats": [float(x) for x in result.stats],
        "stats_names": list(result.stats_names),
        "per_class": per_class,
        "images": result.images,
        "gt": result.gt,
        "dt": result.dt,
    }
