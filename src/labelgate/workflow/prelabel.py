"""Pre-labeling (pipeline stage 4): model proposals stored for review, and what they saved.

Three pieces, each one transaction:

- :func:`store_prelabels` writes a model's proposals (above the spec's per-class confidence
  threshold) as the first revision, ``source=PRELABEL``, of every open task of the
  batch's current cycle (production, gold, honeypot, rework: hidden tasks look like the
  others) that has no revision yet, authored by a model user
  (``model:NAME``, inactive: it can never log in or be assigned). Both tasks of a blind
  double item get the same proposals under the same object keys. A seeded share of items
  (``[prelabel] control_rate``) gets nothing: the control group. Rerunning skips every task
  that already has a revision, so an interrupted run resumes where it stopped.
- :func:`record_decisions` runs inside :meth:`~labelgate.workflow.program.Program.submit`:
  it refuses a task whose head still holds objects with ``source=PRELABEL`` (a proposal
  nobody accepted, adjusted or rejected never reaches review or delivery), and compares
  the pre-label revision with the submitted head by object key: same class and geometry
  is ``accept``, a changed one ``adjust`` (with the IoU of final vs proposal; OKS for
  keypoints), a missing one ``reject``.
- :func:`prelabel_metrics` measures the stage: acceptance / adjust / reject rates, the
  adjustment IoU distribution, the proposals' precision and recall against the submitted
  (or delivered) labels at each class's spec IoU threshold, and time per task and per
  object of
  pre-labelled vs control tasks from the work log, with confidence intervals on the time
  saved.

"Accept all" is a human save that sends every proposal back with ``source`` human (the
editor's Shift+A): it is recorded as that many ``accept`` decisions. A task whose model
found nothing holds an empty pre-label revision, which may be submitted as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session, aliased

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.compare import compare
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.iou import pair_iou
from labelgate.core.ragged import gather_ranges
from labelgate.errors import WorkflowError
from labelgate.spec import ProgramSpec, parse_spec
from labelgate.store.annotations import load_annotations
from labelgate.store.models import (
    AnnotationRow,
    BatchItemRow,
    BatchRow,
    PrelabelDecisionRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
    UserRow,
    WorkLogRow,
)
from labelgate.store.repository import image_table, import_revisions
from labelgate.workflow.audit import append_event
from labelgate.workflow.stages import Stage

if TYPE_CHECKING:
    from labelgate.workflow.program import Program

__all__ = [
    "DECISIONS",
    "MODEL_USER_PREFIX",
    "PrelabelPlan",
    "StoredPrelabels",
    "bootstrap_saved_fraction",
    "control_items",
    "decide",
    "prelabel_metrics",
    "prelabel_plan",
    "record_decisions",
    "store_prelabels",
    "unreviewed_prelabels",
    "welch_interval",
]

#: Decision codes of :func:`decide`, in code order.
DECISIONS = ("accept", "adjust", "reject")
#: Model users are named ``model:NAME``.
MODEL_USER_PREFIX = "model:"
#: Tasks annotated from nothing (rework starts from the previous labels): their time is
#: what pre-labels can save.
SCRATCH_PURPOSES = ("production", "gold", "honeypot")
#: Geometry counts as unchanged at this similarity (box IoU of equal floats is exactly 1).
_UNCHANGED = 1.0 - 1e-9


# --- the control draw ----------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The splitmix64 finalizer (Steele, Lea & Flood 2014), elementwise, wrapping uint64."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    out: NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return out


def control_items(batch_id: int, image_ids: IntArray, rate: float, seed: int) -> BoolArray:
    """(n,) True for the items of a batch that get no pre-labels (the control group).

    Each item's draw is a uniform number from a hash of (seed, batch, image): it depends on
    nothing else, so a resumed run, a run over part of the batch and the metrics computed
    later all put every item in the same group, with nothing stored.

    Examples
    --------
    >>> draw = control_items(1, np.arange(100_000), 0.1, seed=0)
    >>> round(float(draw.mean()), 2)
    0.1
    >>> bool((draw == control_items(1, np.arange(100_000), 0.1, seed=0)).all())
    True
    """
    ids = np.asarray(image_ids, dtype=np.int64).astype(np.uint64)
    key = _splitmix64(_splitmix64(np.array([seed], dtype=np.uint64)) ^ np.uint64(batch_id))
    z = _splitmix64(key ^ ids)
    uniform = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    out: BoolArray = uniform < rate
    return out


# --- what is left to pre-label -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrelabelPlan:
    """A batch's pre-labeling state: what a predictor still has to run on.

    Attributes
    ----------
    batch, batch_id
        The batch.
    images
        The distinct images of pending tasks (external ids), in store order: the input of a
        predictor.
    pending_tasks
        Tasks with no revision yet, outside the control group.
    done_tasks
        Tasks that already hold a pre-label revision.
    control_tasks, control_images
        Tasks and items of the control group (never pre-labelled).
    started_tasks
        Tasks a person saved before any pre-label arrived (neither group).
    thresholds
        Class id -> confidence threshold in force.
    """

    batch: str
    batch_id: int
    images: Images
    pending_tasks: int
    done_tasks: int
    control_tasks: int
    control_images: int
    started_tasks: int
    thresholds: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``labelgate prelabel --json``'s ``plan``)."""
        return {
            "batch": self.batch,
            "pending_images": len(self.images),
            "pending_tasks": self.pending_tasks,
            "done_tasks": self.done_tasks,
            "control_tasks": self.control_tasks,
            "control_images": self.control_images,
            "started_tasks": self.started_tasks,
            "thresholds": {str(k): v for k, v in self.thresholds.items()},
        }


