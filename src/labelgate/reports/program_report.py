"""The delivery report of a program, as one JSON document read from its database.

Keys (``report.json``):

- ``stages``: every gate evaluation, in order: ``batch``, ``name`` (stage), ``gate``,
  ``value``, ``threshold``, ``passed``, ``outcome``, ``cycle``, ``inputs``;
- ``quality``: ``per_class`` (honeypot and gold answers of production against their
  reference: precision, recall, F1, IoU quantiles, signed bias), ``per_annotator``
  (qualification, honeypot F1 / IoU / bias, objects labelled, defects by type, defect rate,
  rework tasks, and ``work``: measured annotation hours, objects per hour and rework hours,
  :func:`labelgate.reports.work_time.annotator_work`, null without logged time) and, when
  the truth is known (the demo), ``delivered_vs_truth``;
- ``defects``: counts by type, by who found them, by type x annotator cohort, by cycle;
- ``cost``: the rework-inclusive model (``labelgate.core.cost``) fed with the program's
  measured first-pass and rework defect rates, and what rework really cost; ``measured``
  (when any work time was logged): the work log priced at the spec's hourly rates in the
  same four categories, per rework cycle, with its ratio to the model
  (:func:`labelgate.workflow.costing.measured_cost`);
- ``batches``: name, stage, state, rework cycles, items; ``prelabel``: what pre-labeling
  did in the batch (:func:`labelgate.workflow.prelabel.prelabel_metrics`: decisions,
  adjustment IoU, precision / recall, time saved against the control group with its
  intervals), null for a batch that was never pre-labelled.

Added for the report's figures (:mod:`labelgate.reports.plots`):

- ``quality.iou_distribution``: per class, the honeypot objects paired with their
  reference at IoU >= ``pairing_iou`` (0.1, so boxes looser than the class tier show):
  ``paired``, ``below_threshold``, ``min``, ``p10``, ``p25``, ``median``, ``p75``, ``p90``,
  ``max`` (numpy's linear quantiles);
- ``quality.by_density``: honeypot objects per density bucket (reference objects per
  image): ``ref_count``, ``matched``, ``missed``, ``class_swaps``, ``missed_rate``;
- ``qa_plan``: the QA gate's unit, limit and confidence, the spec's zero-acceptance
  ``design`` plan (:func:`labelgate.core.sampling.plan`; null, with no curves, for a limit
  of 0 or 1), every QA evaluation ``as_run``
  (its sample size, the acceptance number its bound allows, defects, decision) and the
  operating characteristic of each on a grid of true defect rates (``oc``);
- ``cost.cohorts``: the same program priced for a crowd and a managed cohort
  (:func:`labelgate.core.cost.compare_cohorts`), each with the rates it was priced at and
  whether they were measured in this program or are the seed defaults;
- ``rework``: per batch and cycle, the work tasks, objects labelled and defects found;
- ``active_learning``: label efficiency of the selection strategies beside random
  (:class:`labelgate.ml.select.EfficiencyCurves`): ``source`` ``"program"`` replays the
  selection loop on this program's stored pre-labels against the labels submitted over
  them (:func:`labelgate.ml.select.label_efficiency`); without pre-labels (or on fewer
  than 12 images) it is ``"simulated"``, on generated data and a generated model
  (:func:`labelgate.ml.select.simulate_label_efficiency`), and ``note`` says so.

:func:`write_report` (``labelgate report``) adds ``audit`` (the hash chain's verification)
and ``generated_at``, and writes ``report.json`` and ``report.html`` (docs/report.md).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.calibration import calibrate, inter_annotator_ious
from labelgate.core.compare import Comparison, compare
from labelgate.core.cost import CROWD, MANAGED, Cohort, CostInputs, compare_cohorts
from labelgate.core.dataset import Dataset
from labelgate.core.defects import root_causes
from labelgate.core.images import Images
from labelgate.core.matching import match
from labelgate.core.ragged import gather_ranges
from labelgate.core.sampling import acceptance_probability, oc_curve, plan, upper_bound
from labelgate.errors import StoreError
from labelgate.formats._atomic import write_bytes_atomic
from labelgate.reports.work_time import annotator_work
from labelgate.spec import parse_spec
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import (
    AnnotationRow,
    BatchRow,
    DefectRow,
    GateResultRow,
    GoldItemRow,
    ProjectRow,
    QualificationRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
    UserRow,
)
from labelgate.store.repository import image_table
from labelgate.workflow.audit import verify_chain
from labelgate.workflow.costing import measured_cost, unit_price_model
from labelgate.workflow.prelabel import prelabel_metrics
from labelgate.workflow.program import SYSTEM_USER, Program

__all__ = ["WrittenReport", "build_report", "write_report"]

HIDDEN_PURPOSES = ("gold", "honeypot")
WORK_PURPOSES = ("production", "rework")


def build_report(
    db: Database, *, project: str | None = None, truth: Dataset | None = None
) -> dict[str, Any]:
    """Read a program's database into the report document (see the module docstring)."""
    with db.session() as s:
        query = select(ProjectRow)
        if project is not None:
            query = query.where(ProjectRow.name == project)
        project_row = s.execute(query.order_by(ProjectRow.id)).scalars().first()
        if project_row is None:
            return {"error": "no project"}
        spec_row = (
            s.execute(
                select(SpecVersionRow)
                .where(SpecVersionRow.project_id == project_row.id)
                .order_by(SpecVersionRow.version.desc())
            )
            .scalars()
            .first()
        )
        assert spec_row is not None  # a project is created with its spec
        spec = parse_spec(spec_row.toml, source=f"spec v{spec_row.version}")
        users = {u.id: u for u in s.execute(select(UserRow)).scalars()}
        batches = list(
            s.execute(
                select(BatchRow).where(BatchRow.project_id == project_row.id).order_by(BatchRow.id)
            ).scalars()
        )
        names = {b.id: b.name for b in batches}
        stages = [
            {
                "batch": names[g.batch_id],
                "name": g.stage,
                "gate": g.gate,
                "value": g.value,
                "threshold": g.threshold,
                "passed": g.passed,
                "outcome": g.inputs.get("outcome"),
                "cycle": g.cycle,
                "inputs": {k: v for k, v in g.inputs.items() if k != "outcome"},
            }
            for g in s.execute(
                select(GateResultRow)
                .where(GateResultRow.batch_id.in_(names), GateResultRow.gate != "consensus")
                .order_by(GateResultRow.id)
            ).scalars()
        ]
        quality = _quality(s, project_row.id, spec, users, truth)
        work = annotator_work(s, project_row.id)
        for entry in quality["per_annotator"]:
            entry["work"] = work.get(entry["annotator"])
        defects = _defects(s, project_row.id, users)
        cost = _cost(s, project_row.id, spec)
        if cost.get("units"):
            cost["cohorts"] = _cohorts(spec, cost, quality["per_annotator"])
        qa_plan = _qa_plan(spec, stages)
        rework = _rework(s, project_row.id, names)
        prelabelled = _prelabelled_batches(s, project_row.id)
        report: dict[str, Any] = {
            "project": project_row.name,
            "spec": {"version": spec_row.version, "digest": spec_row.digest},
            "stages": stages,
            "quality": quality,
            "defects": defects,
            "cost": cost,
            "batches": [
                {
                    "name": b.name,
                    "stage": b.stage,
                    "state": b.state,
                    "rework_cycles": b.rework_cycle,
                }
                for b in batches
            ],
            "qa_plan": qa_plan,
            "rework": rework,
            "active_learning": _active_learning(s, project_row.id),
        }
    # after the session: the metrics open their own (an SQLite session holds the write lock)
    program: Program | None = None
    entries: list[dict[str, Any]] = report["batches"]
    for entry, row in zip(entries, batches, strict=True):
        if row.id not in prelabelled:
            entry["prelabel"] = None
            continue
        program = program or Program(db, project_row.name)
        # whoever asked for the report was checked by its caller (API, CLI); the metrics
        # are read on the program's behalf
        entry["prelabel"] = prelabel_metrics(program, row.id, actor=SYSTEM_USER)
    return report


