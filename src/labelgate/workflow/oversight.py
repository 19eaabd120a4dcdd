"""Read-side views of the managers' and auditors' pages: gates, qualification, QA, audit.

Every function checks the caller's role first (:data:`~labelgate.workflow.auth.STAFF`:
admins, managers, auditors) and the project's visibility, reads one project's rows only, and
pages in SQL where a list can grow:

- :func:`gate_board`: each batch with its stage, cycle and the latest gate evaluation per
  stage (value vs threshold, passed, outcome), open disputes;
- :func:`qualifications`: each annotator's pilot results on the gold set, per class and
  scene cell, passed or failed;
- :func:`qa_items`: a batch's QA sample (inspector, inspected, defects found) with the bound
  and decision the QA gate computed;
- :func:`audit_events`: the hash-chained audit log of a project, a batch, a task or an
  adjudication (actor, time, action, before/after digests, details);
- :func:`item_lineage`: one item's tasks, revisions, the review decisions on each, the
  disputes and defects, and the final (delivered) revision.

The chain itself is verified by :func:`labelgate.workflow.audit.verify_chain`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.orm import Session

from labelgate.core.annotations import Source
from labelgate.errors import NotFound
from labelgate.store.db import Database
from labelgate.store.models import (
    AdjudicationRow,
    AuditEventRow,
    BatchItemRow,
    BatchRow,
    DefectRow,
    GateResultRow,
    ImageRow,
    ProjectRow,
    QualificationRow,
    ReviewDecisionRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
    UserRow,
)
from labelgate.workflow.auth import STAFF, Principal, require_role
from labelgate.workflow.queries import Page, latest_gate_result, visible_project

__all__ = [
    "audit_events",
    "gate_board",
    "item_lineage",
    "qa_items",
    "qualifications",
]


def _project_id(s: Session, db: Database, principal: Principal, project: str, what: str) -> int:
    require_role(principal, STAFF, what)
    visible_project(db, principal, project)
    project_id: int = s.execute(
        select(ProjectRow.id).where(ProjectRow.name == project)
    ).scalar_one()
    return project_id


def _batch(s: Session, project_id: int, batch_id: int) -> BatchRow:
    row = s.get(BatchRow, batch_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"no batch {batch_id} in this project")
    return row


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _names(s: Session, ids: set[Any]) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(s.execute(select(UserRow.id, UserRow.name).where(UserRow.id.in_(ids))).all())


def _gate(g: GateResultRow) -> dict[str, Any]:
    return {
        "stage": g.stage,
        "gate": g.gate,
        "cycle": g.cycle,
        "value": g.value,
        "threshold": g.threshold,
        "passed": g.passed,
        "outcome": g.inputs.get("outcome"),
        "at": _iso(g.created_at),
    }


def gate_board(
    db: Database, principal: Principal, project: str, *, limit: int, offset: int
) -> Page[dict[str, Any]]:
    """The project's batches with their gates (staff), oldest batch first.

    Each item: ``id``, ``name``, ``stage``, ``state``, ``rework_cycle``, ``items``,
    ``open_adjudications``, ``last_gate`` (the newest evaluation, any stage) and ``stages``
    (stage name -> its newest evaluation). A gate dict: ``stage``, ``gate``, ``cycle``,
    ``value``, ``threshold``, ``passed``, ``outcome``, ``at``.
    """
    with db.session() as s:
        project_id = _project_id(s, db, principal, project, "the gate board")
        total = s.execute(
            select(func.count()).select_from(BatchRow).where(BatchRow.project_id == project_id)
        ).scalar_one()
        batches = list(
            s.execute(
                select(BatchRow)
                .where(BatchRow.project_id == project_id)
                .order_by(BatchRow.id)
                .limit(limit)
                .offset(offset)
            ).scalars()
        )
        ids = [b.id for b in batches]
        sizes = dict(
            s.execute(
                select(BatchItemRow.batch_id, func.count())
                .where(BatchItemRow.batch_id.in_(ids))
                .group_by(BatchItemRow.batch_id)
            ).all()
        )
        disputes = dict(
            s.execute(
                select(AdjudicationRow.batch_id, func.count())
                .where(AdjudicationRow.batch_id.in_(ids), AdjudicationRow.status == "open")
                .group_by(AdjudicationRow.batch_id)
            ).all()
        )
        latest: dict[int, dict[str, dict[str, Any]]] = {i: {} for i in ids}
        last: dict[int, dict[str, Any]] = {}
        for g in s.execute(
            select(GateResultRow).where(GateResultRow.batch_id.in_(ids)).order_by(GateResultRow.id)
        ).scalars():
            if g.gate == "consensus":  # the merge's own record, not a gate of the stage
                continue
            latest[g.batch_id][g.stage] = last[g.batch_id] = _gate(g)
        items = [
            {
                "id": b.id,
                "name": b.name,
                "stage": b.stage,
                "state": b.state,
                "rework_cycle": b.rework_cycle,
                "items": int(sizes.get(b.id, 0)),
                "open_adjudications": int(disputes.get(b.id, 0)),
                "last_gate": last.get(b.id),
                "stages": latest[b.id],
            }
            for b in batches
        ]
        return Page(items, int(total))


def qualifications(
    db: Database, principal: Principal, project: str, *, limit: int, offset: int
) -> Page[dict[str, Any]]:
    """Every pilot result of the project's annotators (staff), by name, newest attempt first.

    Each item: ``user``, ``spec_version``, ``score``, ``threshold``, ``passed``,
    ``gold_images``, ``cells`` (``class:<name>`` / ``scene:<type>`` -> F1), ``failed``
    (the cells below the threshold), ``latest`` (the user's newest attempt: the one that
    counts) and ``at``.
    """
    with db.session() as s:
        project_id = _project_id(s, db, principal, project, "qualification results")
        query = (
            select(QualificationRow, UserRow.name, SpecVersionRow.version)
            .join(UserRow, UserRow.id == QualificationRow.user_id)
            .join(SpecVersionRow, SpecVersionRow.id == QualificationRow.spec_version_id)
            .where(SpecVersionRow.project_id == project_id)
        )
        total = s.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        newest = dict(
            s.execute(
                select(QualificationRow.user_id, func.max(QualificationRow.id))
                .join(SpecVersionRow, SpecVersionRow.id == QualificationRow.spec_version_id)
                .where(SpecVersionRow.project_id == project_id)
                .group_by(QualificationRow.user_id)
            ).all()
        )
        rows = s.execute(
            query.order_by(UserRow.name, QualificationRow.id.desc()).limit(limit).offset(offset)
        ).all()
        return Page(
            [
                {
                    "user": name,
                    "spec_version": version,
                    "score": q.score,
                    "threshold": q.threshold,
                    "passed": q.passed,
                    "gold_images": q.gold_images,
                    "cells": dict((q.details or {}).get("cells", {})),
                    "failed": list((q.details or {}).get("failed", [])),
                    "latest": newest.get(q.user_id) == q.id,
                    "at": _iso(q.created_at),
                }
                for q, name, version in rows
            ],
            int(total),
        )


def qa_items(
    db: Database,
    principal: Principal,
    project: str,
    batch_id: int,
    *,
    cycle: int | None = None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """A batch's QA sample of one cycle (default: the current one) and its gate (staff).

    Returns
    -------
    dict
        ``batch``, ``cycle``, ``lot`` (items in the batch), ``planned`` (sample size),
        ``inspected``, ``defects``, ``defective_images``, ``gate`` (the newest QA gate
        evaluation of the cycle: ``value`` is the upper confidence bound, ``threshold`` the
        defect limit, plus ``decision``, ``bound``, ``sampled``, ``defect_rate``,
        ``confidence``; None before one) and ``items``/``total``/``limit``/``offset``: the
        sampled images (``task_id``, ``image_id``, ``file_name``, ``inspector``,
        ``inspected``, ``defects``: ``type`` and ``object_key`` each), by task id.
    """
    with db.session() as s:
        project_id = _project_id(s, db, principal, project, "the QA sample")
        batch = _batch(s, project_id, batch_id)
        cycle = batch.rework_cycle if cycle is None else cycle
        sample = (TaskRow.batch_id == batch.id, TaskRow.purpose == "qa", TaskRow.cycle == cycle)
        planned, inspected = s.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((TaskRow.status == "submitted", 1), else_=0)), 0),
            ).where(*sample)
        ).one()
        lot = s.execute(
            select(func.count()).select_from(BatchItemRow).where(BatchItemRow.batch_id == batch.id)
        ).scalar_one()
        found = s.execute(
            select(DefectRow.image_id, DefectRow.type, DefectRow.object_key)
            .where(
                DefectRow.batch_id == batch.id,
                DefectRow.found_by == "qa",
                DefectRow.cycle == cycle,
            )
            .order_by(DefectRow.id)
        ).all()
        rows = s.execute(
            select(TaskRow, ImageRow.external_id, ImageRow.file_name)
            .join(ImageRow, ImageRow.id == TaskRow.image_id)
            .where(*sample)
            .order_by(TaskRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        names = _names(s, {t.assignee_id for t, _, _ in rows})
        gate = latest_gate_result(s, batch.id, cycle, stage="qa")
        gate_out = None
        if gate is not None:
            gate_out = _gate(gate) | {
                k: gate.inputs.get(k)
                for k in ("decision", "bound", "sampled", "defect_rate", "confidence", "unit")
            }
        return {
            "batch": batch.name,
            "cycle": cycle,
            "lot": int(lot),
            "planned": int(planned),
            "inspected": int(inspected),
            "defects": len(found),
            "defective_images": len({f.image_id for f in found}),
            "gate": gate_out,
            "items": [
                {
                    "task_id": t.id,
                    "image_id": external,
                    "file_name": file_name,
                    "inspector": names.get(t.assignee_id),
                    "inspected": t.status == "submitted",
                    "defects": [
                        {"type": f.type, "object_key": f.object_key}
                        for f in found
                        if f.image_id == t.image_id
                    ],
                }
                for t, external, file_name in rows
            ],
            "total": int(planned),
            "limit": limit,
            "offset": offset,
        }


def _event(e: AuditEventRow) -> dict[str, Any]:
    try:
        details = json.loads(e.details) if e.details else {}
    except ValueError:  # a tampered row: show it as text, verify_chain names it
        details = {"unparsed": e.details}
    return {
        "id": e.id,
        "at": _iso(e.created_at) if not isinstance(e.created_at, str) else e.created_at,
        "actor": e.actor,
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "before_digest": e.before_digest,
        "after_digest": e.after_digest,
        "details": details,
        "hash": e.hash,
    }


def audit_events(
    db: Database,
    principal: Principal,
    project: str,
    *,
    batch_id: int | None = None,
    task_id: int | None = None,
    adjudication_id: int | None = None,
    action: str | None = None,
    limit: int,
    offset: int,
) -> Page[dict[str, Any]]:
    """The project's audit events (staff), newest first, optionally of one thing.

    Without a filter: every event about the project, its spec versions, batches, tasks and
    adjudications. ``batch_id``: the batch's own events plus those of its tasks and
    adjudications. ``task_id`` / ``adjudication_id``: that one entity's events. ``action``
    keeps one action (``batch.advance``). Events about users (qualification, passwords) are
    global, not a project's: they are not listed here.

    Each item: ``id``, ``at``, ``actor``, ``action``, ``entity_type``, ``entity_id``,
    ``before_digest``, ``after_digest`` (sha256 of the states; the states themselves are
    not stored), ``details`` (the JSON the hash covers) and ``hash``.
    """
    with db.session() as s:
        project_id = _project_id(s, db, principal, project, "the audit log")
        batches = select(BatchRow.id).where(BatchRow.project_id == project_id)
        tasks = select(TaskRow.id).where(TaskRow.project_id == project_id)
        if batch_id is not None:
            _batch(s, project_id, batch_id)
            batches = batches.where(BatchRow.id == batch_id)
            tasks = tasks.where(TaskRow.batch_id == batch_id)
        disputes = select(AdjudicationRow.id).where(
            AdjudicationRow.batch_id.in_(batches.scalar_subquery())
        )
        ids = AuditEventRow.entity_id
        kind = AuditEventRow.entity_type
        scope: Any
        if task_id is not None:
            scope = (kind == "task") & ids.in_(
                select(cast(TaskRow.id, String)).where(
                    TaskRow.id == task_id, TaskRow.id.in_(tasks.scalar_subquery())
                )
            )
        elif adjudication_id is not None:
            scope = (kind == "adjudication") & ids.in_(
                select(cast(AdjudicationRow.id, String)).where(
                    AdjudicationRow.id == adjudication_id,
                    AdjudicationRow.id.in_(disputes.scalar_subquery()),
                )
            )
        else:
            parts = [
                (kind == "batch") & ids.in_(select(cast(batches.subquery().c.id, String))),
                (kind == "task") & ids.in_(select(cast(tasks.subquery().c.id, String))),
                (kind == "adjudication") & ids.in_(select(cast(disputes.subquery().c.id, String))),
            ]
            if batch_id is None:
                parts += [
                    (kind == "project") & (ids == str(project_id)),
                    (kind == "spec_version")
                    & ids.in_(
                        select(cast(SpecVersionRow.id, String)).where(
                            SpecVersionRow.project_id == project_id
                        )
                    ),
                ]
            scope = or_(*parts)
        query = select(AuditEventRow).where(scope)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        total = s.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = s.execute(query.order_by(AuditEventRow.id.desc()).limit(limit).offset(offset))
        return Page([_event(e) for e in rows.scalars()], int(total))


def item_lineage(
    db: Database, principal: Principal, project: str, batch_id: int, image_id: int
) -> dict[str, Any]:
    """One item of a batch from its first revision to the delivered one (staff).

    ``image_id`` is the image's external id. Returns ``batch``, ``batch_stage``,
    ``image_id``, ``file_name``, ``state``, ``final_revision_id``, ``delivered`` (the batch
    is delivered and the item accepted), ``tasks`` (``task_id``, ``purpose``, ``cycle``,
    ``assignee``, ``status``, ``submitted_at``), ``revisions`` (``id``, ``task_id``,
    ``number``, ``parent_id``, ``author``, ``source``, ``objects``, ``at``, ``final``,
    ``reviews``: ``reviewer``, ``verdict``, ``defect_type``, ``object_key``, ``comment``,
    ``at``), ``adjudications`` (``id``, ``status``, ``reason``, ``decision``,
    ``adjudicator``, ``resolved_at``) and ``defects`` (``type``, ``found_by``,
    ``annotator``, ``reporter``, ``cycle``, ``resolved``), each oldest first.
    """
    with db.session() as s:
        project_id = _project_id(s, db, principal, project, "an item's lineage")
        batch = _batch(s, project_id, batch_id)
        image = s.execute(
            select(ImageRow).where(
                ImageRow.project_id == project_id, ImageRow.external_id == image_id
            )
        ).scalar()
        item = s.get(BatchItemRow, (batch.id, image.id)) if image is not None else None
        if image is None or item is None:
            raise NotFound(f"no image {image_id} in batch {batch.name!r}")
        tasks = list(
            s.execute(
                select(TaskRow)
                .where(TaskRow.batch_id == batch.id, TaskRow.image_id == image.id)
                .order_by(TaskRow.id)
            ).scalars()
        )
        revisions = list(
            s.execute(
                select(RevisionRow)
                .where(RevisionRow.task_id.in_([t.id for t in tasks]))
                .order_by(RevisionRow.id)
            ).scalars()
        )
        reviews = list(
            s.execute(
                select(ReviewDecisionRow)
                .where(ReviewDecisionRow.revision_id.in_([r.id for r in revisions]))
                .order_by(ReviewDecisionRow.id)
            ).scalars()
        )
        disputes = list(
            s.execute(
                select(AdjudicationRow)
                .where(AdjudicationRow.batch_id == batch.id, AdjudicationRow.image_id == image.id)
                .order_by(AdjudicationRow.id)
            ).scalars()
        )
        defects = list(
            s.execute(
                select(DefectRow)
                .where(DefectRow.batch_id == batch.id, DefectRow.image_id == image.id)
                .order_by(DefectRow.id)
            ).scalars()
        )
        names = _names(
            s,
            {t.assignee_id for t in tasks}
            | {r.author_id for r in revisions}
            | {d.reviewer_id for d in reviews}
            | {a.adjudicator_id for a in disputes}
            | {d.annotator_id for d in defects}
            | {d.reporter_id for d in defects},
        )
        return {
            "batch": batch.name,
            "batch_stage": batch.stage,
            "image_id": image.external_id,
            "file_name": image.file_name,
            "state": item.state,
            "final_revision_id": item.final_revision_id,
            "delivered": batch.stage == "delivered" and item.state == "accepted",
            "tasks": [
                {
                    "task_id": t.id,
                    "purpose": t.purpose,
                    "cycle": t.cycle,
                    "assignee": names.get(t.assignee_id),
                    "status": t.status,
                    "submitted_at": _iso(t.submitted_at),
                }
                for t in tasks
            ],
            "revisions": [
                {
                    "id": r.id,
                    "task_id": r.task_id,
                    "number": r.number,
                    "parent_id": r.parent_id,
                    "author": names.get(r.author_id),
                    "source": Source(r.source).name.lower(),
                    "objects": r.object_count,
                    "at": _iso(r.created_at),
                    "final": r.id == item.final_revision_id,
                    "reviews": [
                        {
                            "reviewer": names.get(d.reviewer_id),
                            "verdict": d.verdict,
                            "defect_type": d.defect_type,
                            "object_key": d.object_key,
                            "comment": d.comment,
                            "at": _iso(d.created_at),
                        }
                        for d in reviews
                        if d.revision_id == r.id
                    ],
                }
                for r in revisions
            ],
            "adjudications": [
                {
                    "id": a.id,
                    "status": a.status,
                    "reason": a.reason,
                    "decision": a.decision,
                    "adjudicator": names.get(a.adjudicator_id) if a.adjudicator_id else None,
                    "resolved_at": _iso(a.resolved_at),
                }
                for a in disputes
            ],
            "defects": [
                {
                    "type": d.type,
                    "found_by": d.found_by,
                    "annotator": names.get(d.annotator_id) if d.annotator_id else None,
                    "reporter": names.get(d.reporter_id) if d.reporter_id else None,
                    "cycle": d.cycle,
                    "resolved": d.resolved,
                }
                for d in defects
            ],
        }
