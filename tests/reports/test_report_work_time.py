"""Each annotator's measured work in report.json: hours, objects per hour, rework hours.

The API tests' world (two projects, ana and bo blind on street-scenes, dee elsewhere);
saves carry hand-picked ``work_seconds``, and every figure is computed by hand: a task
counts the objects of its last timed save, a save without a time counts nowhere, a 0 s
save gives no throughput, another project's time stays there. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from labelgate.core.annotations import Annotations
from labelgate.reports.program_report import build_report
from labelgate.reports.work_time import annotator_work
from labelgate.store.db import Database
from labelgate.store.models import ProjectRow, UserRow, WorkLogRow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_world import World, build_world


def _boxes(n: int) -> Annotations:
    return Annotations.create(
        id=list(range(1, n + 1)),
        image_id=[0] * n,
        class_id=[1] * n,
        bbox=[[10.0 * i, 10.0, 10.0 * i + 8.0, 30.0] for i in range(n)],
    )


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def test_throughput_counts_each_tasks_last_timed_save_and_rework_apart(world: World) -> None:
    prog = world.program
    t1, t2 = (t.task_id for t in world.tasks("ana")[:2])
    first = prog.save("ana", t1, _boxes(2), base_revision_id=None, work_seconds=30.0)
    prog.save("ana", t1, _boxes(3), base_revision_id=first.revision_id, work_seconds=45.0)
    prog.save("ana", t2, _boxes(1), base_revision_id=None, work_seconds=15.0)
    t3, t4 = (t.task_id for t in world.tasks("bo")[:2])
    prog.save("bo", t3, _boxes(7), base_revision_id=None)  # no time measured: not counted
    prog.save("bo", t4, _boxes(5), base_revision_id=None, work_seconds=0.0)
    dee_task = world.other.my_tasks("dee")[0].task_id
    world.other.save("dee", dee_task, _boxes(4), base_revision_id=None, work_seconds=100.0)
    with world.db.session() as s:  # a rework entry for ana: 10 minutes
        ana = s.execute(select(UserRow.id).where(UserRow.name == "ana")).scalar_one()
        project = s.execute(
            select(ProjectRow.id).where(ProjectRow.name == "street-scenes")
        ).scalar_one()
        s.add(
            WorkLogRow(
                project_id=project,
                batch_id=world.batch,
                task_id=t2,
                user_id=ana,
                activity="rework",
                cycle=1,
                seconds=600.0,
                objects=1,
                created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
    with world.db.session() as s:
        work = annotator_work(s, project)

    # ana: 30 + 45 + 15 = 90 s on 3 + 1 objects (t1's first save is a step, not 2 more)
    assert work["ana"] == {
        "annotate_hours": pytest.approx(90 / 3600),
        "annotate_tasks": 2,
        "annotate_objects": 4,
        "objects_per_hour": pytest.approx(4 / (90 / 3600)),  # 160
        "rework_hours": pytest.approx(600 / 3600),
    }
    assert work["ana"]["objects_per_hour"] == pytest.approx(160.0)
    # bo: the untimed save counts nowhere; 0 s on 5 objects has no throughput
    assert work["bo"] == {
        "annotate_hours": 0.0,
        "annotate_tasks": 1,
        "annotate_objects": 5,
        "objects_per_hour": None,
        "rework_hours": 0.0,
    }
    assert "dee" not in work  # another project's work log

    report = build_report(world.db, project="street-scenes")
    by_name = {a["annotator"]: a for a in report["quality"]["per_annotator"]}
    assert by_name["ana"]["work"] == work["ana"]
    assert by_name["bo"]["work"] == work["bo"]
    # the measured cost prices the same hours: 90 s annotate, 600 s rework
    measured = report["cost"]["measured"]
    assert measured["by_activity"]["annotate"]["hours"] == pytest.approx(90 / 3600)
    assert measured["by_activity"]["rework"]["hours"] == pytest.approx(600 / 3600)
    other = build_report(world.db, project="other-project")
    dee = next(a for a in other["quality"]["per_annotator"] if a["annotator"] == "dee")
    assert dee["work"]["annotate_hours"] == pytest.approx(100 / 3600)
    assert dee["work"]["objects_per_hour"] == pytest.approx(4 / (100 / 3600))  # 144


def test_no_logged_time_reads_null(world: World) -> None:
    task = world.tasks("ana")[0].task_id
    world.program.save("ana", task, _boxes(2), base_revision_id=None)
    report = build_report(world.db, project="street-scenes")
    assert {a["annotator"]: a["work"] for a in report["quality"]["per_annotator"]} == {
        "ana": None,
        "bo": None,
        "dee": None,  # qualified elsewhere: listed, no time here
    }