def _prelabelled_batches(s: Session, project_id: int) -> set[int]:
    """Ids of the project's batches where any task's first revision is a pre-label one."""
    return {
        int(batch)
        for batch in s.execute(
            select(TaskRow.batch_id)
            .join(RevisionRow, RevisionRow.task_id == TaskRow.id)
            .where(
                TaskRow.project_id == project_id,
                RevisionRow.number == 1,
                RevisionRow.source == int(Source.PRELABEL),
            )
            .distinct()
        ).scalars()
        if batch is not None
    }


def _quality(
    s: Session, project_id: int, spec: Any, users: dict[int, UserRow], truth: Dataset | None
) -> dict[str, Any]:
    store_ids, images = image_table(s, project_id)
    table = images.replace(id=store_ids)
    answers = dict(
        s.execute(
            select(GoldItemRow.image_id, GoldItemRow.revision_id).where(
                GoldItemRow.project_id == project_id
            )
        ).all()
    )
    hidden = s.execute(
        select(TaskRow.image_id, TaskRow.assignee_id, TaskRow.head_revision_id).where(
            TaskRow.project_id == project_id,
            TaskRow.purpose.in_(HIDDEN_PURPOSES),
            TaskRow.head_revision_id.is_not(None),
        )
    ).all()
    out: dict[str, Any] = {
        "per_class": [],
        "per_annotator": [],
        "iou_distribution": [],
        "by_density": [],
    }
    honeypot: dict[int, dict[str, Any]] = {}
    if hidden:
        result, reference, theirs = _honeypot_comparison(s, spec, table, answers, hidden)
        out["per_class"] = [c for c in result.per_class if c["ref_count"]]
        honeypot = {a["annotator_id"]: a for a in result.by_annotator}
        out["iou_distribution"] = _iou_distribution(reference, theirs)
        out["by_density"] = [_density_row(row) for row in result.by_density]
        names = {u.id: u.name for u in users.values()}
        out["root_causes"] = [
            {**hint, "subject": names.get(hint["subject"], hint["subject"])}
            if hint["kind"] == "biased_annotator"
            else hint
            for hint in root_causes(result)
        ]
    else:
        out["root_causes"] = []
    out["calibration"] = _calibration(s, project_id, spec, table)
    qualification: dict[int, dict[str, Any]] = {}
    for q in s.execute(select(QualificationRow).order_by(QualificationRow.id)).scalars():
        qualification[q.user_id] = {"score": q.score, "passed": q.passed}
    labelled = dict(
        s.execute(
            select(TaskRow.assignee_id, func.coalesce(func.sum(RevisionRow.object_count), 0))
            .join(RevisionRow, RevisionRow.id == TaskRow.head_revision_id)
            .where(TaskRow.project_id == project_id, TaskRow.purpose.in_(WORK_PURPOSES))
            .group_by(TaskRow.assignee_id)
        ).all()
    )
    rework = dict(
        s.execute(
            select(TaskRow.assignee_id, func.count())
            .where(TaskRow.project_id == project_id, TaskRow.purpose == "rework")
            .group_by(TaskRow.assignee_id)
        ).all()
    )
    defect_counts: dict[int, Counter[str]] = defaultdict(Counter)
    for annotator, kind in s.execute(
        select(DefectRow.annotator_id, DefectRow.type).where(DefectRow.project_id == project_id)
    ).all():
        if annotator is not None:
            defect_counts[annotator][kind] += 1
    people = sorted(set(qualification) | set(labelled) | set(honeypot))
    for user_id in people:
        user = users.get(user_id)
        if user is None or "annotator" not in user.roles:
            continue
        objects = int(labelled.get(user_id, 0))
        found = defect_counts.get(user_id, Counter())
        hp = honeypot.get(user_id, {})
        out["per_annotator"].append(
            {
                "annotator": user.name,
                "cohort": user.cohort,
                "qualification": qualification.get(user_id),
                "honeypot_f1": hp.get("f1"),
                "honeypot_iou": hp.get("iou"),
                "honeypot_bias": hp.get("bias"),
                "objects_labelled": objects,
                "defects": dict(found),
                "defect_rate": sum(found.values()) / objects if objects else None,
                "rework_tasks": int(rework.get(user_id, 0)),
            }
        )
    if truth is not None:
        out["delivered_vs_truth"] = _delivered_vs_truth(s, project_id, spec, table, images, truth)
    return out


