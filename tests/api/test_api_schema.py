"""schemathesis against the app's own OpenAPI document: no generated request gets a 5xx.

Requests are generated from every operation's schema (valid and invalid bodies, paths,
queries, headers) and sent authenticated as the user each route is for, on SQLite, in one
program world shared by the module: the data the requests hit is real, and the requests
may change it (advance a batch, save labels), as a user's would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_world import MANAGER, World, build_world
from hypothesis import HealthCheck, settings

from labelgate.store.db import Database, upgrade
from labelgate.workflow.auth import Principal, issue_token

EXAMPLES = 12  # per operation: ~30 operations -> ~360 requests (a few hundred, bounded)


@pytest.fixture(scope="module")
def schema_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("schema")
    db = Database(f"sqlite:///{folder / 'labelgate.db'}")
    upgrade(db)
    yield build_world(db, folder)
    db.dispose()


@pytest.fixture(scope="module")
def api_schema(schema_world: World) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", schema_world.client.app)


schema = schemathesis.pytest.from_fixture("api_schema")

# who each route is for: an annotator's routes get an annotator, review and QA a reviewer
ACTORS = (
    ("/api/tasks", "ana"),
    ("/api/me", "ana"),
    ("/api/review", "rita"),
    ("/api/qa", "rita"),
    ("/api/adjudications", "adam"),
)


def _headers(world: World, path: str) -> dict[str, str]:
    name = next((who for prefix, who in ACTORS if path.startswith(prefix)), MANAGER)
    with world.db.session() as s:
        from sqlalchemy import select

        from labelgate.store.models import UserRow

        user = s.execute(select(UserRow).where(UserRow.name == name)).scalar_one()
        principal = Principal(user.id, user.name, tuple(user.roles))
    # a fresh token per request: a generated logout or password change must not lock out
    # the rest of the run
    token, _ = issue_token(world.db, principal)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, schema_world: World
) -> None:
    headers = {**(case.headers or {}), **_headers(schema_world, case.path)}
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
