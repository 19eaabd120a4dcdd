"""The QA pages' routes without a browser: login redirect, roles, headers (SQLite only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_world import PASSWORD, World, build_world

from labelgate.api import ApiSettings
from labelgate.store.db import Database
from labelgate.web.pages import PAGE_HEADERS
from labelgate.web.server import create_web_app


@pytest.fixture
def world(tmp_path: Path) -> World:
    from labelgate.store.db import upgrade

    db = Database(f"sqlite:///{tmp_path / 'labelgate.db'}")
    upgrade(db)
    return build_world(db, tmp_path)


def test_qa_pages_need_a_session_and_an_inspectors_role(world: World, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    app = create_web_app(world.db, settings=ApiSettings(data_dir=tmp_path / "d"))
    client = TestClient(app)
    path = f"/qa/street-scenes/{world.batch}"
    for url in ("/qa", path):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    for name, status in [
        ("ana", 403),
        ("adam", 403),
        ("audrey", 403),
        ("rita", 200),
        ("maria", 200),
    ]:
        client.cookies.clear()
        login = client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert login.status_code == 200
        for url in ("/qa", path):
            response = client.get(url)
            assert response.status_code == status, (name, url)
            for header, value in PAGE_HEADERS.items():
                assert response.headers[header] == value
            if status == 200:
                assert '<script type="module" src="/static/web/qa.js">' in response.text
            else:
                assert "Not allowed" in response.text and "reviewer" in response.text
    for asset in ("qa.js", "qa.css", "label_canvas.js", "charts.js"):
        assert client.get(f"/static/web/{asset}").status_code == 200
