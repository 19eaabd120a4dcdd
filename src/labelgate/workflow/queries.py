"""Read-side rules the web API needs beyond :class:`~labelgate.workflow.program.Program`.

``Program`` is one project; the API serves a database of several, addressed by project
name, task id or adjudication id. The functions here say which project an id belongs to and
who may see which project, so that the API never answers from another project's rows:

- admins, managers and auditors see every project;
- everyone else sees only the projects in which they hold a task (annotators, reviewers
  with QA tasks) or, for reviewers and adjudicators, the projects whose batches they
  review. Asking for any other project gets the same :class:`NotVisible` as a project that
  does not exist.

Lists come back as :class:`Page` (``items``, ``total``) so that every list that can grow is
paginated with SQL ``LIMIT``/``OFFSET`` where the rows come from the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select

from labelgate.errors import NotVisible
from labelgate.store.db import Database
from labelgate.store.models import (
    AdjudicationRow,
    BatchItemRow,
    BatchRow,
    GateResultRow,
    ProjectRow,
    SpecVersionRow,
    TaskRow,
)
from labelgate.workflow.auth import MANAGERS, STAFF, Principal, require_role

__all__ = [
    "REVIEW_ROLES",
    "NotVisible",
    "Page",
    "adjudication_project",
    "batch_page",
    "latest_gate_result",
    "own_task_state",
    "page_of",
    "project_page",
    "project_summary",
    "require_batch_reader",
    "require_manager",
    "task_project",
    "visible_project",
]

T = TypeVar("T")

#: roles that see every project's review, adjudication and QA queues
REVIEW_ROLES = frozenset({"reviewer", "adjudicator"})


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: its items and the length of the whole list."""

    items: list[T]
    total: int


def page_of(items: Sequence[T], limit: int, offset: int) -> Page[T]:
    """A page cut from a list the service already returns whole.

    Examples
    --------
    >>> page_of([1, 2, 3, 4, 5], limit=2, offset=2)
    Page(items=[3, 4], total=5)
    """
    return Page(list(items[offset : offset + limit]), len(items))


def _visible_ids(s: Any, principal: Principal) -> Any:
    """A select of the project ids the principal may see (None: every project)."""
    if principal.has_any(STAFF | REVIEW_ROLES):
        return None
    return select(TaskRow.project_id).where(TaskRow.assignee_id == principal.id).distinct()


def project_page(db: Database, principal: Principal, *, limit: int, offset: int) -> Page[str]:
    """Names of the projects the caller may see, by name."""
    with db.session() as s:
        query = select(ProjectRow.name)
        visible = _visible_ids(s, principal)
        if visible is not None:
            query = query.where(ProjectRow.id.in_(visible))
        total = s.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        names = s.execute(query.order_by(ProjectRow.name).limit(limit).offset(offset)).scalars()
        return Page(list(names), int(total))


def visible_project(db: Database, principal: Principal, name: str) -> str:
    """The project's name if the caller may see it; else :class:`NotVisible`."""
    with db.session() as s:
        project_id = s.execute(select(ProjectRow.id).where(ProjectRow.name == name)).scalar()
        if project_id is None:
            raise NotVisible(f"no project {name!r}")
        visible = _visible_ids(s, principal)
        if visible is not None:
            allowed = s.execute(visible.where(TaskRow.project_id == project_id)).first()
            if allowed is None:
                raise NotVisible(f"no project {name!r}")
        return name


def project_summary(db: Database, principal: Principal, name: str) -> dict[str, Any]:
    """A project as its caller may see it; staff also get the whole spec and batch count.

    Annotators get the classes, attributes and edge-case rules of the newest spec version
    (what the editor draws with), never the pools, prices or gates.
    """
    from labelgate.spec import parse_spec

    visible_project(db, principal, name)
    with db.session() as s:
        project = s.execute(select(ProjectRow).where(ProjectRow.name == name)).scalar_one()
        spec_row = s.execute(
            select(SpecVersionRow)
            .where(SpecVersionRow.project_id == project.id)
            .order_by(SpecVersionRow.version.desc())
            .limit(1)
        ).scalar_one()
        batches = s.execute(
            select(func.count()).select_from(BatchRow).where(BatchRow.project_id == project.id)
        ).scalar_one()
    spec = parse_spec(spec_row.toml, source=f"spec v{spec_row.version}")
    document = spec.model_dump(mode="json")
    out: dict[str, Any] = {
        "name": project.name,
        "description": project.description,
        "spec_version": spec_row.version,
        "spec_digest": spec_row.digest,
        "classes": document.get("classes", []),
        "attributes": document.get("attributes", []),
        "edge_cases": document.get("edge_cases", []),
    }
    if principal.has_any(STAFF):
        out["batches"] = int(batches)
        out["spec"] = document
    return out


