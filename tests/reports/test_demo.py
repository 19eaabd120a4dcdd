"""`labelgate demo`: pre-labels, measured occlusion and both costs, as report.json has them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.formats.registry import read

runner = CliRunner()


@pytest.mark.slow
def test_demo_prelabels_its_batches_and_prints_measured_beside_modelled_cost(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--images", "40", "--out", str(out)])
    assert result.exit_code == 0, result.stdout
    text = " ".join(result.stdout.split())  # rich wraps long lines
    report = json.loads((out / "report.json").read_text())

    # both costs, as report.json has them
    model, measured = report["cost"]["model"], report["cost"]["measured"]
    assert f"modelled cost ${model['total_usd']:,.2f}" in text
    assert f"measured cost (work log, {measured['total_hours']:,.1f} h): " in text
    assert f"${measured['total_usd']:,.2f} = direct ${measured['direct_usd']:,.2f}" in text
    parts = ("direct_usd", "qa_review_usd", "rework_usd", "downstream_usd")
    assert sum(measured[k] for k in parts) == pytest.approx(measured["total_usd"])
    assert f"{measured['ratio_to_model']:.2f}x the modelled cost" in text

    # every batch was pre-labelled by the simulated model, and says so
    for batch in report["batches"]:
        metrics = batch["prelabel"]
        assert metrics is not None and metrics["proposals"] > 0
        rates = metrics["acceptance_rate"] + metrics["adjust_rate"] + metrics["reject_rate"]
        assert rates == pytest.approx(1.0)
        line = re.search(rf"pre-labels {batch['name']}: ([\d,]+) proposals", text)
        assert line is not None and int(line.group(1).replace(",", "")) == metrics["proposals"]
    assert report["active_learning"]["source"] == "program"  # replayed on the stored ones

    # the truth is what the rendered images show: the delivered labels are compared with it
    # and every image file exists
    images = sorted(p.name for p in (out / "images").iterdir())
    assert len(images) == 40 + 30 + 20  # production, gold, honeypots
    reference = read(out / "reference.json")
    assert len(reference.images) == 40
    truth = report["quality"]["delivered_vs_truth"]["overall"]
    assert truth["recall"] > 0.97 and truth["precision"] > 0.97
    # a quality gate failed and its batch went through rework before delivery
    assert any(not s["passed"] and s["outcome"] == "rework" for s in report["stages"])
    assert all(b["state"] == "delivered" for b in report["batches"])
