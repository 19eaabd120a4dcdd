"""A simulated program through the real workflow: gates consistent with the data they read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from labelgate.core.annotations import Source
from labelgate.core.compare import compare
from labelgate.core.generate import generate_dataset
from labelgate.core.sampling import clopper_pearson_upper
from labelgate.core.simulate import PRELABEL_TIME_FRACTION, PrelabelModel
from labelgate.store.db import Database
from labelgate.store.models import (
    GateResultRow,
    PrelabelDecisionRow,
    RevisionRow,
    TaskRow,
    UserRow,
    WorkLogRow,
)
from labelgate.workflow.prelabel import control_items
from labelgate.workflow.simulation import SimulationConfig, run_simulation
from labelgate.workflow.stages import Stage

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()


@pytest.mark.slow
def test_simulated_program_delivers_and_its_gates_match_the_database(db: Database) -> None:
    config = SimulationConfig(images=60, batches=1, gold_images=20, honeypot_images=10, seed=0)
    result = run_simulation(db, SPEC, config)

    # the crowd annotator never passes the pilot and never gets production work
    assert result.qualifications["ana"]["passed"] is False
    assert len(result.qualifications["ana"]["attempts"]) == config.pilot_attempts
    with db.session() as s:
        ana = s.execute(select(UserRow.id).where(UserRow.name == "ana")).scalar_one()
        purposes = s.execute(select(TaskRow.purpose).where(TaskRow.assignee_id == ana)).scalars()
        assert set(purposes) == {"pilot"}
        stored = s.execute(select(GateResultRow).where(GateResultRow.gate != "consensus")).scalars()
        recorded = [(g.stage, g.gate, g.value, g.passed) for g in stored]
        # pre-labels are off by default: every task starts from scratch
        sources = s.execute(select(RevisionRow.source).where(RevisionRow.number == 1)).scalars()
        assert int(Source.PRELABEL) not in set(sources)
    assert recorded == [(g["name"], g["gate"], g["value"], g["passed"]) for g in result.gates]

    status = result.program.batch_status(result.batches[0])
    assert status["stage"] == Stage.DELIVERED
    # every QA decision is the Clopper-Pearson bound of the counts it recorded
    for gate in result.gates:
        if gate["gate"] == "qa_defect_rate":
            inputs = gate["inputs"]
            bound = clopper_pearson_upper(inputs["defects"], inputs["sampled"], 0.95)
            assert gate["value"] == pytest.approx(bound, abs=1e-12)
            assert inputs["sampled"] >= 149 or inputs["sampled_images"] == inputs["lot_images"]
            assert gate["passed"] == (bound <= 0.02)

    # what was delivered is close to the truth (review, consensus and QA did their job)
    delivered = result.program.export(result.batches[0], actor="manager")
    truth = result.truth
    keep = np.isin(truth.annotations.image_id, delivered.images.id)
    from labelgate.core.dataset import Dataset

    reference = Dataset(truth.annotations[keep], delivered.images, truth.taxonomy)
    figures = compare(reference, delivered.annotations).overall
    assert figures["recall"] > 0.97 and figures["precision"] > 0.97

    # hidden gold and honeypot items were labelled like any other image (not left empty)
    from labelgate.reports.program_report import build_report

    people = build_report(db)["quality"]["per_annotator"]
    qualified = [p for p in people if p["qualification"]["passed"]]
    assert qualified and all(p["honeypot_f1"] > 0.9 for p in qualified)


@pytest.mark.slow
def test_prelabelled_program_on_rendered_images(db: Database, tmp_path: Path) -> None:
    """The demo's set-up, small: rendered images, a simulated model before annotation."""
    config = SimulationConfig(
        images=60,
        batches=1,
        gold_images=20,
        honeypot_images=10,
        seed=0,
        image_root=tmp_path / "images",
        prelabel=PrelabelModel(),
    )
    result = run_simulation(db, SPEC, config)
    batch = result.batches[0]
    assert result.program.batch_status(batch)["stage"] == Stage.DELIVERED

    # the truth is what the images show: nothing wholly hidden, occlusion from the pixels
    truth = result.truth.annotations
    seen = truth.attributes["visibility"].values
    assert seen.min() > 0.0
    assert (truth.occluded == (seen < 0.95)).all()
    generated = generate_dataset(90, config=config.scenes, seed=0)
    assert len(truth) < len(generated.annotations)  # the hidden ones went

    with db.session() as s:
        # every first-pass task outside the control group starts from the model's proposals
        rows = s.execute(
            select(TaskRow.id, TaskRow.image_id, TaskRow.batch_id, RevisionRow.source)
            .outerjoin(RevisionRow, (RevisionRow.task_id == TaskRow.id) & (RevisionRow.number == 1))
            .where(
                TaskRow.cycle == 0,
                TaskRow.purpose.in_(["production", "gold", "honeypot"]),
                TaskRow.batch_id.is_not(None),
            )
        ).all()
        batch_id = rows[0].batch_id
        image = np.array([r.image_id for r in rows], dtype=np.int64)
        control = control_items(batch_id, image, 0.10, 0)  # the spec's [prelabel] defaults
        prelabelled = np.array([r.source == int(Source.PRELABEL) for r in rows])
        assert control.any() and (~control).any()
        assert (prelabelled == ~control).all()

        # the logged time of each pre-labelled task follows the stated time model, given
        # the decisions recorded at submit (the workflow's own comparison by object key)
        decisions = s.execute(
            select(PrelabelDecisionRow.task_id, PrelabelDecisionRow.decision)
        ).all()
        log = s.execute(
            select(
                WorkLogRow.task_id, WorkLogRow.user_id, WorkLogRow.seconds, WorkLogRow.objects
            ).where(WorkLogRow.activity == "annotate", WorkLogRow.cycle == 0)
        ).all()
        users = dict(s.execute(select(UserRow.id, UserRow.name)).all())
    per_task: dict[int, dict[str, int]] = {}
    for task, decision in decisions:
        per_task.setdefault(task, {"accept": 0, "adjust": 0, "reject": 0})[decision] += 1
    assert set(per_task) <= {r.id for r, p in zip(rows, prelabelled) if p}
    sigma = config.speed_sigma
    mean_factor = np.exp(sigma**2 / 2)
    var_factor = np.exp(sigma**2) * (np.exp(sigma**2) - 1)
    observed: dict[str, float] = {}
    expected: dict[str, float] = {}
    variance: dict[str, float] = {}
    for task, user, seconds, objects in log:
        if task not in per_task:
            continue
        name = users[user]
        median = result.profiles[name].seconds_after(0)
        made = per_task[task]
        drawn = objects - made["accept"] - made["adjust"]  # objects under no proposal key
        assert drawn >= 0
        weights = [(drawn, 1.0)] + [(made[k], PRELABEL_TIME_FRACTION[k]) for k in made]
        observed[name] = observed.get(name, 0.0) + seconds
        expected[name] = expected.get(name, 0.0) + sum(
            n * median * f * mean_factor for n, f in weights
        )
        variance[name] = variance.get(name, 0.0) + sum(
            n * (median * f) ** 2 * var_factor for n, f in weights
        )
    assert len(observed) == 3  # eve, farid, gus worked; ana never qualified
    for name in observed:
        assert abs(observed[name] - expected[name]) < 4 * np.sqrt(variance[name])

    # the report's pre-label and active-learning figures come from this program's data
    from labelgate.reports.program_report import build_report

    report = build_report(db, truth=result.truth)
    metrics = report["batches"][0]["prelabel"]
    assert metrics["proposals"] == len(decisions)
    assert sum(metrics["decisions"].values()) == len(decisions)
    saved = metrics["time"]["time_saved_fraction"]
    assert saved["ci_low"] <= saved["estimate"] <= saved["ci_high"]
    assert saved["estimate"] > 0.0  # handling a proposal is quicker than drawing it
    assert report["active_learning"]["source"] == "program"
