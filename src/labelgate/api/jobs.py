"""Background jobs: reports, exports and imports run off the request, and pages poll them.

The queue is the ``jobs`` table, shared by every API process on one program database:

- ``POST`` answers ``202`` with a job id at once: :meth:`JobRegistry.submit` inserts a row
  (``status = 'queued'``) holding the job's *kind* and its JSON *params*, nothing else. A
  kind is a name in a registry of handlers (:data:`KINDS`, :func:`job_kind`), so any
  worker can run any job from its row; the handlers live in :mod:`labelgate.api.job_kinds`.
- Each API process runs one :class:`JobRegistry`: a dispatcher thread and ``workers``
  threads. The dispatcher claims queued jobs with a compare-and-set (``UPDATE jobs SET
  status = 'running', worker = me WHERE id = :id AND status = 'queued'``; on PostgreSQL the
  candidates are read with ``SELECT ... FOR UPDATE SKIP LOCKED``), so two processes never
  run one job twice. A local submit wakes it at once; other processes' jobs are found by
  polling (default every second).
- While a job runs, its worker writes ``heartbeat_at`` (every ``heartbeat`` seconds and at
  each progress report). A ``running`` job whose heartbeat is older than ``stale_after``
  has lost its worker (killed, machine gone): any live worker recovers it, by its kind's
  idempotency --

  ==============  ============  ===================================================
  kind            idempotent    a stale running job is
  ==============  ============  ===================================================
  ``report``      yes           re-queued (at most :data:`MAX_REQUEUES` times, then
  ``export``      yes           failed): running it again gives the same result
  ``import_*``    no            failed (``type: WorkerLost``): it may have stored
                                part of its input; the owner checks and resubmits
  ==============  ============  ===================================================

- ``GET /api/jobs/{id}`` reads the row: state, progress (0..1), message, and the result or
  the error, for the job's owner or an admin (anyone else: 404). Finished jobs stay in
  the table (their results are small; files live in the data folder).

Files a job reads or writes (uploads staged for an import, an export's output) are under
the API's ``data_dir``, which every worker must share, as it shares the image folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from labelgate.api.errors import error_body, status_of
from labelgate.errors import LabelgateError, NotVisible, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import JobRow, utcnow
from labelgate.workflow.auth import Principal

__all__ = [
    "KINDS",
    "MAX_REQUEUES",
    "Job",
    "JobKind",
    "JobRegistry",
    "JobRun",
    "Progress",
    "job_kind",
]

log = logging.getLogger("labelgate.api")

Progress = Callable[[float, str], None]
#: a stale job of an idempotent kind is re-queued at most this many times, then failed
MAX_REQUEUES = 2
#: a dispatcher started on demand stops after this many polls with nothing to do
IDLE_POLLS = 10
STATES = ("queued", "running", "done", "failed")


@dataclass
class JobRun:
    """What a handler gets besides ``progress``: its row's params and where to work.

    ``params`` is the JSON the route stored; ``db`` and ``data_dir`` are the running
    worker's own (never in the row); a handler that writes a file for download sets
    ``file`` (under ``data_dir``).
    """

    id: str
    kind: str
    owner_id: int
    project_id: int | None
    params: dict[str, Any]
    db: Database
    data_dir: Path
    file: Path | None = None


Handler = Callable[[JobRun, Progress], Any]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A job kind: its name, its handler, and whether running it twice is harmless."""

    name: str
    handler: Handler
    idempotent: bool


#: every kind a worker can run, by name (filled by :func:`job_kind`)
KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, idempotent: bool) -> Callable[[Handler], Handler]:
    """Register ``handler(run, progress)`` as the job kind ``name`` (a decorator)."""

    def register(handler: Handler) -> Handler:
        if name in KINDS and KINDS[name].handler is not handler:
            raise WorkflowError(f"job kind {name!r} is registered twice")
        KINDS[name] = JobKind(name, handler, idempotent)
        return handler

    return register


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one job's row, as the API shows it."""

    id: str
    kind: str
    owner_id: int
    project_id: int | None
    state: str
    progress: float
    message: str
    result: Any
    error: dict[str, Any] | None
    file: Path | None
    worker: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, row: JobRow) -> Job:
        """The snapshot of a row (timestamps made timezone-aware)."""
        return cls(
            id=row.id,
            kind=row.kind,
            owner_id=row.owner_id,
            project_id=row.project_id,
            state=row.status,
            progress=row.progress,
            message=row.message,
            result=row.result,
            error=row.error,
            file=Path(row.file) if row.file else None,
            worker=row.worker,
            created_at=_aware(row.created_at),
            started_at=_aware(row.started_at),
            heartbeat_at=_aware(row.heartbeat_at),
            finished_at=_aware(row.finished_at),
        )


