"""The checker's side: review queue and decisions, adjudication, QA sampling."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam

from labelgate.api.deps import Caller, PagingDep, StateDep, open_program
from labelgate.api.labels import to_objects
from labelgate.api.routes.tasks import task_program
from labelgate.api.schemas import (
    MAX_ID,
    AdjudicationDecision,
    ErrorOut,
    LabelsOut,
    Name,
    Page,
    QaInspection,
    Responses,
    ReviewIn,
)
from labelgate.workflow.auth import MANAGERS, Principal, require_role
from labelgate.workflow.program import ADJUDICATION_REASONS, Program
from labelgate.workflow.qa_views import qa_assignments, qa_tasks
from labelgate.workflow.queries import adjudication_project, page_of

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["review"])
Id = Annotated[int, PathParam(ge=1, le=MAX_ID, examples=[1])]
ProjectName = Annotated[Name, PathParam(examples=["street-scenes"])]
REFUSED: Responses = {
    401: {"model": ErrorOut, "description": "Not authenticated"},
    403: {"model": ErrorOut, "description": "Wrong role, own labels, or CSRF"},
    404: {"model": ErrorOut, "description": "No such thing for the caller"},
    409: {"model": ErrorOut, "description": "The program's state refuses it"},
}


def _page(ids: list[int], paging: Any) -> Page[dict[str, int]]:
    page = page_of([{"task_id": i} for i in ids], paging.limit, paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.get(
    "/projects/{project}/batches/{batch_id}/review-queue",
    response_model=Page[dict[str, int]],
    responses=REFUSED,
)
def review_queue_route(
    project: ProjectName, batch_id: Id, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, int]]:
    """Tasks of the batch's current cycle awaiting a reviewer, none of them the caller's."""
    program = open_program(state, me, project)
    return _page(program.review_queue(me.name, batch_id), paging)


@router.get("/review/{task_id}", response_model=LabelsOut, responses=REFUSED)
def review_labels_route(task_id: Id, me: Caller, state: StateDep) -> LabelsOut:
    """A submitted task's labels, for a reviewer who did not make them (names hidden)."""
    program = task_program(state, task_id)
    labels = program.review_labels(me.name, task_id)
    image = program.task_image(me.name, task_id)
    return LabelsOut(task_id=task_id, image_id=image, revision_id=None, objects=to_objects(labels))


@router.post("/review/{task_id}", response_model=dict[str, int], responses=REFUSED)
def review_route(task_id: Id, body: ReviewIn, me: Caller, state: StateDep) -> dict[str, int]:
    """Per-object verdicts; a rejection names its defect type; unnamed objects are accepted."""
    program = task_program(state, task_id)
    return program.review(
        me.name,
        task_id,
        [(d.object_id, d.verdict, d.defect_type) for d in body.decisions],
        severity=body.severity,
        comment=body.comment,
        work_seconds=body.work_seconds,
    )


