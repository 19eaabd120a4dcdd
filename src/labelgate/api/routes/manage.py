"""The managers' and auditors' reads: gate board, qualification, QA sample, audit, lineage.

Each route is one call into :mod:`labelgate.workflow.oversight`, which checks the role
(admins, managers, auditors) and the project, and pages in SQL. Writes stay where they
were: advancing a batch is ``POST /api/projects/{p}/batches/{b}/advance``, verifying the
chain ``GET /api/projects/{p}/audit/verify``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from labelgate.api.deps import Caller, PagingDep, StateDep
from labelgate.api.schemas import MAX_ID, ErrorOut, Name, Page, Responses
from labelgate.workflow.oversight import (
    audit_events,
    gate_board,
    item_lineage,
    qa_items,
    qualifications,
)
from labelgate.workflow.qa_views import qa_plan

__all__ = ["router"]

router = APIRouter(prefix="/api/projects", tags=["oversight"])
ProjectName = Annotated[Name, PathParam(examples=["street-scenes"])]
BatchId = Annotated[int, PathParam(ge=1, le=MAX_ID, examples=[1])]
ImageId = Annotated[int, PathParam(ge=-(2**62), le=2**62, examples=[1])]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
REFUSED: Responses = {
    401: {"model": ErrorOut, "description": "Not authenticated"},
    403: {"model": ErrorOut, "description": "Not an admin, manager or auditor"},
    404: {"model": ErrorOut, "description": "No such project, batch or item"},
}


@router.get("/{project}/gates", response_model=Page[dict[str, Any]], responses=REFUSED)
def gates_route(
    project: ProjectName, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, Any]]:
    """Batches with stage, cycle, open disputes and the newest gate evaluation per stage."""
    page = gate_board(state.db, me, project, limit=paging.limit, offset=paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.get("/{project}/qualifications", response_model=Page[dict[str, Any]], responses=REFUSED)
def qualifications_route(
    project: ProjectName, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, Any]]:
    """Every annotator's pilot results: score vs threshold, per class / scene cell."""
    page = qualifications(state.db, me, project, limit=paging.limit, offset=paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.get(
    "/{project}/batches/{batch_id}/qa-items", response_model=dict[str, Any], responses=REFUSED
)
def qa_items_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    paging: PagingDep,
    cycle: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> dict[str, Any]:
    """The batch's QA sample (default: current cycle), defects found, bound and decision."""
    return qa_items(
        state.db, me, project, batch_id, cycle=cycle, limit=paging.limit, offset=paging.offset
    )


@router.get(
    "/{project}/batches/{batch_id}/qa-plan", response_model=dict[str, Any], responses=REFUSED
)
def qa_plan_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    cycle: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> dict[str, Any]:
    """The plan the batch's QA sample is judged under (n, c, lot) and its OC curve."""
    return qa_plan(state.db, me, project, batch_id, cycle=cycle)


@router.get("/{project}/audit/events", response_model=Page[dict[str, Any]], responses=REFUSED)
def audit_events_route(
    project: ProjectName,
    me: Caller,
    state: StateDep,
    paging: PagingDep,
    batch_id: OptionalId = None,
    task_id: OptionalId = None,
    adjudication_id: OptionalId = None,
    action: Annotated[str | None, Query(max_length=60, pattern=r"^[a-z_.]+$")] = None,
) -> Page[dict[str, Any]]:
    """The project's audit events, newest first; of one batch, task or dispute if named."""
    page = audit_events(
        state.db,
        me,
        project,
        batch_id=batch_id,
        task_id=task_id,
        adjudication_id=adjudication_id,
        action=action,
        limit=paging.limit,
        offset=paging.offset,
    )
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.get(
    "/{project}/batches/{batch_id}/items/{image_id}/lineage",
    response_model=dict[str, Any],
    responses=REFUSED,
)
def lineage_route(
    project: ProjectName, batch_id: BatchId, image_id: ImageId, me: Caller, state: StateDep
) -> dict[str, Any]:
    """One item: its tasks, revisions -> review decisions -> disputes -> final revision."""
    return item_lineage(state.db, me, project, batch_id, image_id)
