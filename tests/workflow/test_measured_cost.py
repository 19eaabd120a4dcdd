"""A simulated program priced from its work log: hours, attribute errors, report and CLI.

The simulated annotators take a log-normal time per object (median ``seconds_per_object``,
sigma ``speed_sigma``), so the hours the work log holds for first-pass annotation have a
known expectation given the objects saved: ``objects x median x exp(sigma^2 / 2)``, and a
known variance, ``objects x median^2 x exp(sigma^2) (exp(sigma^2) - 1)``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.dataset import Dataset
from labelgate.core.simulate import AnnotatorProfile, find_defects
from labelgate.reports.program_report import build_report
from labelgate.spec import parse_spec
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database
from labelgate.store.models import DefectRow, TaskRow, UserRow, WorkLogRow
from labelgate.store.repository import image_table
from labelgate.workflow.costing import price_program
from labelgate.workflow.simulation import SimulationConfig, SimulationResult, run_simulation

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()
SIGMA = 0.5
PROFILES = (
    AnnotatorProfile("eve", "expert", seconds_per_object=9.0, speed_sigma=SIGMA),
    AnnotatorProfile("farid", "managed", seconds_per_object=7.0, speed_sigma=SIGMA),
    AnnotatorProfile("gus", "managed", seconds_per_object=5.0, speed_sigma=SIGMA,
                     attribute_error_rate=0.05),
)  # fmt: skip


def _single_review_spec() -> str:
    """The example spec with every item annotated once, so review sees the first pass."""
    text, n = re.subn(r"(?m)^double_annotation_rate = .*$", "double_annotation_rate = 0.0", SPEC)
    assert n == 1
    return text.replace("box = 0.08", "box = 0.08\nannotator_hourly_usd = 30.0")


@pytest.fixture
def simulated(db: Database) -> tuple[Database, SimulationResult]:
    config = SimulationConfig(
        images=60,
        batches=1,
        gold_images=20,
        honeypot_images=10,
        annotators=PROFILES,
        reviewer_catch_rate=1.0,
        seed=3,
    )
    result = run_simulation(db, _single_review_spec(), config)
    assert result.program.batch_status(result.batches[0])["stage"] == "delivered"
    return db, result


@pytest.mark.slow
def test_measured_hours_match_the_profiles_and_the_cost_adds_up(
    simulated: tuple[Database, SimulationResult],
) -> None:
    db, _ = simulated
    spec = parse_spec(_single_review_spec())
    with db.session() as s:
        log = s.execute(
            select(WorkLogRow, UserRow.name, UserRow.cohort, TaskRow.purpose)
            .join(UserRow, UserRow.id == WorkLogRow.user_id)
            .outerjoin(TaskRow, TaskRow.id == WorkLogRow.task_id)
            .order_by(WorkLogRow.id)
        ).all()
        saved_tasks = s.execute(
            select(TaskRow.id).where(
                TaskRow.purpose.in_(("production", "gold", "honeypot")),
                TaskRow.head_revision_id.is_not(None),
            )
        ).scalars()
        saved = set(saved_tasks)
    # every first-pass save and every check logged its time
    annotate = [r for r in log if r[0].activity == "annotate"]
    assert {r[0].task_id for r in annotate} == saved
    assert {r[0].activity for r in log} >= {"annotate", "review", "qa"}

    # hours per annotator: objects x median x exp(sigma^2 / 2), within 4 sd
    seconds: dict[str, float] = defaultdict(float)
    objects: dict[str, int] = defaultdict(int)
    for row, name, _, _ in annotate:
        seconds[name] += row.seconds
        objects[name] += row.objects
    for profile in PROFILES:
        k = objects[profile.name]
        median = profile.seconds_after(0)
        expected = k * median * math.exp(SIGMA**2 / 2)
        sd = math.sqrt(k * median**2 * math.exp(SIGMA**2) * (math.exp(SIGMA**2) - 1))
        assert k > 200, (profile.name, k)
        assert abs(seconds[profile.name] - expected) < 4 * sd, (profile.name, seconds, expected)

    # the priced cost: hours x rate x the person's multiple, summed by hand
    priced = price_program(db)
    measured = priced["measured"]
    direct = sum(
        r.seconds / 3600 * 30.0 * spec.price_multiple(name, cohort)
        for r, name, cohort, _ in log
        if r.activity == "annotate" and r.cycle == 0
    )
    assert measured["direct_usd"] == pytest.approx(direct, rel=1e-9)
    assert measured["annotator_hourly_usd"] == 30.0 and measured["review_hourly_usd"] == 36.0
    everything = sum(
        r.seconds
        / 3600
        * (30.0 if r.activity in ("annotate", "rework") else 36.0)
        * spec.price_multiple(name, cohort)
        for r, name, cohort, _ in log
    )
    parts = measured["direct_usd"] + measured["qa_review_usd"] + measured["rework_usd"]
    assert parts == pytest.approx(everything, rel=1e-9)
    assert measured["downstream_usd"] == pytest.approx(priced["model"]["downstream_usd"])
    assert measured["ratio_to_model"] == pytest.approx(
        measured["total_usd"] / priced["model"]["total_usd"]
    )

    # report.json: the existing cost keys stay, measured is the same document
    report = build_report(db)
    cost = report["cost"]
    assert set(cost) >= {
        "units", "unit_price_usd", "measured_defect_rate", "measured_rework_defect_rate",
        "reworked_objects", "actual_rework_usd", "model", "cohorts", "measured",
    }  # fmt: skip
    assert cost["measured"] == measured
    assert {k: cost[k] for k in ("units", "model")} == {k: priced[k] for k in ("units", "model")}


@pytest.mark.slow
def test_review_catches_attribute_errors_of_the_first_pass(
    simulated: tuple[Database, SimulationResult],
) -> None:
    db, result = simulated
    truth = result.truth
    with db.session() as s:
        store_ids, images = image_table(s, result.program.project_id)
        heads = s.execute(
            select(TaskRow.head_revision_id, UserRow.name)
            .join(UserRow, UserRow.id == TaskRow.assignee_id)
            .where(TaskRow.purpose == "production", TaskRow.cycle == 0)
        ).all()
        recorded = Counter(
            s.execute(
                select(DefectRow.revision_id).where(
                    DefectRow.type == "attribute_error", DefectRow.found_by == "review"
                )
            ).scalars()
        )
        expected: Counter[int] = Counter()
        by_gus = 0
        for revision, name in heads:
            labels = load_annotations(s, [revision])
            labels = labels.replace(image_id=images.id[np.searchsorted(store_ids, labels.image_id)])
            image = labels.image_id[:1] if len(labels) else np.zeros(0, dtype=np.int64)
            keep = np.isin(truth.annotations.image_id, image)
            reference = Dataset(truth.annotations[keep], truth.images, truth.taxonomy)
            wrong = int((find_defects(reference, labels).label_defect == "attribute_error").sum())
            if wrong:
                expected[revision] = wrong
                by_gus += wrong if name == "gus" else 0
    # review (catch rate 1) rejected exactly the objects whose flags differ from the truth
    assert recorded == expected
    # gus gets 5 % of each flag wrong, the others their cohort's 0.15-0.4 %: most are his
    assert sum(expected.values()) >= 5 and by_gus > sum(expected.values()) / 2


@pytest.mark.slow
def test_cost_db_prints_the_stored_program(simulated: tuple[Database, SimulationResult]) -> None:
    db, _ = simulated
    url = db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["cost", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected = price_program(db)
    assert {k: v for k, v in document.items() if k != "database"} == expected
    assert document["measured"]["rework_cycles"] == expected["measured"]["rework_cycles"]
    table = CliRunner().invoke(app, ["cost", "--db", url])
    assert table.exit_code == 0 and "measured (hours)" in table.stdout
    both = CliRunner().invoke(app, ["cost", "--db", url, "--units", "5", "--json"])
    assert both.exit_code == 2 and "leave out --units" in json.loads(both.stdout)["error"]
    missing = CliRunner().invoke(app, ["cost", "--db", url, "--project", "nope", "--json"])
    assert missing.exit_code == 2 and "no project named 'nope'" in missing.stdout
