"""Read-side views of QA inspection: the inspector's own sample and a batch's sampling plan.

- :func:`qa_assignments`: the caller's QA tasks per project and batch (current cycle), how
  many are still open (what the top bar links to);
- :func:`qa_tasks`: one batch's QA tasks of the caller, inspected or not, paged in SQL,
  with the image's size and the defects the caller recorded (the inspection page);
- :func:`qa_plan`: the plan a batch's QA sample is judged under (sample size ``n``, the
  acceptance number ``c`` the gate's bound allows, the lot for a hypergeometric bound) and
  its operating characteristic from :func:`labelgate.core.sampling.acceptance_probability`
  (the management page's OC curve).

Inspecting stays :meth:`Program.qa_inspect <labelgate.workflow.program.Program.qa_inspect>`;
the rules here are the same ones: QA tasks go to reviewers (managers and admins may hold
them too), and an inspector only ever sees tasks assigned to them. The plan is for staff
(admins, managers, auditors), like :func:`labelgate.workflow.oversight.qa_items`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import case, func, select

from labelgate.core.sampling import acceptance_probability, upper_bound
from labelgate.errors import NotFound
from labelgate.spec import parse_spec
from labelgate.store.db import Database
from labelgate.store.models import (
    BatchItemRow,
    BatchRow,
    DefectRow,
    ImageRow,
    ProjectRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
)
from labelgate.workflow.auth import MANAGERS, STAFF, Principal, require_role
from labelgate.workflow.queries import latest_gate_result, visible_project

__all__ = [
    "INSPECTORS",
    "OC_SPAN",
    "OC_STEPS",
    "acceptance_number",
    "qa_assignments",
    "qa_plan",
    "qa_tasks",
]

#: who may hold QA tasks (sampling assigns reviewers; managers and admins may inspect too)
INSPECTORS = frozenset({"reviewer", *MANAGERS})
#: the OC curve's rate axis: 0 to OC_SPAN x the limit in OC_STEPS steps (the report's grid)
OC_SPAN = 3.0
OC_STEPS = 60


def qa_assignments(db: Database, principal: Principal) -> list[dict[str, Any]]:
    """The caller's QA tasks of each batch's current cycle, per project and batch.

    Returns
    -------
    list of dict
        ``project``, ``batch_id``, ``batch``, ``cycle``, ``total`` (the caller's QA tasks of
        the cycle) and ``open`` (not yet inspected), by project name and batch id; batches
        without a QA task of the caller are left out.
    """
    require_role(principal, INSPECTORS, "QA inspection")
    open_count = func.coalesce(func.sum(case((TaskRow.status == "assigned", 1), else_=0)), 0)
    with db.session() as s:
        rows = s.execute(
            select(ProjectRow.name, BatchRow.id, BatchRow.name, BatchRow.rework_cycle)
            .add_columns(func.count(TaskRow.id), open_count)
            .join(BatchRow, BatchRow.id == TaskRow.batch_id)
            .join(ProjectRow, ProjectRow.id == BatchRow.project_id)
            .where(
                TaskRow.purpose == "qa",
                TaskRow.assignee_id == principal.id,
                TaskRow.cycle == BatchRow.rework_cycle,
            )
            .group_by(ProjectRow.name, BatchRow.id, BatchRow.name, BatchRow.rework_cycle)
            .order_by(ProjectRow.name, BatchRow.id)
        ).all()
    return [
        {
            "project": project,
            "batch_id": batch_id,
            "batch": batch,
            "cycle": cycle,
            "total": int(total),
            "open": int(still_open or 0),
        }
        for project, batch_id, batch, cycle, total, still_open in rows
    ]


def _batch(s: Any, project: str, batch_id: int) -> BatchRow:
    row = s.execute(
        select(BatchRow)
        .join(ProjectRow, ProjectRow.id == BatchRow.project_id)
        .where(BatchRow.id == batch_id, ProjectRow.name == project)
    ).scalar()
    if row is None:
        raise NotFound(f"no batch {batch_id} in project {project!r}")
    return row  # type: ignore[no-any-return]


def qa_tasks(
    db: Database, principal: Principal, project: str, batch_id: int, *, limit: int, offset: int
) -> dict[str, Any]:
    """The caller's QA tasks of a batch's current cycle, inspected or not, by task id.

    Returns
    -------
    dict
        ``project``, ``batch_id``, ``batch``, ``cycle``, ``open`` (not yet inspected),
        ``total`` and ``limit``/``offset``, and ``items``: ``task_id``, ``image_id``
        (external), ``file_name``, ``width``, ``height``, ``inspected``, ``image_url`` and
        ``defects`` (``type``, ``object_key``: None for a missing object) the caller
        recorded on it.
    """
    require_role(principal, INSPECTORS, "QA inspection")
    visible_project(db, principal, project)
    with db.session() as s:
        batch = _batch(s, project, batch_id)
        mine = (
            TaskRow.batch_id == batch.id,
            TaskRow.purpose == "qa",
            TaskRow.cycle == batch.rework_cycle,
            TaskRow.assignee_id == principal.id,
        )
        total, still_open = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((TaskRow.status == "assigned", 1), else_=0)), 0),
            ).where(*mine)
        ).one()
        rows = s.execute(
            select(TaskRow, ImageRow)
            .join(ImageRow, ImageRow.id == TaskRow.image_id)
            .where(*mine)
            .order_by(TaskRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        found: dict[int, list[dict[str, Any]]] = {}
        for image_id, kind, key in s.execute(
            select(DefectRow.image_id, DefectRow.type, DefectRow.object_key)
            .where(
                DefectRow.batch_id == batch.id,
                DefectRow.cycle == batch.rework_cycle,
                DefectRow.found_by == "qa",
                DefectRow.reporter_id == principal.id,
                DefectRow.image_id.in_([t.image_id for t, _ in rows]),
            )
            .order_by(DefectRow.id)
        ).all():
            found.setdefault(image_id, []).append({"type": kind, "object_key": key})
        return {
            "project": project,
            "batch_id": batch.id,
            "batch": batch.name,
            "cycle": batch.rework_cycle,
            "open": int(still_open),
            "total": int(total),
            "limit": limit,
            "offset": offset,
            "items": [
                {
                    "task_id": t.id,
                    "image_id": image.external_id,
                    "file_name": image.file_name,
                    "width": image.width,
                    "height": image.height,
                    "inspected": t.status == "submitted",
                    "image_url": f"/web/images/{t.id}",
                    "defects": found.get(t.image_id, []),
                }
                for t, image in rows
            ],
        }


def acceptance_number(
    sampled: int, limit: float, confidence: float, *, lot_size: int | None = None
) -> int:
    """Most defects in ``sampled`` units whose upper bound still clears ``limit``; -1: none.

    The QA gate releases exactly when :func:`~labelgate.core.sampling.upper_bound` of the
    defects found is at or below the limit, and the bound grows with the defect count, so
    this is the gate's acceptance number ``c`` for a sample of that size (bisected on the
    same bound, so it agrees with the gate to the last float).

    Examples
    --------
    >>> acceptance_number(149, 0.02, 0.95), acceptance_number(100, 0.02, 0.95)
    (0, -1)
    >>> acceptance_number(523, 0.02, 0.95)  # core.sampling.plan's (523, 5)
    5
    """
    low, high = -1, sampled  # the bound at `low` clears the limit (vacuous for -1)
    while low < high:
        middle = (low + high + 1) // 2
        if upper_bound(middle, sampled, confidence, lot_size=lot_size) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def qa_plan(
    db: Database, principal: Principal, project: str, batch_id: int, *, cycle: int | None = None
) -> dict[str, Any]:
    """The plan a batch's QA sample of one cycle (default: current) is judged under, and its OC.

    The unit is the spec's ``qa_unit``. Images: ``n`` = the sampled images, the bound is
    hypergeometric on the lot of the batch's images. Objects: ``n`` = the final objects of
    the sampled images plus the objects inspectors reported missing so far (what the gate
    counts once every sampled image is inspected), Clopper-Pearson. Once the QA gate has
    evaluated the cycle, ``n`` (and the lot) are the ones it recorded. ``c`` is
    :func:`acceptance_number`; the OC curve is
    :func:`~labelgate.core.sampling.acceptance_probability` ``(n, c)`` on a grid from 0 to
    three times the limit (zero everywhere when no count of defects could release).

    Returns
    -------
    dict
        ``batch``, ``cycle``, ``unit``, ``limit``, ``confidence``, ``lot`` (images in the
        batch), ``sampled_images``, ``sample_size`` (``n``, 0 before a sample is drawn),
        ``acceptance_number`` (``c``; None without a sample), ``lot_size`` (None for the
        binomial bound), ``bound``, ``evaluated`` (whether ``n`` is the gate's), ``rates``,
        ``oc`` and ``at_limit`` (the release probability at the limit; None without a
        sample).
    """
    require_role(principal, STAFF, "the QA plan")
    visible_project(db, principal, project)
    with db.session() as s:
        batch = _batch(s, project, batch_id)
        cycle = batch.rework_cycle if cycle is None else cycle
        spec_toml = s.execute(
            select(SpecVersionRow.toml).where(SpecVersionRow.id == batch.spec_version_id)
        ).scalar_one()
        sampled = list(
            s.execute(
                select(TaskRow.image_id).where(
                    TaskRow.batch_id == batch.id, TaskRow.purpose == "qa", TaskRow.cycle == cycle
                )
            ).scalars()
        )
        lot = int(
            s.execute(
                select(func.count())
                .select_from(BatchItemRow)
                .where(BatchItemRow.batch_id == batch.id)
            ).scalar_one()
        )
        gates = parse_spec(spec_toml, source=f"batch {batch.name!r} spec").gates
        limit, confidence = float(gates.defect_limit), float(gates.confidence)
        latest = latest_gate_result(s, batch.id, cycle, stage="qa")
        evaluated = latest.inputs if latest is not None else None
        if evaluated and evaluated.get("sampled"):
            # as the gate ran it (rework may since have replaced the items' final labels)
            n, bound = int(evaluated["sampled"]), str(evaluated["bound"])
            lot_size = int(evaluated["lot_images"]) if bound == "hypergeometric" else None
        elif gates.qa_unit == "image":
            n, lot_size, bound = len(sampled), lot, "hypergeometric"
        else:
            finals = s.execute(
                select(func.coalesce(func.sum(RevisionRow.object_count), 0))
                .join(BatchItemRow, BatchItemRow.final_revision_id == RevisionRow.id)
                .where(BatchItemRow.batch_id == batch.id, BatchItemRow.image_id.in_(sampled))
            ).scalar_one()
            missing = s.execute(
                select(func.count()).where(
                    DefectRow.batch_id == batch.id,
                    DefectRow.found_by == "qa",
                    DefectRow.cycle == cycle,
                    DefectRow.type == "missing",
                )
            ).scalar_one()
            n, lot_size, bound = int(finals) + int(missing), None, "clopper-pearson"
        name, unit = batch.name, gates.qa_unit
    out: dict[str, Any] = {
        "batch": name,
        "cycle": cycle,
        "unit": unit,
        "limit": limit,
        "confidence": confidence,
        "lot": lot,
        "sampled_images": len(sampled),
        "sample_size": n,
        "acceptance_number": None,
        "lot_size": lot_size,
        "bound": bound,
        "evaluated": bool(evaluated and evaluated.get("sampled")),
        "rates": [],
        "oc": [],
        "at_limit": None,
    }
    if n == 0 or not 0.0 < limit < 1.0:
        return out
    c = acceptance_number(n, limit, confidence, lot_size=lot_size)
    rates = np.union1d(limit * OC_SPAN * np.arange(OC_STEPS + 1) / OC_STEPS, [limit])
    # no count of defects releases a sample this small: the curve is zero throughout
    oc = acceptance_probability(n, c, rates, lot_size=lot_size) if c >= 0 else np.zeros(len(rates))
    at_limit = float(oc[int(np.searchsorted(rates, limit))])
    return out | {
        "acceptance_number": c,
        "rates": [round(float(r), 8) for r in rates],
        "oc": [round(float(p), 6) for p in oc],
        "at_limit": round(at_limit, 6),
    }