@router.get(
    "/projects/{project}/batches/{batch_id}/adjudications",
    response_model=Page[dict[str, Any]],
    responses=REFUSED,
)
def adjudications_route(
    project: ProjectName, batch_id: Id, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, Any]]:
    """Open disagreements of a batch, oldest first (adjudicators, managers)."""
    program = open_program(state, me, project)
    page = page_of(program.adjudications(batch_id, actor=me.name), paging.limit, paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


def adjudicator(me: Caller) -> Principal:
    """The caller, if an adjudicator, manager or admin: refused before the body is read."""
    require_role(me, {"adjudicator", *MANAGERS}, "adjudication")
    return me


Adjudicator = Annotated[Principal, Depends(adjudicator)]


@router.get("/adjudications/{adjudication_id}", response_model=dict[str, Any], responses=REFUSED)
def adjudication_route(adjudication_id: Id, me: Adjudicator, state: StateDep) -> dict[str, Any]:
    """One dispute: annotator A's and B's versions of the object, their IoU, the item.

    Names stay hidden (A is the item's first blind task, B the second); ``group`` lists
    the disputes one A/B choice decides; ``context`` the item's agreed objects.
    """
    program = Program(state.db, adjudication_project(state.db, me, adjudication_id))
    case = program.adjudication_case(adjudication_id, actor=me.name)
    task = case["task_a"] or case["task_b"]
    case["image_url"] = f"/web/images/{task}" if task else None
    case["project"] = program.name
    case["reason_codes"] = list(ADJUDICATION_REASONS)
    return case


@router.post("/adjudications/{adjudication_id}", response_model=dict[str, Any], responses=REFUSED)
def adjudicate_route(
    adjudication_id: Id, body: AdjudicationDecision, me: Adjudicator, state: StateDep
) -> dict[str, Any]:
    """Decide a dispute with a reason: take A's or B's version, or keep / drop the object."""
    program = Program(state.db, adjudication_project(state.db, me, adjudication_id))
    outcome = program.adjudicate(
        adjudication_id,
        keep=body.keep,
        choice=body.choice,
        reason=body.reason,
        reason_code=body.reason_code,
        actor=me.name,
        work_seconds=body.work_seconds,
    )
    return {
        "id": adjudication_id,
        "keep": body.keep if body.choice is None else adjudication_id in outcome["kept"],
        "choice": body.choice,
        "status": "resolved",
        **outcome,
    }


@router.get(
    "/projects/{project}/batches/{batch_id}/qa-queue",
    response_model=Page[dict[str, int]],
    responses=REFUSED,
)
def qa_queue_route(
    project: ProjectName, batch_id: Id, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, int]]:
    """The caller's QA sample tasks of the batch's current cycle, not yet inspected."""
    program = open_program(state, me, project)
    return _page(program.qa_queue(me.name, batch_id), paging)


@router.get("/qa", response_model=list[dict[str, Any]], responses=REFUSED)
def qa_assignments_route(me: Caller, state: StateDep) -> list[dict[str, Any]]:
    """The caller's QA tasks per project and batch (current cycle): total and still open.

    Reviewers, managers and admins (who may hold QA tasks); anyone else gets 403.
    """
    return qa_assignments(state.db, me)


@router.get(
    "/projects/{project}/batches/{batch_id}/qa-tasks",
    response_model=dict[str, Any],
    responses=REFUSED,
)
def qa_tasks_route(
    project: ProjectName, batch_id: Id, me: Caller, state: StateDep, paging: PagingDep
) -> dict[str, Any]:
    """The caller's own QA tasks of the batch's current cycle, inspected or not, by task id.

    Each with its image's size and the defects the caller recorded; ``open`` counts those
    not yet inspected. Never another inspector's tasks.
    """
    return qa_tasks(state.db, me, project, batch_id, limit=paging.limit, offset=paging.offset)


@router.get("/qa/{task_id}", response_model=LabelsOut, responses=REFUSED)
def qa_labels_route(task_id: Id, me: Caller, state: StateDep) -> LabelsOut:
    """The final labels of a sampled item, for its inspector."""
    program = task_program(state, task_id)
    labels = program.qa_labels(me.name, task_id)
    image = program.task_image(me.name, task_id)
    return LabelsOut(task_id=task_id, image_id=image, revision_id=None, objects=to_objects(labels))


@router.post("/qa/{task_id}", response_model=dict[str, Any], responses=REFUSED)
def qa_inspect_route(
    task_id: Id, body: QaInspection, me: Caller, state: StateDep
) -> dict[str, Any]:
    """Record a sampled item's defects; an empty list means the item is clean."""
    program = task_program(state, task_id)
    program.qa_inspect(
        me.name,
        task_id,
        [(d.object_id, d.defect_type) for d in body.defects],
        work_seconds=body.work_seconds,
    )
    return {"task_id": task_id, "defects": len(body.defects)}
