"""The program CLI end to end, on SQLite and PostgreSQL, from generated COCO files.

A whole program runs through the shell commands only: init -> users -> import (images,
gold, honeypots) -> qualify (one annotator fails) -> batch create/advance -> assign ->
annotators save and submit from files -> review from a decisions CSV -> a QA gate that
blocks -> targeted rework -> release -> export of exactly the truth -> audit verify. Then
the exit codes: 2 for bad input and refused requests, 1 for failed gates and checks.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.cli.program import refusals
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.sampling import hypergeometric_upper
from labelgate.errors import ConflictError, GateFailed, PermissionDenied
from labelgate.formats.coco import read_coco, write_coco
from labelgate.store.db import Database

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LABELGATE_DB", "LABELGATE_USER", "LABELGATE_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """Invoke the CLI; the parsed JSON document when stdout holds one, else stdout."""
    result = runner.invoke(app, list(args), env=env)
    out = result.stdout
    try:
        document = json.loads(out)
    except ValueError:
        document = out
    return result.exit_code, document, result.stderr


GATE_KEYS = ("max_rework_cycles", "qa_unit")


def spec_text(**changes: object) -> str:
    """examples/spec.toml with the [assignment] (and some [gates] keys) of a test."""
    text = (REPO / "examples" / "spec.toml").read_text()
    assignment = {
        "double_annotation_rate": 0.5,
        "gold_rate": 0.0,
        "honeypot_rate": 0.1,
        "rework_to": '"original"',
        "qualify_per": '["class"]',
    }
    gates = {k: changes.pop(k) for k in list(changes) if k in GATE_KEYS}
    values = assignment | changes
    block = "[assignment]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    for key, value in gates.items():
        text, found = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        if not found:
            text = text.replace("[gates]\n", f"[gates]\n{key} = {value}\n", 1)
    return text


def renamed(data: Dataset, prefix: str, first_id: int) -> Dataset:
    """The same data set under other file names and image ids (gold vs production)."""
    ids = np.arange(first_id, first_id + len(data.images))
    position = data.images.index_of(data.annotations.image_id)
    images = data.images.replace(
        id=ids, file_name=np.array([f"{prefix}/{i}.jpg" for i in ids], dtype=object)
    )
    return Dataset(data.annotations.replace(image_id=ids[position]), images, data.taxonomy)


def write(data: Dataset, path: Path) -> str:
    write_coco(data, path)
    return str(path)


def truth_count(data: Dataset, image_id: int) -> int:
    return int((data.annotations.image_id == image_id).sum())


class Shell:
    """The CLI against one database, as one acting user at a time."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, user: str = "maria") -> tuple[int, Any, str]:
        return run(*args, "--json", env={"LABELGATE_DB": self.url, "LABELGATE_USER": user})


