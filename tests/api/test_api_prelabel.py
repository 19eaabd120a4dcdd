"""``GET /api/projects/{p}/batches/{b}/prelabel``: who may read it, and its values.

On SQLite and PostgreSQL. A model's three proposals are stored on one of ana's tasks; over
the API she accepts one, adjusts one (IoU 0.4 by hand), rejects one, saves with 40 s of
measured time and submits. The figures the route returns are checked by hand and against
:func:`labelgate.workflow.prelabel.prelabel_metrics` called directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_world import MANAGER, World, build_world

from labelgate.core.annotations import Annotations
from labelgate.store.db import Database
from labelgate.workflow.prelabel import prelabel_metrics, prelabel_plan, store_prelabels

CAR, PERSON = 1, 2
PROPOSALS = [
    (CAR, [100.0, 100.0, 200.0, 180.0], 0.9),  # accepted
    (CAR, [300.0, 100.0, 400.0, 200.0], 0.8),  # adjusted to [300, 100, 400, 350]
    (PERSON, [450.0, 250.0, 520.0, 400.0], 0.75),  # rejected
]


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def _prelabelled_task(world: World) -> tuple[int, int]:
    """Store the proposals on one of ana's work images: (task id, tasks that got them)."""
    plan = prelabel_plan(world.program, world.batch, actor=MANAGER)
    pending = set(plan.images.id.tolist())
    task = next(t for t in world.tasks("ana") if t.image_id in pending and t.image_id < 20_000)
    proposals = Annotations.create(
        id=[1, 2, 3],
        image_id=[task.image_id] * 3,
        class_id=[p[0] for p in PROPOSALS],
        bbox=[p[1] for p in PROPOSALS],
        score=[p[2] for p in PROPOSALS],
    )
    stored = store_prelabels(
        world.program, world.batch, proposals, model="det", actor=MANAGER, images=[task.image_id]
    )
    return task.task_id, stored.tasks


def _review_and_submit(world: World, task: int) -> None:
    client, ana = world.client, world.login("ana")
    shown = client.get(f"/api/tasks/{task}", headers=ana).json()
    assert [o["source"] for o in shown["objects"]] == ["prelabel"] * 3
    assert [o["id"] for o in shown["objects"]] == [1, 2, 3]
    refused = client.post(f"/api/tasks/{task}/submit", headers=ana)
    assert refused.status_code == 409 and "3 pre-label" in refused.json()["detail"]
    # what the editor sends back: the fields it shows, under the same keys
    first, second, _ = (
        {k: o[k] for k in ("id", "class_id", "kind", "bbox", "score")} for o in shown["objects"]
    )
    accepted = {**first, "source": "human"}
    adjusted = {**second, "source": "human", "bbox": [300.0, 100.0, 400.0, 350.0]}
    saved = client.put(
        f"/api/tasks/{task}/labels",
        headers=ana,
        json={
            "base_revision_id": shown["revision_id"],
            "objects": [accepted, adjusted],
            "work_seconds": 40.0,
        },
    )
    assert saved.status_code == 200, saved.text
    submitted = client.post(f"/api/tasks/{task}/submit", headers=ana)
    assert submitted.status_code == 200, submitted.text


def test_prelabel_metrics_route_returns_the_batchs_figures(world: World) -> None:
    task, prelabelled = _prelabelled_task(world)
    _review_and_submit(world, task)
    url = f"/api/projects/street-scenes/batches/{world.batch}/prelabel"
    response = world.client.get(url, headers=world.login(MANAGER))
    assert response.status_code == 200, response.text
    got: dict[str, Any] = response.json()

    assert got["batch"] == "b1" and got["against"] == "submitted"
    # one task per copy of the item (blind double: two), one submitted
    assert got["tasks"]["prelabelled"] == prelabelled and prelabelled in (1, 2)
    assert got["tasks"]["prelabelled_submitted"] == 1
    assert got["proposals"] == 3
    assert got["decisions"] == {"accept": 1, "adjust": 1, "reject": 1}
    assert got["acceptance_rate"] == got["adjust_rate"] == got["reject_rate"] == 0.333333
    # [300,100,400,200] inside [300,100,400,350]: 10,000 / 25,000
    assert got["adjustment_iou"] == {"count": 1, "mean": 0.4, "median": 0.4, "p10": 0.4}
    # proposals vs the submitted labels at car's tier 0.7: only the accepted box matches
    assert got["compared"] == 1
    assert got["precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert got["recall"] == pytest.approx(1 / 2, abs=1e-6)
    per_class = {c["name"]: c for c in got["per_class"]}
    assert (per_class["car"]["accept"], per_class["car"]["adjust"]) == (1, 1)
    assert per_class["person"]["reject"] == 1
    # the 40 s ana's save reported, over her 2 submitted objects; no control task finished
    time = got["time"]
    assert time["prelabelled"] == {
        "tasks": 1,
        "seconds": 40.0,
        "objects": 2,
        "seconds_per_task": 40.0,
        "seconds_per_object": 20.0,
    }
    assert time["control"]["tasks"] == 0
    assert time["seconds_saved_per_task"] is None and time["time_saved_fraction"] is None

    # the same document as the workflow function, for an auditor too
    direct = prelabel_metrics(world.program, world.batch, actor=MANAGER)
    assert got == direct
    audited = world.client.get(url, headers=world.login("audrey"))
    assert audited.status_code == 200 and audited.json() == direct
    delivered = world.client.get(url, params={"against": "delivered"}, headers=world.login(MANAGER))
    assert delivered.status_code == 200
    # nothing delivered yet: no item has a final revision to compare with
    assert delivered.json()["against"] == "delivered" and delivered.json()["compared"] == 0


@pytest.mark.parametrize("who", ["ana", "rita", "adam"])
def test_prelabel_metrics_route_refuses_annotators_and_reviewers(world: World, who: str) -> None:
    url = f"/api/projects/street-scenes/batches/{world.batch}/prelabel"
    response = world.client.get(url, headers=world.login(who))
    assert response.status_code == 403, response.text
    assert "pre-label metrics" in response.json()["detail"]


def test_prelabel_metrics_route_unknown_batch_bad_query_and_a_batch_without_prelabels(
    world: World,
) -> None:
    maria = world.login(MANAGER)
    client = world.client
    missing = client.get("/api/projects/street-scenes/batches/9999/prelabel", headers=maria)
    assert missing.status_code == 404 and "9999" in missing.json()["detail"]
    bad = client.get(
        f"/api/projects/street-scenes/batches/{world.batch}/prelabel",
        params={"against": "final"},
        headers=maria,
    )
    assert bad.status_code == 422 and "against" in bad.text
    # a batch nobody pre-labelled: zero proposals, rates and intervals null
    empty = client.get(f"/api/projects/street-scenes/batches/{world.batch}/prelabel", headers=maria)
    assert empty.status_code == 200, empty.text
    document = empty.json()
    assert document["proposals"] == 0 and document["tasks"]["prelabelled"] == 0
    assert document["acceptance_rate"] is None and document["precision"] is None
    assert document["time"]["time_saved_fraction"] is None