def _calibration(s: Session, project_id: int, spec: Any, table: Images) -> dict[str, Any]:
    """Tier calibration from blind double annotation: the IoU two people reach per class.

    Pairs come from every image two annotators labelled in the same cycle (their first two
    production tasks); each class is checked against its spec threshold (scene overrides
    included) and priced (:func:`labelgate.core.calibration.calibrate`).
    """
    rows = s.execute(
        select(TaskRow.image_id, TaskRow.batch_id, TaskRow.cycle, TaskRow.head_revision_id)
        .where(
            TaskRow.project_id == project_id,
            TaskRow.purpose == "production",
            TaskRow.head_revision_id.is_not(None),
        )
        .order_by(TaskRow.id)
    ).all()
    slots: dict[tuple[int, int | None, int], list[int]] = defaultdict(list)
    for image, batch, cycle, head in rows:
        if head is not None:  # filtered in SQL; the type does not know
            slots[(image, batch, cycle)].append(head)
    pairs = [heads[:2] for heads in slots.values() if len(heads) >= 2]
    if not pairs:
        return {"pairs": 0, "per_class": [], "false_precision": []}
    first = load_annotations(s, [p[0] for p in pairs], ids="row")
    second = load_annotations(s, [p[1] for p in pairs], ids="row")
    matched = inter_annotator_ious(first, second)
    scenes = matched.scene_type(table)
    result = calibrate(
        matched.class_id,
        matched.iou,
        spec.taxonomy(),
        scene_type=None,
        iou_threshold=spec.thresholds(matched.class_id, scenes),
        sla_iou={c.id: c.sla.iou_threshold for c in spec.classes if c.sla.iou_threshold},
    )
    document: dict[str, Any] = result.to_dict()
    document["pairs"] = len(matched)
    return document


