"""The shared job queue: several workers on one database, claimed once, recovered when stale.

Each registry stands for one API process ("worker"); they share nothing but the database,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from labelgate.api.jobs import KINDS, MAX_REQUEUES, JobKind, JobRegistry, JobRun, Progress
from labelgate.errors import NotVisible, ValidationError, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import JobRow, UserRow, utcnow
from labelgate.workflow.auth import Principal


class Runs:
    """Counts executions per job id, across every thread of every registry."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.by: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def kinds(self) -> dict[str, JobKind]:
        def count(run: JobRun, progress: Progress) -> Any:
            progress(0.5, "counting")
            with self.lock:
                self.count[run.id] += 1
            self.release.wait(30)
            return {"n": run.params["n"], "square": run.params["n"] ** 2}

        def refuse(run: JobRun, progress: Progress) -> Any:
            raise ValidationError("n must be even", field="n")

        def crash(run: JobRun, progress: Progress) -> Any:
            raise RuntimeError("secret internals")

        return {
            "count": JobKind("count", count, idempotent=True),
            "count_once": JobKind("count_once", count, idempotent=False),
            "refuse": JobKind("refuse", refuse, idempotent=True),
            "crash": JobKind("crash", crash, idempotent=True),
        }


@pytest.fixture
def people(db: Database) -> tuple[Principal, Principal, Principal]:
    with db.session() as s:
        rows = [
            UserRow(name="ana", roles=["annotator"], active=True),
            UserRow(name="bo", roles=["annotator"], active=True),
            UserRow(name="root", roles=["admin"], active=True),
        ]
        s.add_all(rows)
        s.flush()
        return tuple(Principal(r.id, r.name, tuple(r.roles)) for r in rows)  # type: ignore[return-value]


def _registry(db: Database, tmp_path: Path, runs: Runs, name: str, **kw: Any) -> JobRegistry:
    options: dict[str, Any] = {"workers": 3, "poll": 0.02, "heartbeat": 0.2, "stale_after": 5.0}
    return JobRegistry(db, data_dir=tmp_path, kinds=runs.kinds(), name=name, **(options | kw))