def test_whole_program_through_the_cli(empty_db: Database, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    # QA by image: an exact hypergeometric bound over the lot, checkable by hand below
    spec.write_text(spec_text(qa_unit='"image"'))
    code, init, _ = run(
        "init", str(tmp_path / "prog"), "--spec", str(spec), "--db", empty_db.url,
        "--admin", "maria", "--json",
    )  # fmt: skip
    assert code == 0, init
    assert list(init) == [
        "project", "directory", "database", "schema_revision", "spec_version", "spec_digest",
        "admin", "annotators", "env",
    ]  # fmt: skip
    assert (init["project"], init["admin"], init["spec_version"]) == ("street-scenes", "maria", 1)
    assert init["annotators"] == ["ana", "bo", "chen", "dee", "eve", "farid"]
    assert init["env"]["LABELGATE_USER"] == "maria"
    sh = Shell(empty_db.url)
    assert sh("user", "add", "rita", "--role", "reviewer")[1]["roles_added"] == ["reviewer"]

    gold = renamed(generate_dataset(25, seed=11), "gold", 10_000)
    honeypots = renamed(generate_dataset(10, seed=12), "honeypot", 20_000)
    work = renamed(generate_dataset(40, seed=13), "work", 1)
    gold_file = write(gold, tmp_path / "gold.json")
    honeypot_file = write(honeypots, tmp_path / "honeypots.json")
    work_file = write(work, tmp_path / "work.json")
    code, imported, _ = sh("import", work_file)
    assert code == 0, imported
    assert (imported["purpose"], imported["images"], imported["annotations"]) == ("images", 40, 0)
    assert imported["ignored_annotations"] == len(work.annotations)
    assert sh("import", gold_file, "--gold")[1]["images"] == 25
    code, hp, _ = sh("import", honeypot_file, "--honeypot")
    assert (code, hp["images"], hp["annotations"]) == (0, 10, len(honeypots.annotations))

    # --- pilot: ana and bo hand in the gold answers, chen half of them
    for user in ("ana", "bo"):
        code, result, _ = sh("qualify", user, gold_file)
        assert (code, result["passed"], result["score"]) == (0, True, 1.0)
    sloppy = gold.annotations[np.arange(len(gold.annotations)) % 2 == 0]
    chen_file = write(Dataset(sloppy, gold.images, gold.taxonomy), tmp_path / "chen.json")
    code, chen, _ = sh("qualify", "chen", chen_file)
    assert (code, chen["passed"]) == (1, False)
    kept = len(sloppy)
    assert chen["score"] == pytest.approx(2 * kept / (len(gold.annotations) + kept))
    assert chen["failed_cells"] and set(chen["failed_cells"]) <= set(chen["cells"])

    code, created, _ = sh("batch", "create", "b1")
    assert (code, created["images"], created["stage"]) == (0, 40, "spec")
    code, advanced, _ = sh("batch", "advance", "b1")
    assert (code, advanced["stage"], advanced["gate"], advanced["stage_now"]) == (
        0, "spec", "edge_case_rules", "pilot",
    )  # fmt: skip
    code, pilot, _ = sh("batch", "advance", "b1")
    assert (code, pilot["value"], pilot["threshold"], pilot["passed"]) == (0, 2.0, 2.0, True)
    assert pilot["inputs"]["failed"] == ["chen"]

    # --- production: blind doubles and honeypots; annotators save from files
    code, assigned, _ = sh("assign", "b1", "--seed", "5")
    assert code == 0 and assigned["tasks"]["honeypot"] >= 2
    assert assigned["total"] == sum(assigned["tasks"].values())
    assert sh("task", "list", user="chen")[1]["tasks"] == []
    mine = {u: sh("task", "list", user=u)[1]["tasks"] for u in ("ana", "bo")}
    assert "purpose" not in mine["ana"][0]
    work_images = {u: {t["image_id"] for t in mine[u] if t["image_id"] < 10_000} for u in mine}
    shared = work_images["ana"] & work_images["bo"]
    only_ana = sorted(work_images["ana"] - shared)
    missed = [i for i in only_ana if truth_count(work, i) >= 2][:3]
    assert len(missed) == 3
    # ana drops the first object of three images only she labels
    first_of = {i: int(np.flatnonzero(work.annotations.image_id == i)[0]) for i in missed}
    keep = np.ones(len(work.annotations), dtype=bool)
    keep[list(first_of.values())] = False
    ana_file = write(
        Dataset(work.annotations[keep], work.images, work.taxonomy), tmp_path / "ana.json"
    )
    for user, files in (("ana", (ana_file, honeypot_file)), ("bo", (work_file, honeypot_file))):
        for path in files:
            code, saved, _ = sh("task", "save", path, "--submit", user=user)
            assert code == 0, saved
    code, waiting, _ = sh("task", "list", "--status", "assigned", user="ana")
    assert waiting["tasks"] == []

    code, production, _ = sh("batch", "advance", "b1")
    assert (code, production["passed"], production["inputs"]["honeypots"]) == (
        0, True, {"ana": 1.0, "bo": 1.0},
    )  # fmt: skip
    assert sh("batch", "advance", "b1")[1]["gate"] == "unreviewed_prelabels"
    code, review_wait, _ = sh("batch", "advance", "b1")
    assert (code, review_wait["outcome"]) == (1, "waiting")

    # --- review: rita accepts everything (she misses ana's omissions)
    template = tmp_path / "decisions.csv"
    code, queue, _ = sh("review", "queue", "b1", "--template", str(template), user="rita")
    assert code == 0, queue
    assert len(queue["tasks"]) == 40 - len(shared)
    queued_images = {t["image_id"] for t in queue["tasks"]} - {None}  # None: no objects
    assert queued_images <= set(only_ana) | (work_images["bo"] - shared)
    rows = list(csv.DictReader(template.open()))
    assert len(rows) == sum(max(1, len(t["objects"])) for t in queue["tasks"])
    code, reviewed, _ = sh("review", "b1", "--decisions", str(template), user="rita")
    assert (code, reviewed["tasks"], reviewed["rejected"], reviewed["queue_left"]) == (
        0, len(queue["tasks"]), 0, 0,
    )  # fmt: skip
    code, again, _ = sh("review", "b1", "--decisions", str(template), user="rita")
    assert (code, again["tasks"], len(again["skipped"])) == (0, 0, len(queue["tasks"]))
    header_only = tmp_path / "empty.csv"
    header_only.write_text("task_id,object_key,verdict,defect_type\n")
    code, nothing, _ = sh("review", "b1", "--decisions", str(header_only), user="rita")
    assert (code, nothing["tasks"], nothing["skipped"]) == (0, 0, [])
    assert sh("batch", "advance", "b1")[1]["passed"] is True

    # --- QA: the inspector reports each sampled item's missing objects
    def inspect(name: str) -> set[int]:
        code, sample, _ = sh("review", "qa-queue", "b1", user="rita")
        assert code == 0, sample
        found, lines = set(), ["task_id,object_key,defect_type"]
        for task in sample["tasks"]:
            image = task["image_id"]
            gap = truth_count(work, image) - len(task["objects"]) if image is not None else 0
            lines += [f"{task['task_id']},-1,missing"] * gap or [f"{task['task_id']},,"]
            if gap:
                found.add(image)
        findings = tmp_path / name
        findings.write_text("\n".join(lines) + "\n")
        code, inspected, _ = sh("review", "qa", "b1", "--findings", str(findings), user="rita")
        assert (code, inspected["inspected"], inspected["defective_items"]) == (
            0, len(sample["tasks"]), len(found),
        )  # fmt: skip
        return found

    found = inspect("qa1.csv")
    assert found == set(missed)  # this seed's sample of 38 holds all three
    code, qa, _ = sh("batch", "advance", "b1")
    assert (code, qa["passed"], qa["outcome"], qa["inputs"]["decision"]) == (
        1, False, "rework", "block",
    )  # fmt: skip
    assert qa["value"] == pytest.approx(hypergeometric_upper(3, 38, 40, 0.95))
    code, status, _ = sh("batch", "status", "b1")
    assert (status["stage"], status["rework_cycle"], status["items"]["rework"]) == (
        "production", 1, 3,
    )  # fmt: skip
    assert [g["outcome"] for g in status["gates"]][-1] == "rework"

    # --- targeted rework: exactly the defective items, back to ana, who fixes them
    code, rework, _ = sh("task", "list", "--status", "assigned", user="ana")
    assert sorted(t["image_id"] for t in rework["tasks"]) == sorted(missed)
    code, fixed, _ = sh("task", "save", work_file, "--submit", user="ana")
    assert (code, len(fixed["saved"]), fixed["untouched"]) == (0, 3, 0)
    for expected in (0, 0, 1):  # production, prelabel, review waits for rita
        assert sh("batch", "advance", "b1")[0] == expected
    template.unlink()
    sh("review", "queue", "b1", "--template", str(template), user="rita")
    assert sh("review", "b1", "--decisions", str(template), user="rita")[1]["tasks"] == 3
    assert sh("batch", "advance", "b1")[0] == 0
    assert inspect("qa2.csv") == set()
    code, released, _ = sh("batch", "advance", "b1")
    assert (code, released["value"], released["cycle"], released["stage_now"]) == (
        0, 0.0, 1, "delivery",
    )  # fmt: skip
    assert sh("batch", "advance", "b1")[1]["stage_now"] == "delivered"
    code, refused, _ = sh("batch", "advance", "b1")
    assert code == 2 and "delivered" in refused["error"]

    # --- delivery: exactly the truth, with provenance
    out = tmp_path / "delivered.json"
    code, exported, _ = sh("export", "b1", "--out", str(out))
    assert code == 0, exported
    assert (exported["images"], exported["annotations"], exported["accepted_only"]) == (
        40, len(work.annotations), True,
    )  # fmt: skip
    assert exported["provenance"]["rework_cycles"] == 1
    assert exported["provenance"]["spec_digest"] == init["spec_digest"]
    delivered = read_coco(out).annotations
    got = np.lexsort((delivered.bbox[:, 0], delivered.image_id))
    want = np.lexsort((work.annotations.bbox[:, 0], work.annotations.image_id))
    np.testing.assert_array_equal(delivered.image_id[got], work.annotations.image_id[want])
    np.testing.assert_allclose(delivered.bbox[got], work.annotations.bbox[want], atol=1e-6)
    assert sh("export", "b1", "--out", str(out))[0] == 2  # refuses to overwrite
    code, verified, _ = run("audit", "verify", "--db", empty_db.url, "--json")
    assert (code, verified["ok"]) == (0, True)


# --- exit codes ----------------------------------------------------------------------------


def init_program(db: Database, tmp_path: Path, **changes: object) -> Shell:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(**changes))
    code, out, _ = run(
        "init", str(tmp_path / "p"), "--spec", str(spec), "--db", db.url, "--admin", "maria"
    )
    assert code == 0, out
    return Shell(db.url)