def _honeypot_comparison(
    s: Session, spec: Any, table: Any, answers: dict[int, int], hidden: Sequence[Any]
) -> tuple[Comparison, Dataset, Annotations]:
    """Every honeypot/gold task's labels against its reference answer, pooled.

    The same image goes to several annotators, so each task gets its own copy of the
    reference under a task-private image id (its position): one annotator's boxes never
    count as another's extras.
    """
    task_image = np.array([h.image_id for h in hidden], dtype=np.int64)
    reference = load_annotations(s, sorted({answers[int(i)] for i in task_image}), ids="row")
    theirs = load_annotations(s, [h.head_revision_id for h in hidden], ids="row")
    # reference rows of each task's image, renumbered to the task
    order = np.argsort(reference.image_id, kind="stable")
    sorted_images = reference.image_id[order]
    starts = np.searchsorted(sorted_images, task_image, side="left")
    stops = np.searchsorted(sorted_images, task_image, side="right")
    rows = order[gather_ranges(starts, stops)]
    owner = np.repeat(np.arange(len(hidden)), stops - starts)
    # boxes only: one copy per task (take() would refuse the repeated ids)
    copies = Annotations.create(
        image_id=owner,
        class_id=reference.class_id[rows],
        bbox=reference.bbox[rows],
        kind=reference.kind[rows],
        iscrowd=reference.iscrowd[rows],
        area=reference.area[rows],
    )
    # each labelled row belongs to the task whose head revision holds it
    heads = np.array([h.head_revision_id for h in hidden], dtype=np.int64)
    pairs = s.execute(
        select(AnnotationRow.id, AnnotationRow.revision_id).where(
            AnnotationRow.revision_id.in_(heads.tolist())
        )
    ).all()
    row_ids = np.array([p[0] for p in pairs], dtype=np.int64)
    row_revision = np.array([p[1] for p in pairs], dtype=np.int64)
    by_id = np.argsort(row_ids)
    revision_of = row_revision[by_id[np.searchsorted(row_ids[by_id], theirs.id)]]
    head_order = np.argsort(heads)
    theirs = theirs.replace(image_id=head_order[np.searchsorted(heads[head_order], revision_of)])
    at = np.searchsorted(table.id, task_image)
    images = Images.create(
        id=np.arange(len(hidden), dtype=np.int64),
        file_name=table.file_name[at].tolist(),
        width=table.width[at],
        height=table.height[at],
        scene_type=table.scene_type[at].tolist(),
    )
    answer_set = Dataset(copies, images, spec.taxonomy())
    return compare(answer_set, theirs), answer_set, theirs


