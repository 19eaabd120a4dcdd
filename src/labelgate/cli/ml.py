"""``labelgate errors`` and ``labelgate select``: model-assisted label checks and selection.

``errors`` ranks suspected label errors (and every image) from a model's predictions;
``select`` picks the images to label next. Both read predictions as a COCO results list
(``[{"image_id", "category_id", "bbox", "score"}, ...]``). Exit 0 ok, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json, fail
from labelgate.cli._ray import RayAddress, Shards
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.coco import read_coco
from labelgate.formats.registry import detect_format, read
from labelgate.ml.errors import find_label_errors
from labelgate.ml.select import STRATEGIES, image_uncertainty, select

__all__ = ["errors_command", "select_command"]

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _thresholds(text: str | None) -> dict[int, float] | float | None:
    """``0.6`` for every class, or ``1=0.6,3=0.4`` per class id."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        table = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            table[int(key)] = float(value)
        return table
    except ValueError as exc:
        raise FormatError(
            f"expected T or CLASS=T,CLASS=T (e.g. 1=0.6,3=0.4), got {text!r}",
            path="--thresholds",
        ) from exc


def errors_command(
    labels: Annotated[Path, typer.Option("--labels", help="The labels under test (any format).")],
    predictions: Annotated[
        Path, typer.Option("--predictions", help="Model predictions: a COCO results JSON list.")
    ],
    top: Annotated[
        int | None, typer.Option("--top", min=0, help="List only the K most suspicious errors.")
    ] = None,
    thresholds: Annotated[
        str | None,
        typer.Option(
            "--thresholds",
            help="Confidence thresholds: T for all, or CLASS=T,... (default: each class's "
            "mean self-confidence, as confident learning).",
        ),
    ] = None,
    min_score: Annotated[
        float, typer.Option("--min-score", min=0.0, max=1.0, help="List errors scoring >= this.")
    ] = 0.3,
    from_format: Annotated[
        str | None, typer.Option("--from", help="Format of LABELS (detected if omitted).")
    ] = None,
    ray: RayAddress = None,
    shards: Shards = None,
    as_json: JsonFlag = False,
) -> None:
    """Rank suspected label errors by a model's disagreement; score every image.

    Each error has image_id, annotation_id (null for an overlooked object), type
    (overlooked, swapped_class, badly_located, duplicate, attribute_inconsistent) and
    score in [0, 1]; images lists every image, most suspicious first.
    """
    try:
        table = _thresholds(thresholds)
        dataset = read(labels, from_format or detect_format(labels))
        pred = read_coco(predictions, reference=dataset).annotations
        if ray is None and shards is None:
            report = find_label_errors(dataset, pred, thresholds=table, min_score=min_score)
        else:
            from labelgate.ml.distributed import find_label_errors_sharded  # imports Ray

            report = find_label_errors_sharded(
                dataset, pred, thresholds=table, min_score=min_score, shards=shards, address=ray
            )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    document = report.to_dict(top=top)
    if as_json:
        emit_json(document)
        return
    shown = Table("image", "annotation", "type", "score", title="suspected label errors")
    for row in document["errors"]:
        annotation = "—" if row["annotation_id"] is None else str(row["annotation_id"])
        shown.add_row(str(row["image_id"]), annotation, row["type"], f"{row['score']:.3f}")
    console.print(shown)
    worst = document["images"][:10]
    console.print(
        f"{document['total_errors']:,} suspected errors on {len(document['images']):,} images; "
        "most suspicious images: "
        + ", ".join(f"{r['image_id']} ({r['score']:.2f})" for r in worst),
        highlight=False,
    )


def select_command(
    predictions: Annotated[
        Path, typer.Option("--predictions", help="Model predictions on the pool: COCO results.")
    ],
    budget: Annotated[int, typer.Option("--budget", min=0, help="Images to pick.")],
    strategy: Annotated[
        str, typer.Option("--strategy", help=f"One of {', '.join(STRATEGIES)}.")
    ] = "uncertainty",
    aggregate: Annotated[
        str, typer.Option("--aggregate", help="Per-image aggregate: max, mean or sum.")
    ] = "max",
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            help="E.npy: one row per pool image in ascending image id order; or E.npz with "
            "arrays image_id and embedding.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Pick the images to label next; image_ids in pick order, plus per-image scores."""
    try:
        pred = read_coco(predictions).annotations
        pool = np.unique(pred.image_id)
        vectors = None if embeddings is None else _embeddings(embeddings, pool)
        picked = select(pred, budget, strategy, vectors, image_ids=pool, aggregate=aggregate)
        ids, scores = image_uncertainty(pred, pool, strategy=strategy, aggregate=aggregate)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    order = np.lexsort((ids, -scores))
    document = {
        "strategy": strategy,
        "aggregate": aggregate,
        "budget": budget,
        "image_ids": picked.tolist(),
        "scores": [
            {"image_id": i, "score": round(s, 6)}
            for i, s in zip(ids[order].tolist(), scores[order].tolist())
        ],
    }
    if as_json:
        emit_json(document)
        return
    console.print(
        f"[bold]select[/] {strategy} ({aggregate}): {len(picked)} of {len(pool):,} images: "
        + " ".join(str(i) for i in picked.tolist()),
        highlight=False,
    )


def _embeddings(path: Path, pool: np.ndarray) -> np.ndarray:
    """Rows of an .npy (pool order) or .npz (``image_id`` + ``embedding``) for the pool."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise FormatError(f"not a numpy .npy/.npz file: {exc}", path=path) from exc
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or len(data) != len(pool):
            raise FormatError(
                f"expected ({len(pool)}, d): one row per image with a prediction, in ascending "
                f"image id order, got shape {data.shape}",
                path=path,
            )
        return data.astype(np.float64)
    with data:
        if "image_id" not in data or "embedding" not in data:
            raise FormatError("expected arrays image_id and embedding", path=path)
        ids = np.asarray(data["image_id"], dtype=np.int64)
        vectors = np.asarray(data["embedding"], dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise FormatError(
            f"expected embedding ({len(ids)}, d), got {vectors.shape}", path=path, field="embedding"
        )
    order = np.argsort(ids)
    at = np.searchsorted(ids[order], pool)
    at = np.minimum(at, max(len(ids) - 1, 0))
    found = ids[order][at] == pool if len(ids) else np.zeros(len(pool), bool)
    if not found.all():
        missing = pool[~found][:10].tolist()
        raise FormatError(f"no embedding for image ids {missing}", path=path, field="image_id")
    out: np.ndarray = vectors[order][at]
    return out
