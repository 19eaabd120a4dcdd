"""The report's active-learning section: replayed on stored pre-labels, else simulated."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from labelgate.core.annotations import Source
from labelgate.ml.select import label_efficiency, simulate_label_efficiency
from labelgate.reports.html import render_html
from labelgate.reports.plots import active_learning_curve
from labelgate.reports.program_report import build_report
from labelgate.store.annotations import insert_annotations, load_annotations
from labelgate.store.db import Database
from labelgate.store.models import PrelabelDecisionRow, RevisionRow, TaskRow
from labelgate.workflow.simulation import SimulationConfig, run_simulation

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()


def store_prelabels(db: Database, drop_every: int) -> tuple[int, int]:
    """Give every submitted production task a pre-label revision: its final objects, scored,
    less every ``drop_every``-th (a model that misses them). Returns (dropped, images)."""
    rng = np.random.default_rng(0)
    dropped = images = 0
    with db.session() as s:
        tasks = s.execute(
            select(TaskRow.id, TaskRow.head_revision_id, TaskRow.assignee_id).where(
                TaskRow.purpose == "production", TaskRow.head_revision_id.is_not(None)
            )
        ).all()
        for task_id, head, user in tasks:
            final = load_annotations(s, [head])
            keep = np.ones(len(final), dtype=bool)
            keep[::drop_every] = False
            dropped += int((~keep).sum())
            images += 1
            number = s.execute(
                select(func.max(RevisionRow.number)).where(RevisionRow.task_id == task_id)
            ).scalar_one()
            revision = RevisionRow(
                task_id=task_id, number=number + 1, author_id=user, source=int(Source.PRELABEL)
            )
            s.add(revision)
            s.flush()
            proposal = final[keep]
            proposal = proposal.replace(score=rng.uniform(0.5, 1.0, len(proposal)))
            insert_annotations(s, revision.id, proposal)
            s.add(
                PrelabelDecisionRow(
                    task_id=task_id,
                    prelabel_revision_id=revision.id,
                    final_revision_id=head,
                    object_key=0,
                    class_id=int(final.class_id[0]) if len(final) else 0,
                    score=None,
                    decision="accept",
                    iou=None,
                    user_id=user,
                )
            )
    return dropped, images


def test_a_program_without_pre_labels_gets_the_simulated_curves_labelled_so(
    db: Database,
) -> None:
    run_simulation(db, SPEC, SimulationConfig(images=30, batches=1, gold_images=10, seed=2))
    al = build_report(db)["active_learning"]
    assert al["source"] == "simulated"
    assert al["note"].startswith("Simulated (no pre-labels in this program)")
    assert al == {**simulate_label_efficiency().to_dict(), "note": al["note"]}


def test_stored_pre_labels_are_replayed_against_the_submitted_labels(db: Database) -> None:
    run_simulation(db, SPEC, SimulationConfig(images=40, batches=1, gold_images=10, seed=3))
    dropped, images = store_prelabels(db, drop_every=4)
    assert images >= 12 and dropped > 0
    al = build_report(db)["active_learning"]
    assert al["source"] == "program", al.get("note")
    assert al["note"].startswith("Replayed on this program")
    # every model error is an object the proposals dropped: a miss on its image
    assert al["total_errors"] == [dropped] * 3
    with db.session() as s:
        pairs = s.execute(
            select(PrelabelDecisionRow.prelabel_revision_id, PrelabelDecisionRow.final_revision_id)
        ).all()
        pred = load_annotations(s, [p for p, _ in pairs], ids="row")
        final = load_annotations(s, [f for _, f in pairs], ids="row")
    expected = label_efficiency(final, pred, pool=np.union1d(pred.image_id, final.image_id))
    assert {k: v for k, v in al.items() if k != "note"} == expected.to_dict()
    assert al["strategies"][0]["low"] == al["strategies"][0]["high"]  # fixed data: no spread


@pytest.mark.parametrize("source", ["simulated", "program"])
def test_the_figure_and_section_say_where_the_curves_come_from(source: str) -> None:
    al: dict[str, Any] = simulate_label_efficiency(
        200, strategies=("uncertainty", "diversity"), seeds=(0, 1), rounds=3, budget=10
    ).to_dict()
    al["source"] = source
    al["note"] = f"{source} note"
    png = active_learning_curve({"active_learning": al})
    assert png is not None
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] == 1350
    assert (np.asarray(image.convert("L")) < 128).mean() > 0.002  # ink: curves were drawn
    page = render_html({"project": "p", "active_learning": al}, {"active_learning": png})
    assert "Active learning: which images to label next" in page
    assert f"{source} note" in page
    assert 'id="fig-active_learning"' in page
    assert "errors found after 30 images" in page
    assert active_learning_curve({"active_learning": {}}) is None
