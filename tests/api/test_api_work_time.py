"""Saves and review decisions carry the active time the client measured (the work log)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_world import World, build_world
from sqlalchemy import select

from labelgate.store.db import Database
from labelgate.store.models import RevisionRow, UserRow, WorkLogRow


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def _box(object_id: int, x: float = 10.0) -> dict[str, object]:
    return {"id": object_id, "class_id": 1, "kind": "box", "bbox": [x, 10.0, x + 20, 40.0]}


def _log(world: World) -> list[tuple[str, str, int | None, float, int, int]]:
    with world.db.session() as s:
        return [
            (r.activity, name, r.task_id, r.seconds, r.objects, r.cycle)
            for r, name in s.execute(
                select(WorkLogRow, UserRow.name)
                .join(UserRow, UserRow.id == WorkLogRow.user_id)
                .order_by(WorkLogRow.id)
            ).all()
        ]


def test_a_save_with_work_seconds_logs_the_time_and_one_without_logs_none(world: World) -> None:
    client, ana = world.client, world.login("ana")
    task = world.tasks("ana")[0]
    url = f"/api/tasks/{task.task_id}/labels"
    first = client.put(
        url,
        headers=ana,
        json={"base_revision_id": None, "objects": [_box(1), _box(2, 60)], "work_seconds": 42.5},
    )
    assert first.status_code == 200, first.text
    assert _log(world) == [("annotate", "ana", task.task_id, 42.5, 2, 0)]
    # the editor had nothing to report (no input since the last save): no entry
    again = client.put(
        url, headers=ana, json={"base_revision_id": first.json()["revision_id"], "objects": []}
    )
    assert again.status_code == 200
    assert len(_log(world)) == 1


@pytest.mark.parametrize(
    ("value", "fragment"), [(-1.0, "greater than or equal to 0"), (86_401, "less than")]
)
def test_a_save_with_bad_work_seconds_is_422_and_writes_nothing(
    world: World, value: float, fragment: str
) -> None:
    client, ana = world.client, world.login("ana")
    task = world.tasks("ana")[0]
    response = client.put(
        f"/api/tasks/{task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": None, "objects": [_box(1)], "work_seconds": value},
    )
    assert response.status_code == 422
    text = response.text
    assert "work_seconds" in text and fragment in text, text
    with world.db.session() as s:
        assert (
            s.execute(select(RevisionRow).where(RevisionRow.task_id == task.task_id)).first()
            is None
        )
    assert _log(world) == []


def test_a_review_decision_logs_the_reviewers_time(world: World) -> None:
    client, ana, rita = world.client, world.login("ana"), world.login("rita")
    task = next(t for t in world.tasks("ana") if t.image_id < 20_000)  # not a honeypot
    saved = client.put(
        f"/api/tasks/{task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": None, "objects": [_box(1), _box(2, 60), _box(3, 100)]},
    )
    assert saved.status_code == 200
    assert client.post(f"/api/tasks/{task.task_id}/submit", headers=ana).status_code == 200
    bad = client.post(
        f"/api/review/{task.task_id}", headers=rita, json={"decisions": [], "work_seconds": -5}
    )
    assert bad.status_code == 422 and "work_seconds" in bad.text
    response = client.post(
        f"/api/review/{task.task_id}",
        headers=rita,
        json={
            "decisions": [{"object_id": 2, "verdict": "reject", "defect_type": "attribute_error"}],
            "work_seconds": 12.25,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "rejected": 1}
    assert _log(world) == [("review", "rita", task.task_id, 12.25, 3, 0)]


@pytest.mark.parametrize(
    ("user", "path", "body"),
    [
        ("rita", "/api/qa/1", {"defects": []}),
        ("adam", "/api/adjudications/1", {"keep": True, "reason": "clear"}),
    ],
)
def test_qa_and_adjudication_take_work_seconds_too(
    world: World, user: str, path: str, body: dict[str, object]
) -> None:
    response = world.client.post(path, headers=world.login(user), json=body | {"work_seconds": -3})
    assert response.status_code == 422 and "work_seconds" in response.text, response.text
    assert _log(world) == []
