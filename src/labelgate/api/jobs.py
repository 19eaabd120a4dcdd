"""Background jobs: reports, exports and imports run off the request, and pages poll them.

An in-process registry on a small thread pool: ``POST`` answers ``202`` with a job id at
once, ``GET /api/jobs/{id}`` gives state, progress (0..1), a message, and the result or the
error. Jobs live in memory (a restart forgets them; their work is in the database or in the
job folder) and only their owner (or an admin) can read them. This is enough for one API
process; several workers behind a balancer need a shared queue (a table polled by
workers, or Ray) instead, which is why routes only see :class:`JobRegistry`'s small surface.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelgate.errors import LabelgateError
from labelgate.store.models import utcnow
from labelgate.workflow.auth import Principal
from labelgate.workflow.queries import NotVisible

__all__ = ["Job", "JobRegistry", "Progress"]

log = logging.getLogger("labelgate.api")

Progress = Callable[[float, str], None]
MAX_JOBS = 1000  # finished jobs kept in memory; the oldest are forgotten first


@dataclass
class Job:
    """One background job; mutated only by its worker thread under the registry's lock."""

    id: str
    kind: str
    owner_id: int
    state: str = "queued"
    progress: float = 0.0
    message: str = ""
    result: Any = None
    error: dict[str, Any] | None = None
    file: Path | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None


class JobRegistry:
    """Runs jobs on a thread pool and remembers them for their owners.

    Parameters
    ----------
    workers
        Threads; jobs beyond them wait (``queued``).
    """

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labelgate-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, principal: Principal, kind: str, work: Callable[[Job, Progress], Any]) -> Job:
        """Start ``work(job, progress)``; its return value becomes the job's result."""
        job = Job(id=uuid.uuid4().hex, kind=kind, owner_id=principal.id)
        with self._lock:
            if len(self._jobs) >= MAX_JOBS:
                finished = [j for j in self._jobs.values() if j.finished_at is not None]
                for old in sorted(finished, key=lambda j: j.created_at)[: len(finished) // 2]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def _update(self, job: Job, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(job, key, value)

    def _run(self, job: Job, work: Callable[[Job, Progress], Any]) -> None:
        self._update(job, state="running")

        def progress(fraction: float, message: str) -> None:
            self._update(job, progress=max(0.0, min(1.0, fraction)), message=message)

        try:
            result = work(job, progress)
        except LabelgateError as exc:
            from labelgate.api.errors import error_body, status_of

            self._update(
                job,
                state="failed",
                error={**error_body(exc), "status": status_of(exc)},
                finished_at=utcnow(),
            )
        except Exception as exc:  # a job must end in a state the page can show
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._update(
                job,
                state="failed",
                error={"detail": "internal error", "type": type(exc).__name__, "status": 500},
                finished_at=utcnow(),
            )
        else:
            self._update(job, state="done", progress=1.0, result=result, finished_at=utcnow())

    def get(self, job_id: str, principal: Principal) -> Job:
        """The job, for its owner or an admin; :class:`NotVisible` for anyone else."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or (job.owner_id != principal.id and "admin" not in principal.roles):
            raise NotVisible(f"no job {job_id!r}")
        return job

    def wait(self, job_id: str, timeout: float) -> Job:
        """Block until a job finishes or ``timeout`` seconds pass (tests, scripts).

        Polls with a deadline rather than sleeping a fixed time; returns the job in
        whatever state it reached.
        """
        end = time.monotonic() + timeout
        pause = threading.Event()  # never set: wait() is an interruptible pause
        while time.monotonic() < end:
            with self._lock:
                job = self._jobs[job_id]
                if job.finished_at is not None:
                    return job
            pause.wait(0.01)
        with self._lock:
            return self._jobs[job_id]

    def shutdown(self) -> None:
        """Stop taking jobs and wait for the running ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)
