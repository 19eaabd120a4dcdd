"""Projects, batches and their gates, reports, exports, imports and audit verification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi import Path as PathParam

from labelgate.api.deps import Caller, PagingDep, StateDep, open_program
from labelgate.api.job_kinds import stage_upload
from labelgate.api.routes.jobs import job_out
from labelgate.api.schemas import (
    MAX_ID,
    BatchCreate,
    BatchRef,
    ErrorOut,
    JobOut,
    Name,
    Page,
    Responses,
    SeedIn,
)
from labelgate.api.uploads import (
    UploadRejected,
    check_image,
    read_limited,
    safe_name,
)
from labelgate.formats.registry import FORMATS
from labelgate.reports.program_report import build_report
from labelgate.workflow.audit import verify_chain
from labelgate.workflow.auth import MANAGERS, STAFF, require_role
from labelgate.workflow.prelabel import prelabel_metrics
from labelgate.workflow.queries import (
    batch_page,
    project_page,
    project_summary,
    require_batch_reader,
    require_manager,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/projects", tags=["projects"])
ProjectName = Annotated[Name, PathParam(examples=["street-scenes"])]
BatchId = Annotated[int, PathParam(ge=1, le=MAX_ID, examples=[1])]
REFUSED: Responses = {
    401: {"model": ErrorOut, "description": "Not authenticated"},
    403: {"model": ErrorOut, "description": "Wrong role, or CSRF"},
    404: {"model": ErrorOut, "description": "No such project or batch for the caller"},
}
CHANGES = {**REFUSED, 409: {"model": ErrorOut, "description": "The program's state refuses it"}}
ACCEPTED = {**REFUSED, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get("", response_model=Page[dict[str, str]], responses=REFUSED)
def projects_route(me: Caller, state: StateDep, paging: PagingDep) -> Page[dict[str, str]]:
    """The projects the caller may see (staff: all; others: where they hold tasks)."""
    page = project_page(state.db, me, limit=paging.limit, offset=paging.offset)
    return Page(
        items=[{"name": n} for n in page.items],
        total=page.total,
        limit=paging.limit,
        offset=paging.offset,
    )


@router.get("/{project}", response_model=dict[str, Any], responses=REFUSED)
def project_route(project: ProjectName, me: Caller, state: StateDep) -> dict[str, Any]:
    """A project: its newest spec's classes, attributes and edge-case rules (staff: all)."""
    return project_summary(state.db, me, project)


@router.get("/{project}/batches", response_model=Page[dict[str, Any]], responses=REFUSED)
def batches_route(
    project: ProjectName, me: Caller, state: StateDep, paging: PagingDep
) -> Page[dict[str, Any]]:
    """The project's batches with stage, state, rework cycle and item count."""
    page = batch_page(state.db, me, project, limit=paging.limit, offset=paging.offset)
    return Page(items=page.items, total=page.total, limit=paging.limit, offset=paging.offset)


@router.post(
    "/{project}/batches",
    response_model=BatchRef,
    status_code=status.HTTP_201_CREATED,
    responses=CHANGES,
)
def create_batch_route(
    project: ProjectName, body: BatchCreate, me: Caller, state: StateDep
) -> BatchRef:
    """Create a batch at stage spec (managers); default: every image not yet in a batch."""
    program = open_program(state, me, project)
    batch_id = program.create_batch(body.name, body.image_ids, actor=me.name)
    return BatchRef(id=batch_id, name=body.name)


@router.get("/{project}/batches/{batch_id}", response_model=dict[str, Any], responses=REFUSED)
def batch_route(
    project: ProjectName, batch_id: BatchId, me: Caller, state: StateDep
) -> dict[str, Any]:
    """Stage, state, cycle, item states and every gate evaluation of a batch."""
    require_batch_reader(me)
    return open_program(state, me, project).batch_status(batch_id)


@router.post(
    "/{project}/batches/{batch_id}/advance", response_model=dict[str, Any], responses=CHANGES
)
def advance_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    body: SeedIn | None = None,
) -> dict[str, Any]:
    """Evaluate the batch's gate and move it on, send rework, or wait (managers)."""
    program = open_program(state, me, project)
    result = program.advance(batch_id, actor=me.name, seed=(body or SeedIn()).seed)
    return {
        "stage": result.stage.value,
        "gate": result.gate,
        "value": result.value,
        "threshold": result.threshold,
        "passed": result.passed,
        "outcome": result.outcome,
        "cycle": result.cycle,
        "inputs": result.inputs,
    }


@router.post(
    "/{project}/batches/{batch_id}/assign", response_model=dict[str, int], responses=CHANGES
)
def assign_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    body: SeedIn | None = None,
) -> dict[str, int]:
    """Create the batch's production tasks (managers); task counts by kind."""
    program = open_program(state, me, project)
    return program.assign(batch_id, actor=me.name, seed=(body or SeedIn()).seed)


# --- reports, audit ------------------------------------------------------------------------


@router.get("/{project}/report", response_model=dict[str, Any], responses=REFUSED)
def report_route(project: ProjectName, me: Caller, state: StateDep) -> dict[str, Any]:
    """The delivery report's JSON, built now (staff); large programs: use the job."""
    require_role(me, STAFF, "the report")
    open_program(state, me, project)
    return build_report(state.db, project=project)


