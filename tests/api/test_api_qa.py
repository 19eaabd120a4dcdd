"""The QA inspector's reads and the QA plan behind the pages, on SQLite and PostgreSQL.

``GET /api/qa`` (the caller's QA tasks per batch), ``GET .../qa-tasks`` (one batch's, paged)
and ``GET .../qa-plan`` (n, c and the OC curve): who may read them, that an inspector only
ever sees their own tasks, and every number against scipy (the acceptance number through
the bound / tail-probability duality, the OC curve as binomial tail probabilities).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from api_world import MANAGER, PASSWORD, World, build_world
from scipy import stats
from test_api_manage import BASE, into_review

from labelgate.store.db import Database
from labelgate.workflow.auth import set_password
from labelgate.workflow.qa_views import acceptance_number


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def into_qa(world: World) -> None:
    """Labels agree, rita accepts every review task, the batch enters QA (sample drawn)."""
    into_review(world, disputes=False)
    for task_id in world.program.review_queue("rita", world.batch):
        world.program.review("rita", task_id, [])
    assert world.program.advance(world.batch, actor=MANAGER).passed


def test_qa_reads_refuse_the_wrong_roles(world: World) -> None:
    into_qa(world)
    client = world.client
    tasks = f"{BASE}/batches/{world.batch}/qa-tasks"
    plan = f"{BASE}/batches/{world.batch}/qa-plan"
    for url in ("/api/qa", tasks, plan):
        assert client.get(url).status_code == 401
    for name in ("ana", "adam", "audrey"):  # annotator, adjudicator, auditor hold no QA task
        headers = world.login(name)
        assert client.get("/api/qa", headers=headers).status_code == 403, name
        assert client.get(tasks, headers=headers).status_code == 403, name
    for name in ("ana", "rita", "adam"):  # the plan is for staff
        assert client.get(plan, headers=world.login(name)).status_code == 403, name
    for name in (MANAGER, "audrey"):
        assert client.get(plan, headers=world.login(name)).status_code == 200, name
    rita = world.login("rita")
    assert client.get(f"{BASE}/batches/999/qa-tasks", headers=rita).status_code == 404
    assert client.get("/api/projects/nope/batches/1/qa-tasks", headers=rita).status_code == 404


def test_an_inspector_sees_only_their_own_qa_tasks_paged(world: World) -> None:
    world.program.add_user("rex", ["reviewer"], actor="labelgate")
    set_password(world.db, "rex", PASSWORD, actor="labelgate")
    into_qa(world)  # sampling deals the sample to rita and rex in turn
    client, program = world.client, world.program
    url = f"{BASE}/batches/{world.batch}/qa-tasks"
    rita, rex = world.login("rita"), world.login("rex")
    mine = program.qa_queue("rita", world.batch)
    theirs = program.qa_queue("rex", world.batch)
    assert mine and theirs and not set(mine) & set(theirs)
    whole = client.get(f"{url}?limit=1000", headers=rita).json()
    assert [i["task_id"] for i in whole["items"]] == mine
    assert (whole["total"], whole["open"], whole["cycle"]) == (len(mine), len(mine), 0)
    first = whole["items"][0]
    images = world.work.images
    at = images.id == first["image_id"]
    assert (first["width"], first["height"]) == (
        int(images.width[at][0]),
        int(images.height[at][0]),
    )
    assert first["image_url"] == f"/web/images/{mine[0]}" and first["inspected"] is False
    page = client.get(f"{url}?limit=1&offset=1", headers=rita).json()
    assert [i["task_id"] for i in page["items"]] == mine[1:2] and page["total"] == len(mine)
    other = client.get(f"{url}?limit=1000", headers=rex).json()
    assert [i["task_id"] for i in other["items"]] == theirs
    # rita inspects her first item: one wrong class on object key 1 and a missing object
    labels = program.qa_labels("rita", mine[0])
    key = int(labels.id[0])
    program.qa_inspect("rita", mine[0], [(key, "wrong_class"), (-1, "missing")])
    after = client.get(f"{url}?limit=1000", headers=rita).json()
    assert after["open"] == len(mine) - 1 and after["items"][0]["inspected"] is True
    assert after["items"][0]["defects"] == [
        {"type": "wrong_class", "object_key": key},
        {"type": "missing", "object_key": None},
    ]
    assert all(i["defects"] == [] for i in after["items"][1:])
    assert all(i["defects"] == [] for i in client.get(url, headers=rex).json()["items"])
    # /api/qa: one row per batch with the caller's QA tasks
    listed = client.get("/api/qa", headers=rita).json()
    assert listed == [
        {
            "project": "street-scenes",
            "batch_id": world.batch,
            "batch": "b1",
            "cycle": 0,
            "total": len(mine),
            "open": len(mine) - 1,
        }
    ]
    # a manager holds no QA task here: an empty list, not a refusal
    assert client.get("/api/qa", headers=world.login(MANAGER)).json() == []


def _acceptance_by_tail(n: int, limit: float, confidence: float, lot: int | None) -> int:
    """c by the duality: the bound for d clears the limit iff P(X <= d | limit) <= 1 - C."""
    d = np.arange(n + 1)
    if lot is None:
        tail = stats.binom.cdf(d, n, limit)
    else:  # the fewest lot defects above the limit
        tail = stats.hypergeom.cdf(d, lot, int(np.floor(limit * lot)) + 1, n)
    return int(np.count_nonzero(tail <= 1 - confidence)) - 1


@pytest.mark.parametrize(
    ("n", "lot"), [(149, None), (100, None), (523, None), (900, None), (119, 500), (60, 100)]
)
def test_acceptance_number_matches_the_tail_probability_duality(n: int, lot: int | None) -> None:
    assert acceptance_number(n, 0.02, 0.95, lot_size=lot) == _acceptance_by_tail(n, 0.02, 0.95, lot)


def test_the_qa_plan_is_the_gates_plan_with_its_oc_curve(world: World) -> None:
    client, maria = world.client, world.login(MANAGER)
    url = f"{BASE}/batches/{world.batch}/qa-plan"
    empty = client.get(url, headers=maria).json()
    assert empty["sample_size"] == 0 and empty["oc"] == [] and empty["at_limit"] is None
    into_qa(world)
    gates = world.program.spec().gates
    limit, confidence = gates.defect_limit, gates.confidence
    sample = world.program.qa_queue("rita", world.batch)
    plan = client.get(url, headers=maria).json()
    # qa_unit = object: n is every final object of the sampled images (the truth here)
    truth = sum(len(world.truth(world.program.qa_labels("rita", t).image_id[0])) for t in sample)
    assert (plan["unit"], plan["bound"], plan["lot_size"]) == ("object", "clopper-pearson", None)
    assert plan["sample_size"] == truth == len(world.work.annotations)
    assert plan["sampled_images"] == len(sample) and plan["lot"] == len(world.work.images)
    n = plan["sample_size"]
    c = _acceptance_by_tail(n, limit, confidence, None)
    assert plan["acceptance_number"] == c
    rates = np.array(plan["rates"])
    assert rates[0] == 0 and rates[-1] == pytest.approx(3 * limit) and limit in plan["rates"]
    expected = stats.binom.cdf(c, n, rates) if c >= 0 else np.zeros(len(rates))
    np.testing.assert_allclose(plan["oc"], expected, atol=1e-6)
    assert plan["at_limit"] == pytest.approx(
        stats.binom.cdf(c, n, limit) if c >= 0 else 0.0, abs=1e-6
    )
    # a reported missing object counts as one more object inspected
    world.program.qa_inspect("rita", sample[0], [(-1, "missing")])
    assert client.get(url, headers=maria).json()["sample_size"] == n + 1
    # once the gate ran, the plan of that cycle is the n it recorded, whatever rework does
    for task_id in sample[1:]:
        world.program.qa_inspect("rita", task_id, [])
    gate = world.program.advance(world.batch, actor=MANAGER)
    assert gate.outcome == "rework" and gate.inputs["sampled"] == n + 1
    evaluated = client.get(f"{url}?cycle=0", headers=maria).json()
    assert evaluated["evaluated"] is True and evaluated["sample_size"] == n + 1
    assert evaluated["acceptance_number"] == _acceptance_by_tail(n + 1, limit, confidence, None)
    current = client.get(url, headers=maria).json()  # cycle 1: no sample drawn yet
    assert (current["cycle"], current["sample_size"], current["evaluated"]) == (1, 0, False)