@dataclass(frozen=True, slots=True)
class _CycleTasks:
    """A batch's tasks as arrays (one query), in task id order."""

    task_id: IntArray
    image_id: IntArray  # store ids
    first_source: IntArray  # source of revision #1; -1 without one
    head: IntArray  # head revision id; -1 without one
    head_objects: IntArray  # objects in the head revision
    submitted: BoolArray
    scratch: BoolArray  # purpose in SCRATCH_PURPOSES
    control: BoolArray

    @property
    def empty(self) -> BoolArray:
        """Tasks without any revision."""
        out: BoolArray = self.head < 0
        return out

    @property
    def prelabelled(self) -> BoolArray:
        """Tasks whose first revision is a pre-label revision."""
        out: BoolArray = self.first_source == int(Source.PRELABEL)
        return out


def _managers() -> frozenset[str]:
    from labelgate.workflow.program import MANAGERS  # the permission rule lives there

    return MANAGERS


def _batch_spec(s: Session, row: BatchRow) -> ProgramSpec:
    spec_row = s.get(SpecVersionRow, row.spec_version_id)
    assert spec_row is not None  # foreign key
    return parse_spec(spec_row.toml, source=f"spec v{spec_row.version}")


def _cycle_tasks(
    s: Session,
    row: BatchRow,
    spec: ProgramSpec,
    purposes: Sequence[str],
    *,
    lock: bool = False,
    any_cycle: bool = False,
) -> _CycleTasks:
    """The batch's tasks of these purposes (current cycle unless ``any_cycle``)."""
    first = (
        select(RevisionRow.task_id, RevisionRow.source).where(RevisionRow.number == 1).subquery()
    )
    head = aliased(RevisionRow)
    query = (
        select(
            TaskRow.id,
            TaskRow.image_id,
            func.coalesce(first.c.source, -1),
            func.coalesce(TaskRow.head_revision_id, -1),
            func.coalesce(head.object_count, 0),
            TaskRow.status,
            TaskRow.purpose,
        )
        .outerjoin(first, first.c.task_id == TaskRow.id)
        .outerjoin(head, head.id == TaskRow.head_revision_id)
        .where(TaskRow.batch_id == row.id, TaskRow.purpose.in_(list(purposes)))
        .order_by(TaskRow.id)
    )
    if not any_cycle:
        query = query.where(TaskRow.cycle == row.rework_cycle)
    if lock:
        query = query.with_for_update(of=TaskRow)
    rows = s.execute(query).all()
    columns = list(zip(*rows)) if rows else [()] * 7
    task_id, image_id, source, head_id, objects = (np.array(c, dtype=np.int64) for c in columns[:5])
    status = np.array(columns[5], dtype=object)
    purpose = np.array(columns[6], dtype=object)
    return _CycleTasks(
        task_id=task_id,
        image_id=image_id,
        first_source=source,
        head=head_id,
        head_objects=objects,
        submitted=np.isin(status, ["submitted", "accepted"]),
        scratch=np.isin(purpose, list(SCRATCH_PURPOSES)),
        control=control_items(row.id, image_id, spec.prelabel.control_rate, spec.prelabel.seed),
    )


def _production_batch(program: Program, s: Session, batch: int | str) -> BatchRow:
    row = program._batch(s, batch)
    if row.stage != Stage.PRODUCTION.value:
        raise WorkflowError(
            f"batch {row.name!r} is at stage {row.stage}: pre-labels are stored while its "
            "tasks are open, at stage production (after `assign`)"
        )
    return row


