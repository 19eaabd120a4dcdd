"""A simulated program through the real workflow: gates consistent with the data they read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from labelgate.core.compare import compare
from labelgate.core.sampling import clopper_pearson_upper
from labelgate.store.db import Database
from labelgate.store.models import GateResultRow, TaskRow, UserRow
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