def _aware(value: dt.datetime | None) -> Any:
    # SQLite hands timestamps back naive (they were stored as UTC)
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class JobRegistry:
    """One process's view of the shared queue: submits, claims, runs and recovers jobs.

    Parameters
    ----------
    db
        The program database holding the ``jobs`` table.
    data_dir
        Where handlers read staged inputs and write outputs (shared by every worker).
    workers
        Threads running jobs in this process; more queued jobs wait for a free one.
    kinds
        Job kinds this worker can run; default :data:`KINDS` (every registered kind).
    poll
        Seconds between looks at the queue for other processes' jobs.
    heartbeat
        Seconds between heartbeats of a running job.
    stale_after
        Seconds without a heartbeat after which a running job's worker counts as dead.
    clock
        The current time (UTC); tests pass a fake one.
    name
        This worker's name in ``jobs.worker`` (default host, pid and a random suffix).
    autostart
        Start the threads on the first :meth:`submit` or :meth:`wait` (default); the app
        also starts them at start-up (``lifespan``), so a process that never submits
        still runs the queue. ``False``: only an explicit :meth:`start` does (tests).
    """

    def __init__(
        self,
        db: Database,
        *,
        data_dir: Path,
        workers: int = 2,
        kinds: Mapping[str, JobKind] | None = None,
        poll: float = 1.0,
        heartbeat: float = 5.0,
        stale_after: float = 60.0,
        clock: Callable[[], dt.datetime] = utcnow,
        name: str | None = None,
        autostart: bool = True,
    ) -> None:
        if workers < 1:
            raise WorkflowError(f"a job registry needs at least 1 worker, got {workers}")
        if not 0 < heartbeat < stale_after:
            raise WorkflowError(
                f"the heartbeat ({heartbeat} s) must be positive and shorter than "
                f"stale_after ({stale_after} s)"
            )
        self.db = db
        self.data_dir = data_dir
        self.workers = workers
        self.kinds: Mapping[str, JobKind] = KINDS if kinds is None else kinds
        self.poll = poll
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.clock = clock
        self.autostart = autostart
        self.name = name or f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._persistent = False

    # --- submitting and reading -------------------------------------------------------------

    def submit(
        self,
        principal: Principal,
        kind: str,
        params: Mapping[str, Any] | None = None,
        *,
        project_id: int | None = None,
    ) -> Job:
        """Queue a job of ``kind`` with JSON ``params`` for ``principal``; its row."""
        if kind not in self.kinds:
            raise WorkflowError(f"unknown job kind {kind!r}; expected one of {sorted(self.kinds)}")
        now = self.clock()
        row = JobRow(
            id=uuid.uuid4().hex,
            kind=kind,
            owner_id=principal.id,
            project_id=project_id,
            params=dict(params or {}),
            status="queued",
            progress=0.0,
            message="queued",
            created_at=now,
        )
        with self.db.session() as s:
            s.add(row)
            s.flush()
            job = Job.of(row)
        self._wake.set()  # before start(): a dispatcher about to idle out sees it
        if self.autostart:
            self.start(persistent=False)
        return job

    def get(self, job_id: str, principal: Principal) -> Job:
        """The job, for its owner or an admin; :class:`NotVisible` for anyone else."""
        job = self._read(job_id)
        if job is None or (job.owner_id != principal.id and "admin" not in principal.roles):
            raise NotVisible(f"no job {job_id!r}")
        return job

    def _read(self, job_id: str) -> Job | None:
        with self.db.session() as s:
            row = s.get(JobRow, job_id)
            return None if row is None else Job.of(row)

    def wait(self, job_id: str, timeout: float) -> Job:
        """Block until a job finishes or ``timeout`` seconds pass (tests, scripts).

        Polls the row with a deadline rather than sleeping a fixed time; returns the job
        in whatever state it reached.
        """
        if self.autostart:
            self.start(persistent=False)
        end = time.monotonic() + timeout
        pause = threading.Event()  # never set: wait() is an interruptible pause
        while True:
            job = self._read(job_id)
            if job is None:
                raise NotVisible(f"no job {job_id!r}")
            if job.finished_at is not None or time.monotonic() >= end:
                return job
            pause.wait(0.02)

    # --- the worker side --------------------------------------------------------------------

    def start(self, *, persistent: bool = True) -> None:
        """Start the dispatcher and the worker threads (if not running yet).

        A persistent dispatcher (the app's start-up) polls the queue until
        :meth:`shutdown`; one started on demand (a :meth:`submit` in a process whose app
        was not started, as in tests) stops once the queue has been empty for
        :data:`IDLE_POLLS` polls, or the database keeps failing, and a later submit
        starts it again.
        """
        with self._lock:
            if self._stop.is_set():
                return
            self._persistent = self._persistent or persistent
            if self._dispatcher is not None:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="labelgate-job")
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="labelgate-jobs", daemon=True
            )
            self._dispatcher.start()

    def shutdown(self) -> None:
        """Stop claiming jobs and wait for the running ones; queued ones stay queued."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            dispatcher, pool = self._dispatcher, self._pool
        if dispatcher is not None:
            dispatcher.join()
        if pool is not None:
            pool.shutdown(wait=True)

    def _dispatch(self) -> None:
        last_beat = last_sweep = 0.0
        idle = failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                now = time.monotonic()
                if now - last_sweep >= self.stale_after / 4:
                    self.recover_stale()
                    last_sweep = now
                if now - last_beat >= self.heartbeat:
                    self._beat()
                    last_beat = now
                with self._lock:
                    free = self.workers - len(self._running)
                claimed = self.claim(free) if free > 0 else []
                for job in claimed:
                    assert self._pool is not None
                    self._pool.submit(self._run, job)
                failures = 0
            except Exception:  # the database may be away for a while: log, wait, retry
                failures += 1
                if failures == 1:
                    log.exception("job dispatcher %s: the queue could not be read", self.name)
                claimed = []
            with self._lock:
                idle = idle + 1 if not claimed and not self._running else 0
                done = idle >= IDLE_POLLS or failures >= 3
                if done and not self._persistent and not self._wake.is_set():
                    self._dispatcher = None  # a later submit starts a new one
                    return
            self._wake.wait(min(self.poll * 2**failures, 30.0))

    def claim(self, limit: int = 1) -> list[Job]:
        """Claim up to ``limit`` queued jobs of known kinds for this worker (oldest first).

        Compare-and-set per job (``WHERE status = 'queued'``), so a job another worker
        claimed in between is skipped; on PostgreSQL, rows locked by another claimer are
        skipped without waiting (``FOR UPDATE SKIP LOCKED``). Threads are not started:
        the caller runs the jobs (the dispatcher hands them to the pool).
        """
        now = self.clock()
        query = (
            select(JobRow.id)
            .where(JobRow.status == "queued", JobRow.kind.in_(list(self.kinds)))
            .order_by(JobRow.created_at, JobRow.id)
            .limit(limit)
        )
        claimed: list[Job] = []
        with self.db.session() as s:
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for job_id in s.execute(query).scalars().all():
                moved: Any = s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == "queued")
                    .values(
                        status="running",
                        worker=self.name,
                        started_at=now,
                        heartbeat_at=now,
                        message="started",
                    )
                    .execution_options(synchronize_session=False)
                )
                if moved.rowcount == 1:
                    row = s.get(JobRow, job_id, populate_existing=True)
                    assert row is not None
                    claimed.append(Job.of(row))
        with self._lock:
            self._running.update(j.id for j in claimed)
        return claimed

    def _beat(self) -> None:
        with self._lock:
            running = list(self._running)
        if not running:
            return
        with self.db.session() as s:
            s.execute(
                update(JobRow)
                .where(
                    JobRow.id.in_(running),
                    JobRow.worker == self.name,
                    JobRow.status == "running",
                )
                .values(heartbeat_at=self.clock())
                .execution_options(synchronize_session=False)
            )

    def _set(self, job_id: str, **values: Any) -> bool:
        """Update this worker's running job; ``False`` if it is no longer ours."""
        with self.db.session() as s:
            moved: Any = s.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.worker == self.name,
                    JobRow.status == "running",
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(moved.rowcount)

    def run(self, job: Job) -> None:
        """Run one claimed job to its end and record the outcome (the pool calls this)."""
        self._run(job)

    def _run(self, job: Job) -> None:
        try:
            self._execute(job)
        finally:
            with self._lock:
                self._running.discard(job.id)
            self._wake.set()  # a slot is free

    def _execute(self, job: Job) -> None:
        with self.db.session() as s:
            row = s.get(JobRow, job.id)
            params = dict(row.params or {}) if row is not None else {}
        run = JobRun(
            id=job.id,
            kind=job.kind,
            owner_id=job.owner_id,
            project_id=job.project_id,
            params=params,
            db=self.db,
            data_dir=self.data_dir,
        )

        def progress(fraction: float, message: str) -> None:
            fraction = max(0.0, min(1.0, float(fraction)))
            self._set(job.id, progress=fraction, message=message[:2000], heartbeat_at=self.clock())

        kind = self.kinds[job.kind]
        values: dict[str, Any]
        try:
            result = kind.handler(run, progress)
        except LabelgateError as exc:
            values = {"status": "failed", "error": {**error_body(exc), "status": status_of(exc)}}
        except Exception as exc:  # a job must end in a state the page can show
            log.exception("job %s (%s) failed", job.id, job.kind)
            values = {
                "status": "failed",
                "error": {"detail": "internal error", "type": type(exc).__name__, "status": 500},
            }
        else:
            values = {
                "status": "done",
                "progress": 1.0,
                "message": "done",
                "result": result,
                "error": None,
                "file": str(run.file) if run.file is not None else None,
            }
        if values["status"] == "failed":
            values["message"] = "failed"
        if not self._set(job.id, **values, finished_at=self.clock(), heartbeat_at=self.clock()):
            log.warning(
                "job %s (%s) finished on %s after it was recovered elsewhere; outcome dropped",
                job.id,
                job.kind,
                self.name,
            )

    def recover_stale(self) -> list[str]:
        """Recover running jobs whose heartbeat stopped; the ids recovered.

        A job of an idempotent kind goes back to ``queued`` (at most :data:`MAX_REQUEUES`
        times, then it fails); any other kind fails with ``type: WorkerLost``. Each
        change is a compare-and-set on the heartbeat read, so two workers recovering at
        once change a job once, and a job whose worker beats in between is left alone.
        """
        now = self.clock()
        cutoff = now - dt.timedelta(seconds=self.stale_after)
        with self.db.session() as s:
            stale = s.execute(
                select(JobRow.id, JobRow.kind, JobRow.worker, JobRow.heartbeat_at, JobRow.error)
                .where(JobRow.status == "running", JobRow.heartbeat_at < cutoff)
                .limit(100)
            ).all()
        recovered: list[str] = []
        for job_id, kind_name, worker, beat, error in stale:
            kind = self.kinds.get(kind_name) or KINDS.get(kind_name)
            requeued = int((error or {}).get("requeued", 0))
            lost = f"worker {worker} stopped (no heartbeat since {_aware(beat).isoformat()})"
            values: dict[str, Any]
            if kind is not None and kind.idempotent and requeued < MAX_REQUEUES:
                values = {
                    "status": "queued",
                    "worker": None,
                    "started_at": None,
                    "heartbeat_at": None,
                    "progress": 0.0,
                    "message": f"re-queued: {lost}",
                    "error": {"detail": lost, "type": "WorkerLost", "requeued": requeued + 1},
                }
            else:
                why = (
                    f"{lost}; a {kind_name} job may have done part of its work, so it is "
                    "not run again: check and resubmit"
                    if kind is None or not kind.idempotent
                    else f"{lost}, for the {requeued + 1}th time; not run again"
                )
                values = {
                    "status": "failed",
                    "message": "failed",
                    "finished_at": now,
                    "error": {"detail": why, "type": "WorkerLost", "status": 500},
                }
            with self.db.session() as s:
                moved: Any = s.execute(
                    update(JobRow)
                    .where(
                        JobRow.id == job_id,
                        JobRow.status == "running",
                        JobRow.heartbeat_at == beat,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
            if moved.rowcount == 1:
                log.warning("job %s (%s): %s; %s", job_id, kind_name, lost, values["status"])
                recovered.append(job_id)
        if recovered:
            self._wake.set()
        return recovered