def prelabel_plan(
    program: Program, batch: int | str, *, actor: str, threshold: float | None = None
) -> PrelabelPlan:
    """What is left to pre-label in a batch (managers and admins only).

    Raises
    ------
    PermissionDenied
        ``actor`` is not a manager or admin.
    WorkflowError
        The batch is not at stage production, or has no tasks yet.
    """
    from labelgate.workflow.program import PRODUCTION_PURPOSES

    with program.db.session() as s:
        program._require_role(s, actor, _managers())
        row = _production_batch(program, s, batch)
        spec = _batch_spec(s, row)
        tasks = _cycle_tasks(s, row, spec, PRODUCTION_PURPOSES)
        if len(tasks.task_id) == 0:
            raise WorkflowError(f"batch {row.name!r} has no tasks: `assign` it first")
        empty = tasks.empty
        pending = empty & ~tasks.control
        store_ids, table = image_table(s, program.project_id)
        wanted = np.unique(tasks.image_id[pending])
        return PrelabelPlan(
            batch=row.name,
            batch_id=row.id,
            images=table[np.searchsorted(store_ids, wanted)],
            pending_tasks=int(pending.sum()),
            done_tasks=int(tasks.prelabelled.sum()),
            control_tasks=int(tasks.control.sum()),
            control_images=len(np.unique(tasks.image_id[tasks.control])),
            started_tasks=int((~empty & ~tasks.control & ~tasks.prelabelled).sum()),
            thresholds=spec.prelabel_thresholds(threshold),
        )


# --- storing proposals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPrelabels:
    """The outcome of one :func:`store_prelabels` call.

    Attributes
    ----------
    tasks
        Tasks that got a pre-label revision now (an empty one where the model found
        nothing above threshold).
    objects
        Objects written over those tasks (a blind double item's proposals count twice).
    below_threshold
        Proposals on those tasks' images dropped by the class thresholds.
    skipped
        Tasks of the covered images left alone: they already had a revision (a rerun
        skips every task it wrote before).
    control_tasks
        Tasks of the covered images in the control group (never pre-labelled).
    outside
        Proposal rows on no task written now: on control items, on tasks that already
        had a revision, or on images outside the batch (all ignored).
    """

    tasks: int
    objects: int
    below_threshold: int
    skipped: int
    control_tasks: int
    outside: int

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {
            "tasks": self.tasks,
            "objects": self.objects,
            "below_threshold": self.below_threshold,
            "skipped": self.skipped,
            "control_tasks": self.control_tasks,
            "outside": self.outside,
        }


def _model_user(s: Session, model: str) -> int:
    """The model's user row (created inactive with no roles: it cannot act)."""
    name = f"{MODEL_USER_PREFIX}{model}"
    user = s.execute(select(UserRow).where(UserRow.name == name)).scalar()
    if user is None:
        from labelgate.store.models import utcnow

        user = UserRow(name=name, display_name=name, roles=[], active=False, created_at=utcnow())
        s.add(user)
        s.flush()
    return user.id


