"""Kill -9 in the middle of an import or a stage transition, on SQLite and PostgreSQL.

A child process runs the workflow service on the test's database and the test kills it
with SIGKILL while it is inside a transaction. Then the database must hold exactly the
committed transactions: an import is all there or not there at all, every revision has
exactly its ``object_count`` annotation rows, every task's head is its newest revision; the
audit chain verifies and agrees with the state it records (the last ``batch.advance`` event
of a batch carries the digest of the batch's stage); and a new ``Program`` carries on from
there to a delivery equal to the truth.

Where the kill lands: the child prints a line for each statement that marks the middle of
a transaction (``MARKERS``); the test kills as soon as it reads the line (the child is
still writing: a 3,000-image import has some 60,000 boxes left to insert), or, when the
child pauses at the statement, first proves that the child holds an open write transaction.
No sleeps: every wait is for a line on the child's stdout, bounded by a deadline.
"""

from __future__ import annotations

import itertools
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.formats.coco import read_coco, write_coco
from labelgate.store.db import Database
from labelgate.store.models import (
    AnnotationRow,
    AuditEventRow,
    BatchRow,
    GateResultRow,
    GoldItemRow,
    ImageRow,
    RevisionRow,
    TaskRow,
)
from labelgate.workflow.audit import AUDIT_KEY_ENV, digest, verify_chain
from labelgate.workflow.program import Program
from labelgate.workflow.stages import Stage

REPO = Path(__file__).resolve().parents[2]
MANAGER = "maria"
REVIEWER = "rita"
ANNOTATORS = ("ana", "bo")
DEADLINE_SECONDS = 90
IMPORT_IMAGES = 3_000

# Statements that only run in the middle of a transaction, by the start of their SQL text:
# the set-based head move of every bulk revision import (repository._move_heads: revisions
# are in, annotations still to come) and the single revision insert of save_revision (the
# compare-and-set on the task already ran). Bulk rows go through the raw DB-API and fire
# no SQLAlchemy event, so these are the only statements that match.
MARKERS = {
    "heads": "UPDATE tasks SET head_revision_id = staging_heads.head",
    "save": "INSERT INTO revisions",
}


# --- the program both processes drive ---------------------------------------------------


def spec_text() -> str:
    """The example spec with half the items double-annotated and no hidden gold tasks."""
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 0.5\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'rework_to = "original"\nqualify_per = ["class"]\n\n'
    )
    return re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)


def renamed(data: Dataset, prefix: str, first_id: int) -> Dataset:
    """The same data set under other file names and image ids."""
    ids = np.arange(first_id, first_id + len(data.images))
    position = data.images.index_of(data.annotations.image_id)
    images = data.images.replace(
        id=ids, file_name=np.array([f"{prefix}/{i}.jpg" for i in ids], dtype=object)
    )
    return Dataset(data.annotations.replace(image_id=ids[position]), images, data.taxonomy)


def work_data() -> Dataset:
    """The production images and their true labels (the same in both processes)."""
    return renamed(generate_dataset(8, seed=3), "work", 1)


def truth_for(data: Dataset, image_id: int) -> Annotations:
    return data.annotations[data.annotations.image_id == image_id].replace(attributes={})


def drive(prog: Program, batch: str, truth: Dataset, log: Callable[[str], None]) -> None:
    """Take a batch from whatever committed state it is in to delivered, one call a step.

    Annotators label exactly the truth, the reviewer accepts and QA finds nothing, so every
    gate passes on its first full evaluation.
    """
    for _ in range(40):
        stage = prog.batch_status(batch)["stage"]
        log(f"stage {stage}")
        if stage == Stage.DELIVERED:
            return
        if stage == Stage.PRODUCTION:
            tasks = [(u, t) for u in ANNOTATORS for t in prog.my_tasks(u) if t.batch == batch]
            if not tasks:
                prog.assign(batch, actor=MANAGER, seed=5)
                continue
            for user, task in tasks:
                if task.status in ("assigned", "in_progress"):
                    labels = truth_for(truth, task.image_id)
                    prog.save(user, task.task_id, labels, base_revision_id=task.head_revision_id)
                    prog.submit(user, task.task_id)
        elif stage == Stage.REVIEW:
            for task_id in prog.review_queue(REVIEWER, batch):
                prog.review(REVIEWER, task_id, [])
        elif stage == Stage.QA:
            for task_id in prog.qa_queue(REVIEWER, batch):
                prog.qa_inspect(REVIEWER, task_id, [])
        prog.advance(batch, actor=MANAGER)
    pytest.fail(f"batch {batch} is still not delivered after 40 steps")


