"""Price a program in the store: the unit-price model at measured rates, and measured time.

Two prices of one program, side by side (``docs/cost.md``):

- **the model** (:func:`unit_price_model`): the rework-inclusive closed form
  (:func:`labelgate.core.cost.estimate`) fed with what the program measured: first-pass
  objects at the spec's box price, the first-pass defect rate (defects found at cycle 0 /
  first-pass objects) and the rework defect rate (defects found at later cycles / objects
  re-labelled), capped at the spec's ``max_rework_cycles``;
- **measured work** (:func:`measured_cost`): every ``work_log`` entry (saves, reviews, QA
  inspections, adjudications, each with the active seconds the editor or the simulator
  measured) priced at the spec's hourly rates (``[prices] annotator_hourly_usd`` and
  ``review_hourly_usd``) times the price multiple of whoever did it (their ``[[pools]]``
  entry, else their cohort's default: :meth:`ProgramSpec.price_multiple`), in the model's
  four categories (:func:`labelgate.core.cost.price_measured`; a batch's first QA pass is
  QA overhead, later passes and all work of cycles >= 1 are rework). Downstream remediation is
  not in any log: it stays the model's estimate for the escaped defects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelgate.core.cost import CostBreakdown, CostInputs, MeasuredCost, estimate, price_measured
from labelgate.errors import StoreError
from labelgate.spec import ProgramSpec, parse_spec
from labelgate.store.db import Database
from labelgate.store.models import (
    DefectRow,
    ProjectRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
    UserRow,
    WorkLogRow,
)

__all__ = ["measured_cost", "price_program", "unit_price_model"]

WORK_PURPOSES = ("production", "rework")
#: A measured rate is capped here so that the model's rework loop converges.
MAX_MODEL_RATE = 0.99


def unit_price_model(
    s: Session, project_id: int, spec: ProgramSpec
) -> tuple[dict[str, Any], CostBreakdown | None]:
    """The unit-price model at the program's measured defect rates.

    Returns
    -------
    tuple
        The document (``units``, ``unit_price_usd``, ``measured_defect_rate``,
        ``measured_rework_defect_rate``, ``reworked_objects``, ``actual_rework_usd`` and
        ``model``; only ``units: 0`` before any first-pass object exists) and the
        breakdown itself (``None`` then).
    """
    objects = dict(
        s.execute(
            select(TaskRow.cycle, func.coalesce(func.sum(RevisionRow.object_count), 0))
            .join(RevisionRow, RevisionRow.id == TaskRow.head_revision_id)
            .where(TaskRow.project_id == project_id, TaskRow.purpose.in_(WORK_PURPOSES))
            .group_by(TaskRow.cycle)
        ).all()
    )
    found = dict(
        s.execute(
            select(DefectRow.cycle, func.count())
            .where(DefectRow.project_id == project_id)
            .group_by(DefectRow.cycle)
        ).all()
    )
    first_pass = int(objects.get(0, 0))
    if first_pass == 0:
        return {"units": 0}, None
    reworked = int(sum(v for k, v in objects.items() if k > 0))
    first_defects = int(found.get(0, 0))
    later_defects = int(sum(v for k, v in found.items() if k > 0))
    defect_rate = min(first_defects / first_pass, MAX_MODEL_RATE)
    rework_rate = min(later_defects / reworked, MAX_MODEL_RATE) if reworked else defect_rate
    price = spec.prices.price("box")
    model = estimate(
        CostInputs(
            units=first_pass,
            unit_price_usd=price,
            defect_rate=defect_rate,
            rework_defect_rate=rework_rate,
            cycle_cap=spec.gates.max_rework_cycles,
        )
    )
    document = {
        "units": first_pass,
        "unit_price_usd": price,
        "measured_defect_rate": defect_rate,
        "measured_rework_defect_rate": rework_rate,
        "reworked_objects": reworked,
        "actual_rework_usd": reworked * price,
        "model": model.to_dict(),
    }
    return document, model


def measured_cost(
    s: Session, project_id: int, spec: ProgramSpec, model: CostBreakdown | None = None
) -> MeasuredCost | None:
    """Price the program's work log (``None`` when nothing was logged).

    Each entry is priced at ``[prices] annotator_hourly_usd`` (``annotate``, ``rework``)
    or ``review_hourly_usd`` (``review``, ``qa``, ``adjudicate``) times the worker's price
    multiple; ``model`` supplies the downstream estimate and the comparison.
    """
    rows = s.execute(
        select(
            WorkLogRow.activity,
            WorkLogRow.seconds,
            WorkLogRow.cycle,
            WorkLogRow.user_id,
            func.coalesce(WorkLogRow.task_id, -1),
            func.coalesce(WorkLogRow.batch_id, -1),
            WorkLogRow.objects,
        )
        .where(WorkLogRow.project_id == project_id)
        .order_by(WorkLogRow.id)
    ).all()
    if not rows:
        return None
    activity, seconds, cycle, user, task, batch, objects = (list(c) for c in zip(*rows))
    people = s.execute(
        select(UserRow.id, UserRow.name, UserRow.cohort).where(UserRow.id.in_(set(user)))
    ).all()
    multiple_of = {uid: spec.price_multiple(name, cohort) for uid, name, cohort in people}
    users = np.asarray(user, dtype=np.int64)
    ids = np.array(sorted(multiple_of), dtype=np.int64)
    multiples = np.array([multiple_of[i] for i in ids.tolist()], dtype=np.float64)
    return price_measured(
        np.asarray(activity, dtype=object),
        np.asarray(seconds, dtype=np.float64),
        np.asarray(cycle, dtype=np.int64),
        multiple=multiples[np.searchsorted(ids, users)],
        task=np.asarray(task, dtype=np.int64),
        batch=np.asarray(batch, dtype=np.int64),
        objects=np.asarray(objects, dtype=np.float64),
        annotator_hourly_usd=spec.prices.annotator_hourly_usd,
        review_hourly_usd=spec.prices.review_hourly_usd,
        model=model,
    )


def price_program(db: Database, *, project: str | None = None) -> dict[str, Any]:
    """Both prices of a program in the store: ``labelgate cost --db`` (docs/cost.md).

    Returns
    -------
    dict
        ``project``, ``spec_version``, the :func:`unit_price_model` keys, and ``measured``
        (:meth:`MeasuredCost.to_dict`, or ``None`` when no work time was logged).

    Raises
    ------
    StoreError
        No project (of that name) in the database.
    """
    with db.session() as s:
        query = select(ProjectRow)
        if project is not None:
            query = query.where(ProjectRow.name == project)
        row = s.execute(query.order_by(ProjectRow.id)).scalars().first()
        if row is None:
            wanted = f"named {project!r} " if project is not None else ""
            raise StoreError(f"no project {wanted}in {db.engine.url.render_as_string()}")
        spec_row = (
            s.execute(
                select(SpecVersionRow)
                .where(SpecVersionRow.project_id == row.id)
                .order_by(SpecVersionRow.version.desc())
            )
            .scalars()
            .first()
        )
        if spec_row is None:
            raise StoreError(f"project {row.name!r} has no spec")
        spec = parse_spec(spec_row.toml, source=f"spec v{spec_row.version}")
        document, model = unit_price_model(s, row.id, spec)
        measured = measured_cost(s, row.id, spec, model)
    return {
        "project": row.name,
        "spec_version": spec_row.version,
        **document,
        "measured": measured.to_dict() if measured is not None else None,
    }
