"""The delivery report of a program, as one JSON document read from its database.

Keys (``report.json``):

- ``stages``: every gate evaluation, in order: ``batch``, ``name`` (stage), ``gate``,
  ``value``, ``threshold``, ``passed``, ``outcome``, ``cycle``, ``inputs``;
- ``quality``: ``per_class`` (honeypot and gold answers of production against their
  reference: precision, recall, F1, IoU quantiles, signed bias), ``per_annotator``
  (qualification, honeypot F1 / IoU / bias, objects labelled, defects by type, defect rate,
  rework tasks) and, when the truth is known (the demo), ``delivered_vs_truth``;
- ``defects``: counts by type, by who found them, by type x annotator cohort, by cycle;
- ``cost``: the rework-inclusive model (``labelgate.core.cost``) fed with the program's
  measured first-pass and rework defect rates, and what rework really cost;
- ``batches``: name, stage, state, rework cycles, items.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelgate.core.annotations import Annotations
from labelgate.core.compare import compare
from labelgate.core.cost import CostInputs, estimate
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import gather_ranges
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

__all__ = ["build_report"]

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
        defects = _defects(s, project_row.id, users)
        cost = _cost(s, project_row.id, spec, defects)
        return {
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
    out: dict[str, Any] = {"per_class": [], "per_annotator": []}
    honeypot: dict[int, dict[str, Any]] = {}
    if hidden:
        result = _honeypot_comparison(s, spec, table, answers, hidden)
        out["per_class"] = [c for c in result.per_class if c["ref_count"]]
        honeypot = {a["annotator_id"]: a for a in result.by_annotator}
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


def _honeypot_comparison(
    s: Session, spec: Any, table: Any, answers: dict[int, int], hidden: Sequence[Any]
) -> Any:
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
    return compare(Dataset(copies, images, spec.taxonomy()), theirs)


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


def _cost(s: Session, project_id: int, spec: Any, defects: dict[str, Any]) -> dict[str, Any]:
    objects = dict(
        s.execute(
            select(TaskRow.cycle, func.coalesce(func.sum(RevisionRow.object_count), 0))
            .join(RevisionRow, RevisionRow.id == TaskRow.head_revision_id)
            .where(TaskRow.project_id == project_id, TaskRow.purpose.in_(WORK_PURPOSES))
            .group_by(TaskRow.cycle)
        ).all()
    )
    first_pass = int(objects.get(0, 0))
    reworked = int(sum(v for k, v in objects.items() if k > 0))
    by_cycle = {int(k): v for k, v in defects["by_cycle"].items()}
    first_defects = by_cycle.get(0, 0)
    later_defects = sum(v for k, v in by_cycle.items() if k > 0)
    defect_rate = min(first_defects / first_pass, 0.99) if first_pass else 0.0
    rework_rate = min(later_defects / reworked, 0.99) if reworked else defect_rate
    price = spec.prices.price("box")
    if first_pass == 0:
        return {"units": 0}
    model = estimate(
        CostInputs(
            units=first_pass,
            unit_price_usd=price,
            defect_rate=defect_rate,
            rework_defect_rate=rework_rate,
            cycle_cap=spec.gates.max_rework_cycles,
        )
    )
    return {
        "units": first_pass,
        "unit_price_usd": price,
        "measured_defect_rate": defect_rate,
        "measured_rework_defect_rate": rework_rate,
        "reworked_objects": reworked,
        "actual_rework_usd": reworked * price,
        "model": model.to_dict(),
    }