def child_main(argv: list[str]) -> None:
    """Entry point of the child process (see ``CHILD``).

    ``import URL IMAGES_JSON GOLD_JSON``: register the images of one COCO file, then import
    another as gold. ``workflow URL MARKER BATCH COUNT PAUSE``: deliver batches b1, b2, ...
    of the work images; with PAUSE=1, stop inside the transaction at the COUNT-th MARKER
    statement of batch BATCH and wait for the kill.
    """
    mode, url, *rest = argv
    db = Database(url)
    counts = dict.fromkeys(MARKERS, 0)
    pause: tuple[int, str, int] | None = None  # (batch, marker, count)
    current_batch = [0]

    def announce(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        for name, sql in MARKERS.items():
            if statement.startswith(sql):
                counts[name] += 1
                print(f"{name} {current_batch[0]} {counts[name]}", flush=True)
                if pause == (current_batch[0], name, counts[name]):
                    print("paused", flush=True)
                    sys.stdin.readline()  # the test kills this process here

    event.listen(db.engine, "before_cursor_execute", announce)
    prog = Program(db)
    if mode == "import":
        images_json, gold_json = rest
        prog.import_images(read_coco(images_json).images, actor=MANAGER)
        print("committed images", flush=True)
        prog.import_gold(read_coco(gold_json), actor=MANAGER)
        print("committed gold", flush=True)
        return
    marker, batch, count, paused = rest
    if paused == "1":
        pause = (int(batch), marker, int(count))
    truth = work_data()
    for i in itertools.count(1):
        current_batch[0] = i
        counts.update(dict.fromkeys(MARKERS, 0))
        name = f"b{i}"
        prog.create_batch(name, truth.images.id.tolist(), actor=MANAGER)
        drive(prog, name, truth, lambda line: print(line, flush=True))
        print(f"delivered {i}", flush=True)


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from test_crash_safety import child_main
child_main(sys.argv[2:])
"""


# --- the child process ------------------------------------------------------------------


class Child:
    """A child process whose stdout is read line by line against a deadline."""

    def __init__(self, args: list[str], url: str, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != AUDIT_KEY_ENV}
        self.stderr_path = tmp_path / f"child-{uuid.uuid4().hex[:6]}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(Path(__file__).parent), args[0], url, *args[1:]],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        self.buffer = b""
        self.deadline = time.monotonic() + DEADLINE_SECONDS
        self.lines: list[str] = []

    def next_line(self) -> str:
        """The next line the child printed; fails the test at the deadline or on exit."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"child printed nothing new in time; last lines {self.lines[-5:]}")
                if not selector.select(timeout=left):
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.process.wait()
                    pytest.fail(
                        f"child exited ({self.process.returncode}) before the kill:\n"
                        + self.stderr_path.read_text()
                    )
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.lines.append(line.decode())
        return self.lines[-1]

    def wait_for(self, wanted: str) -> None:
        while self.next_line() != wanted:
            pass

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=DEADLINE_SECONDS)
        assert self.process.returncode == -signal.SIGKILL, self.stderr_path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[list[str], str], Child]]:
    children: list[Child] = []

    def start(args: list[str], url: str) -> Child:
        children.append(Child(args, url, tmp_path))
        return children[-1]

    yield start
    for child in children:
        child.close()


def child_url(db: Database) -> tuple[str, str]:
    """The URL the child connects with, and its PostgreSQL application name."""
    name = f"lg-crash-{uuid.uuid4().hex[:8]}"
    if db.dialect != "postgresql":
        return db.url, name
    url = make_url(db.url).update_query_dict({"application_name": name})
    return url.render_as_string(hide_password=False), name


def assert_write_transaction_open(db: Database, application_name: str) -> None:
    """The paused child holds an open transaction that has written (proof the kill is mid-way)."""
    if db.dialect == "sqlite":
        database = db.engine.url.database
        assert database is not None
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                probe.execute("BEGIN IMMEDIATE")
        finally:
            probe.close()
        return
    with db.engine.connect() as conn:
        state = conn.exec_driver_sql(
            "SELECT state, backend_xid IS NOT NULL FROM pg_stat_activity "
            "WHERE application_name = %(name)s",
            {"name": application_name},
        ).one()
    assert tuple(state) == ("idle in transaction", True)


# --- what must hold after any kill ----------------------------------------------------------


def count(db: Database, table: Any) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(table)).scalar_one())