def _delivered_vs_truth(
    s: Session, project_id: int, spec: Any, table: Any, images: Any, truth: Dataset
) -> dict[str, Any]:
    from labelgate.store.models import BatchItemRow

    finals = (
        s.execute(
            select(BatchItemRow.final_revision_id)
            .join(BatchRow, BatchRow.id == BatchItemRow.batch_id)
            .where(BatchRow.project_id == project_id, BatchRow.state == "delivered")
        )
        .scalars()
        .all()
    )
    delivered = load_annotations(s, [f for f in finals if f is not None], ids="row")
    external = images.id[np.searchsorted(table.id, delivered.image_id)]
    delivered = delivered.replace(image_id=external)
    items = np.unique(
        images.id[
            np.searchsorted(
                table.id,
                s.execute(
                    select(BatchItemRow.image_id)
                    .join(BatchRow, BatchRow.id == BatchItemRow.batch_id)
                    .where(BatchRow.project_id == project_id, BatchRow.state == "delivered")
                )
                .scalars()
                .all(),
            )
        ]
    )
    if not len(items):
        return {}
    reference = Dataset(
        truth.annotations[np.isin(truth.annotations.image_id, items)],
        truth.images[np.isin(truth.images.id, items)],
        spec.taxonomy(),
    )
    result = compare(reference, delivered)
    return {
        "overall": result.overall,
        "per_class": result.per_class,
        "by_density": result.by_density,
    }


def _defects(s: Session, project_id: int, users: dict[int, UserRow]) -> dict[str, Any]:
    rows = s.execute(
        select(DefectRow.type, DefectRow.found_by, DefectRow.annotator_id, DefectRow.cycle).where(
            DefectRow.project_id == project_id
        )
    ).all()
    by_cohort: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        cohort = users[r.annotator_id].cohort if r.annotator_id in users else None
        by_cohort[cohort or "unknown"][r.type] += 1
    return {
        "total": len(rows),
        "by_type": dict(Counter(r.type for r in rows)),
        "by_found_by": dict(Counter(r.found_by for r in rows)),
        "by_type_and_cohort": {c: dict(v) for c, v in sorted(by_cohort.items())},
        "by_cycle": {str(k): v for k, v in sorted(Counter(r.cycle for r in rows).items())},
    }


def _cost(s: Session, project_id: int, spec: Any) -> dict[str, Any]:
    """The unit-price model at measured rates, and ``measured``: the work log priced."""
    document, model = unit_price_model(s, project_id, spec)
    measured = measured_cost(s, project_id, spec, model)
    if measured is not None:
        document["measured"] = measured.to_dict()
    return document


# --- data behind the report's figures ---------------------------------------------------------