def store_prelabels(
    program: Program,
    batch: int | str,
    labels: Annotations,
    *,
    model: str,
    actor: str,
    images: Sequence[int] | IntArray | None = None,
    threshold: float | None = None,
) -> StoredPrelabels:
    """Store a model's proposals as the first revision of the batch's open tasks.

    Parameters
    ----------
    program
        The program.
    batch
        Batch name or id; it must be at stage production (tasks assigned).
    labels
        Scored proposals on the batch's images (external image ids, taxonomy class ids).
    model
        The model's name: its proposals are authored by user ``model:NAME``.
    actor
        Who runs it: a manager or admin.
    images
        External ids of the images the proposals cover (a predictor ran on them): their
        pending tasks get a revision even when nothing was proposed. Default: every image
        of the batch's tasks (the proposals cover the whole batch).
    threshold
        Replaces ``[prelabel] threshold``; per-class ``class_thresholds`` still apply.

    Returns
    -------
    StoredPrelabels
        What was written and skipped.

    Raises
    ------
    PermissionDenied
        ``actor`` is not a manager or admin.
    WorkflowError
        The batch is not at stage production or has no tasks; a proposal is on an image
        the project does not have, of a class the spec does not define, or without a
        finite score (the message names the row).
    """
    from labelgate.workflow.program import PRODUCTION_PURPOSES

    with program.db.session() as s:
        program._require_role(s, actor, _managers())
        row = _production_batch(program, s, batch)
        spec = _batch_spec(s, row)
        taxonomy = spec.taxonomy()
        tasks = _cycle_tasks(s, row, spec, PRODUCTION_PURPOSES, lock=True)
        if len(tasks.task_id) == 0:
            raise WorkflowError(f"batch {row.name!r} has no tasks: `assign` it first")
        empty = tasks.empty
        store_ids, table = image_table(s, program.project_id)

        # proposals: project images, known classes, finite scores (named by row)
        position = table.index_of(labels.image_id)
        bad = np.flatnonzero(position < 0)
        if len(bad):
            r = int(bad[0])
            raise WorkflowError(
                f"prediction row {r}: image id {int(labels.image_id[r])} is not in project "
                f"{program.name!r}"
            )
        class_at = taxonomy.position(labels.class_id)
        bad = np.flatnonzero(class_at < 0)
        if len(bad):
            r = int(bad[0])
            raise WorkflowError(
                f"prediction row {r}: class id {int(labels.class_id[r])} is not in the spec "
                f"of batch {row.name!r} (classes: "
                + ", ".join(f"{c.id} {c.name}" for c in spec.classes)
                + ")"
            )
        bad = np.flatnonzero(~np.isfinite(labels.score))
        if len(bad):
            r = int(bad[0])
            raise WorkflowError(f"prediction row {r}: expected a finite confidence score")
        image_of = store_ids[position] if len(labels) else np.zeros(0, dtype=np.int64)

        # which tasks this call fills
        if images is None:
            covered = np.unique(tasks.image_id)
        else:
            where = table.index_of(np.asarray(images, dtype=np.int64))
            if (where < 0).any():
                missing = int(np.asarray(images)[where < 0][0])
                raise WorkflowError(f"image id {missing} is not in project {program.name!r}")
            covered = np.unique(store_ids[where])
        on_covered = np.isin(tasks.image_id, covered)
        target = on_covered & empty & ~tasks.control
        task_id, task_image = tasks.task_id[target], tasks.image_id[target]

        # per-class confidence thresholds, one lookup per row
        limits = spec.prelabel_thresholds(threshold)
        limit = np.array([limits[c.id] for c in spec.classes], dtype=np.float64)[class_at]
        wanted = np.isin(image_of, task_image)
        keep = wanted & (labels.score >= limit)
        order = np.flatnonzero(keep)
        order = order[np.argsort(image_of[order], kind="stable")]
        kept_image = image_of[order]
        # object key = position among this call's kept proposals (1..): unique within
        # every task, and the same on both tasks of a blind double item
        keys = np.arange(1, len(order) + 1, dtype=np.int64)
        model_id = _model_user(s, model)
        # one bulk write per copy: the first task of every item, then the second of the
        # double items (a container's ids are unique, so two copies never share one)
        by_image = np.lexsort((task_id, task_image))
        first_of = np.searchsorted(task_image[by_image], task_image[by_image], side="left")
        copy = np.empty(len(task_id), dtype=np.int64)
        copy[by_image] = np.arange(len(task_id)) - first_of
        written = 0
        for k in np.unique(copy).tolist():  # 1 or 2 rounds: per copy, not per object
            mine = np.flatnonzero(copy == k)
            lo = np.searchsorted(kept_image, task_image[mine], side="left")
            hi = np.searchsorted(kept_image, task_image[mine], side="right")
            rows = gather_ranges(lo, hi)
            objects = labels.take(order[rows]).replace(
                id=keys[rows],
                image_id=kept_image[rows],
                source=np.full(len(rows), Source.PRELABEL, dtype=np.uint8),
                annotator_id=np.full(len(rows), model_id, dtype=np.int64),
            )
            import_revisions(
                s,
                task_id[mine],
                np.full(len(mine), model_id, dtype=np.int64),
                objects,
                np.repeat(np.arange(len(mine)), hi - lo),
                source=Source.PRELABEL,
            )
            written += len(objects)
        result = StoredPrelabels(
            tasks=len(task_id),
            objects=written,
            below_threshold=int((wanted & ~keep).sum()),
            skipped=int((on_covered & ~empty & ~tasks.control).sum()),
            control_tasks=int((on_covered & tasks.control).sum()),
            outside=int((~np.isin(image_of, task_image)).sum()),
        )
        append_event(
            s,
            actor=actor,
            action="prelabel.store",
            entity_type="batch",
            entity_id=row.id,
            after=result.to_dict(),
            details={
                "model": model,
                "thresholds": {str(k): v for k, v in limits.items()},
                "control_rate": spec.prelabel.control_rate,
                "seed": spec.prelabel.seed,
                "cycle": row.rework_cycle,
            },
        )
        return result


# --- the annotator's decisions ---------------------------------------------------------------


