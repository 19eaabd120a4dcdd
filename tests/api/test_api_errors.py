"""Statuses follow error classes, never messages; a stale save's 409 carries its fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_world import World, build_world

from labelgate.api.errors import NotAuthenticated, error_body, status_of
from labelgate.errors import (
    ConflictError,
    GateFailed,
    NotFound,
    NotVisible,
    PermissionDenied,
    WorkflowError,
)
from labelgate.store.db import Database
from labelgate.workflow.auth import LoginThrottled


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no batch 3 in project 'p'"), 404),
        (NotFound("anything at all"), 404),  # the class decides, not a "no ..." prefix
        (NotVisible("no task 9 for 'ana'"), 404),
        (PermissionDenied("no self-review"), 403),  # a "no ..." message is not a 404
        (PermissionDenied("'ana' has roles ['annotator']; this needs one of ['manager']"), 403),
        (WorkflowError("no gold set imported: `import_gold` first"), 409),
        (GateFailed("blocked"), 409),
        (ConflictError("stale", current_revision_id=4), 409),
        (LoginThrottled(30, scope="user"), 429),
        (NotAuthenticated("not authenticated"), 401),
    ],
)
def test_the_status_follows_the_class(error: Exception, status: int) -> None:
    assert status_of(error) == status


def test_not_visible_is_both_not_found_and_permission_denied() -> None:
    hidden = NotVisible("no task 9")
    assert isinstance(hidden, NotFound) and isinstance(hidden, PermissionDenied)
    assert error_body(hidden) == {"detail": "no task 9", "type": "NotFound"}
    assert error_body(NotFound("no job 'x'")) == {"detail": "no job 'x'", "type": "NotFound"}


def test_a_conflict_body_keeps_every_key_and_adds_the_structured_fields() -> None:
    body = error_body(ConflictError("stale", current_revision_id=4, task_id=2, base_revision_id=3))
    assert body == {
        "detail": "stale",
        "type": "ConflictError",
        "current_revision_id": 4,
        "your_base_revision_id": 3,
        "task_id": 2,
    }


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def _box(object_id: int, x: float) -> dict[str, object]:
    return {"id": object_id, "class_id": 1, "kind": "box", "bbox": [x, 10.0, x + 20, 40.0]}


def test_a_stale_save_names_the_winner_the_base_and_the_task(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    task = world.tasks("ana")[0].task_id
    url = f"/api/tasks/{task}/labels"
    first = client.put(url, headers=ana, json={"base_revision_id": None, "objects": [_box(1, 5)]})
    second = client.put(
        url,
        headers=ana,
        json={"base_revision_id": first.json()["revision_id"], "objects": [_box(1, 9)]},
    )
    assert first.status_code == second.status_code == 200
    stale = client.put(
        url,
        headers=ana,
        json={"base_revision_id": first.json()["revision_id"], "objects": [_box(1, 50)]},
    )
    assert stale.status_code == 409
    body = stale.json()
    assert body["type"] == "ConflictError" and "detail" in body
    assert body["current_revision_id"] == second.json()["revision_id"]
    assert body["your_base_revision_id"] == first.json()["revision_id"]
    assert body["task_id"] == task
    # a first save onto a task that has one: the base was None
    fresh = client.put(url, headers=ana, json={"base_revision_id": None, "objects": []})
    assert fresh.status_code == 409 and fresh.json()["your_base_revision_id"] is None


def test_missing_things_are_404_not_found_through_the_api(world: World) -> None:
    client = world.client
    maria = world.login("maria")
    base = "/api/projects/street-scenes"
    for url, headers, method in [
        (f"{base}/batches/999999", maria, "GET"),
        (f"{base}/batches/999999/advance", maria, "POST"),
        ("/api/jobs/" + "0" * 32, maria, "GET"),
        ("/api/tasks/999999", world.login("ana"), "GET"),
    ]:
        response = client.request(method, url, headers=headers)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["type"] == "NotFound", url
