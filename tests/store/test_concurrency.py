"""Concurrent writers on SQLite and PostgreSQL: optimistic locking and one audit chain.

Every writer has its own session (its own connection): on PostgreSQL they really run at
once; on SQLite, WAL + ``BEGIN IMMEDIATE`` + ``busy_timeout`` must queue them, never fail
one with ``database is locked``. Threads start together at a ``threading.Barrier``;
processes start together when the test writes ``go`` to each one's stdin.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.errors import ConflictError, PermissionDenied
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import AnnotationRow, ProjectRow, RevisionRow, TaskRow
from labelgate.store.repository import (
    SavedRevision,
    add_images,
    add_tasks,
    add_users,
    save_revision,
)
from labelgate.workflow.audit import ADVISORY_LOCK_KEY, AUDIT_KEY_ENV, verify_chain
from labelgate.workflow.program import Program

REPO = Path(__file__).resolve().parents[2]

WRITERS = 6
ROUNDS = 4
DEADLINE_SECONDS = 60


def _setup(db: Database, tasks: int, users: int) -> tuple[list[int], list[int], list[int]]:
    """A project with ``tasks`` one-image tasks and ``users`` users: (tasks, images, users)."""
    with db.session() as s:
        project = ProjectRow(name="p")
        s.add(project)
        s.flush()
        images = Images.create(
            id=list(range(1, tasks + 1)),
            file_name=[f"{i}.jpg" for i in range(tasks)],
            width=[100] * tasks,
            height=[100] * tasks,
        )
        image_ids = add_images(s, project.id, images)
        user_ids = add_users(s, [f"user{i}" for i in range(users)])
        task_ids = add_tasks(
            s,
            project_id=project.id,
            image_id=image_ids,
            assignee_id=np.full(tasks, user_ids[0]),
            purpose="production",
        )
    return task_ids.tolist(), image_ids.tolist(), user_ids.tolist()


def _labels(image_id: int, writer: int, objects: int) -> Annotations:
    """``objects`` boxes whose x0 names the writer, so the stored head shows who won."""
    return Annotations.create(
        id=list(range(1, objects + 1)),
        image_id=[image_id] * objects,
        class_id=[1] * objects,
        bbox=[[writer, k, writer + 5, k + 5] for k in range(objects)],
    )


def _run_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; each one's result or exception."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_SECONDS)
            results[i] = work(i)
        except BaseException as exc:  # reported to the test below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE_SECONDS)
        assert not t.is_alive(), "a writer thread hung"
    return results


def _assert_consistent(db: Database) -> None:
    """Every revision has exactly its object_count rows; every head is one of its task's."""
    with db.session() as s:
        counted = dict(
            s.execute(
                select(AnnotationRow.revision_id, func.count()).group_by(AnnotationRow.revision_id)
            ).all()
        )
        revisions = s.execute(select(RevisionRow.id, RevisionRow.object_count)).all()
        assert {r.id: r.object_count for r in revisions if r.object_count} == counted
        owner = dict(s.execute(select(RevisionRow.id, RevisionRow.task_id)).all())
        for task in s.execute(select(TaskRow.id, TaskRow.head_revision_id)).all():
            if task.head_revision_id is not None:
                assert owner[task.head_revision_id] == task.id


def test_concurrent_saves_from_one_base_have_exactly_one_winner(db: Database) -> None:
    (task,), (image,), users = _setup(db, tasks=1, users=WRITERS)
    base: int | None = None
    winners: list[SavedRevision] = []
    for round_number in range(1, ROUNDS + 1):

        def save(i: int, base: int | None = base) -> SavedRevision:
            with db.session() as s:
                return save_revision(
                    s,
                    task_id=task,
                    base_revision_id=base,
                    author_id=users[i],
                    labels=_labels(image, writer=i, objects=3),
                )

        results = _run_threads(WRITERS, save)
        won = [r for r in results if isinstance(r, SavedRevision)]
        lost = [r for r in results if isinstance(r, ConflictError)]
        other = [r for r in results if not isinstance(r, SavedRevision | ConflictError)]
        assert other == [], f"round {round_number}: {other!r}"  # IntegrityError, locked, ...
        assert len(won) == 1 and len(lost) == WRITERS - 1, results
        (winner,) = won
        assert (winner.number, winner.task_version) == (round_number, round_number)
        # every loser is told which revision beat it
        assert {e.current_revision_id for e in lost} == {winner.revision_id}
        winners.append(winner)
        base = winner.revision_id

    with db.session() as s:
        stored = s.execute(
            select(RevisionRow.id, RevisionRow.number, RevisionRow.parent_id, RevisionRow.author_id)
            .where(RevisionRow.task_id == task)
            .order_by(RevisionRow.number)
        ).all()
        head = s.execute(
            select(TaskRow.head_revision_id, TaskRow.version).where(TaskRow.id == task)
        ).one()
        head_labels = load_annotations(s, [head.head_revision_id])
    # one revision per round, none lost or duplicated, each on top of the one before
    assert [r.id for r in stored] == [w.revision_id for w in winners]
    assert [r.number for r in stored] == list(range(1, ROUNDS + 1))
    assert [r.parent_id for r in stored] == [None] + [w.revision_id for w in winners[:-1]]
    assert tuple(head) == (winners[-1].revision_id, ROUNDS)
    last_author = users.index(stored[-1].author_id)
    assert head_labels.bbox[:, 0].tolist() == [last_author] * 3  # the winner's own boxes
    _assert_consistent(db)