def decide(proposed: Annotations, final: Annotations) -> tuple[IntArray, FloatArray]:
    """What became of each proposal: codes into :data:`DECISIONS` and the IoU kept.

    Objects are identified by ``id`` (the object key). A proposal whose key is absent from
    ``final`` was rejected (IoU NaN); one present with the same class and the same geometry
    (similarity 1) was accepted; anything else was adjusted, with the similarity of the
    final object to the proposal (:func:`~labelgate.core.iou.pair_iou`: IoU, OKS for
    keypoints; tags compare by class only).

    Examples
    --------
    >>> proposed = Annotations.create(id=[1, 2, 3], image_id=[1] * 3, class_id=[1, 1, 2],
    ...                               bbox=[[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 5, 25]])
    >>> final = Annotations.create(id=[1, 2, 9], image_id=[1] * 3, class_id=[1, 1, 1],
    ...                            bbox=[[0, 0, 10, 10], [20, 0, 30, 20], [50, 50, 60, 60]])
    >>> codes, iou = decide(proposed, final)
    >>> [DECISIONS[c] for c in codes], iou.round(3).tolist()
    (['accept', 'adjust', 'reject'], [1.0, 0.5, nan])
    """
    n = len(proposed)
    codes = np.full(n, DECISIONS.index("reject"), dtype=np.int64)
    iou = np.full(n, np.nan)
    if n == 0 or len(final) == 0:
        return codes, iou
    order = np.argsort(final.id, kind="stable")
    at = np.minimum(np.searchsorted(final.id[order], proposed.id), len(final) - 1)
    found = final.id[order][at] == proposed.id
    rows_p = np.flatnonzero(found)
    rows_f = order[at[found]]
    similarity = pair_iou(final, rows_f, proposed, rows_p)
    tags = (final.kind[rows_f] == Kind.TAG) & (proposed.kind[rows_p] == Kind.TAG)
    similarity = np.where(tags, 1.0, similarity)
    same = (
        (final.class_id[rows_f] == proposed.class_id[rows_p])
        & (final.kind[rows_f] == proposed.kind[rows_p])
        & (similarity >= _UNCHANGED)
    )
    codes[rows_p] = np.where(same, DECISIONS.index("accept"), DECISIONS.index("adjust"))
    iou[rows_p] = np.where(same, 1.0, similarity)
    return codes, iou


def unreviewed_prelabels(s: Session, revision_ids: Sequence[int]) -> int:
    """Objects with ``source=PRELABEL`` in these revisions: proposals nobody reviewed."""
    if not revision_ids:
        return 0
    return int(
        s.execute(
            select(func.count())
            .select_from(AnnotationRow)
            .where(
                AnnotationRow.revision_id.in_(list(revision_ids)),
                AnnotationRow.source == int(Source.PRELABEL),
            )
        ).scalar_one()
    )


def record_decisions(s: Session, task: TaskRow, *, now: Any) -> int:
    """At submit: refuse unreviewed proposals, then record accept/adjust/reject per proposal.

    Called inside :meth:`~labelgate.workflow.program.Program.submit`'s transaction with
    the task row locked. Returns the number of decisions written (0 for a task that was
    never pre-labelled).

    Raises
    ------
    WorkflowError
        The head still holds objects with ``source=PRELABEL``.
    """
    head = task.head_revision_id
    pending = unreviewed_prelabels(s, [head] if head is not None else [])
    if pending:
        raise WorkflowError(
            f"task {task.id} still holds {pending} pre-label(s) nobody reviewed: accept, "
            "adjust or reject each (or accept all), save, then submit"
        )
    first = s.execute(
        select(RevisionRow.id, RevisionRow.source).where(
            RevisionRow.task_id == task.id, RevisionRow.number == 1
        )
    ).first()
    if first is None or first.source != int(Source.PRELABEL) or head is None:
        return 0
    proposed = load_annotations(s, [first.id])
    if len(proposed) == 0:
        return 0
    final = load_annotations(s, [head]) if head != first.id else Annotations.empty()
    codes, iou = decide(proposed, final)
    s.execute(
        insert(PrelabelDecisionRow),
        [
            {
                "task_id": task.id,
                "prelabel_revision_id": first.id,
                "final_revision_id": head,
                "object_key": key,
                "class_id": class_id,
                "score": None if math.isnan(score) else score,
                "decision": DECISIONS[code],
                "iou": None if math.isnan(value) else value,
                "user_id": task.assignee_id,
                "created_at": now,
            }
            for key, class_id, score, code, value in zip(
                proposed.id.tolist(),
                proposed.class_id.tolist(),
                proposed.score.tolist(),
                codes.tolist(),
                iou.tolist(),
            )
        ],
    )
    return len(proposed)


# --- statistics of time saved ----------------------------------------------------------------


