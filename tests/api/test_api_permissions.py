"""Every permission rule of the API as a request that must fail, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_world import MANAGER, PASSWORD, World, build_world
from sqlalchemy import func, select

from labelgate.store.db import Database
from labelgate.store.models import RevisionRow, TaskRow


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


def _box(object_id: int = 1, x: float = 10.0) -> dict[str, object]:
    return {"id": object_id, "class_id": 1, "kind": "box", "bbox": [x, 10.0, x + 20, 40.0]}


# --- authentication -----------------------------------------------------------------------


def _concrete(path: str) -> str:
    values = {"project": "street-scenes", "job_id": "0" * 32}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)


def test_every_endpoint_but_health_and_login_answers_401_without_credentials(
    world: World,
) -> None:
    client = world.client
    assert client.get("/api/health").json() == {"status": "ok", "database": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        for method in operations:
            if path in ("/api/health", "/api/auth/login"):
                continue
            response = client.request(method.upper(), _concrete(path))
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
    assert checked >= 25
    bad = {"Authorization": "Bearer not-a-token"}
    assert client.get("/api/me", headers=bad).status_code == 401


def test_wrong_password_and_unknown_user_get_one_answer(world: World) -> None:
    client = world.client
    wrong = client.post("/api/auth/login", json={"name": "ana", "password": "nope" * 3})
    nobody = client.post("/api/auth/login", json={"name": "mallory", "password": PASSWORD})
    assert wrong.status_code == nobody.status_code == 401
    assert (
        wrong.json()
        == nobody.json()
        == {"detail": "wrong name or password", "type": "NotAuthenticated"}
    )
    extra = client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD, "x": 1})
    assert extra.status_code == 422  # extra="forbid"


def test_logout_and_password_change_revoke_tokens(world: World) -> None:
    client = world.client
    headers = world.login("ana")
    assert client.get("/api/me", headers=headers).json()["name"] == "ana"
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/me", headers=headers).status_code == 401
    headers = world.login("ana")
    change = {"current_password": PASSWORD, "new_password": "another long password"}
    wrong = client.put(
        "/api/me/password", headers=headers, json={**change, "current_password": "x" * 12}
    )
    assert wrong.status_code == 401
    assert client.put("/api/me/password", headers=headers, json=change).status_code == 204
    assert client.get("/api/me", headers=headers).status_code == 401
    short = client.post(
        "/api/auth/login", json={"name": "ana", "password": "another long password"}
    )
    assert short.status_code == 200


def test_an_expired_token_is_refused(world: World) -> None:
    import datetime as dt

    from labelgate.workflow.auth import Principal, issue_token, resolve_token

    ana = world.client.get("/api/me", headers=world.login("ana")).json()
    token, _ = issue_token(
        world.db, Principal(ana["id"], "ana", ("annotator",)), ttl=dt.timedelta(seconds=-1)
    )
    assert resolve_token(world.db, token) is None
    response = world.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_tokens_are_stored_only_as_sha256(world: World) -> None:
    import hashlib

    from labelgate.store.models import ApiTokenRow

    token = world.login("ana")["Authorization"].split()[1]
    with world.db.session() as s:
        stored = s.execute(select(ApiTokenRow.token_sha256)).scalars().all()
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    assert token not in stored


# --- CSRF ----------------------------------------------------------------------------------


def test_cookie_sessions_need_the_csrf_header_on_writes(world: World) -> None:
    client = world.client
    login = client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD})
    cookies = login.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("labelgate_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("labelgate_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session
    assert "HttpOnly" not in csrf_cookie and "SameSite=strict" in csrf_cookie
    csrf = login.json()["csrf_token"]
    assert client.cookies["labelgate_csrf"] == csrf
    # reads need no header
    assert client.get("/api/me").json()["name"] == "ana"
    task = world.tasks("ana")[0]
    body = {"base_revision_id": None, "objects": [_box()]}
    url = f"/api/tasks/{task.task_id}/labels"
    missing = client.put(url, json=body)
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    forged = client.put(url, json=body, headers={"X-CSRF-Token": "0" * 64})
    assert forged.status_code == 403
    # a planted cookie equal to the header but not bound to this session fails too
    client.cookies.set("labelgate_csrf", "f" * 64)
    planted = client.put(url, json=body, headers={"X-CSRF-Token": "f" * 64})
    assert planted.status_code == 403
    client.cookies.set("labelgate_csrf", csrf)
    with world.db.session() as s:
        assert s.get(TaskRow, task.task_id).head_revision_id is None  # nothing was written
    ok = client.put(url, json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    # a bearer token needs no CSRF header (a browser never sends one on its own)
    bearer = login.json()["token"]
    client.cookies.clear()
    body["base_revision_id"] = ok.json()["revision_id"]
    assert (
        client.put(url, json=body, headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    )


# --- the annotator's view -------------------------------------------------------------------


def test_an_annotator_sees_only_their_own_queue_and_never_a_purpose(world: World) -> None:
    client = world.client
    for user in ("ana", "bo"):
        response = client.get("/api/me/tasks", headers=world.login(user), params={"limit": 1000})
        got = [t["task_id"] for t in response.json()["items"]]
        assert got == [t.task_id for t in world.tasks(user)]
        assert response.json()["total"] == len(got) > 0
        text = response.text.lower()
        for word in ("purpose", "honeypot", "gold", "production", "reference"):
            assert word not in text
    ana = {t.task_id for t in world.tasks("ana")}
    bo = {t.task_id for t in world.tasks("bo")}
    assert not ana & bo


def test_a_blind_annotator_never_reads_or_touches_the_other_annotators_task(
    world: World,
) -> None:
    client = world.client
    shared = world.shared_images()
    assert shared, "the world has blind double tasks"
    ana_task = next(t for t in world.tasks("ana") if t.image_id == shared[0])
    ana = world.login("ana")
    saved = client.put(
        f"/api/tasks/{ana_task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": None, "objects": [_box()]},
    )
    assert saved.status_code == 200
    bo = world.login("bo")
    missing = client.get("/api/tasks/2000000", headers=bo)
    read = client.get(f"/api/tasks/{ana_task.task_id}", headers=bo)
    assert read.status_code == missing.status_code == 404
    assert read.json()["type"] == missing.json()["type"] == "NotFound"
    write = client.put(
        f"/api/tasks/{ana_task.task_id}/labels",
        headers=bo,
        json={"base_revision_id": saved.json()["revision_id"], "objects": []},
    )
    assert write.status_code == 404
    assert client.post(f"/api/tasks/{ana_task.task_id}/submit", headers=bo).status_code == 404
    assert client.get(f"/api/review/{ana_task.task_id}", headers=bo).status_code == 403
    assert client.get(f"/api/qa/{ana_task.task_id}", headers=bo).status_code == 404
    # a reviewer, manager or admin reads labels only through review and QA, never as the
    # annotator: the editor's route is for the task's assignee alone
    for other in ("rita", MANAGER):
        seen = client.get(f"/api/tasks/{ana_task.task_id}", headers=world.login(other))
        assert seen.status_code == 404
    # ana's labels are untouched and still hers
    mine = client.get(f"/api/tasks/{ana_task.task_id}", headers=ana).json()
    assert mine["revision_id"] == saved.json()["revision_id"]
    assert [o["bbox"] for o in mine["objects"]] == [[10.0, 10.0, 30.0, 40.0]]


def test_gold_and_honeypot_answers_never_reach_an_annotator(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    hidden = [t for t in world.tasks("ana") if t.image_id >= 20_000]
    assert hidden, "the world gives ana honeypots"
    for task in hidden:
        response = client.get(f"/api/tasks/{task.task_id}", headers=ana)
        assert response.status_code == 200
        assert response.json()["objects"] == []  # the reference answers are not hers
    with world.db.session() as s:
        reference = s.execute(select(TaskRow.id).where(TaskRow.purpose == "reference")).scalars()
        reference_ids = list(reference)
    assert reference_ids
    for task_id in reference_ids[:3]:
        assert client.get(f"/api/tasks/{task_id}", headers=ana).status_code == 404
        assert client.get(f"/api/qa/{task_id}", headers=ana).status_code == 404


def test_another_projects_data_is_invisible(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    projects = client.get("/api/projects", headers=ana).json()
    assert projects["items"] == [{"name": "street-scenes"}] and projects["total"] == 1
    assert client.get("/api/projects/other-project", headers=ana).status_code == 404
    assert client.get("/api/projects/no-such", headers=ana).status_code == 404
    response = client.get("/api/me/tasks", headers=ana, params={"project": "other-project"})
    assert response.status_code == 404
    dee_task = world.other.my_tasks("dee")[0]
    assert client.get(f"/api/tasks/{dee_task.task_id}", headers=ana).status_code == 404
    dee = world.login("dee")
    assert [p["name"] for p in client.get("/api/projects", headers=dee).json()["items"]] == [
        "other-project"
    ]
    assert client.get(f"/api/tasks/{dee_task.task_id}", headers=dee).status_code == 200
    maria = world.login(MANAGER)
    assert client.get("/api/projects", headers=maria).json()["total"] == 2
    # an annotator's project view holds what the editor needs, not pools, prices or gates
    view = client.get("/api/projects/street-scenes", headers=ana).json()
    assert view["classes"] and view["edge_cases"] and "spec" not in view
    assert "pools" in client.get("/api/projects/street-scenes", headers=maria).json()["spec"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/projects/street-scenes/batches", None),
        ("POST", "/api/projects/street-scenes/batches", {"name": "x", "image_ids": [1]}),
        ("GET", "/api/projects/street-scenes/batches/{batch}", None),
        ("POST", "/api/projects/street-scenes/batches/{batch}/advance", {}),
        ("POST", "/api/projects/street-scenes/batches/{batch}/assign", {}),
        ("GET", "/api/projects/street-scenes/batches/{batch}/review-queue", None),
        ("GET", "/api/projects/street-scenes/batches/{batch}/adjudications", None),
        ("GET", "/api/projects/street-scenes/batches/{batch}/qa-queue", None),
        ("POST", "/api/projects/street-scenes/batches/{batch}/export", None),
        ("GET", "/api/projects/street-scenes/report", None),
        ("POST", "/api/projects/street-scenes/report", None),
        ("GET", "/api/projects/street-scenes/audit/verify", None),
        ("POST", "/api/adjudications/1", {"keep": True}),
    ],
)
def test_an_annotator_gets_403_on_every_manager_reviewer_and_auditor_endpoint(
    world: World, method: str, path: str, body: object
) -> None:
    url = path.replace("{batch}", str(world.batch))
    response = world.client.request(method, url, headers=world.login("ana"), json=body)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "PermissionDenied"


def test_roles_decide_who_creates_advances_reports_and_verifies(world: World) -> None:
    client = world.client
    base = "/api/projects/street-scenes"
    rita, audrey, maria = (world.login(n) for n in ("rita", "audrey", MANAGER))
    create = {"name": "b2", "image_ids": [1]}
    assert client.post(f"{base}/batches", headers=rita, json=create).status_code == 403
    assert client.post(f"{base}/batches", headers=audrey, json=create).status_code == 403
    created = client.post(f"{base}/batches", headers=maria, json=create)
    assert created.status_code == 201 and created.json()["name"] == "b2"
    again = client.post(f"{base}/batches", headers=maria, json=create)
    assert again.status_code == 409  # a workflow refusal: the name exists
    advance = f"{base}/batches/{created.json()['id']}/advance"
    assert client.post(advance, headers=rita, json={}).status_code == 403
    moved = client.post(advance, headers=maria, json={})
    assert moved.status_code == 200 and moved.json()["gate"] == "edge_case_rules"
    status = client.get(f"{base}/batches/{created.json()['id']}", headers=rita)
    assert status.status_code == 200 and status.json()["stage"] == "pilot"
    assert client.get(f"{base}/report", headers=audrey).json()["project"] == "street-scenes"
    assert client.get(f"{base}/report", headers=rita).status_code == 403
    verify = client.get(f"{base}/audit/verify", headers=audrey)
    assert verify.status_code == 200 and verify.json()["ok"] is True
    assert client.get(f"{base}/audit/verify", headers=rita).status_code == 403
    missing = client.get(f"{base}/batches/999999", headers=maria)
    assert missing.status_code == 404 and missing.json()["type"] == "NotFound"


# --- saves -----------------------------------------------------------------------------------


def test_a_stale_save_is_409_with_the_current_revision_and_overwrites_nothing(
    world: World,
) -> None:
    client = world.client
    ana = world.login("ana")
    task = world.tasks("ana")[0]
    url = f"/api/tasks/{task.task_id}/labels"
    first = client.put(url, headers=ana, json={"base_revision_id": None, "objects": [_box(1)]})
    assert first.status_code == 200 and first.json()["replayed"] is False
    revision = first.json()["revision_id"]
    stale = client.put(
        url, headers=ana, json={"base_revision_id": None, "objects": [_box(1, 50), _box(2)]}
    )
    assert stale.status_code == 409
    assert stale.json()["current_revision_id"] == revision
    assert stale.json()["type"] == "ConflictError"
    current = client.get(f"/api/tasks/{task.task_id}", headers=ana).json()
    assert current["revision_id"] == revision
    assert [o["bbox"][0] for o in current["objects"]] == [10.0]
    second = client.put(
        url, headers=ana, json={"base_revision_id": revision, "objects": [_box(1, 50)]}
    )
    assert second.status_code == 200 and second.json()["number"] == 2


def test_a_retried_save_with_the_same_idempotency_key_lands_once(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    task = world.tasks("ana")[0]
    url = f"/api/tasks/{task.task_id}/labels"
    body = {"base_revision_id": None, "objects": [_box(1), _box(2, 60)]}
    key = {"Idempotency-Key": "save-7f3a"}
    first = client.put(url, headers=ana | key, json=body)
    retry = client.put(url, headers=ana | key, json=body)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == {**first.json(), "replayed": True}
    with world.db.session() as s:
        count = s.execute(
            select(func.count()).select_from(RevisionRow).where(RevisionRow.task_id == task.task_id)
        ).scalar_one()
    assert count == 1
    # keys are per user: bo's client may happen to use the same key on his own task
    bo_task = world.tasks("bo")[0]
    other = client.put(
        f"/api/tasks/{bo_task.task_id}/labels", headers=world.login("bo") | key, json=body
    )
    assert other.status_code == 200 and other.json()["replayed"] is False
    bad_key = client.put(url, headers=ana | {"Idempotency-Key": "a b"}, json=body)
    assert bad_key.status_code == 422


def test_labels_round_trip_with_geometry_and_attributes(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    task = world.tasks("ana")[0]
    objects = [
        {**_box(1), "occluded": True, "track_id": 7, "attributes": {"light_state": "red"}},
        {
            "id": 2,
            "class_id": 2,
            "kind": "polygon",
            "polygon": [[[0.0, 0.0], [10.0, 0.0], [10.0, 8.0]]],
            "truncated": True,
        },
        {"id": 3, "class_id": 3, "kind": "tag"},
    ]
    saved = client.put(
        f"/api/tasks/{task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": None, "objects": objects},
    )
    assert saved.status_code == 200, saved.text
    got = {
        o["id"]: o for o in client.get(f"/api/tasks/{task.task_id}", headers=ana).json()["objects"]
    }
    assert got[1]["occluded"] is True and got[1]["track_id"] == 7
    assert got[1]["attributes"] == {"light_state": "red"}
    assert got[2]["polygon"] == [[[0.0, 0.0], [10.0, 0.0], [10.0, 8.0]]]
    assert got[2]["bbox"] == [0.0, 0.0, 10.0, 8.0] and got[2]["truncated"] is True
    assert got[3]["kind"] == "tag" and got[3]["bbox"] is None
    broken = client.put(
        f"/api/tasks/{task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": saved.json()["revision_id"], "objects": [_box(1), _box(1)]},
    )
    assert broken.status_code == 422 and "duplicate" in broken.json()["detail"]
    inverted = {**_box(1), "bbox": [30.0, 10.0, 10.0, 40.0]}
    response = client.put(
        f"/api/tasks/{task.task_id}/labels",
        headers=ana,
        json={"base_revision_id": saved.json()["revision_id"], "objects": [inverted]},
    )
    assert response.status_code == 422 and "x2 >= x1" in response.json()["detail"]


# --- pagination -------------------------------------------------------------------------------


def test_lists_page_with_limit_offset_and_a_total(world: World) -> None:
    client = world.client
    ana = world.login("ana")
    everything = [t.task_id for t in world.tasks("ana")]
    assert len(everything) >= 3
    page = client.get("/api/me/tasks", headers=ana, params={"limit": 2, "offset": 1}).json()
    assert [t["task_id"] for t in page["items"]] == everything[1:3]
    assert (page["total"], page["limit"], page["offset"]) == (len(everything), 2, 1)
    beyond = client.get("/api/me/tasks", headers=ana, params={"offset": 10_000}).json()
    assert beyond["items"] == [] and beyond["total"] == len(everything)
    assert client.get("/api/me/tasks", headers=ana, params={"limit": 0}).status_code == 422
    assert client.get("/api/me/tasks", headers=ana, params={"limit": 5000}).status_code == 422
    maria = world.login(MANAGER)
    projects = client.get("/api/projects", headers=maria, params={"limit": 1}).json()
    assert len(projects["items"]) == 1 and projects["total"] == 2
    second = client.get("/api/projects", headers=maria, params={"limit": 1, "offset": 1}).json()
    assert second["items"] != projects["items"]
    batches = client.get("/api/projects/street-scenes/batches", headers=maria).json()
    assert batches["total"] == 1 and batches["items"][0]["items"] == len(world.work.images)


# --- review, adjudication, QA, export -----------------------------------------------------------


def _label_everything(world: World, *, ana_skips_on_shared: bool) -> None:
    shared = set(world.shared_images())
    for user in ("ana", "bo"):
        headers = world.login(user)
        for task in world.tasks(user):
            truth = world.truth(task.image_id)
            objects = [
                {"id": int(i), "class_id": int(c), "kind": "box", "bbox": [float(v) for v in b]}
                for i, c, b in zip(truth.id.tolist(), truth.class_id.tolist(), truth.bbox)
            ]
            if ana_skips_on_shared and user == "ana" and task.image_id in shared:
                objects = objects[1:]
            url = f"/api/tasks/{task.task_id}"
            saved = world.client.put(
                f"{url}/labels",
                headers=headers,
                json={"base_revision_id": None, "objects": objects},
            )
            assert saved.status_code == 200, saved.text
            assert world.client.post(f"{url}/submit", headers=headers).status_code == 200
            assert world.client.post(f"{url}/submit", headers=headers).status_code == 409


def _into_review(world: World, *, disputes: bool) -> str:
    base = f"/api/projects/street-scenes/batches/{world.batch}"
    maria = world.login(MANAGER)
    _label_everything(world, ana_skips_on_shared=disputes)
    for gate in ("submitted", "unreviewed_prelabels"):
        assert world.client.post(f"{base}/advance", headers=maria, json={}).json()["gate"] == gate
    entering = world.client.post(f"{base}/advance", headers=maria, json={}).json()
    assert entering["outcome"] == "waiting"
    return base


def test_adjudication_is_for_adjudicators_and_decides_once(world: World) -> None:
    client = world.client
    base = _into_review(world, disputes=True)
    rita, adam = world.login("rita"), world.login("adam")
    # every blind pair disagrees on one object: one adjudication per shared image
    disputes = client.get(f"{base}/adjudications", headers=adam).json()
    assert disputes["total"] == len(world.shared_images()) > 0
    assert client.get(f"{base}/adjudications", headers=rita).status_code == 403
    first = disputes["items"][0]["id"]
    url = f"/api/adjudications/{first}"
    keep = {"keep": True, "reason": "both cars are in the image"}
    assert client.post(url, headers=rita, json=keep).status_code == 403
    assert client.post(url, headers=adam, json={**keep, "keep": "maybe"}).status_code == 422
    assert client.post(url, headers=adam, json={"keep": True}).status_code == 422  # no reason
    assert client.post(url, headers=adam, json=keep).status_code == 200
    assert client.post(url, headers=adam, json=keep).status_code == 409
    assert client.post("/api/adjudications/999999", headers=adam, json=keep).status_code == 404
    left = client.get(f"{base}/adjudications", headers=adam).json()
    assert left["total"] == disputes["total"] - 1


def test_review_qa_and_export_through_the_api(world: World) -> None:
    client = world.client
    base = _into_review(world, disputes=False)
    maria, rita, adam = (world.login(n) for n in (MANAGER, "rita", "adam"))
    assert client.get(f"{base}/adjudications", headers=adam).json()["total"] == 0
    # single items: rita reviews; a defect type outside the taxonomy is a 422
    queue = client.get(f"{base}/review-queue", headers=rita).json()
    assert queue["total"] == len(world.work.images) - len(world.shared_images())
    task_id = queue["items"][0]["task_id"]
    labels = client.get(f"/api/review/{task_id}", headers=rita).json()
    assert labels["objects"] and "annotator" not in str(labels)
    bad = {
        "decisions": [
            {"object_id": labels["objects"][0]["id"], "verdict": "reject", "defect_type": "ugly"}
        ]
    }
    assert client.post(f"/api/review/{task_id}", headers=rita, json=bad).status_code == 422
    for item in queue["items"]:
        done = client.post(f"/api/review/{item['task_id']}", headers=rita, json={})
        assert done.status_code == 200 and done.json()["rejected"] == 0
    again = client.post(f"/api/review/{task_id}", headers=rita, json={})
    assert again.status_code == 409  # one review per revision
    review = client.post(f"{base}/advance", headers=maria, json={}).json()
    assert review["passed"] is True and review["gate"] == "review_accuracy"
    # QA: rita inspects her sample, finds nothing, the batch is released and delivered
    sample = client.get(f"{base}/qa-queue", headers=rita).json()
    assert sample["total"] > 0
    for item in sample["items"]:
        assert client.get(f"/api/qa/{item['task_id']}", headers=rita).status_code == 200
        assert client.get(f"/api/qa/{item['task_id']}", headers=adam).status_code == 404
        assert (
            client.post(
                f"/api/qa/{item['task_id']}", headers=rita, json={"defects": []}
            ).status_code
            == 200
        )
    assert client.post(f"{base}/advance", headers=maria, json={}).json()["passed"] is True
    assert client.post(f"{base}/advance", headers=maria, json={}).json()["passed"] is True
    job = client.post(f"{base}/export", headers=maria)
    assert job.status_code == 202
    finished = world.client.app.state.labelgate.jobs.wait(job.json()["id"], timeout=60)
    assert finished.state == "done", finished.error
    polled = client.get(f"/api/jobs/{job.json()['id']}", headers=maria).json()
    assert polled["state"] == "done" and polled["progress"] == 1.0
    assert polled["result"]["images"] == len(world.work.images)
    assert client.get(f"/api/jobs/{job.json()['id']}", headers=rita).status_code == 404
    document = client.get(polled["download"], headers=maria).json()
    assert len(document["images"]) == len(world.work.images)


def test_a_reviewer_never_reviews_their_own_labels(world: World) -> None:
    world.program.add_user("bo", ["reviewer"], actor=MANAGER)
    _label_everything(world, ana_skips_on_shared=False)
    base = f"/api/projects/street-scenes/batches/{world.batch}"
    maria, bo = world.login(MANAGER), world.login("bo")
    for _ in range(3):
        world.client.post(f"{base}/advance", headers=maria, json={})
    queue = world.client.get(f"{base}/review-queue", headers=bo).json()
    own = {t.task_id for t in world.tasks("bo")}
    assert queue["total"] > 0 and not own & {i["task_id"] for i in queue["items"]}
    single = set(world.shared_images())
    mine = next(t for t in world.tasks("bo") if t.image_id not in single and t.image_id < 20_000)
    response = world.client.get(f"/api/review/{mine.task_id}", headers=bo)
    assert response.status_code == 403 and "self-review" in response.json()["detail"]
    post = world.client.post(f"/api/review/{mine.task_id}", headers=bo, json={})
    assert post.status_code == 403
