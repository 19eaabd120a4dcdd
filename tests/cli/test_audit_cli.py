from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.store.db import Database
from labelgate.workflow.audit import AUDIT_KEY_ENV, GENESIS_HASH, append_event

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def append(db: Database, n: int) -> list[int]:
    with db.session() as session:
        return [
            append_event(
                session, actor="ana", action="task.submit", entity_type="task", entity_id=i
            ).id
            for i in range(n)
        ]


def test_verify_json_reports_an_intact_chain(db: Database) -> None:
    append(db, 3)
    code, out, _ = run("audit", "verify", "--db", db.url, "--json")
    assert code == 0, out
    document = json.loads(out)
    assert list(document) == [
        "database",
        "ok",
        "events",
        "first_broken_id",
        "reason",
        "last_hash",
        "keyed",
        "seconds",
    ]
    assert (document["ok"], document["events"], document["first_broken_id"]) == (True, 3, None)
    assert document["keyed"] is False


def test_verify_exits_1_naming_the_first_broken_event(db: Database) -> None:
    ids = append(db, 4)
    with db.session() as session:
        session.execute(
            sa.text("UPDATE audit_events SET actor = 'mallory' WHERE id = :id"), {"id": ids[2]}
        )
    code, out, _ = run("audit", "verify", "--db", db.url, "--json")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["first_broken_id"] == ids[2]
    assert document["reason"] == f"event {ids[2]}: hash mismatch (row edited)"
    code, _, err = run("audit", "verify", "--db", db.url)
    assert code == 1
    assert f"event {ids[2]}: hash mismatch" in err


def test_verify_reads_the_key_from_the_environment(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUDIT_KEY_ENV, "secret")
    append(db, 2)
    code, out, _ = run("audit", "verify", "--db", db.url, "--json")
    assert (code, json.loads(out)["keyed"]) == (0, True)
    monkeypatch.setenv(AUDIT_KEY_ENV, "other")
    code, out, _ = run("audit", "verify", "--db", db.url, "--json")
    assert code == 1
    assert "different HMAC key" in json.loads(out)["reason"]


@pytest.mark.parametrize("command", ["verify", "export"])
def test_missing_or_unmigrated_database_is_bad_input(
    tmp_path: Path, empty_db: Database, command: str
) -> None:
    extra = ["--out", str(tmp_path / "a.jsonl")] if command == "export" else []
    missing = tmp_path / "missing.db"
    code, out, _ = run("audit", command, "--db", str(missing), "--json", *extra)
    assert code == 2
    assert "no database at" in json.loads(out)["error"]
    assert not missing.exists()  # reading never creates a database
    empty_db.create_all()
    with empty_db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE audit_events")
    code, out, _ = run("audit", command, "--db", empty_db.url, "--json", *extra)
    assert code == 2
    assert "db upgrade" in json.loads(out)["error"]
    assert not (tmp_path / "a.jsonl").exists()


def test_unreachable_server_is_bad_input() -> None:
    code, out, _ = run("audit", "verify", "--db", "postgresql://u:pw@127.0.0.1:1/x", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert "127.0.0.1:1" in error
    assert "pw" not in error


def test_export_writes_jsonl_and_refuses_to_overwrite(db: Database, tmp_path: Path) -> None:
    ids = append(db, 3)
    out = tmp_path / "audit.jsonl"
    code, stdout, _ = run("audit", "export", "--db", db.url, "--out", str(out), "--json")
    assert code == 0, stdout
    document = json.loads(stdout)
    assert (document["events"], document["path"]) == (3, str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ids
    assert lines[0]["prev_hash"] == GENESIS_HASH
    assert [line["prev_hash"] for line in lines[1:]] == [line["hash"] for line in lines[:-1]]
    code, _, err = run("audit", "export", "--db", db.url, "--out", str(out))
    assert code == 2
    assert "--overwrite" in err
    append(db, 1)
    code, _, _ = run("audit", "export", "--db", db.url, "--out", str(out), "--overwrite")
    assert code == 0
    assert len(out.read_text().splitlines()) == 4


def test_db_option_defaults_to_the_environment(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(db, 1)
    monkeypatch.setenv("LABELGATE_DB", db.url)
    code, out, _ = run("audit", "verify", "--json")
    assert (code, json.loads(out)["events"]) == (0, 1)