def welch_interval(
    control: FloatArray, treated: FloatArray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``control`` minus mean of ``treated`` with Welch's t interval.

    Welch (1947): standard error ``sqrt(s1²/n1 + s2²/n2)`` and Welch-Satterthwaite
    degrees of freedom; no equal-variance assumption. Needs two values per group;
    a zero standard error gives a zero-width interval.

    Examples
    --------
    >>> diff, low, high = welch_interval(np.array([10.0, 12, 14]), np.array([5.0, 6, 7]))
    >>> diff, round(low, 4), round(high, 4)
    (6.0, 1.8446, 10.1554)
    """
    from scipy import stats  # type: ignore[import-untyped]  # on first use: fast CLI start

    a = np.asarray(control, dtype=np.float64)
    b = np.asarray(treated, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_interval: needs 2 values per group, got {len(a)} and {len(b)}")
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return diff, diff - half, diff + half


def bootstrap_saved_fraction(
    control: FloatArray,
    treated: FloatArray,
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``1 - mean(treated) / mean(control)`` with a percentile bootstrap interval.

    Each group is resampled with replacement on its own (the groups are independent),
    ``resamples`` times, in chunks of at most ~8 M drawn values; the interval is the
    ``(1 ± confidence) / 2`` quantiles of the resampled fractions (Efron & Tibshirani 1993,
    ch. 13).

    Examples
    --------
    >>> point, low, high = bootstrap_saved_fraction(np.array([10.0, 12, 14, 11]),
    ...                                             np.array([6.0, 7, 5, 6]))
    >>> round(point, 4), bool(low < point < high)
    (0.4894, True)
    """
    a = np.asarray(control, dtype=np.float64)
    b = np.asarray(treated, dtype=np.float64)
    if len(a) == 0 or len(b) == 0 or a.mean() <= 0:
        raise ValueError("bootstrap_saved_fraction: needs values in both groups, control > 0")
    point = float(1.0 - b.mean() / a.mean())
    rng = np.random.default_rng(seed)
    chunk = max(1, (1 << 23) // (len(a) + len(b)))
    out = np.empty(resamples)
    for lo in range(0, resamples, chunk):  # a loop over chunks of resamples, not values
        k = min(chunk, resamples - lo)
        mean_a = a[rng.integers(0, len(a), (k, len(a)))].mean(axis=1)
        mean_b = b[rng.integers(0, len(b), (k, len(b)))].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[lo : lo + k] = 1.0 - mean_b / mean_a
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(out[np.isfinite(out)], [tail, 1.0 - tail])
    return point, float(low), float(high)


# --- metrics -------------------------------------------------------------------------------


def _row_tasks(s: Session, revisions: Select[Any], row_ids: IntArray) -> IntArray:
    """(n,) the task of each annotation row (``row_ids``: rows of these revisions)."""
    pairs = s.execute(
        select(AnnotationRow.id, RevisionRow.task_id)
        .join(RevisionRow, RevisionRow.id == AnnotationRow.revision_id)
        .where(AnnotationRow.revision_id.in_(revisions.scalar_subquery()))
        .order_by(AnnotationRow.id)
    ).all()
    ids = np.array([r[0] for r in pairs], dtype=np.int64)
    task = np.array([r[1] for r in pairs], dtype=np.int64)
    out: IntArray = task[np.searchsorted(ids, row_ids)] if len(ids) else ids
    return out


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _quantiles(values: FloatArray) -> dict[str, Any]:
    if len(values) == 0:
        return {"count": 0, "mean": None, "median": None, "p10": None}
    return {
        "count": len(values),
        "mean": round(float(values.mean()), 6),
        "median": round(float(np.quantile(values, 0.5)), 6),
        "p10": round(float(np.quantile(values, 0.1)), 6),
    }


def _group_time(seconds: FloatArray, objects: IntArray) -> dict[str, Any]:
    total = float(seconds.sum())
    count = int(objects.sum())
    return {
        "tasks": len(seconds),
        "seconds": round(total, 6),
        "objects": count,
        "seconds_per_task": round(total / len(seconds), 6) if len(seconds) else None,
        "seconds_per_object": round(total / count, 6) if count else None,
    }


def prelabel_metrics(
    program: Program,
    batch: int | str,
    *,
    actor: str,
    against: str = "submitted",
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """What pre-labeling did in a batch: decisions, proposal quality, time saved.

    Decisions come from every submitted pre-labelled task of the batch (any cycle).
    Precision and recall compare proposals with final labels, matched one-to-one per class
    at the class's spec IoU threshold (scene overrides included): ``against="submitted"``
    (default) each submitted pre-labelled task's proposals with its submitted labels, each
    task its own image; ``"delivered"`` each pre-labelled item's proposals with the item's
    final revision after review (consensus, adjudication, rework), items without one left
    out. Time comes from the work log's ``annotate`` entries of
    submitted tasks annotated from scratch (production, gold, honeypot): pre-labelled vs
    control tasks, per task and per object (objects of the submitted head); tasks without
    any logged time are left out. ``seconds_saved_per_task`` is the control mean minus the
    pre-labelled mean with Welch's interval; ``time_saved_fraction`` is ``1 - pre-labelled
    mean / control mean`` with a percentile bootstrap interval. The JSON keys are
    documented in docs/ml.md.

    Raises
    ------
    PermissionDenied
        ``actor`` is not a manager, admin or auditor (auditors read what the report shows).
    WorkflowError
        ``against`` is neither ``submitted`` nor ``delivered``.
    """
    from labelgate.workflow.program import PRODUCTION_PURPOSES

    if against not in ("submitted", "delivered"):
        raise WorkflowError(f"against must be 'submitted' or 'delivered', got {against!r}")
    with program.db.session() as s:
        program._require_role(s, actor, {"auditor", *_managers()})
        row = program._batch(s, batch)
        spec = _batch_spec(s, row)
        taxonomy = spec.taxonomy()
        tasks = _cycle_tasks(s, row, spec, PRODUCTION_PURPOSES, any_cycle=True)
        decisions = s.execute(
            select(
                PrelabelDecisionRow.class_id, PrelabelDecisionRow.decision, PrelabelDecisionRow.iou
            )
            .join(TaskRow, TaskRow.id == PrelabelDecisionRow.task_id)
            .where(TaskRow.batch_id == row.id)
            .order_by(PrelabelDecisionRow.id)
        ).all()
        store_ids, table = image_table(s, program.project_id)
        # proposals vs final labels, set-based (no id lists: a batch may hold a million
        # tasks); every comparison unit (a task, or an item) is one image of the comparison
        prelabel_first = (
            select(RevisionRow.id, TaskRow.id.label("task"), TaskRow.image_id)
            .join(TaskRow, TaskRow.id == RevisionRow.task_id)
            .where(
                TaskRow.batch_id == row.id,
                TaskRow.purpose.in_(list(PRODUCTION_PURPOSES)),
                RevisionRow.number == 1,
                RevisionRow.source == int(Source.PRELABEL),
            )
        )
        if against == "submitted":
            done = prelabel_first.where(TaskRow.status.in_(("submitted", "accepted")))
            proposal_ids = done.with_only_columns(RevisionRow.id)
            final_ids = done.with_only_columns(TaskRow.head_revision_id)
            proposed = load_annotations(s, proposal_ids, ids="row")
            final = load_annotations(s, final_ids, ids="row")
            proposed = proposed.replace(image_id=_row_tasks(s, proposal_ids, proposed.id))
            final = final.replace(image_id=_row_tasks(s, final_ids, final.id))
            units = tasks.task_id[tasks.prelabelled & tasks.submitted]
            unit_image = tasks.image_id[tasks.prelabelled & tasks.submitted]
        else:  # one proposal revision per item (both tasks of a double item hold the same)
            first = prelabel_first.with_only_columns(
                func.min(RevisionRow.id).label("revision"), TaskRow.image_id
            ).group_by(TaskRow.image_id)
            per_item = first.subquery()
            items = (
                select(per_item.c.revision, BatchItemRow.final_revision_id, per_item.c.image_id)
                .join(BatchItemRow, BatchItemRow.image_id == per_item.c.image_id)
                .where(BatchItemRow.batch_id == row.id, BatchItemRow.final_revision_id.is_not(None))
            )
            proposed = load_annotations(s, items.with_only_columns(per_item.c.revision), ids="row")
            final = load_annotations(
                s, items.with_only_columns(BatchItemRow.final_revision_id), ids="row"
            )
            unit_image = np.sort(
                np.array(
                    s.execute(items.with_only_columns(per_item.c.image_id)).scalars().all(),
                    dtype=np.int64,
                )
            )
            units = unit_image
        logged = s.execute(
            select(WorkLogRow.task_id, func.sum(WorkLogRow.seconds))
            .where(WorkLogRow.batch_id == row.id, WorkLogRow.activity == "annotate")
            .group_by(WorkLogRow.task_id)
        ).all()
    seconds = np.zeros(len(tasks.task_id))
    measured = np.zeros(len(tasks.task_id), dtype=bool)
    if logged:
        logged_task = np.array([r[0] if r[0] is not None else -1 for r in logged], np.int64)
        at = np.searchsorted(tasks.task_id, logged_task)
        hit = at < len(tasks.task_id)
        hit[hit] = tasks.task_id[at[hit]] == logged_task[hit]
        seconds[at[hit]] = np.array([float(r[1]) for r in logged])[hit]
        measured[at[hit]] = True
    return _metrics_document(
        row=row,
        spec=spec,
        taxonomy_names=dict(zip(taxonomy.ids.tolist(), taxonomy.names_of(taxonomy.ids))),
        tasks=tasks,
        decisions=decisions,
        against=against,
        proposed=proposed,
        final=final,
        units=units,
        unit_scene=table.scene_type[np.searchsorted(store_ids, unit_image)],
        seconds=seconds,
        measured=measured,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def _metrics_document(
    *,
    row: BatchRow,
    spec: ProgramSpec,
    taxonomy_names: Mapping[int, str],
    tasks: _CycleTasks,
    decisions: Sequence[Any],
    against: str,
    proposed: Annotations,
    final: Annotations,
    units: IntArray,
    unit_scene: NDArray[Any],
    seconds: FloatArray,
    measured: BoolArray,
    confidence: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Assemble :func:`prelabel_metrics`' document (``proposed``/``final``: image = unit)."""
    # decisions, overall and per class
    kinds = np.array([d[1] for d in decisions], dtype=object)
    decision_class = np.array([d[0] for d in decisions], dtype=np.int64)
    iou = np.array([np.nan if d[2] is None else d[2] for d in decisions], dtype=np.float64)
    adjusted = kinds == "adjust"
    counts = {k: int((kinds == k).sum()) for k in DECISIONS}
    total = len(decisions)
    prelabelled, submitted = tasks.prelabelled, tasks.submitted

    # precision / recall: every unit (task or item) is one image of the comparison
    quality: dict[int, dict[str, Any]] = {}
    overall: dict[str, Any] = {"precision": None, "recall": None, "f1": None}
    if len(units):
        order = np.argsort(units)
        units, unit_scene = units[order], unit_scene[order]
        row_scene = unit_scene[np.searchsorted(units, final.image_id)]
        comparison = compare(
            Dataset(
                final, Images.create(id=units, scene_type=unit_scene.tolist()), spec.taxonomy()
            ),
            proposed,
            row_thresholds=spec.thresholds(final.class_id, row_scene.astype(str)),
            swaps=False,
        )
        overall = {k: comparison.overall.get(k) for k in ("precision", "recall", "f1")}
        quality = {entry["class_id"]: entry for entry in comparison.per_class}
    per_class: list[dict[str, Any]] = []
    limits = spec.prelabel_thresholds()
    for class_id, name in taxonomy_names.items():
        mine = decision_class == class_id
        entry = quality.get(class_id, {})
        n = int(mine.sum())
        if not n and not entry.get("ref_count"):
            continue
        per_class.append(
            {
                "class_id": class_id,
                "name": name,
                "confidence_threshold": limits[class_id],
                "iou_threshold": spec.class_by_id(class_id).threshold,
                "proposed": n,
                **{k: int((kinds[mine] == k).sum()) for k in DECISIONS},
                "acceptance_rate": _rate(int((kinds[mine] == "accept").sum()), n),
                "adjustment_iou": _quantiles(iou[mine & adjusted]),
                "final_objects": entry.get("ref_count", 0),
                "matched": entry.get("matched", 0),
                "precision": entry.get("precision"),
                "recall": entry.get("recall"),
            }
        )

    # time: submitted scratch tasks with logged time, pre-labelled vs control
    base = tasks.scratch & submitted & measured
    control = base & tasks.control & ~prelabelled
    treated = base & prelabelled
    objects = tasks.head_objects
    time: dict[str, Any] = {
        "prelabelled": _group_time(seconds[treated], objects[treated]),
        "control": _group_time(seconds[control], objects[control]),
        "unmeasured_tasks": int((tasks.scratch & submitted & ~measured).sum()),
        "confidence": confidence,
        "seconds_saved_per_task": None,
        "time_saved_fraction": None,
    }
    a, b = seconds[control], seconds[treated]
    if len(a) >= 2 and len(b) >= 2:
        diff, low, high = welch_interval(a, b, confidence)
        time["seconds_saved_per_task"] = {
            "estimate": round(diff, 6),
            "ci_low": round(low, 6),
            "ci_high": round(high, 6),
            "method": "welch",
        }
    # two tasks a group, as for Welch: one task resamples to itself, and the interval would
    # ignore that group's spread entirely (falsely narrow)
    if len(a) >= 2 and len(b) >= 2 and a.mean() > 0:
        point, low, high = bootstrap_saved_fraction(
            a, b, confidence=confidence, resamples=resamples, seed=seed
        )
        time["time_saved_fraction"] = {
            "estimate": round(point, 6),
            "ci_low": round(low, 6),
            "ci_high": round(high, 6),
            "method": "bootstrap-percentile",
            "resamples": resamples,
            "seed": seed,
        }
    return {
        "batch": row.name,
        "control_rate": spec.prelabel.control_rate,
        "against": against,
        "compared": len(units),
        "tasks": {
            "prelabelled": int(prelabelled.sum()),
            "prelabelled_submitted": int((prelabelled & submitted).sum()),
            "control": int((tasks.control & ~prelabelled).sum()),
            "other": int((~tasks.control & ~prelabelled).sum()),
        },
        "proposals": total,
        "decisions": counts,
        "acceptance_rate": _rate(counts["accept"], total),
        "adjust_rate": _rate(counts["adjust"], total),
        "reject_rate": _rate(counts["reject"], total),
        "adjustment_iou": _quantiles(iou[adjusted]),
        "precision": overall["precision"],
        "recall": overall["recall"],
        "f1": overall["f1"],
        "per_class": per_class,
        "time": time,
    }