#: Honeypot objects pair with their reference at this IoU for the per-class distributions:
#: low, so a box looser than its class tier still shows as a low IoU rather than vanishing
#: into "missed" and "extra".
PAIRING_IOU = 0.1
_BOX_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
_BOX_KEYS = ("min", "p10", "p25", "median", "p75", "p90", "max")
#: Fewest objects a cohort must have labelled before its own defect rate prices it.
MIN_COHORT_OBJECTS = 100
#: The OC curves run from a zero defect rate to this multiple of the limit.
OC_SPAN = 3.0
OC_STEPS = 60


def _round(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


def _iou_distribution(reference: Dataset, theirs: Annotations) -> list[dict[str, Any]]:
    """Per class: quantiles of the IoU of honeypot objects paired at :data:`PAIRING_IOU`.

    One match over every task (task-private image ids keep annotators apart), then one
    sort by (class, IoU) and linear quantiles read at each group's offsets. As in
    :func:`~labelgate.core.compare.compare`, a task with no labels at all is left out.
    """
    theirs = theirs[theirs.kind != Kind.TAG]
    ref = reference.annotations
    ref = ref[(ref.kind != Kind.TAG) & np.isin(ref.image_id, theirs.image_id)]
    taxonomy = reference.taxonomy
    size = len(taxonomy)
    m = match(ref, theirs, iou_threshold=PAIRING_IOU, swaps=False)
    ref_position = taxonomy.position(ref.class_id)
    ref_count = np.bincount(ref_position[ref_position >= 0], minlength=size)
    group = ref_position[m.ref_rows]
    known = group >= 0
    group, iou = group[known], m.iou[known]
    order = np.lexsort((iou, group))
    group, iou = group[order], iou[order]
    counts = np.bincount(group, minlength=size)
    starts = np.cumsum(counts) - counts
    has = counts > 0
    quantiles = np.full((size, len(_BOX_QUANTILES)), np.nan)
    for column, q in enumerate(_BOX_QUANTILES):
        position = starts[has] + q * (counts[has] - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, starts[has] + counts[has] - 1)
        quantiles[has, column] = iou[low] + (iou[high] - iou[low]) * (position - low)
    thresholds = taxonomy.thresholds(taxonomy.ids)
    below = np.bincount(group, weights=iou < thresholds[group], minlength=size)
    return [
        {
            "class_id": int(taxonomy.ids[k]),
            "name": taxonomy.names[k],
            "iou_threshold": _round(thresholds[k]),
            "pairing_iou": PAIRING_IOU,
            "ref_count": int(ref_count[k]),
            "paired": int(counts[k]),
            "below_threshold": int(below[k]),
            **{key: _round(quantiles[k, j]) for j, key in enumerate(_BOX_KEYS)},
        }
        for k in range(size)
        if ref_count[k]
    ]


def _density_row(row: dict[str, Any]) -> dict[str, Any]:
    ref_count = row["ref_count"]
    return {
        "bucket": row["bucket"],
        "ref_count": ref_count,
        "matched": row["matched"],
        "missed": row["missed"],
        "class_swaps": row["class_swaps"],
        "missed_rate": round(row["missed"] / ref_count, 6) if ref_count else None,
    }


def _acceptance_number(n: int, limit: float, confidence: float, lot_size: int | None) -> int:
    """Most defects in ``n`` whose upper bound still clears ``limit`` (-1: none does).

    The bound grows with the defect count, so a bisection finds the last one that clears.
    """
    low, high = -1, n  # upper_bound(low) <= limit is assumed, upper_bound(high + 1) is not
    while low < high:
        middle = (low + high + 1) // 2
        if upper_bound(middle, n, confidence, lot_size=lot_size) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _qa_plan(spec: Any, stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec's QA plan, each QA evaluation as run, and their OC curves on one rate grid."""
    gates = spec.gates
    limit, confidence = float(gates.defect_limit), float(gates.confidence)
    out: dict[str, Any] = {
        "unit": gates.qa_unit,
        "limit": limit,
        "confidence": confidence,
        "sample_rate": float(gates.qa_sample_rate),
        "design": None,
        "rates": [],
        "oc": [],
        "as_run": [],
    }
    if not 0.0 < limit < 1.0:  # a limit of 0 or 1 has no sampling plan (nothing to draw)
        return out
    design = plan(limit, confidence)
    rates = np.union1d(limit * OC_SPAN * np.arange(OC_STEPS + 1) / OC_STEPS, [limit])
    as_run = []
    for g in stages:
        inputs = g["inputs"]
        if g["gate"] != "qa_defect_rate" or g["value"] is None or not inputs.get("sampled"):
            continue
        n = int(inputs["sampled"])
        lot = int(inputs["lot_images"]) if inputs.get("bound") == "hypergeometric" else None
        c = _acceptance_number(n, limit, confidence, lot)
        oc = acceptance_probability(n, c, rates, lot_size=lot) if c >= 0 else np.zeros(len(rates))
        as_run.append(
            {
                "batch": g["batch"],
                "cycle": g["cycle"],
                "sample_size": n,
                "acceptance_number": c,
                "lot_size": lot,
                "defects": inputs.get("defects"),
                "defect_rate": inputs.get("defect_rate"),
                "upper_bound": g["value"],
                "decision": inputs.get("decision"),
                "oc": [round(float(v), 6) for v in oc],
            }
        )
    return out | {
        "design": design.to_dict(),
        "rates": [float(r) for r in rates],
        "oc": [round(float(v), 6) for v in oc_curve(design, rates)],
        "as_run": as_run,
    }


def _cohorts(
    spec: Any, cost: dict[str, Any], per_annotator: list[dict[str, Any]]
) -> dict[str, Any]:
    """Crowd vs managed on this program's volume and price (:func:`compare_cohorts`).

    A cohort whose annotators labelled at least :data:`MIN_COHORT_OBJECTS` objects here is
    priced at its measured defect rate (defects attributed to it / objects it labelled);
    otherwise at the seed's default rates. Its price multiple is that of the spec's first
    ``[[pools]]`` entry of the cohort, else the seed's.
    """
    objects: Counter[str] = Counter()
    found: Counter[str] = Counter()
    for a in per_annotator:
        if a["cohort"]:
            objects[a["cohort"]] += a["objects_labelled"]
            found[a["cohort"]] += sum(a["defects"].values())
    chosen: dict[str, Cohort] = {}
    source: dict[str, dict[str, Any]] = {}
    for seed in (CROWD, MANAGED):
        name = seed.name
        pool = next((p for p in spec.pools if p.cohort == name), None)
        multiple = seed.price_multiple if pool is None else pool.price_multiple
        cohort = replace(seed, price_multiple=float(multiple or seed.price_multiple))
        labelled = objects.get(name, 0)
        if labelled >= MIN_COHORT_OBJECTS:
            rate = min(found[name] / labelled, 0.99)
            cohort = replace(cohort, defect_rate=rate, rework_defect_rate=rate)
        chosen[name] = cohort
        source[name] = {
            "rates": "measured" if labelled >= MIN_COHORT_OBJECTS else "seed default",
            "objects": labelled,
        }
    base = CostInputs(
        units=cost["units"],
        unit_price_usd=cost["unit_price_usd"],
        defect_rate=cost["measured_defect_rate"],
        rework_defect_rate=cost["measured_rework_defect_rate"],
        cycle_cap=spec.gates.max_rework_cycles,
    )
    out = compare_cohorts(base, chosen["crowd"], chosen["managed"]).to_dict()
    for name, where in source.items():
        out[name] |= where
    return out


def _rework(s: Session, project_id: int, names: dict[int, str]) -> list[dict[str, Any]]:
    """Per batch and cycle: work tasks (production, then rework), objects and defects."""
    work = s.execute(
        select(
            TaskRow.batch_id,
            TaskRow.cycle,
            func.count(),
            func.coalesce(func.sum(RevisionRow.object_count), 0),
        )
        .outerjoin(RevisionRow, RevisionRow.id == TaskRow.head_revision_id)
        .where(TaskRow.project_id == project_id, TaskRow.purpose.in_(WORK_PURPOSES))
        .group_by(TaskRow.batch_id, TaskRow.cycle)
    ).all()
    found = {
        (b, c): n
        for b, c, n in s.execute(
            select(DefectRow.batch_id, DefectRow.cycle, func.count())
            .where(DefectRow.project_id == project_id)
            .group_by(DefectRow.batch_id, DefectRow.cycle)
        ).all()
    }
    order = {batch_id: k for k, batch_id in enumerate(names)}
    rows = sorted(
        ((int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in work if r[0] in names),
        key=lambda r: (order[r[0]], r[1]),
    )
    return [
        {
            "batch": names[batch_id],
            "cycle": cycle,
            "tasks": tasks,
            "objects": objects,
            "defects": int(found.get((batch_id, cycle), 0)),
        }
        for batch_id, cycle, tasks, objects in rows
    ]


#: fewest pre-labelled images the active-learning replay runs on (6 rounds of at least 1)
MIN_REPLAY_IMAGES = 12


def _active_learning(s: Session, project_id: int) -> dict[str, Any]:
    """Label-efficiency curves: replayed on the program's pre-labels, else simulated."""
    from labelgate.ml.select import label_efficiency, simulate_label_efficiency
    from labelgate.store.models import PrelabelDecisionRow

    pairs = s.execute(
        select(PrelabelDecisionRow.prelabel_revision_id, PrelabelDecisionRow.final_revision_id)
        .join(TaskRow, TaskRow.id == PrelabelDecisionRow.task_id)
        .where(TaskRow.project_id == project_id)
        .distinct()
    ).all()
    images = 0
    if pairs:
        predictions = load_annotations(s, [p for p, _ in pairs], ids="row")
        final = load_annotations(s, [f for _, f in pairs], ids="row")
        predictions = predictions[np.isfinite(predictions.score)]
        pool = np.union1d(predictions.image_id, final.image_id)
        images = len(pool)
        if images >= MIN_REPLAY_IMAGES and len(predictions):
            document: dict[str, Any] = label_efficiency(final, predictions, pool=pool).to_dict()
            document["note"] = (
                "Replayed on this program: the model's stored pre-labels, and the labels "
                "submitted over them as the truth."
            )
            return document
    document = simulate_label_efficiency().to_dict()
    why = (
        f"only {images} pre-labelled images in this program"
        if pairs
        else "no pre-labels in this program"
    )
    document["note"] = (
        f"Simulated ({why}): generated images and a generated model's predictions "
        "(labelgate.ml.synthetic), one data set per seed; not this program's data."
    )
    return document


# --- writing report.html and report.json ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """What :func:`write_report` wrote: the document, both paths and the figures drawn."""

    report: dict[str, Any]
    html_path: Path
    json_path: Path
    figures: tuple[str, ...]


def write_report(
    db: Database, html_path: Path, *, project: str | None = None, truth: Dataset | None = None
) -> WrittenReport:
    """Build the report, check the audit chain, write ``report.html`` and ``report.json``.

    The JSON goes beside the HTML (same name, ``.json``); each file is written atomically,
    so a reader never sees half a report. ``report`` gains ``audit``
    (:func:`labelgate.workflow.audit.verify_chain`) and ``generated_at`` (UTC, ISO 8601).

    Raises
    ------
    StoreError
        No project (of that name) in the database.
    """
    from labelgate.reports.html import render_html
    from labelgate.reports.plots import render_figures

    report = build_report(db, project=project, truth=truth)
    if "error" in report:
        wanted = f"named {project!r} " if project is not None else ""
        raise StoreError(f"no project {wanted}in {db.engine.url.render_as_string()}")
    report["audit"] = verify_chain(db).to_dict()
    report["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    figures = render_figures(report)
    html_path = Path(html_path)
    json_path = html_path.with_suffix(".json")
    write_bytes_atomic(
        json_path, orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    write_bytes_atomic(html_path, render_html(report, figures).encode())
    return WrittenReport(report, html_path, json_path, tuple(figures))