@router.post(
    "/{project}/report",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=REFUSED,
)
def report_job_route(project: ProjectName, me: Caller, state: StateDep) -> JobOut:
    """Build the report in the background; poll the job for its JSON (staff)."""
    require_role(me, STAFF, "the report")
    program = open_program(state, me, project)
    params = {"project": project}
    return job_out(state.jobs.submit(me, "report", params, project_id=program.project_id))


@router.get(
    "/{project}/batches/{batch_id}/prelabel", response_model=dict[str, Any], responses=REFUSED
)
def prelabel_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    against: Annotated[Literal["submitted", "delivered"], Query()] = "submitted",
    confidence: Annotated[float, Query(ge=0.5, le=0.999)] = 0.95,
) -> dict[str, Any]:
    """What pre-labeling did in a batch (managers, admins, auditors).

    Decisions (accept / adjust / reject), the adjusted proposals' IoU, the proposals'
    precision and recall against the submitted (or delivered) labels, and the time saved
    against the control group with its intervals: the keys of ``labelgate prelabel
    --metrics`` (docs/ml.md).
    """
    require_role(me, STAFF, "pre-label metrics")
    program = open_program(state, me, project)
    return prelabel_metrics(
        program, batch_id, actor=me.name, against=against, confidence=confidence
    )


@router.get("/{project}/audit/verify", response_model=dict[str, Any], responses=REFUSED)
def audit_route(project: ProjectName, me: Caller, state: StateDep) -> dict[str, Any]:
    """Verify the database's hash-chained audit log (auditors, managers, admins).

    The chain is one per database (every project's events in one order), so the verdict
    covers the whole database the project lives in.
    """
    require_role(me, STAFF, "audit verification")
    open_program(state, me, project)
    return verify_chain(state.db).to_dict()


# --- export and import jobs ----------------------------------------------------------------


@router.post(
    "/{project}/batches/{batch_id}/export",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=CHANGES,
)
def export_route(
    project: ProjectName,
    batch_id: BatchId,
    me: Caller,
    state: StateDep,
    format: Annotated[Literal["coco", "label_studio"], Query()] = "coco",
    accepted_only: Annotated[bool, Query()] = True,
) -> JobOut:
    """Export a batch's final labels in the background; the job offers the file."""
    require_role(me, {"auditor", *MANAGERS}, "export")
    program = open_program(state, me, project)
    params = {
        "project": project,
        "batch_id": batch_id,
        "format": format,
        "accepted_only": accepted_only,
        "actor": me.name,
    }
    return job_out(state.jobs.submit(me, "export", params, project_id=program.project_id))


@router.post(
    "/{project}/images",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ACCEPTED,
)
def upload_images_route(
    project: ProjectName,
    me: Caller,
    state: StateDep,
    files: Annotated[list[UploadFile], File(description="Images (JPEG, PNG, WebP, TIFF, BMP).")],
) -> JobOut:
    """Upload images (managers): each is checked (name, size, decoding) before any is kept.

    The files land in the project's image folder; registering them (sha256, sizes) runs as
    a job. One bad file refuses the whole upload.
    """
    require_manager(me, "importing images")
    program = open_program(state, me, project)
    limits = state.settings
    if len(files) > limits.max_upload_files:
        raise UploadRejected(
            f"{len(files)} files in one upload; the limit is {limits.max_upload_files}",
            status=413,
        )
    checked = []
    for upload in files:
        name = safe_name(upload.filename)
        data = read_limited(upload.file, limits.max_upload_bytes, name)
        checked.append((check_image(data, name, max_pixels=limits.max_image_pixels), data))
    if len({c.name for c, _ in checked}) != len(checked):
        raise UploadRejected("the upload names one file twice")
    safe_name(project)  # the project's image folder is named after it
    staged = stage_upload(limits.data_dir, [(c.name, data) for c, data in checked])
    params = {
        "project": project,
        "actor": me.name,
        "staged": str(staged),
        "images": [[c.name, c.width, c.height] for c, _ in checked],
    }
    return job_out(state.jobs.submit(me, "import_images", params, project_id=program.project_id))


@router.post(
    "/{project}/gold",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ACCEPTED,
)
def upload_gold_route(
    project: ProjectName,
    me: Caller,
    state: StateDep,
    file: Annotated[UploadFile, File(description="Reference answers (COCO, Label Studio...).")],
    purpose: Annotated[Literal["gold", "honeypot"], Form()] = "gold",
    format: Annotated[str | None, Form(max_length=40, pattern=r"^[a-z_]+$")] = None,
) -> JobOut:
    """Import reference answers for gold or honeypot images (managers), in the background.

    The file is read whole before anything is stored: a bad record anywhere is a failed job
    naming the file, record and field, and the database is untouched.
    """
    require_manager(me, "importing gold answers")
    program = open_program(state, me, project)
    if format is not None and format not in FORMATS:
        raise UploadRejected(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    name = safe_name(file.filename)
    data = read_limited(file.file, state.settings.max_upload_bytes, name)
    suffix = Path(name).suffix if Path(name).suffix in (".json", ".xml") else ".json"
    staged = stage_upload(state.settings.data_dir, [(f"upload{suffix}", data)])
    params = {
        "project": project,
        "actor": me.name,
        "staged": str(staged),
        "file": f"upload{suffix}",
        "purpose": purpose,
        "format": format,
    }
    return job_out(state.jobs.submit(me, "import_gold", params, project_id=program.project_id))
