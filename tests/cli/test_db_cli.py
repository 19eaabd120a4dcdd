from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.store.db import Database, head_revision

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_upgrade_creates_the_schema_then_is_idempotent(empty_db: Database) -> None:
    head = head_revision(empty_db)
    code, out = run("db", "current", "--db", empty_db.url, "--json")
    if empty_db.dialect == "sqlite":  # the file does not exist yet
        assert code == 2
    else:
        assert code == 0
        assert json.loads(out)["current"] is None
    code, out = run("db", "upgrade", "--db", empty_db.url, "--json")
    assert code == 0, out
    document = json.loads(out)
    assert (document["from"], document["revision"]) == (None, head)
    assert empty_db.has_schema()
    code, out = run("db", "upgrade", "--db", empty_db.url, "--json")
    assert (code, json.loads(out)["from"], json.loads(out)["revision"]) == (0, head, head)
    code, out = run("db", "current", "--db", empty_db.url, "--json")
    assert code == 0
    assert json.loads(out) | {"database": None} == {
        "database": None,
        "current": head,
        "head": head,
        "up_to_date": True,
    }


def test_upgrade_prints_the_revision(tmp_path: Path) -> None:
    target = tmp_path / "new" / "program.db"
    code, out = run("db", "upgrade", "--db", str(target))
    assert code == 0
    from labelgate.store.db import Database, head_revision

    assert f"empty -> revision {head_revision(Database('sqlite://'))}" in out
    assert target.is_file()
    code, out = run("db", "current", "--db", str(target))
    assert code == 0
    assert "up to date" in out


@pytest.mark.parametrize("url", ["nosuchdialect://x", "postgresql://u@127.0.0.1:1/x", "://"])
def test_bad_url_or_unreachable_server_is_bad_input(url: str) -> None:
    code, out = run("db", "upgrade", "--db", url, "--json")
    assert code == 2
    assert json.loads(out)["error"]
