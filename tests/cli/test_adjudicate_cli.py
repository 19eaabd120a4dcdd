"""``labelgate review adjudicate``: keep / drop or take version a / b, with a reason.

One blind double item where bo missed an object ana drew: one dispute. Taking the version
that holds the object keeps it (the export then has every object again), and the reason and
reason code land in the adjudication's decision and its hashed audit event; a choice without
a reason, or both ``--keep`` and ``--choice``, is refused with exit 2 and changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from test_program_cli import init_program, renamed, write

from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.store.db import Database
from labelgate.store.models import AdjudicationRow, AuditEventRow
from labelgate.workflow.program import Program


def _one_dispute(db: Database, tmp_path: Path) -> tuple[Any, Dataset, dict[str, Any]]:
    sh = init_program(db, tmp_path, double_annotation_rate=1.0, honeypot_rate=0.0)
    sh("user", "add", "rita", "--role", "reviewer")
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    gold_file = write(gold, tmp_path / "gold.json")
    sh("import", gold_file, "--gold")
    for user in ("ana", "bo"):
        assert sh("qualify", user, gold_file)[0] == 0
    work = renamed(generate_dataset(5, seed=3), "w", 1)
    work_file = write(work, tmp_path / "w.json")
    sh("import", work_file)
    sh("batch", "create", "b")
    for _ in range(2):
        sh("batch", "advance", "b")
    sh("assign", "b")
    keep = np.ones(len(work.annotations), dtype=bool)
    keep[0] = False  # bo misses the first object of image 1
    bo = write(Dataset(work.annotations[keep], work.images, work.taxonomy), tmp_path / "bo.json")
    assert sh("task", "save", work_file, "--submit", user="ana")[0] == 0
    assert sh("task", "save", bo, "--submit", user="bo")[0] == 0
    for _ in range(2):
        assert sh("batch", "advance", "b")[0] == 0
    code, disputes, _ = sh("review", "disputes", "b")
    assert code == 0 and len(disputes["disputes"]) == 1
    return sh, work, disputes["disputes"][0]


def test_a_choice_with_a_reason_keeps_the_version_and_audits_the_reason(
    db: Database, tmp_path: Path
) -> None:
    sh, work, dispute = _one_dispute(db, tmp_path)
    dispute_id = str(dispute["id"])
    program = Program(db, "street-scenes")
    case = program.adjudication_case(dispute["id"], actor="maria")
    # the version that holds the missed object (ana's, whichever blind task is hers)
    holder = "a" if case["versions"]["a"] else "b"
    assert case["versions"][holder] and not case["versions"]["b" if holder == "a" else "a"]

    # refused, nothing decided: a choice without a reason; both verdicts; neither; a bad letter
    for args, message in [
        (("--choice", holder), "needs a reason"),
        (("--keep", "--choice", holder, "--reason", "x"), "one of them"),
        (("--reason", "x"), "one of them"),
        (("--choice", "c", "--reason", "x"), "must be a or b"),
        (("--choice", holder, "--reason-code", "nope"), "unknown reason_code"),
    ]:
        code, out, _ = sh("review", "adjudicate", dispute_id, *args)
        assert code == 2 and message in out["error"], (args, out)
    assert len(sh("review", "disputes", "b")[1]["disputes"]) == 1

    reason = "object visible at the left edge"
    code, out, _ = sh(
        "review", "adjudicate", dispute_id, "--choice", holder.upper(),
        "--reason", reason, "--reason-code", "object_present",
    )  # fmt: skip
    assert code == 0, out
    assert (out["choice"], out["reason"], out["reason_code"]) == (holder, reason, "object_present")
    assert out["resolved"] == out["kept"] == [dispute["id"]] and out["keep"] is None
    assert sh("review", "disputes", "b")[1]["disputes"] == []
    with db.session() as s:
        row = s.get(AdjudicationRow, dispute["id"])
        assert row is not None and row.status == "resolved"
        decision = dict(row.decision)
        event = s.execute(
            select(AuditEventRow).where(
                AuditEventRow.action == "adjudication.decide",
                AuditEventRow.entity_id == str(dispute["id"]),
            )
        ).scalar_one()
    assert decision == {
        "keep": True,
        "choice": holder,
        "reason": reason,
        "reason_code": "object_present",
        "group": [dispute["id"]],
    }
    details = json.loads(event.details)
    assert (details["reason"], details["reason_code"], details["choice"]) == (
        reason,
        "object_present",
        holder,
    )
    # the kept object is back: the accepted batch exports every object
    code, passed, _ = sh("batch", "advance", "b")
    assert code == 0 and passed["passed"], passed
    code, exported, _ = sh("export", "b", "--all", "--out", str(tmp_path / "all.json"))
    assert (code, exported["annotations"]) == (0, len(work.annotations))


def test_keep_and_drop_take_a_reason_too(db: Database, tmp_path: Path) -> None:
    sh, _, dispute = _one_dispute(db, tmp_path)
    code, out, _ = sh("review", "adjudicate", str(dispute["id"]), "--drop", "--reason", "blur")
    assert code == 0 and (out["keep"], out["reason"], out["kept"]) == (False, "blur", [])
    with db.session() as s:
        row = s.get(AdjudicationRow, dispute["id"])
        assert row is not None and row.decision["reason"] == "blur" and not row.decision["keep"]
