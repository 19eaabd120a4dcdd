"""``labelgate compare REF OTHER``: how a label set differs from a reference.

``--spec SPEC`` holds each object to the IoU threshold of a program spec instead of the
reference file's taxonomy: its class's threshold, or the class's override for the scene
type of its image (a pedestrian on a highway held tighter than one in town).

``--ray ADDRESS`` / ``--shards N`` shard the matching by image over Ray (the [ray] extra);
the JSON document is byte for byte the one without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json, fail
from labelgate.cli._ray import RayAddress, Shards
from labelgate.core.compare import Comparison, compare
from labelgate.core.dataset import Dataset
from labelgate.errors import FormatError, LabelgateError, SpecError
from labelgate.formats.registry import detect_format, read
from labelgate.spec import ProgramSpec, load_spec

__all__ = ["compare_command"]


def compare_command(
    reference: Annotated[Path, typer.Argument(help="Reference labels (gold, or annotator A).")],
    other: Annotated[Path, typer.Argument(help="Labels under test.")],
    iou_threshold: Annotated[
        float | None,
        typer.Option(
            "--iou-threshold",
            min=0.0,
            max=1.0,
            help="One IoU threshold for every class (default: each class's tier threshold "
            "from the reference taxonomy).",
        ),
    ] = None,
    spec_path: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="Hold each class to its threshold in this program spec (TOML); not with "
            "--iou-threshold.",
        ),
    ] = None,
    from_format: Annotated[
        str | None, typer.Option("--from", help="Format of both inputs (detected if omitted).")
    ] = None,
    no_swaps: Annotated[
        bool, typer.Option("--no-swaps", help="Do not pair leftovers of different classes.")
    ] = False,
    ray: RayAddress = None,
    shards: Shards = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Match OTHER to REF per image and class; count misses, extras, swaps, IoU and box bias."""
    if spec_path is not None and iou_threshold is not None:
        fail(
            SpecError("give --iou-threshold or --spec, not both", location="--spec"),
            as_json=as_json,
        )
    spec: ProgramSpec | None = None
    try:
        if spec_path is not None:
            spec = load_spec(spec_path)
        ref_dataset = read(reference, from_format or detect_format(reference))
        other_dataset = read(other, from_format or detect_format(other))
        _check_same_classes(ref_dataset.taxonomy.ids.tolist(), other_dataset, other)
        if spec is not None:
            ref_dataset = _with_spec_taxonomy(ref_dataset, spec, reference, spec_path)
            _check_same_classes(ref_dataset.taxonomy.ids.tolist(), other_dataset, other)
        row_thresholds = None
        if spec is not None:
            ann = ref_dataset.annotations
            rows = ref_dataset.images.index_of(ann.image_id)
            scenes = ref_dataset.images.scene_type[np.maximum(rows, 0)]
            row_thresholds = spec.thresholds(ann.class_id, scenes)
        if ray is None and shards is None:
            result = compare(
                ref_dataset,
                other_dataset.annotations,
                iou_threshold=iou_threshold,
                row_thresholds=row_thresholds,
                swaps=not no_swaps,
            )
        else:
            from labelgate.ml.distributed import compare_sharded  # imports Ray

            result = compare_sharded(
                ref_dataset,
                other_dataset.annotations,
                iou_threshold=iou_threshold,
                row_thresholds=row_thresholds,
                swaps=not no_swaps,
                shards=shards,
                address=ray,
            )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    if as_json:
        document = result.to_dict()
        if spec is not None:
            document["spec"] = _spec_note(spec, spec_path)
        emit_json(document)
        return
    _render(result, console)


def _with_spec_taxonomy(
    dataset: Dataset, spec: ProgramSpec, path: Path, spec_path: Path | None
) -> Dataset:
    """The reference with the spec's taxonomy, after checking both name the same classes.

    Every class id REF uses must be in the spec, under the same name: a spec written for
    another taxonomy would otherwise hold classes to the wrong thresholds silently.
    """
    taxonomy = spec.taxonomy()
    spec_names = dict(zip(taxonomy.ids.tolist(), taxonomy.names))
    used = set(dataset.annotations.class_id.tolist())
    name = spec_path.name if spec_path is not None else "spec"
    unknown = sorted(used - set(spec_names))
    if unknown:
        raise FormatError(
            f"uses class ids {unknown[:10]} that the spec {name} does not define",
            path=path,
            field="category_id",
        )
    for info in dataset.taxonomy.classes:
        if info.id in spec_names and spec_names[info.id] != info.name:
            raise FormatError(
                f"class id {info.id} is {info.name!r} here but {spec_names[info.id]!r} in the "
                f"spec {name}",
                path=path,
                field="categories",
            )
    return dataset.replace(taxonomy=taxonomy)


def _spec_note(spec: ProgramSpec, spec_path: Path | None) -> dict[str, Any]:
    return {
        "path": str(spec_path),
        "project": spec.project.name,
        "digest": spec.digest(),
        "scene_thresholds_applied": any(c.scene_thresholds for c in spec.classes),
    }


def _check_same_classes(ref_ids: list[int], other_dataset: Any, path: Path) -> None:
    """OTHER must use the reference's class ids: a class unknown to REF cannot be judged."""
    used = set(other_dataset.annotations.class_id.tolist())
    unknown = sorted(used - set(ref_ids))
    if unknown:
        raise FormatError(
            f"uses class ids {unknown[:10]} that the reference does not define; both files "
            "must share one taxonomy",
            path=path,
            field="category_id",
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _render(result: Comparison, console: Any) -> None:
    overall = result.overall
    threshold = result.iou_threshold
    console.print(
        f"[bold]compare[/] at IoU {'per-class tiers' if threshold is None else threshold}: "
        f"{overall['ref_count']:,} reference, {overall['other_count']:,} other; "
        f"matched {overall['matched']:,}, missed {overall['missed']:,}, "
        f"extra {overall['extra']:,}, swaps {overall['class_swaps']:,}; "
        f"precision {_pct(overall['precision'])}, recall {_pct(overall['recall'])}, "
        f"IoU median {_num(overall['iou']['median'])} (p10 {_num(overall['iou']['p10'])})",
        highlight=False,
    )
    table = Table(
        "class", "thr", "ref", "other", "matched", "missed", "extra", "swaps", "P", "R",
        "IoU med", "IoU p10", "log w", "log h", title="per class",
    )  # fmt: skip
    for row in result.per_class:
        if not row["ref_count"] and not row["other_count"]:
            continue
        table.add_row(
            row["name"], _num(row["iou_threshold"], 2), f"{row['ref_count']:,}",
            f"{row['other_count']:,}", f"{row['matched']:,}", f"{row['missed']:,}",
            f"{row['extra']:,}", f"{row['class_swaps']:,}", _pct(row["precision"]),
            _pct(row["recall"]), _num(row["iou"]["median"]), _num(row["iou"]["p10"]),
            _num(row["bias"]["log_width_ratio"]), _num(row["bias"]["log_height_ratio"]),
        )  # fmt: skip
    console.print(table)
    density = Table("objects/image", "ref", "missed", "recall", "IoU med", title="by density")
    for row in result.by_density:
        if row["ref_count"] or row["other_count"]:
            density.add_row(
                row["bucket"], f"{row['ref_count']:,}", f"{row['missed']:,}",
                _pct(row["recall"]), _num(row["iou"]["median"]),
            )  # fmt: skip
    console.print(density)
