"""Run any :class:`~labelgate.ml.predictors.Predictor` over a batch and store its pre-labels.

:func:`prelabel_batch` asks the workflow which images still need proposals
(:func:`~labelgate.workflow.prelabel.prelabel_plan`: open tasks with no revision, outside
the control group), runs the predictor on them ``batch_size`` images at a time, and stores
each chunk's proposals in its own transaction
(:func:`~labelgate.workflow.prelabel.store_prelabels`). A run that stops half-way has
stored every finished chunk; the next run asks again and predicts only what is left, so
rerunning a finished batch predicts nothing. Thresholds, the control group and permissions
are the workflow's; this module only feeds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelgate.errors import ValidationError
from labelgate.ml.predictors import Predictor
from labelgate.workflow.prelabel import PrelabelPlan, prelabel_plan, store_prelabels
from labelgate.workflow.program import Program

__all__ = ["PrelabelRun", "prelabel_batch"]

#: ``progress(done, total)``: images predicted and stored so far, of this run's total.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PrelabelRun:
    """What one :func:`prelabel_batch` run did.

    Attributes
    ----------
    plan
        The batch's state before the run (what was pending).
    images
        Images the predictor ran on.
    chunks
        Transactions written (one per ``batch_size`` images).
    stored
        Sums of :class:`~labelgate.workflow.prelabel.StoredPrelabels` over the chunks:
        ``tasks``, ``objects``, ``below_threshold``, ``skipped``, ``outside`` (control
        tasks are in ``plan``).
    seconds
        Wall time of prediction and storing.
    """

    plan: PrelabelPlan
    images: int
    chunks: int
    stored: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``labelgate prelabel --json``), keys documented in docs/ml.md."""
        rate = self.images / self.seconds if self.seconds > 0 and self.images else None
        return {
            "batch": self.plan.batch,
            "plan": self.plan.to_dict(),
            "images": self.images,
            "chunks": self.chunks,
            "stored": self.stored,
            "seconds": round(self.seconds, 6),
            "images_per_second": round(rate, 3) if rate is not None else None,
        }


def prelabel_batch(
    program: Program,
    batch: int | str,
    predictor: Predictor,
    *,
    model: str,
    actor: str,
    root: Path | None = None,
    batch_size: int = 64,
    threshold: float | None = None,
    progress: Progress | None = None,
) -> PrelabelRun:
    """Predict on the batch's pending images and store the proposals, chunk by chunk.

    Parameters
    ----------
    program, batch
        The program and the batch (at stage production, tasks assigned).
    predictor
        Any predictor; it gets the pending images (external ids, file names, sizes) and
        ``root``.
    model
        The model's name: proposals are authored by user ``model:NAME``.
    actor
        A manager or admin.
    root
        Folder the images' file names are relative to (predictors that read pixels).
    batch_size
        Images per prediction call and per stored transaction; default 64.
    threshold
        Replaces the spec's ``[prelabel] threshold`` (per-class overrides still apply).
    progress
        Called after each stored chunk with (images done, images in this run).

    Returns
    -------
    PrelabelRun
        The plan it started from and what it stored.

    Examples
    --------
    See ``tests/ml/test_prelabel_batch.py``: a cascade detector over drawn faces.
    """
    if batch_size < 1:
        raise ValidationError(f"expected batch_size >= 1, got {batch_size}", field="batch_size")
    start = time.perf_counter()
    plan = prelabel_plan(program, batch, actor=actor, threshold=threshold)
    images = plan.images
    totals = {"tasks": 0, "objects": 0, "below_threshold": 0, "skipped": 0, "outside": 0}
    chunks = 0
    for lo in range(0, len(images), batch_size):  # one transaction per chunk: resumable
        chunk = images[lo : lo + batch_size]
        predictions = predictor.predict(chunk, root=root)
        stored = store_prelabels(
            program,
            batch,
            predictions,
            images=chunk.id,
            model=model,
            actor=actor,
            threshold=threshold,
        )
        for key in totals:
            totals[key] += getattr(stored, key)
        chunks += 1
        if progress is not None:
            progress(lo + len(chunk), len(images))
    return PrelabelRun(
        plan=plan,
        images=len(images),
        chunks=chunks,
        stored=totals,
        seconds=time.perf_counter() - start,
    )
