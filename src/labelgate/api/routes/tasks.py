"""The annotator's side: their queue, a task's labels, saving and submitting."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from labelgate.api.deps import (
    Caller,
    PagingDep,
    State,
    StateDep,
    app_state_of,
    caller,
    documented_body,
    header_value,
    json_body,
    run_db,
)
from labelgate.api.labels import from_objects, to_objects
from labelgate.api.schemas import (
    MAX_ID,
    ErrorOut,
    LabelsOut,
    LabelsSave,
    Name,
    Page,
    Responses,
    SavedOut,
    SubmittedOut,
    TaskOut,
)
from labelgate.core.annotations import Annotations
from labelgate.errors import ConflictError
from labelgate.store.repository import SavedRevision
from labelgate.workflow.program import Program
from labelgate.workflow.queries import (
    own_task_state,
    page_of,
    project_page,
    visible_project,
)

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["tasks"])
TaskId = Annotated[int, PathParam(ge=1, le=MAX_ID, examples=[1])]
REFUSED: Responses = {
    401: {"model": ErrorOut, "description": "Not authenticated"},
    403: {"model": ErrorOut, "description": "Not allowed (role, rule or CSRF)"},
    404: {"model": ErrorOut, "description": "No such task for the caller"},
}


@router.get("/me/tasks", response_model=Page[TaskOut], responses=REFUSED)
def my_tasks_route(
    me: Caller,
    state: StateDep,
    paging: PagingDep,
    project: Annotated[Name | None, Query(description="Only this project's tasks.")] = None,
    status: Annotated[
        str | None, Query(max_length=20, pattern=r"^[a-z_]+$", description="Only this status.")
    ] = None,
) -> Page[TaskOut]:
    """The caller's own queue, oldest first: never another person's task, never a purpose."""
    if project is not None:
        names = [visible_project(state.db, me, project)]
    else:
        names = project_page(state.db, me, limit=10_000, offset=0).items
    tasks = [
        TaskOut(
            task_id=t.task_id,
            project=name,
            image_id=t.image_id,
            file_name=t.file_name,
            width=t.width,
            height=t.height,
            batch=t.batch,
            status=t.status,
            head_revision_id=t.head_revision_id,
        )
        for name in names
        for t in state.programs.of_project(state.db, name).my_tasks(me.name, status=status)
    ]
    page = page_of(tasks, paging.limit, paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.get("/tasks/{task_id}", response_model=LabelsOut, responses=REFUSED)
async def task_route(task_id: TaskId, me: Caller, state: StateDep) -> LabelsOut:
    """The head labels of the caller's own task, with the head revision id to save on.

    The revision id and the labels are read consistently: if a save lands in between, the
    read is repeated, so a client never edits labels under a newer revision's id.
    """

    def read() -> tuple[int | None, str, int, Annotations]:
        program = task_program(state, task_id)
        for _ in range(5):
            head, status = own_task_state(state.db, me, task_id)
            labels = program.task_labels(me.name, task_id)
            image = program.task_image(me.name, task_id)
            if own_task_state(state.db, me, task_id)[0] == head:
                return head, status, image, labels
        raise ConflictError(
            f"task {task_id} keeps changing; retry", current_revision_id=head, task_id=task_id
        )

    # the editor opens and reloads a task with this: like a save, in the loop on SQLite
    head, status, image, labels = await run_db(state, read)
    return LabelsOut(
        task_id=task_id,
        image_id=image,
        status=status,
        revision_id=head,
        objects=to_objects(labels),
    )


IDEMPOTENCY_HEADER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Client request id: a retried save with the same key lands once.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._:-]+$"},
}


@router.put(
    "/tasks/{task_id}/labels",
    response_model=SavedOut,
    responses={
        **REFUSED,
        409: {"model": ErrorOut, "description": "Stale save: current_revision_id won"},
        422: {"model": ErrorOut, "description": "Objects break the label contract"},
    },
    openapi_extra=documented_body(LabelsSave, IDEMPOTENCY_HEADER),
)
async def save_route(task_id: TaskId, request: Request) -> Response:
    """Save the task's full object list as a new revision on top of ``base_revision_id``.

    A stale base is a 409 whose body names ``current_revision_id``; nothing is written. A
    retry with the same ``Idempotency-Key`` returns the first save (``replayed: true``).
    """
    # the editor's autosave, the hottest request: caller, header and body are read here,
    # not declared as parameters (see labelgate.api.deps.documented_body)
    me = await caller(request)
    state = app_state_of(request)
    key = header_value(request, IDEMPOTENCY_HEADER)
    body = await json_body(request, LabelsSave)
    labels = from_objects(body.objects)
    # keys are per user: two people's clients never collide on a key
    request_id = f"u{me.id}:{key}" if key else None

    def save() -> SavedRevision:
        return task_program(state, task_id).save(
            me.name,
            task_id,
            labels,
            base_revision_id=body.base_revision_id,
            request_id=request_id,
            work_seconds=body.work_seconds,
        )

    saved = await run_db(state, save)
    # SavedOut's fields, encoded here: FastAPI would validate and encode the model again
    return Response(
        orjson.dumps(
            {
                "task_id": task_id,
                "revision_id": saved.revision_id,
                "number": saved.number,
                "replayed": saved.replayed,
            }
        ),
        media_type="application/json",
    )


@router.post(
    "/tasks/{task_id}/submit",
    response_model=SubmittedOut,
    responses={**REFUSED, 409: {"model": ErrorOut, "description": "Already submitted"}},
)
async def submit_route(task_id: TaskId, me: Caller, state: StateDep) -> SubmittedOut:
    """Hand the task in: it leaves the editable queue and waits for review."""
    await run_db(state, lambda: task_program(state, task_id).submit(me.name, task_id))
    return SubmittedOut(task_id=task_id, status="submitted")


def task_program(state: State, task_id: int) -> Program:
    """The program holding a task.

    Whether the caller may touch the task is the service's answer ("no task N"), the same
    for a missing task and for another person's.
    """
    return state.programs.of_task(state.db, task_id)
