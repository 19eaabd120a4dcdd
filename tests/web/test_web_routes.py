"""The pages' HTTP side without a browser: redirects, roles, headers, web-only endpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_world import PASSWORD, World, build_world

from labelgate.api import ApiSettings
from labelgate.api.deps import CSRF_COOKIE
from labelgate.api.deps import SESSION_COOKIE as API_SESSION_COOKIE
from labelgate.core.annotations import Annotations
from labelgate.store.db import Database
from labelgate.store.models import ImageRow
from labelgate.web import mount
from labelgate.web.pages import SESSION_COOKIE
from labelgate.web.server import create_web_app

PAGES = [
    "/queue",
    "/annotate/1",
    "/review",
    "/review/1",
    "/dashboard",
    "/dashboard/street-scenes",
    "/adjudicate/1",
    "/manage",
    "/manage/street-scenes",
]


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path)


@pytest.fixture
def site(world: World, tmp_path: Path) -> TestClient:
    return TestClient(create_web_app(world.db, settings=ApiSettings(data_dir=tmp_path / "d")))


def log_in(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_pages_use_the_apis_session_cookie() -> None:
    assert SESSION_COOKIE == API_SESSION_COOKIE


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_to_login_with_the_way_back(
    site: TestClient, path: str
) -> None:
    response = site.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}"


def test_a_revoked_session_is_no_session(site: TestClient) -> None:
    log_in(site, "ana")
    assert site.get("/queue", follow_redirects=False).status_code == 200
    site.post("/api/auth/logout", headers={"X-CSRF-Token": site.cookies[CSRF_COOKIE]})
    site.cookies.set(SESSION_COOKIE, "a-token-nobody-holds")
    assert site.get("/queue", follow_redirects=False).status_code == 303


def test_pages_carry_no_secret_and_load_scripts_from_this_origin_only(site: TestClient) -> None:
    login = log_in(site, "ana")
    for path in ["/login", "/queue", "/annotate/41"]:
        response = site.get(path)
        assert response.status_code == 200
        body = response.text
        assert login["token"] not in body and login["csrf_token"] not in body
        assert PASSWORD not in body
        assert "http://" not in body and "https://" not in body  # no external resource
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("ana", "/dashboard", 403),
        ("ana", "/review", 403),
        ("ana", "/queue", 200),
        ("maria", "/dashboard/street-scenes", 200),
        ("rita", "/review/3", 200),
        ("rita", "/dashboard", 403),
        ("audrey", "/dashboard", 200),
        ("ana", "/manage/street-scenes", 403),
        ("rita", "/manage", 403),
        ("adam", "/manage/street-scenes", 403),
        ("audrey", "/manage/street-scenes", 200),
        ("maria", "/manage", 200),
        ("ana", "/adjudicate/1", 403),
        ("rita", "/adjudicate/1", 403),
        ("audrey", "/adjudicate/1", 403),
        ("adam", "/adjudicate/1", 200),
        ("maria", "/adjudicate/1", 200),
    ],
)
def test_pages_are_for_the_roles_that_use_them(
    site: TestClient, user: str, path: str, status: int
) -> None:
    log_in(site, user)
    response = site.get(path, follow_redirects=False)
    assert response.status_code == status
    if status == 403:
        assert "Not allowed" in response.text


@pytest.mark.parametrize(("user", "target"), [("ana", "/queue"), ("maria", "/dashboard")])
def test_home_sends_each_role_to_its_start(site: TestClient, user: str, target: str) -> None:
    log_in(site, user)
    assert site.get("/", follow_redirects=False).headers["location"] == target


def test_static_modules_are_served_as_javascript(site: TestClient) -> None:
    for name in [
        "common.js",
        "editor.js",
        "review.js",
        "dashboard.js",
        "adjudicate.js",
        "manage.js",
        "style.css",
    ]:
        response = site.get(f"/static/web/{name}")
        assert response.status_code == 200, name
    assert "javascript" in site.get("/static/web/editor.js").headers["content-type"]
    assert site.get("/static/web/../pages.py").status_code == 404


def test_task_context_is_the_callers_own_task_only(world: World, site: TestClient) -> None:
    log_in(site, "ana")
    own = world.tasks("ana")[0]
    body = site.get(f"/web/api/tasks/{own.task_id}").json()
    assert body["project"] == "street-scenes"
    assert (body["width"], body["height"]) == (own.width, own.height)
    assert "purpose" not in body
    other = world.tasks("bo")[0].task_id
    theirs = site.get(f"/web/api/tasks/{other}")
    missing = site.get("/web/api/tasks/99999")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["type"] == missing.json()["type"] == "NotFound"


def test_web_endpoints_need_a_session(world: World, site: TestClient) -> None:
    task = world.tasks("ana")[0].task_id
    for path in [f"/web/api/tasks/{task}", f"/web/api/review/{task}", f"/web/images/{task}"]:
        assert site.get(path).status_code == 401


def test_the_image_is_served_to_its_assignee_and_is_a_404_without_a_file(
    world: World, site: TestClient, tmp_path: Path
) -> None:
    log_in(site, "ana")
    task = world.tasks("ana")[0]
    assert site.get(f"/web/images/{task.task_id}").status_code == 404
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    with world.db.session() as s:
        s.execute(
            update(ImageRow).where(ImageRow.external_id == task.image_id).values(uri=str(picture))
        )
    response = site.get(f"/web/images/{task.task_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    log_in(site, "bo")
    assert site.get(f"/web/images/{task.task_id}").status_code == 404


def _submit(world: World, user: str, task: int, boxes: list[list[float]], classes: list[int]):
    labels = Annotations.create(
        id=list(range(1, len(boxes) + 1)), image_id=[0] * len(boxes), class_id=classes, bbox=boxes
    )
    world.program.save(user, task, labels, base_revision_id=None)
    world.program.submit(user, task)


def test_review_context_pairs_the_blind_twins_with_the_cores_iou(
    world: World, site: TestClient
) -> None:
    image = world.shared_images()[0]
    ana = next(t.task_id for t in world.tasks("ana") if t.image_id == image)
    bo = next(t.task_id for t in world.tasks("bo") if t.image_id == image)
    _submit(world, "ana", ana, [[0, 0, 10, 10], [50, 50, 60, 60]], [1, 2])
    _submit(world, "bo", bo, [[0, 0, 10, 12]], [1])
    log_in(site, "rita")
    body = site.get(f"/web/api/review/{ana}").json()
    assert body["twin_task_id"] == bo
    [pair] = body["pairs"]
    # 100 / 120 by hand; the car tier of examples/spec.toml is 0.7
    assert (pair["a"], pair["b"], pair["iou"], pair["tier"]) == (1, 1, 0.8333, 0.7)
    assert pair["below_tier"] is False
    assert body["unmatched_a"] == [2] and body["unmatched_b"] == []
    assert body["consensus"] == {"merged": 1, "disputed": 1}
    assert "ana" not in str(body) and "bo" not in str(body).replace("bbox", "")


def test_review_context_refuses_annotators_and_the_tasks_author(
    world: World, site: TestClient
) -> None:
    image = world.shared_images()[0]
    ana = next(t.task_id for t in world.tasks("ana") if t.image_id == image)
    _submit(world, "ana", ana, [[0, 0, 10, 10]], [1])
    log_in(site, "bo")
    assert site.get(f"/web/api/review/{ana}").status_code in (403, 404)
    log_in(site, "ana")
    assert site.get(f"/web/api/review/{ana}").status_code == 403


def test_mount_twice_adds_the_routes_once(world: World, tmp_path: Path) -> None:
    app = create_web_app(world.db, settings=ApiSettings(data_dir=tmp_path / "d"))
    routes = len(app.routes)
    mount(app)
    assert len(app.routes) == routes