def test_concurrent_saves_to_different_tasks_all_succeed(db: Database) -> None:
    tasks, images, users = _setup(db, tasks=WRITERS, users=1)
    saves_each = 5

    def save_chain(i: int) -> list[int]:
        base: int | None = None
        numbers = []
        for k in range(saves_each):
            with db.session() as s:
                saved = save_revision(
                    s,
                    task_id=tasks[i],
                    base_revision_id=base,
                    author_id=users[0],
                    labels=_labels(images[i], writer=i, objects=k + 1),
                )
            base = saved.revision_id
            numbers.append(saved.number)
        return numbers

    results = _run_threads(WRITERS, save_chain)
    assert results == [list(range(1, saves_each + 1))] * WRITERS
    with db.session() as s:
        heads = s.execute(
            select(TaskRow.id, TaskRow.version, RevisionRow.number, RevisionRow.object_count)
            .join(RevisionRow, RevisionRow.id == TaskRow.head_revision_id)
            .order_by(TaskRow.id)
        ).all()
        total = s.execute(select(func.count()).select_from(RevisionRow)).scalar_one()
    assert [tuple(h) for h in heads] == [(t, saves_each, saves_each, saves_each) for t in tasks]
    assert total == WRITERS * saves_each
    _assert_consistent(db)


# --- separate processes -----------------------------------------------------------------

SAVER = """
import json, sys
import numpy as np
from labelgate.core.annotations import Annotations
from labelgate.errors import ConflictError
from labelgate.store.db import Database
from labelgate.store.repository import save_revision
from labelgate.workflow.audit import append_event

url, writer, task, image, author, events = sys.argv[1:7]
db = Database(url)
with db.session():  # connect (and, on SQLite, set the pragmas) before the start signal
    pass
print("ready", flush=True)
sys.stdin.readline()
labels = Annotations.create(
    id=[1, 2], image_id=[int(image)] * 2, class_id=[1, 1],
    bbox=[[int(writer), 0, int(writer) + 5, 5], [int(writer), 1, int(writer) + 5, 6]],
)
try:
    with db.session() as s:
        saved = save_revision(s, task_id=int(task), base_revision_id=None,
                              author_id=int(author), labels=labels)
        append_event(s, actor=f"writer{writer}", action="annotation.save",
                     entity_type="task", entity_id=int(task),
                     after={"revision": saved.revision_id})
    outcome = {"won": saved.revision_id}
except ConflictError as exc:
    outcome = {"conflict": exc.current_revision_id}
for i in range(int(events)):  # then audit events, one or two per transaction
    with db.session() as s:
        append_event(s, actor=f"writer{writer}", action="task.submit", entity_type="task",
                     entity_id=1000 * int(writer) + i, after={"i": i})
        if i % 4 == 0:
            append_event(s, actor=f"writer{writer}", action="task.review",
                         entity_type="task", entity_id=1000 * int(writer) + i)
print(json.dumps(outcome), flush=True)
"""


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The child's next stdout line, failing the test at ``deadline`` or if it dies."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                pytest.fail("a writer process sent nothing before the deadline")
    line = process.stdout.readline()
    if not line:
        assert process.stderr is not None
        pytest.fail(f"writer process died: {process.stderr.read()}")
    return line.strip()