def assert_consistent(db: Database) -> None:
    """Rows agree with each other: nothing half-written survived."""
    with db.session() as s:
        per_revision = dict(
            s.execute(
                select(AnnotationRow.revision_id, func.count()).group_by(AnnotationRow.revision_id)
            ).all()
        )
        revisions = s.execute(
            select(
                RevisionRow.id, RevisionRow.task_id, RevisionRow.number, RevisionRow.object_count
            )
        ).all()
        tasks = s.execute(select(TaskRow.id, TaskRow.head_revision_id, TaskRow.image_id)).all()
        wrong_image = s.execute(
            select(func.count())
            .select_from(AnnotationRow)
            .join(RevisionRow, RevisionRow.id == AnnotationRow.revision_id)
            .join(TaskRow, TaskRow.id == RevisionRow.task_id)
            .where(AnnotationRow.image_id != TaskRow.image_id)
        ).scalar_one()
        gold = s.execute(
            select(GoldItemRow.image_id, TaskRow.image_id)
            .join(RevisionRow, RevisionRow.id == GoldItemRow.revision_id)
            .join(TaskRow, TaskRow.id == RevisionRow.task_id)
        ).all()
    # every revision has exactly the rows it counts, and no rows belong to nothing
    assert {r.id: r.object_count for r in revisions if r.object_count} == per_revision
    assert wrong_image == 0
    # each task's revisions are numbered 1..k and its head is number k
    numbers: dict[int, list[int]] = {}
    newest: dict[int, tuple[int, int]] = {}
    for r in revisions:
        numbers.setdefault(r.task_id, []).append(r.number)
        newest[r.task_id] = max(newest.get(r.task_id, (0, 0)), (r.number, r.id))
    for task in tasks:
        assert sorted(numbers.get(task.id, [])) == list(range(1, len(numbers.get(task.id, [])) + 1))
        assert task.head_revision_id == newest.get(task.id, (0, None))[1], task
    assert all(item == task_image for item, task_image in gold)


def assert_audit_matches_state(db: Database) -> None:
    """The chain verifies, and every change has its event and every event its change."""
    report = verify_chain(db)
    assert report.ok, report.reason
    with db.session() as s:
        events = s.execute(
            select(
                AuditEventRow.action, AuditEventRow.entity_id, AuditEventRow.after_digest
            ).order_by(AuditEventRow.id)
        ).all()
        batches = s.execute(select(BatchRow.id, BatchRow.stage, BatchRow.rework_cycle)).all()
        gates = dict(
            s.execute(
                select(GateResultRow.batch_id, func.count())
                .where(GateResultRow.gate != "consensus")
                .group_by(GateResultRow.batch_id)
            ).all()
        )
        work = s.execute(
            select(TaskRow.id, TaskRow.status, func.count(RevisionRow.id))
            .outerjoin(RevisionRow, RevisionRow.task_id == TaskRow.id)
            .where(TaskRow.purpose == "production")
            .group_by(TaskRow.id, TaskRow.status)
        ).all()
    of = {
        action: [e for e in events if e.action == action]
        for action in ("batch.create", "batch.advance", "annotation.save", "task.submit")
    }
    assert len(of["batch.create"]) == len(batches)
    for batch in batches:
        moves = [e for e in of["batch.advance"] if e.entity_id == str(batch.id)]
        assert len(moves) == gates.get(batch.id, 0)  # one gate evaluation per advance
        if moves:
            state = {"stage": batch.stage, "cycle": batch.rework_cycle}
            assert moves[-1].after_digest == digest(state), (batch, state)
        else:
            assert batch.stage == Stage.SPEC
    saves = [e.entity_id for e in of["annotation.save"]]
    submits = {e.entity_id for e in of["task.submit"]}
    for task in work:
        assert saves.count(str(task.id)) == task[2], task  # one event per saved revision
        assert (str(task.id) in submits) == (task.status == "submitted"), task


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_during_a_coco_import_leaves_all_of_it_or_none(
    db: Database, tmp_path: Path, spawn: Callable[[list[str], str], Child]
) -> None:
    Program.create(db, spec_text()).add_user(MANAGER, ["manager"], actor="labelgate")
    work = renamed(generate_dataset(IMPORT_IMAGES, seed=21), "work", 1)
    gold = renamed(generate_dataset(IMPORT_IMAGES, seed=22), "gold", 100_001)
    write_coco(work, tmp_path / "work.json")
    write_coco(gold, tmp_path / "gold.json")
    url, _ = child_url(db)
    child = spawn(["import", str(tmp_path / "work.json"), str(tmp_path / "gold.json")], url)
    child.wait_for("committed images")
    child.wait_for("heads 0 1")  # the gold import's revisions are in, its boxes are not
    child.kill()

    assert_consistent(db)
    assert_audit_matches_state(db)
    landed = count(db, GoldItemRow) > 0
    boxes = len(gold.annotations)
    counts = [count(db, t) for t in (ImageRow, TaskRow, RevisionRow, AnnotationRow)]
    if landed:  # the child finished before the signal arrived: all of it
        assert counts == [2 * IMPORT_IMAGES, IMPORT_IMAGES, IMPORT_IMAGES, boxes]
    else:  # killed mid-way: none of it, not even the images it registered
        assert counts == [IMPORT_IMAGES, 0, 0, 0]
    with db.session() as s:
        imports = s.execute(
            select(AuditEventRow.action, AuditEventRow.after_digest).order_by(AuditEventRow.id)
        ).all()
    images_event = {"images": IMPORT_IMAGES, "file_names": work.images.file_name.tolist()}
    assert [tuple(e) for e in imports if e.action.endswith(".import")] == [
        ("images.import", digest(images_event))
    ] + [("gold.import", digest({"images": IMPORT_IMAGES, "objects": boxes}))] * landed

    # a new Program carries on: the import that was lost lands whole
    prog = Program(db)
    if not landed:
        assert prog.import_gold(read_coco(tmp_path / "gold.json"), actor=MANAGER) == IMPORT_IMAGES
    counts = [count(db, t) for t in (ImageRow, TaskRow, RevisionRow, AnnotationRow, GoldItemRow)]
    assert counts == [2 * IMPORT_IMAGES, IMPORT_IMAGES, IMPORT_IMAGES, boxes, IMPORT_IMAGES]
    assert_consistent(db)
    assert_audit_matches_state(db)


