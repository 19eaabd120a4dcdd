"""The managers' and adjudicators' API: gate board, advance, qualification, QA sample, audit
events, item lineage and A/B adjudication with a reason, on SQLite and PostgreSQL.

Every read is refused to annotators and reviewers (403) and to anonymous callers (401);
every number is checked against a value computed here independently (box IoU by hand,
the QA bound with scipy, F1 = 1 for an annotator who submits the gold answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from api_world import MANAGER, World, build_world
from scipy import stats
from sqlalchemy import select

from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import AdjudicationRow, BatchItemRow, DefectRow, UserRow
from labelgate.workflow.audit import verify_chain

BASE = "/api/projects/street-scenes"
SHIFT = 0.3  # bo's version of the first object: moved by 30 % of its width


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def label(world: World, *, disputes: bool) -> None:
    """Both annotators submit the truth; with ``disputes``, on every blind pair bo shifts
    the first object (IoU (1 - s) / (1 + s), below every tier) and ana leaves out the last.
    """
    shared = set(world.shared_images())
    for user in ("ana", "bo"):
        for task in world.tasks(user):
            labels = world.truth(task.image_id)
            if disputes and task.image_id in shared:
                if user == "bo":
                    bbox = labels.bbox.copy()
                    bbox[0, [0, 2]] += SHIFT * (bbox[0, 2] - bbox[0, 0])
                    labels = labels.replace(bbox=bbox)
                else:
                    labels = labels[:-1]
            world.program.save(user, task.task_id, labels, base_revision_id=None)
            world.program.submit(user, task.task_id)


def into_review(world: World, *, disputes: bool) -> None:
    label(world, disputes=disputes)
    for _ in range(3):  # production -> prelabel -> review (consensus drawn on entry)
        world.program.advance(world.batch, actor=MANAGER)


def user_id(world: World, name: str) -> int:
    with world.db.session() as s:
        return int(s.execute(select(UserRow.id).where(UserRow.name == name)).scalar_one())


READS = [
    f"{BASE}/gates",
    f"{BASE}/qualifications",
    f"{BASE}/batches/{{batch}}/qa-items",
    f"{BASE}/audit/events",
    f"{BASE}/audit/events?batch_id={{batch}}",
    f"{BASE}/batches/{{batch}}/items/1/lineage",
]


@pytest.mark.parametrize("path", READS)
def test_oversight_reads_are_for_staff_only(world: World, path: str) -> None:
    url = path.replace("{batch}", str(world.batch))
    client = world.client
    assert client.get(url).status_code == 401
    for name in ("ana", "rita", "adam"):  # annotator, reviewer, adjudicator
        response = client.get(url, headers=world.login(name))
        assert response.status_code == 403, (name, response.text)
        assert response.json()["type"] == "PermissionDenied"
    for name in (MANAGER, "audrey"):
        assert client.get(url, headers=world.login(name)).status_code == 200, name
    # another project's names and ids are 404 for staff too, never its rows
    other = url.replace("street-scenes", "no-such-project")
    assert client.get(other, headers=world.login(MANAGER)).status_code == 404


def test_adjudication_reads_and_decisions_refuse_everyone_but_adjudicators(world: World) -> None:
    into_review(world, disputes=True)
    client = world.client
    first = client.get(
        f"{BASE}/batches/{world.batch}/adjudications", headers=world.login("adam")
    ).json()["items"][0]["id"]
    url = f"/api/adjudications/{first}"
    assert client.get(url).status_code == 401
    assert client.post(url, json={}).status_code == 401
    for name in ("ana", "rita", "audrey"):
        headers = world.login(name)
        assert client.get(url, headers=headers).status_code == 403, name
        # refused for the role before the body is even read: no 422 leaks the schema
        assert client.post(url, headers=headers, json={}).status_code == 403, name
        good = {"choice": "a", "reason": "x"}
        assert client.post(url, headers=headers, json=good).status_code == 403, name
    assert client.get(url, headers=world.login(MANAGER)).status_code == 200


def test_an_adjudicator_takes_bs_version_with_a_reason_and_the_audit_shows_it(
    world: World,
) -> None:
    into_review(world, disputes=True)
    client, adam, maria = world.client, world.login("adam"), world.login(MANAGER)
    disputes = client.get(f"{BASE}/batches/{world.batch}/adjudications", headers=adam).json()
    # per blind pair: A's and B's version of the first object, and the object ana left out
    cases = [
        client.get(f"/api/adjudications/{d['id']}", headers=adam).json() for d in disputes["items"]
    ]
    pair = next(c for c in cases if c["versions"]["a"] and c["versions"]["b"])
    a, b = pair["versions"]["a"][0], pair["versions"]["b"][0]
    assert pair["iou"] == pytest.approx((1 - SHIFT) / (1 + SHIFT), abs=1e-4)
    # hand IoU of the two boxes (same height, x shifted)
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = a["bbox"], b["bbox"]
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    assert pair["iou"] == pytest.approx(inter / union, abs=1e-4)
    assert pair["tier"] is not None and pair["iou"] < pair["tier"]
    assert sorted(pair["group"]) == sorted([a["adjudication_id"], b["adjudication_id"]])
    assert "ana" not in str(pair) and "bo" not in str(pair).replace("bbox", "")  # names hidden
    assert pair["image_url"] == f"/web/images/{pair['task_a']}"
    # bo drew the shifted version: the other one matches the truth and is the right one
    truth = world.truth(pair["image_id"])
    width = float(truth.bbox[0, 2] - truth.bbox[0, 0])
    shifted = float(truth.bbox[0, 0]) + SHIFT * width
    bo_letter = "a" if ax1 == pytest.approx(shifted) else "b"
    right = "b" if bo_letter == "a" else "a"
    good, bad = pair["versions"][right][0], pair["versions"][bo_letter][0]
    assert good["bbox"] == pytest.approx([float(v) for v in truth.bbox[0]])
    assert bad["bbox"][0] == pytest.approx(shifted)

    url = f"/api/adjudications/{pair['id']}"
    assert client.post(url, headers=adam, json={"choice": right}).status_code == 422
    assert client.post(url, headers=adam, json={"choice": right, "reason": ""}).status_code == 422
    assert client.post(url, headers=adam, json={"choice": "c", "reason": "x"}).status_code == 422
    both = {"choice": right, "keep": True, "reason": "x"}
    assert client.post(url, headers=adam, json=both).status_code == 422
    bad_code = {"choice": right, "reason_code": "because"}
    assert client.post(url, headers=adam, json=bad_code).status_code == 422
    reason = "this box follows the object's edges; the other is shifted off it"
    decided = client.post(
        url, headers=adam, json={"choice": right, "reason": reason, "reason_code": "tighter_fit"}
    )
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["kept"] == [good["adjudication_id"]]
    assert body["dropped"] == [bad["adjudication_id"]]
    assert sorted(body["resolved"]) == sorted(pair["group"])
    for other in pair["group"]:  # one choice decided both versions
        again = client.post(
            f"/api/adjudications/{other}", headers=adam, json={"choice": "a", "reason": "x"}
        )
        assert again.status_code == 409

    # the item's final labels now hold the right box, not the shifted one; bo got one defect
    with world.db.session() as s:
        row = s.get(AdjudicationRow, pair["id"])
        assert row is not None and row.decision is not None
        assert row.decision["reason"] == reason and row.decision["choice"] == right
        item = s.execute(
            select(BatchItemRow).where(
                BatchItemRow.batch_id == world.batch, BatchItemRow.image_id == row.image_id
            )
        ).scalar_one()
        final = load_annotations(s, [item.final_revision_id])
        defects = s.execute(
            select(DefectRow.type, DefectRow.annotator_id).where(
                DefectRow.found_by == "adjudication"
            )
        ).all()
    assert np.isclose(final.bbox, np.array(good["bbox"])).all(axis=1).sum() == 1
    assert np.isclose(final.bbox, np.array(bad["bbox"])).all(axis=1).sum() == 0
    assert [tuple(d) for d in defects] == [("loose_geometry", user_id(world, "bo"))]

    # the audit view: both decisions with actor and reason, the chain intact
    events = client.get(
        f"{BASE}/audit/events?adjudication_id={good['adjudication_id']}", headers=maria
    ).json()
    assert events["total"] == 1
    event = events["items"][0]
    assert (event["actor"], event["action"]) == ("adam", "adjudication.decide")
    assert event["details"]["reason"] == reason and event["details"]["keep"] is True
    batch_events = client.get(
        f"{BASE}/audit/events?batch_id={world.batch}&action=adjudication.decide", headers=maria
    ).json()
    assert batch_events["total"] == 2
    assert {e["entity_id"] for e in batch_events["items"]} == {str(i) for i in pair["group"]}
    verdict = client.get(f"{BASE}/audit/verify", headers=world.login("audrey")).json()
    assert verdict["ok"] is True and verdict["events"] == verify_chain(world.db).events

    # the lineage of the item: both blind revisions, the consensus, the adjudicated final
    lineage = client.get(
        f"{BASE}/batches/{world.batch}/items/{pair['image_id']}/lineage", headers=maria
    ).json()
    assert lineage["final_revision_id"] == item.final_revision_id
    finals = [r for r in lineage["revisions"] if r["final"]]
    assert len(finals) == 1 and finals[0]["source"] == "merged"
    assert {t["assignee"] for t in lineage["tasks"] if t["purpose"] == "production"} == {
        "ana",
        "bo",
    }
    decided_rows = [x for x in lineage["adjudications"] if x["status"] == "resolved"]
    assert {x["adjudicator"] for x in decided_rows} == {"adam"}
    assert {x["decision"]["reason"] for x in decided_rows} == {reason}


def test_keep_or_drop_of_a_lone_object_also_needs_a_reason(world: World) -> None:
    into_review(world, disputes=True)
    client, adam = world.client, world.login("adam")
    items = client.get(f"{BASE}/batches/{world.batch}/adjudications", headers=adam).json()["items"]
    lone = next(
        c
        for c in (client.get(f"/api/adjudications/{d['id']}", headers=adam).json() for d in items)
        if not (c["versions"]["a"] and c["versions"]["b"])
    )
    assert lone["iou"] is None and lone["group"] == [lone["id"]]
    url = f"/api/adjudications/{lone['id']}"
    assert client.post(url, headers=adam, json={"keep": True}).status_code == 422
    kept = client.post(url, headers=adam, json={"keep": True, "reason_code": "object_present"})
    assert kept.status_code == 200 and kept.json()["kept"] == [lone["id"]]
    with world.db.session() as s:
        row = s.get(AdjudicationRow, lone["id"])
        assert row is not None
        defect = s.execute(
            select(DefectRow.type, DefectRow.annotator_id).where(
                DefectRow.found_by == "adjudication"
            )
        ).one()
    # kept: the annotator who did not draw it missed it
    assert tuple(defect) == ("missing", row.payload["missed_by"])


def test_the_gate_board_shows_what_advance_answered(world: World) -> None:
    label(world, disputes=False)
    client, maria = world.client, world.login(MANAGER)
    board = client.get(f"{BASE}/gates", headers=maria).json()
    (batch,) = [b for b in board["items"] if b["id"] == world.batch]
    assert (batch["stage"], batch["rework_cycle"], batch["items"]) == (
        "production",
        0,
        len(world.work.images),
    )
    assert set(batch["stages"]) == {"spec", "pilot"}
    moved = client.post(f"{BASE}/batches/{world.batch}/advance", headers=maria, json={})
    assert moved.status_code == 200
    # every task submitted: the production gate's value is exactly 1 of a threshold of 1
    assert (moved.json()["value"], moved.json()["threshold"], moved.json()["passed"]) == (
        1.0,
        1.0,
        True,
    )
    board = client.get(f"{BASE}/gates", headers=maria).json()
    (batch,) = [b for b in board["items"] if b["id"] == world.batch]
    gate = batch["stages"]["production"]
    assert gate == batch["last_gate"]
    assert {k: gate[k] for k in ("gate", "value", "threshold", "passed", "outcome", "cycle")} == {
        k: moved.json()[k] for k in ("gate", "value", "threshold", "passed", "outcome", "cycle")
    }
    assert batch["stage"] == "prelabel"
    # an image outside the batch, and a batch of another project, have no lineage here
    lineage = f"{BASE}/batches/{world.batch}/items/999999/lineage"
    assert client.get(lineage, headers=maria).status_code == 404
    other = world.other.batch_status("ob")["id"]
    assert client.get(f"{BASE}/batches/{other}/items/1/lineage", headers=maria).status_code == 404
    # paging: limit 1 of the project's batches
    one = client.get(f"{BASE}/gates?limit=1&offset=0", headers=maria).json()
    assert (len(one["items"]), one["total"]) == (1, board["total"])


def test_qualifications_per_annotator_and_cell(world: World) -> None:
    client, audrey = world.client, world.login("audrey")
    page = client.get(f"{BASE}/qualifications", headers=audrey).json()
    spec = world.program.spec()
    # ana and bo submitted the gold answers themselves: F1 is exactly 1 everywhere
    assert [q["user"] for q in page["items"]] == ["ana", "bo"]  # dee is another project's
    for q in page["items"]:
        assert (q["score"], q["passed"], q["latest"], q["failed"]) == (1.0, True, True, [])
        assert q["threshold"] == spec.gates.pilot_agreement
        assert q["cells"] and set(q["cells"].values()) == {1.0}
        assert all(name.startswith("class:") for name in q["cells"])
    second = client.get(f"{BASE}/qualifications?limit=1&offset=1", headers=audrey).json()
    assert second["items"] == page["items"][1:] and second["total"] == 2


def _hypergeometric_upper(d: int, n: int, lot: int, confidence: float) -> float:
    """The largest lot defect count whose chance of showing <= d in n is above 1 - C."""
    plausible = [
        k for k in range(d, lot - (n - d) + 1) if stats.hypergeom.cdf(d, lot, k, n) > 1 - confidence
    ]
    return max(plausible) / lot


def test_qa_items_show_sample_defects_bound_and_a_rework_decision(world: World) -> None:
    into_review(world, disputes=False)
    program, client, maria = world.program, world.client, world.login(MANAGER)
    for task_id in program.review_queue("rita", world.batch):
        program.review("rita", task_id, [])
    assert program.advance(world.batch, actor=MANAGER).passed  # review -> qa, sample drawn
    url = f"{BASE}/batches/{world.batch}/qa-items"
    before = client.get(url, headers=maria).json()
    n = before["planned"]
    assert n > 0 and before["inspected"] == 0 and before["gate"] is None
    sample = program.qa_queue("rita", world.batch)
    assert [i["task_id"] for i in before["items"]] == sample
    program.qa_inspect("rita", sample[0], [(-1, "missing")])
    for task_id in sample[1:]:
        program.qa_inspect("rita", task_id, [])
    moved = client.post(f"{BASE}/batches/{world.batch}/advance", headers=maria, json={}).json()
    after = client.get(f"{url}?cycle=0", headers=maria).json()
    assert (after["inspected"], after["defects"], after["defective_images"]) == (n, 1, 1)
    assert after["items"][0]["defects"] == [{"type": "missing", "object_key": None}]
    assert after["items"][0]["inspector"] == "rita" and after["items"][0]["inspected"] is True
    gate = after["gate"]
    assert (
        gate["value"] == moved["value"]
        and gate["threshold"] == world.program.spec().gates.defect_limit
    )
    confidence = gate["confidence"]
    if gate["bound"] == "hypergeometric":
        expected = _hypergeometric_upper(1, n, after["lot"], confidence)
    else:  # objects: one-sided Clopper-Pearson
        expected = float(stats.beta.ppf(confidence, 2, gate["sampled"] - 1))
    assert gate["value"] == pytest.approx(expected, rel=1e-6)
    assert gate["passed"] is False and gate["decision"] == "block"
    assert gate["outcome"] == moved["outcome"] == "rework"
    board = client.get(f"{BASE}/gates", headers=maria).json()["items"][0]
    assert (board["stage"], board["rework_cycle"]) == ("production", 1)
    assert board["stages"]["qa"]["outcome"] == "rework"
    # the next cycle has no sample yet
    assert client.get(url, headers=maria).json()["planned"] == 0


def test_audit_events_page_and_stay_inside_the_project(world: World) -> None:
    client, audrey = world.client, world.login("audrey")
    everything = client.get(f"{BASE}/audit/events?limit=1000", headers=audrey).json()
    assert everything["total"] == len(everything["items"]) > 5
    ids = [e["id"] for e in everything["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    pages: list[Any] = []
    for offset in range(0, everything["total"], 4):
        page = client.get(f"{BASE}/audit/events?limit=4&offset={offset}", headers=audrey).json()
        pages += page["items"]
    assert pages == everything["items"]
    # the other project's batch never shows here
    other_batch = world.other.batch_status("ob")["id"]
    assert not [
        e
        for e in everything["items"]
        if e["entity_type"] == "batch" and e["entity_id"] == str(other_batch)
    ]
    batch_only = client.get(
        f"{BASE}/audit/events?batch_id={world.batch}&limit=1000", headers=audrey
    ).json()
    assert {e["action"] for e in batch_only["items"]} >= {
        "batch.create",
        "batch.advance",
        "batch.assign",
    }
    refused = client.get(f"{BASE}/audit/events?batch_id={other_batch}", headers=audrey)
    assert refused.status_code == 404
    advances = client.get(f"{BASE}/audit/events?action=batch.advance", headers=audrey).json()
    assert advances["total"] == 2 and {e["details"]["passed"] for e in advances["items"]} == {True}