def test_init_defaults_to_a_database_in_the_folder_and_says_what_to_export(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    code, out, _ = run("init", str(tmp_path / "prog"), "--spec", str(spec))
    assert code == 0, out
    database = tmp_path / "prog" / "labelgate.db"
    assert database.is_file()
    assert f"export LABELGATE_DB={database}" in out and "export LABELGATE_USER=admin" in out
    code, again, _ = run("init", str(tmp_path / "prog"), "--spec", str(spec), "--json")
    assert code == 2 and "already exists" in again["error"]
    env = {"LABELGATE_DB": str(database), "LABELGATE_USER": "admin"}
    code, created, _ = run("user", "add", "rita", "--role", "reviewer", "--json", env=env)
    assert (code, created["user"]) == (0, "rita")


def test_invalid_spec_exits_2_listing_every_problem(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    text = spec_text().replace("defect_limit = 0.02", "defect_limit = 2.0")
    spec.write_text(
        text.replace('tier = "tight"\niou_threshold = 0.85', 'tier = "tight"\niou_threshold = 0.3')
    )
    code, out, _ = run("init", str(tmp_path / "p"), "--spec", str(spec), "--json")
    assert code == 2
    locations = [p["location"] for p in out["problems"]]
    assert "gates.defect_limit" in locations
    assert any(loc.startswith("classes[2]") for loc in locations)
    assert not (tmp_path / "p" / "labelgate.db").exists()
    code, _, err = run("init", str(tmp_path / "p"), "--spec", str(spec))
    assert code == 2 and "invalid spec" in err and "gates.defect_limit" in err


def test_unknown_or_missing_user_exits_2(db: Database, tmp_path: Path) -> None:
    sh = init_program(db, tmp_path)
    code, out, _ = sh("batch", "create", "b", user="mallory")
    assert (code, out["type"]) == (2, "PermissionDenied")
    assert "unknown or inactive user 'mallory'" in out["error"]
    code, out, _ = sh("user", "add", "z", "--role", "reviewer", user="ana")  # not a manager
    assert code == 2 and "needs one of" in out["error"]
    code, out, _ = run("batch", "create", "b", "--db", db.url, "--json")
    assert code == 2 and "--as USER" in out["error"]
    code, out, _ = sh("batch", "status", "nope")
    assert code == 2 and "no batch 'nope'" in out["error"]


def test_failed_qualification_exits_1_and_a_failing_gate_exits_1(
    db: Database, tmp_path: Path
) -> None:
    sh = init_program(db, tmp_path)
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    assert sh("import", write(gold, tmp_path / "gold.json"), "--gold")[0] == 0
    empty = Dataset(gold.annotations[:0], gold.images, gold.taxonomy)
    code, out, _ = sh("qualify", "ana", write(empty, tmp_path / "none.json"))
    assert (code, out["passed"], out["score"]) == (1, False, 0.0)
    work = renamed(generate_dataset(3, seed=1), "w", 1)
    sh("import", write(work, tmp_path / "w.json"))
    images = tmp_path / "ids.txt"
    images.write_text("1, 2  # the third image waits\n")
    code, created, _ = sh("batch", "create", "b", "--images", str(images))
    assert (code, created["images"]) == (0, 2)
    assert sh("batch", "advance", "b")[0] == 0  # spec
    code, pilot, _ = sh("batch", "advance", "b")  # nobody qualified
    assert (code, pilot["passed"], pilot["outcome"], pilot["value"]) == (1, False, "waiting", 0.0)
    code, out, _ = sh("assign", "b")
    assert code == 2 and "assigned in production" in out["error"]
    code, out, _ = sh("export", "b", "--out", str(tmp_path / "x.json"))
    assert code == 2 and "only delivered batches" in out["error"]
    assert not (tmp_path / "x.json").exists()
    code, out, _ = sh("export", "b", "--all", "--out", str(tmp_path / "x.json"))
    assert (code, out["images"], out["annotations"], out["accepted_only"]) == (0, 2, 0, False)
    images.write_text("1\nseven\n")
    code, out, _ = sh("batch", "create", "c", "--images", str(images))
    assert (code, out["record"]) == (2, "line 2")


def test_a_blocked_batch_exits_1_with_gate_failed(db: Database, tmp_path: Path) -> None:
    sh = init_program(
        db, tmp_path, double_annotation_rate=0.0, honeypot_rate=0.0, max_rework_cycles=0
    )
    sh("user", "add", "rita", "--role", "reviewer")
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    gold_file = write(gold, tmp_path / "gold.json")
    sh("import", gold_file, "--gold")
    assert sh("qualify", "ana", gold_file)[0] == 0
    work = renamed(generate_dataset(2, seed=3), "w", 1)
    work_file = write(work, tmp_path / "w.json")
    sh("import", work_file)
    sh("batch", "create", "b")
    for _ in range(2):
        sh("batch", "advance", "b")
    sh("assign", "b")
    assert sh("task", "save", work_file, "--submit", user="ana")[0] == 0
    for _ in range(2):
        assert sh("batch", "advance", "b")[0] == 0
    code, queue, _ = sh("review", "queue", "b", user="rita")
    first = queue["tasks"][0]
    decisions = tmp_path / "d.csv"
    decisions.write_text(
        "task_id,object_key,verdict,defect_type\n"
        + "".join(
            f"{t['task_id']},{o['key']},reject,loose_geometry\n"
            for t in queue["tasks"]
            for o in t["objects"]
        )
    )
    code, reviewed, _ = sh("review", "b", "--decisions", str(decisions), user="rita")
    assert (code, reviewed["rejected"]) == (0, sum(len(t["objects"]) for t in queue["tasks"]))
    assert first["objects"]
    code, blocked, _ = sh("batch", "advance", "b")
    assert (code, blocked["outcome"], blocked["passed"]) == (1, "blocked", False)
    code, out, _ = sh("batch", "advance", "b")
    assert (code, out["type"]) == (1, "GateFailed")
    assert "blocked after 0 rework cycles" in out["error"]


def test_bad_decisions_files_exit_2_naming_the_line(db: Database, tmp_path: Path) -> None:
    sh = init_program(db, tmp_path)
    cases = {
        "task_id,verdict\n1,accept\n": "missing column(s) object_key",
        "task_id,object_key,verdict,defect_type\n1,3,maybe,\n": "expected accept or reject",
        "task_id,object_key,verdict,defect_type\n1,3,reject,ugly\n": "defect type",
        "task_id,object_key,verdict,defect_type\n1,,reject,missing\n": "names an object key",
        "task_id,object_key,verdict,defect_type\nx,1,accept,\n": "expected an integer",
    }
    for text, message in cases.items():
        path = tmp_path / "d.csv"
        path.write_text(text)
        code, out, _ = sh("review", "b", "--decisions", str(path), user="maria")
        assert code == 2, text
        assert message in out["error"], (text, out)
    # `review queue` is a subcommand, `review BATCH` decides
    code, out, _ = sh("review", "queue", "nope", user="maria")
    assert code == 2 and "no batch 'nope'" in out["error"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GateFailed("blocked"), 1),
        (ConflictError("stale", current_revision_id=7), 1),
        (PermissionDenied("no"), 2),
        (OSError("disk"), 2),
    ],
    ids=["gate-failed", "conflict", "permission", "os-error"],
)
def test_service_errors_map_to_exit_codes(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    with pytest.raises(typer.Exit) as caught, refusals("sqlite://", as_json=True):
        raise error
    assert caught.value.exit_code == code
    document = json.loads(capsys.readouterr().out)
    assert document["type"] == type(error).__name__
    if isinstance(error, ConflictError):
        assert document["current_revision_id"] == 7


def test_a_missing_database_or_url_exits_2_pointing_at_init(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    code, out, _ = run("batch", "status", "b", "--db", str(missing), "--json")
    assert code == 2 and "labelgate init" in out["error"]
    assert not missing.exists()  # a command that finds nothing leaves nothing behind
    code, out, _ = run("batch", "status", "b", "--db", "://", "--json")
    assert code == 2 and "not a database URL" in out["error"]
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text())
    code, out, _ = run("init", str(tmp_path / "x"), "--spec", str(spec), "--db", "://", "--json")
    assert code == 2 and not (tmp_path / "x").exists()


def test_disputes_of_blind_doubles_are_listed_and_adjudicated(db: Database, tmp_path: Path) -> None:
    sh = init_program(db, tmp_path, double_annotation_rate=1.0, honeypot_rate=0.0)
    sh("user", "add", "rita", "--role", "reviewer")  # QA samples need an inspector
    gold = renamed(generate_dataset(12, seed=2), "gold", 500)
    gold_file = write(gold, tmp_path / "gold.json")
    sh("import", gold_file, "--gold")
    for user in ("ana", "bo"):
        assert sh("qualify", user, gold_file)[0] == 0
    work = renamed(generate_dataset(5, seed=3), "w", 1)
    assert len(work.annotations) > 50
    work_file = write(work, tmp_path / "w.json")
    sh("import", work_file)
    sh("batch", "create", "b")
    for _ in range(2):
        sh("batch", "advance", "b")
    sh("assign", "b")
    keep = np.ones(len(work.annotations), dtype=bool)
    keep[0] = False  # bo misses the first object of image 1
    bo_file = write(
        Dataset(work.annotations[keep], work.images, work.taxonomy), tmp_path / "bo.json"
    )
    assert sh("task", "save", work_file, "--submit", user="ana")[0] == 0
    assert sh("task", "save", bo_file, "--submit", user="bo")[0] == 0
    for _ in range(2):
        assert sh("batch", "advance", "b")[0] == 0
    code, waiting, _ = sh("batch", "advance", "b")
    assert (code, waiting["outcome"], waiting["inputs"]["open_adjudications"]) == (1, "waiting", 1)
    code, disputes, _ = sh("review", "disputes", "b")
    assert code == 0 and len(disputes["disputes"]) == 1
    dispute = disputes["disputes"][0]
    assert dispute["class"] == work.taxonomy.by_id(int(work.annotations.class_id[0])).name
    np.testing.assert_allclose(dispute["payload"]["bbox"], work.annotations.bbox[0])
    code, decided, _ = sh("review", "adjudicate", str(dispute["id"]), "--keep")
    assert (code, decided["decided"], decided["keep"]) == (0, [dispute["id"]], True)
    assert sh("review", "disputes", "b")[1]["disputes"] == []
    code, passed, _ = sh("batch", "advance", "b")  # 1 disputed object in > 50: accurate enough
    assert code == 0 and passed["passed"], passed
    code, exported, _ = sh("export", "b", "--all", "--out", str(tmp_path / "all.json"))
    assert (code, exported["annotations"]) == (0, len(work.annotations))
    code, out, _ = sh("review", "adjudicate", str(dispute["id"]), "--drop")
    assert code == 2 and "no open adjudication" in out["error"]


def test_project_names_the_project_when_a_database_holds_two(db: Database, tmp_path: Path) -> None:
    sh = init_program(db, tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(spec_text().replace('name = "street-scenes"', 'name = "harbour"', 1))
    code, out, _ = run("init", str(tmp_path / "o"), "--spec", str(other), "--db", db.url, "--json")
    assert (code, out["project"]) == (0, "harbour")
    code, out, _ = sh("batch", "status", "b")
    assert code == 2 and "2 projects" in out["error"] and "name one" in out["error"]
    work = renamed(generate_dataset(2, seed=1), "w", 1)
    code, out, _ = sh("import", write(work, tmp_path / "w.json"), "--project", "harbour")
    assert (code, out["project"], out["images"]) == (0, "harbour", 2)
    code, out, _ = sh("batch", "create", "b", "--project", "street-scenes")
    assert code == 2 and "at least one image" in out["error"]