@pytest.fixture
def program(db: Database) -> Program:
    """Gold imported, ana and bo qualified, the work images registered."""
    prog = Program.create(db, spec_text())
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    prog.add_user(REVIEWER, ["reviewer"], actor=MANAGER)
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    prog.import_gold(gold, actor=MANAGER)
    for user in ANNOTATORS:
        assert prog.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER).passed
    prog.import_images(work_data().images, actor=MANAGER)
    return prog


KILL_POINTS = [
    # (marker, its number within batch 2, pause there first)
    pytest.param("heads", 1, True, id="paused-in-advance-to-review"),
    pytest.param("save", 3, True, id="paused-in-a-save"),
    pytest.param("heads", 1, False, id="racing-advance-to-review"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("marker", "number", "paused"), KILL_POINTS)
def test_kill_9_during_stage_transitions_and_saves_keeps_state_and_chain(
    program: Program,
    db: Database,
    spawn: Callable[[list[str], str], Child],
    marker: str,
    number: int,
    paused: bool,
) -> None:
    url, application_name = child_url(db)
    child = spawn(["workflow", marker, "2", str(number), "1" if paused else "0"], url)
    child.wait_for("delivered 1")
    child.wait_for(f"{marker} 2 {number}")
    if paused:
        assert child.next_line() == "paused"
        assert_write_transaction_open(db, application_name)
    child.kill()

    assert_consistent(db)
    assert_audit_matches_state(db)
    with db.session() as s:
        stages = dict(s.execute(select(BatchRow.name, BatchRow.stage)).all())
        batch2_saves = s.execute(
            select(func.count())
            .select_from(RevisionRow)
            .join(TaskRow, TaskRow.id == RevisionRow.task_id)
            .join(BatchRow, BatchRow.id == TaskRow.batch_id)
            .where(BatchRow.name == "b2", TaskRow.purpose == "production")
        ).scalar_one()
    assert stages["b1"] == Stage.DELIVERED
    if paused and marker == "heads":  # the advance into review did not happen, at all
        assert stages["b2"] == Stage.PRELABEL
        # b1: seven gates and its consensus; b2: spec, pilot and production, not prelabel
        assert count(db, GateResultRow) == 8 + 3
    if paused and marker == "save":  # two saves landed, the third not
        assert (stages["b2"], batch2_saves) == (Stage.PRODUCTION, 2)

    # a new Program takes batch 2 from where it stood to a delivery equal to the truth
    prog = Program(db)
    truth = work_data()
    drive(prog, "b2", truth, lambda line: None)
    delivered = prog.export("b2", actor=MANAGER).annotations
    order_got = np.lexsort((delivered.bbox[:, 0], delivered.image_id))
    order_want = np.lexsort((truth.annotations.bbox[:, 0], truth.annotations.image_id))
    np.testing.assert_array_equal(
        delivered.image_id[order_got], truth.annotations.image_id[order_want]
    )
    np.testing.assert_allclose(delivered.bbox[order_got], truth.annotations.bbox[order_want])
    assert_consistent(db)
    assert_audit_matches_state(db)