@pytest.mark.slow
def test_writer_processes_queue_and_keep_one_audit_chain(db: Database) -> None:
    """Four processes: one save wins, the rest conflict, 4 x 30 events form one chain.

    On SQLite this is the case that ``database is locked`` would break: four processes,
    one file, all writing at once.
    """
    processes = 4
    events_each = 30
    (task,), (image,), users = _setup(db, tasks=1, users=processes)
    env = {k: v for k, v in os.environ.items() if k != AUDIT_KEY_ENV}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, db.url]
            + [str(v) for v in (i, task, image, users[i], events_each)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        for child in children:
            assert _read_line(child, deadline) == "ready"
        for child in children:  # the start signal, as close together as pipes allow
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outcomes = [json.loads(_read_line(child, deadline)) for child in children]
        for child in children:
            assert child.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
    won = [o["won"] for o in outcomes if "won" in o]
    assert len(won) == 1, outcomes
    assert [o["conflict"] for o in outcomes if "conflict" in o] == won * (processes - 1)
    with db.session() as s:
        revisions = s.execute(select(RevisionRow.id)).scalars().all()
        head = s.execute(select(TaskRow.head_revision_id)).scalar_one()
    assert revisions == won == [head]
    per_process = 1 + events_each + (events_each + 3) // 4
    report = verify_chain(db)
    assert report.ok, report.reason
    assert report.events == processes * per_process - (processes - 1)  # losers log no save
    _assert_consistent(db)


# --- a save racing a submit through the workflow service ----------------------------------


def _racer(db: Database, name: str) -> Database:
    """Another engine on the same database whose sessions carry ``application_name``."""
    url = make_url(db.url).update_query_dict({"application_name": name})
    return Database(url.render_as_string(hide_password=False))


def _wait_until_blocked(db: Database, name: str, thread: threading.Thread) -> str:
    """Poll until the racer named ``name`` waits for a lock; its wait event."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT wait_event FROM pg_stat_activity "
                "WHERE application_name = %(name)s AND wait_event_type = 'Lock'",
                {"name": name},
            ).scalar()
        if waiting is not None:
            return str(waiting)
        thread.join(timeout=0.01)  # a short wait that also notices a racer that did not block
        assert thread.is_alive(), f"{name} finished without waiting for the lock"
    pytest.fail(f"{name} never waited for a lock")


def test_a_save_racing_a_submit_never_reopens_the_submitted_task(db: Database) -> None:
    """Submit wins the race; the save that checked the status before it must be refused.

    The test holds the audit appenders' advisory lock, so the submit blocks inside its
    transaction after writing ``status = submitted``; the save then reads the committed
    status (``in_progress``) and blocks on the task row. Releasing the lock lets the submit
    commit first. SQLite runs one write transaction at a time, so only PostgreSQL can
    interleave them.
    """
    if db.dialect == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time: no interleaving to test")
    prog = _assigned_program(db)
    task = prog.my_tasks("ana")[0]
    labels = Annotations.create(id=[1], image_id=[task.image_id], class_id=[1], bbox=[[0, 0, 5, 5]])
    first = prog.save("ana", task.task_id, labels, base_revision_id=None)
    submitter, saver = _racer(db, f"lg-submit-{os.getpid()}"), _racer(db, f"lg-save-{os.getpid()}")
    outcome: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> threading.Thread:
        def target() -> None:
            try:
                outcome[name] = call()
            except BaseException as exc:  # reported below
                outcome[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    try:
        with db.engine.connect() as locker, locker.begin():
            locker.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_KEY})")
            submit = run("submit", lambda: Program(submitter).submit("ana", task.task_id))
            assert _wait_until_blocked(db, f"lg-submit-{os.getpid()}", submit) == "advisory"
            save = run(
                "save",
                lambda: Program(saver).save(
                    "ana", task.task_id, labels, base_revision_id=first.revision_id
                ),
            )
            _wait_until_blocked(db, f"lg-save-{os.getpid()}", save)
        for thread in (submit, save):
            thread.join(timeout=DEADLINE_SECONDS)
            assert not thread.is_alive()
    finally:
        submitter.dispose()
        saver.dispose()
    with db.session() as s:
        status = s.execute(select(TaskRow.status).where(TaskRow.id == task.task_id)).scalar_one()
        revisions = s.execute(
            select(func.count()).select_from(RevisionRow).where(RevisionRow.task_id == task.task_id)
        ).scalar_one()
    assert outcome["submit"] is None
    assert isinstance(outcome["save"], PermissionDenied), outcome["save"]
    assert (status, revisions) == ("submitted", 1)
    assert verify_chain(db).ok


def _assigned_program(db: Database) -> Program:
    """A program with batch ``b`` in production, its tasks assigned to ana and bo."""
    text = (REPO / "examples" / "spec.toml").read_text()
    text = re.sub(
        r"\[assignment\]\n.*?\n\n",
        "[assignment]\ndouble_annotation_rate = 0.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n\n",
        text,
        flags=re.S,
    )
    prog = Program.create(db, text)
    prog.add_user("maria", ["manager"], actor="labelgate")
    gold = generate_dataset(12, seed=2)
    prog.import_gold(gold, actor="maria")
    prog.qualify("ana", gold.annotations.replace(attributes={}), actor="maria")
    work = generate_dataset(2, seed=3)
    work = Dataset(
        work.annotations.replace(image_id=work.annotations.image_id + 100),
        work.images.replace(
            id=work.images.id + 100,
            file_name=np.array([f"work/{i}.jpg" for i in range(2)], dtype=object),
        ),
        work.taxonomy,
    )
    prog.import_images(work.images, actor="maria")
    batch = prog.create_batch("b", actor="maria")
    prog.advance(batch, actor="maria")
    prog.advance(batch, actor="maria")
    prog.assign(batch, actor="maria")
    return prog