def batch_page(
    db: Database, principal: Principal, project: str, *, limit: int, offset: int
) -> Page[dict[str, Any]]:
    """The project's batches (managers, admins, auditors, reviewers, adjudicators)."""
    require_role(principal, STAFF | REVIEW_ROLES, "listing batches")
    visible_project(db, principal, project)
    with db.session() as s:
        project_id = s.execute(select(ProjectRow.id).where(ProjectRow.name == project)).scalar_one()
        total = s.execute(
            select(func.count()).select_from(BatchRow).where(BatchRow.project_id == project_id)
        ).scalar_one()
        sizes = (
            select(BatchItemRow.batch_id, func.count().label("size"))
            .group_by(BatchItemRow.batch_id)
            .subquery()
        )
        rows = s.execute(
            select(BatchRow, sizes.c.size)
            .outerjoin(sizes, sizes.c.batch_id == BatchRow.id)
            .where(BatchRow.project_id == project_id)
            .order_by(BatchRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return Page(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "stage": b.stage,
                    "state": b.state,
                    "rework_cycle": b.rework_cycle,
                    "items": int(n or 0),
                }
                for b, n in rows
            ],
            int(total),
        )


def require_batch_reader(principal: Principal) -> None:
    """Batch status and gate history: staff, reviewers and adjudicators."""
    require_role(principal, STAFF | REVIEW_ROLES, "reading a batch's gates")


def require_manager(principal: Principal, what: str) -> None:
    """Creating and advancing batches, imports: managers and admins."""
    require_role(principal, MANAGERS, what)


def task_project(db: Database, task_id: int) -> str:
    """The name of the project a task belongs to; :class:`NotVisible` when there is none.

    Callers still ask :class:`Program` for the task, which answers "no task" to anyone
    but its assignee (or a reviewer where review rules allow): knowing a task's project
    reveals nothing the caller may not see.
    """
    with db.session() as s:
        name = s.execute(
            select(ProjectRow.name)
            .join(TaskRow, TaskRow.project_id == ProjectRow.id)
            .where(TaskRow.id == task_id)
        ).scalar()
    if name is None:
        raise NotVisible(f"no task {task_id}")
    return name


def adjudication_project(db: Database, principal: Principal, adjudication_id: int) -> str:
    """The project of an adjudication, for adjudicators and managers only."""
    require_role(principal, {"adjudicator", *MANAGERS}, "adjudication")
    with db.session() as s:
        name = s.execute(
            select(ProjectRow.name)
            .join(BatchRow, BatchRow.project_id == ProjectRow.id)
            .join(AdjudicationRow, AdjudicationRow.batch_id == BatchRow.id)
            .where(AdjudicationRow.id == adjudication_id)
        ).scalar()
    if name is None:
        raise NotVisible(f"no adjudication {adjudication_id}")
    return name


def own_task_state(db: Database, principal: Principal, task_id: int) -> tuple[int | None, str]:
    """Head revision and status of the caller's own task; :class:`NotVisible` otherwise.

    The same answer for a missing task and for someone else's (see ``Program``).
    """
    with db.session() as s:
        row = s.execute(
            select(TaskRow.head_revision_id, TaskRow.status).where(
                TaskRow.id == task_id, TaskRow.assignee_id == principal.id
            )
        ).first()
    if row is None:
        raise NotVisible(f"no task {task_id} for {principal.name!r}")
    return row.head_revision_id, row.status


def latest_gate_result(
    s: Any, batch_id: int, cycle: int, *, stage: str | None = None, gate: str | None = None
) -> GateResultRow | None:
    """The newest gate result of a batch in a rework cycle, of one stage and/or one gate."""
    where = [GateResultRow.batch_id == batch_id, GateResultRow.cycle == cycle]
    if stage is not None:
        where.append(GateResultRow.stage == stage)
    if gate is not None:
        where.append(GateResultRow.gate == gate)
    row: GateResultRow | None = s.execute(
        select(GateResultRow).where(*where).order_by(GateResultRow.id.desc()).limit(1)
    ).scalar()
    return row