def test_two_workers_never_run_one_job_twice(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    a = _registry(db, tmp_path, runs, "worker-a")
    b = _registry(db, tmp_path, runs, "worker-b")
    try:
        ids = [(a if n % 2 else b).submit(ana, "count", {"n": n}).id for n in range(60)]
        done = [a.wait(i, timeout=120) for i in ids]
    finally:
        a.shutdown()
        b.shutdown()
    assert [j.state for j in done] == ["done"] * 60
    assert [j.result for j in done] == [{"n": n, "square": n * n} for n in range(60)]
    assert runs.count == Counter(dict.fromkeys(ids, 1))  # every job exactly once
    assert {j.worker for j in done} <= {"worker-a", "worker-b"}
    assert all(j.progress == 1.0 and j.finished_at is not None for j in done)


def test_concurrent_claims_split_the_queue_without_overlap(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    workers = [_registry(db, tmp_path, runs, f"w{i}", autostart=False) for i in range(4)]
    ids = {workers[0].submit(ana, "count", {"n": n}).id for n in range(40)}
    claimed: dict[str, list[str]] = {}
    start = threading.Barrier(len(workers))

    def grab(worker: JobRegistry) -> None:
        start.wait()
        mine: list[str] = []
        while batch := worker.claim(3):
            mine += [j.id for j in batch]
        claimed[worker.name] = mine

    threads = [threading.Thread(target=grab, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [i for mine in claimed.values() for i in mine]
    assert len(every) == len(set(every)) == 40 and set(every) == ids
    with db.session() as s:
        rows = s.execute(select(JobRow.id, JobRow.status, JobRow.worker)).all()
    assert {r.status for r in rows} == {"running"}
    assert {r.id: r.worker for r in rows} == {i: w for w, mine in claimed.items() for i in mine}


def test_a_job_submitted_through_one_worker_is_seen_and_run_by_another(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana, bo, root = people
    runs = Runs()
    front = _registry(db, tmp_path, runs, "front", autostart=False)  # never runs a job
    back = _registry(db, tmp_path, runs, "back")
    try:
        job = front.submit(ana, "count", {"n": 7})
        assert back.get(job.id, ana).state in ("queued", "running", "done")
        back.start()
        finished = back.wait(job.id, timeout=60)
    finally:
        back.shutdown()
    assert (finished.state, finished.result, finished.worker) == (
        "done",
        {"n": 7, "square": 49},
        "back",
    )
    assert front.get(job.id, ana) == finished  # the submitter reads the outcome
    assert front.get(job.id, root).id == job.id  # admins read every job
    with pytest.raises(NotVisible):
        front.get(job.id, bo)  # anyone else: as if it did not exist
    with pytest.raises(NotVisible):
        front.get("0" * 32, ana)
    with pytest.raises(WorkflowError, match="unknown job kind"):
        front.submit(ana, "no-such-kind", {})


def test_failures_are_recorded_with_status_and_no_internals(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    worker = _registry(db, tmp_path, runs, "w")
    try:
        refused = worker.wait(worker.submit(ana, "refuse", {}).id, timeout=60)
        crashed = worker.wait(worker.submit(ana, "crash", {}).id, timeout=60)
    finally:
        worker.shutdown()
    assert refused.state == "failed"
    assert refused.error == {
        "detail": "n: n must be even",
        "type": "ValidationError",
        "status": 422,
    }
    assert crashed.state == "failed"
    assert crashed.error == {"detail": "internal error", "type": "RuntimeError", "status": 500}


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def test_a_stale_running_job_is_requeued_or_failed_by_its_kind(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    clock = Clock(utcnow().replace(microsecond=0))
    dead = _registry(db, tmp_path, runs, "dead", autostart=False, clock=clock)
    again = dead.submit(ana, "count", {"n": 3})
    once = dead.submit(ana, "count_once", {"n": 4})
    assert {j.id for j in dead.claim(5)} == {again.id, once.id}  # then the worker dies

    live = _registry(db, tmp_path, runs, "live", autostart=False, clock=clock)
    clock.now += dt.timedelta(seconds=4)
    assert live.recover_stale() == []  # 4 s without a heartbeat: not stale yet (5 s)
    clock.now += dt.timedelta(seconds=2)
    assert sorted(live.recover_stale()) == sorted([again.id, once.id])
    assert live.recover_stale() == []  # recovered once
    requeued = live.get(again.id, ana)
    failed = live.get(once.id, ana)
    assert (requeued.state, requeued.worker, requeued.started_at) == ("queued", None, None)
    assert "re-queued: worker dead stopped" in requeued.message
    assert failed.state == "failed" and failed.error is not None
    assert failed.error["type"] == "WorkerLost" and "not run again" in failed.error["detail"]

    # the idempotent one runs again, once, on the live worker
    claimed = live.claim(5)
    assert [j.id for j in claimed] == [again.id]
    live.run(claimed[0])
    done = live.get(again.id, ana)
    assert (done.state, done.worker, done.result) == ("done", "live", {"n": 3, "square": 9})
    assert done.error is None
    # the dead worker wakes up and finishes the job it lost: its outcome is dropped
    dead.run(dead._read(once.id))  # type: ignore[arg-type]
    assert live.get(once.id, ana).state == "failed"
    assert runs.count == Counter({again.id: 1, once.id: 1})


def test_an_idempotent_job_that_keeps_losing_its_worker_fails_in_the_end(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    clock = Clock(utcnow().replace(microsecond=0))
    worker = _registry(db, tmp_path, runs, "flaky", autostart=False, clock=clock)
    job = worker.submit(ana, "count", {"n": 1})
    for attempt in range(MAX_REQUEUES + 1):
        assert [j.id for j in worker.claim(1)] == [job.id]
        clock.now += dt.timedelta(seconds=6)
        assert worker.recover_stale() == [job.id]
        expected = "queued" if attempt < MAX_REQUEUES else "failed"
        assert worker.get(job.id, ana).state == expected
    assert worker.claim(1) == []
    assert runs.count == Counter()


def test_a_beating_worker_keeps_its_long_job(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    runs.release.clear()  # the job blocks until released
    busy = _registry(db, tmp_path, runs, "busy", heartbeat=0.05, stale_after=0.4)
    other = _registry(db, tmp_path, runs, "other", autostart=False, stale_after=0.4)
    try:
        job = busy.submit(ana, "count", {"n": 2})
        pause = threading.Event()
        for _ in range(500):
            if busy.get(job.id, ana).state == "running":
                break
            pause.wait(0.01)
        pause.wait(1.0)  # more than twice stale_after: only the heartbeats keep it
        assert other.recover_stale() == []
        assert busy.get(job.id, ana).state == "running"
        runs.release.set()
        assert busy.wait(job.id, timeout=60).state == "done"
    finally:
        runs.release.set()
        busy.shutdown()
    assert runs.count[job.id] == 1


def test_shutdown_leaves_queued_jobs_for_the_next_process(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    ana = people[0]
    runs = Runs()
    first = _registry(db, tmp_path, runs, "first", autostart=False)
    ids = [first.submit(ana, "count", {"n": n}).id for n in range(3)]
    first.shutdown()  # a restart: nothing ran, nothing is lost
    second = _registry(db, tmp_path, runs, "second")
    try:
        second.start()
        assert [second.wait(i, timeout=60).state for i in ids] == ["done"] * 3
    finally:
        second.shutdown()
    assert runs.count == Counter(dict.fromkeys(ids, 1))


def test_the_api_kinds_are_registered_with_their_idempotency() -> None:
    import labelgate.api.job_kinds  # noqa: F401

    expected = {"report": True, "export": True, "import_images": False, "import_gold": False}
    assert {name: KINDS[name].idempotent for name in expected} == expected


WORKER_PROCESS = """
import os, sys, time
from pathlib import Path
from labelgate.api.jobs import JobKind, JobRegistry
from labelgate.store.db import Database

url, folder, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def touch(run, progress):
    fd = os.open(folder / "runs.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{run.id} {name}\\n".encode())
    os.close(fd)
    time.sleep(0.05)
    return {"by": name}

db = Database(url)
jobs = JobRegistry(db, data_dir=folder, kinds={"touch": JobKind("touch", touch, False)},
                   workers=2, poll=0.02, name=name)
jobs.start()
(folder / f"{name}.ready").touch()
end = time.monotonic() + 120
while time.monotonic() < end and not (folder / "stop").exists():
    time.sleep(0.05)
jobs.shutdown()
db.dispose()
"""


def test_two_processes_share_one_queue_and_run_each_job_once(
    db: Database, tmp_path: Path, people: tuple[Principal, ...]
) -> None:
    import subprocess
    import sys

    ana = people[0]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER_PROCESS, db.url, str(tmp_path), f"p{i}"])
        for i in range(2)
    ]
    try:
        pause = threading.Event()
        for _ in range(3000):  # both workers up before anything is queued
            if all((tmp_path / f"p{i}.ready").exists() for i in range(2)):
                break
            pause.wait(0.02)
        # the API process that queues: it knows the kind's name, runs nothing itself
        front = JobRegistry(
            db, data_dir=tmp_path, kinds={"touch": JobKind("touch", print, False)}, autostart=False
        )
        ids = [front.submit(ana, "touch", {"n": n}).id for n in range(40)]
        done = [front.wait(i, timeout=120) for i in ids]
    finally:
        (tmp_path / "stop").touch()
        for proc in procs:
            proc.wait(timeout=120)
    assert [j.state for j in done] == ["done"] * 40
    lines = (tmp_path / "runs.txt").read_text().split()
    ran = Counter(lines[0::2])
    assert ran == Counter(dict.fromkeys(ids, 1))  # each job once, across both processes
    assert {j.result["by"] for j in done} == {j.worker for j in done} == {"p0", "p1"}
