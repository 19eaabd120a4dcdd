"""The save route reads its caller, header and body itself (the hot path): it must answer
exactly as FastAPI's declared parameters did, and document the same operation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from api_world import PASSWORD, World, build_world

from labelgate.api.schemas import LabelsSave
from labelgate.store.db import Database


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path, images=4)


def _url(world: World) -> str:
    return f"/api/tasks/{world.tasks('ana')[0].task_id}/labels"


BOX = {"id": 1, "class_id": 1, "kind": "box", "bbox": [1.0, 2.0, 30.0, 40.0]}


def test_who_is_calling_is_answered_before_what_they_sent(world: World) -> None:
    client, url = world.client, _url(world)
    assert client.put(url, content=b"not json").status_code == 401
    assert client.put(url, headers={"Idempotency-Key": "a b"}, json={}).status_code == 401
    # a cookie session without the CSRF header: refused before its body is read
    login = client.post("/api/auth/login", json={"name": "ana", "password": PASSWORD})
    assert login.status_code == 200
    refused = client.put(url, content=b"not json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    client.cookies.clear()


def _detail(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


def test_a_bad_header_or_body_is_fastapi_s_422(world: World) -> None:
    client, url, ana = world.client, _url(world), world.login("ana")
    body = {"base_revision_id": None, "objects": [BOX]}
    for key in ("a b", "x" * 65, "k/1"):
        (error,) = _detail(client.put(url, headers=ana | {"Idempotency-Key": key}, json=body))
        assert error["loc"] == ["header", "Idempotency-Key"]
    (error,) = _detail(client.put(url, headers=ana, content=b"{not json"))
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"
    (error,) = _detail(client.put(url, headers=ana, json={"objects": [BOX]}))
    assert error["type"] == "missing" and error["loc"] == ["body", "base_revision_id"]
    errors = _detail(
        client.put(
            url,
            headers=ana,
            json={"base_revision_id": None, "objects": [{**BOX, "bbox": [1, 2, 3]}], "x": 1},
        )
    )
    assert {tuple(e["loc"]) for e in errors} == {
        ("body", "objects", 0, "bbox"),
        ("body", "x"),
    }
    # and a good one lands, with the key
    saved = client.put(url, headers=ana | {"Idempotency-Key": "k.1:2-3_4"}, json=body)
    assert saved.status_code == 200 and saved.json()["number"] == 1


def test_the_document_declares_the_body_and_the_header(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    operation = document["paths"]["/api/tasks/{task_id}/labels"]["put"]
    assert operation["requestBody"] == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LabelsSave"}}},
    }
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and not header["required"]
    assert header["schema"]["maxLength"] == 64
    schemas = document["components"]["schemas"]
    expected = LabelsSave.model_json_schema(ref_template="#/components/schemas/{model}")
    expected.pop("$defs")
    assert schemas["LabelsSave"] == expected

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"]} if "$ref" in node else set()
            return found.union(*(refs(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node))
        return set()

    names = {ref.rsplit("/", 1)[1] for ref in refs(document)}
    assert names <= set(schemas), names - set(schemas)


def test_a_body_that_is_not_utf8_is_a_422_not_a_500(world: World) -> None:
    (error,) = _detail(world.client.put(_url(world), headers=world.login("ana"), content=b"\x80"))
    assert error["type"] == "json_invalid" and error["input"] == "\ufffd"
