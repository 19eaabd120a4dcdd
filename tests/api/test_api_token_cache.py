"""The API process's token cache: a cached token costs no database statement, a change made
elsewhere applies within the cache time, and changes this process makes apply at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from api_world import World, build_world
from sqlalchemy import event, update

from labelgate.store.db import Database
from labelgate.store.models import UserRow
from labelgate.workflow.auth import Principal, TokenCache, issue_token, revoke_token


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(db: Database, tmp_path: Path) -> World:
    return build_world(db, tmp_path, images=4)


def use_cache(world: World, cache: TokenCache) -> None:
    app = world.client.app
    app.state.labelgate = dataclasses.replace(app.state.labelgate, tokens=cache)  # type: ignore[attr-defined]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_a_cached_token_costs_no_statement_and_a_revocation_elsewhere_applies_in_time(
    world: World,
) -> None:
    ticks = Ticks()
    use_cache(world, TokenCache(2.0, monotonic=ticks))
    headers = world.login("ana")
    token = headers["Authorization"].split()[1]
    with statements(world.db) as first:
        assert world.client.get("/api/me", headers=headers).json()["name"] == "ana"
    with statements(world.db) as cached:
        assert world.client.get("/api/me", headers=headers).status_code == 200
    assert first and cached == []
    # another worker process logs this token out: this one trusts it for at most 2 s
    assert revoke_token(world.db, token)
    ticks.now += 1.9
    assert world.client.get("/api/me", headers=headers).status_code == 200
    ticks.now += 0.2
    assert world.client.get("/api/me", headers=headers).status_code == 401
    # and a refused token is never cached: it is looked up again every time
    with statements(world.db) as again:
        assert world.client.get("/api/me", headers=headers).status_code == 401
    assert again


def test_a_deactivation_by_the_cli_applies_within_the_cache_time(world: World) -> None:
    ticks = Ticks()
    use_cache(world, TokenCache(2.0, monotonic=ticks))
    headers = world.login("bo")
    assert world.client.get("/api/me/tasks", headers=headers).status_code == 200
    with world.db.session() as s:
        s.execute(update(UserRow).where(UserRow.name == "bo").values(active=False))
    ticks.now += 2.0
    assert world.client.get("/api/me/tasks", headers=headers).status_code == 401


def test_this_process_s_logout_and_password_change_apply_at_once(world: World) -> None:
    use_cache(world, TokenCache(3600.0))
    headers = world.login("ana")
    assert world.client.get("/api/me", headers=headers).status_code == 200
    assert world.client.post("/api/auth/logout", headers=headers).status_code == 204
    assert world.client.get("/api/me", headers=headers).status_code == 401
    headers = world.login("ana")
    other = world.login("ana")  # a second session of the same person, cached too
    assert world.client.get("/api/me", headers=other).status_code == 200
    change = {"current_password": "correct horse battery staple", "new_password": "x" * 16}
    assert world.client.put("/api/me/password", headers=headers, json=change).status_code == 204
    assert world.client.get("/api/me", headers=other).status_code == 401


def test_a_cached_token_still_expires_on_time_and_zero_seconds_turns_the_cache_off(
    world: World,
) -> None:
    now = [dt.datetime(2030, 1, 1, tzinfo=dt.UTC)]
    ana = world.client.get("/api/me", headers=world.login("ana")).json()
    token, expires = issue_token(
        world.db,
        Principal(ana["id"], "ana", ("annotator",)),
        ttl=dt.timedelta(seconds=30),
        clock=lambda: now[0],
    )
    cache = TokenCache(3600.0, clock=lambda: now[0])
    assert cache.resolve(world.db, token) == Principal(ana["id"], "ana", ("annotator",))
    assert cache.get(token) is not None
    now[0] = expires
    assert cache.get(token) is None and cache.resolve(world.db, token) is None

    off = TokenCache(0.0)
    headers = world.login("ana")
    use_cache(world, off)
    assert world.client.get("/api/me", headers=headers).status_code == 200
    assert off.get(headers["Authorization"].split()[1]) is None
    with pytest.raises(ValueError, match=">= 0"):
        TokenCache(-1.0)
