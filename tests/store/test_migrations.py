"""Migrations 0002 (api_tokens), 0003 (work log, pre-label decisions, logins, jobs) and
0004 (the redundant revisions index dropped).

From an empty database and from each earlier revision, the schema is the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from labelgate.store.db import Database, current_revision, head_revision, upgrade
from labelgate.store.models import Base


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_upgrade_from_empty_reaches_the_models_with_the_token_table(empty_db: Database) -> None:
    assert upgrade(empty_db) == head_revision(empty_db) == "0004"
    assert _differences(empty_db) == []
    assert sa.inspect(empty_db.engine).has_table("api_tokens")


def test_upgrade_from_0001_reaches_the_models_and_keeps_the_rows(empty_db: Database) -> None:
    assert upgrade(empty_db, "0001") == "0001"
    assert not sa.inspect(empty_db.engine).has_table("api_tokens")
    with empty_db.session() as s:
        s.execute(
            sa.text(
                "INSERT INTO users (name, display_name, roles, active, created_at)"
                " VALUES ('ana', 'ana', '[]', :t, :c)"
            ),
            {"t": True, "c": "2026-01-01 00:00:00"},
        )
    assert upgrade(empty_db) == "0004"
    assert _differences(empty_db) == []
    with empty_db.session() as s:
        assert s.execute(sa.text("SELECT name FROM users")).scalars().all() == ["ana"]


NEW_IN_0003 = ("work_log", "prelabel_decisions", "login_attempts", "jobs")


def test_upgrade_from_0002_adds_the_0003_tables(empty_db: Database) -> None:
    assert upgrade(empty_db, "0002") == "0002"
    inspector = sa.inspect(empty_db.engine)
    assert not any(inspector.has_table(t) for t in NEW_IN_0003)
    assert upgrade(empty_db) == "0004"
    assert _differences(empty_db) == []
    inspector = sa.inspect(empty_db.engine)
    assert all(inspector.has_table(t) for t in NEW_IN_0003)


def test_downgrade_to_0002_drops_only_the_0003_tables(empty_db: Database) -> None:
    from alembic import command

    from labelgate.store.db import _alembic_config

    upgrade(empty_db)
    command.downgrade(_alembic_config(empty_db), "0002")
    assert current_revision(empty_db) == "0002"
    inspector = sa.inspect(empty_db.engine)
    assert not any(inspector.has_table(t) for t in NEW_IN_0003)
    assert inspector.has_table("api_tokens")


def test_downgrade_to_0001_drops_only_the_token_table(empty_db: Database) -> None:
    from alembic import command

    from labelgate.store.db import _alembic_config

    upgrade(empty_db)
    command.downgrade(_alembic_config(empty_db), "0001")
    assert current_revision(empty_db) == "0001"
    inspector = sa.inspect(empty_db.engine)
    assert not inspector.has_table("api_tokens") and inspector.has_table("users")


def _revision_indexes(db: Database) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in sa.inspect(db.engine).get_indexes("revisions")}


def test_0004_drops_the_task_index_the_unique_index_covers(empty_db: Database) -> None:
    from alembic import command

    from labelgate.store.db import _alembic_config

    assert upgrade(empty_db, "0003") == "0003"
    assert _revision_indexes(empty_db)["ix_revisions_task_id"] == ["task_id"]
    assert upgrade(empty_db) == "0004"
    assert "ix_revisions_task_id" not in _revision_indexes(empty_db)
    assert _differences(empty_db) == []
    # a task's revisions are still found by an index: the unique one, task_id leading
    uniques = sa.inspect(empty_db.engine).get_unique_constraints("revisions")
    assert ["task_id", "number"] in [u["column_names"] for u in uniques]
    if empty_db.dialect == "sqlite":
        with empty_db.engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT max(number) FROM revisions WHERE task_id = 1"
                )
            )
        assert "USING COVERING INDEX" in plan and "task_id=?" in plan, plan
    command.downgrade(_alembic_config(empty_db), "0003")
    assert _revision_indexes(empty_db)["ix_revisions_task_id"] == ["task_id"]
