"""Polling background jobs (rows of the shared ``jobs`` queue) and fetching their files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from labelgate.api.deps import Caller, StateDep
from labelgate.api.jobs import Job
from labelgate.api.schemas import ErrorOut, JobOut, Responses
from labelgate.workflow.queries import NotVisible

__all__ = ["job_out", "router"]

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]
REFUSED: Responses = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


def job_out(job: Job) -> JobOut:
    """The job as the API shows it.

    The error only once the job failed: a re-queued job keeps a note of its lost worker
    there, which is not the page's business.
    """
    return JobOut(
        id=job.id,
        kind=job.kind,
        state=job.state,
        progress=job.progress,
        message=job.message,
        result=job.result,
        error=job.error if job.state == "failed" else None,
        download=f"/api/jobs/{job.id}/download" if job.file is not None else None,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


@router.get("/{job_id}", response_model=JobOut, responses=REFUSED)
def job_route(job_id: JobId, me: Caller, state: StateDep) -> JobOut:
    """State, progress (0..1), message, and the result or error of one of the caller's jobs."""
    return job_out(state.jobs.get(job_id, me))


@router.get("/{job_id}/download", response_class=FileResponse, responses=REFUSED)
def download_route(job_id: JobId, me: Caller, state: StateDep) -> FileResponse:
    """The file a finished job wrote (an export)."""
    job = state.jobs.get(job_id, me)
    if job.state != "done" or job.file is None or not job.file.is_file():
        raise NotVisible(f"job {job_id} has no file (state {job.state})")
    return FileResponse(job.file, filename=job.file.name, media_type="application/json")
