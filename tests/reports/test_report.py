"""The delivery report: figure data in report.json, figures, the HTML page, `labelgate report`."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.annotations import Annotations
from labelgate.core.cost import CROWD, Cohort, CostInputs, compare_cohorts
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.sampling import acceptance_probability, clopper_pearson_upper, plan
from labelgate.core.taxonomy import ClassInfo, PrecisionTier, Taxonomy
from labelgate.reports.html import render_html
from labelgate.reports.plots import DPI, FIGURES, WIDTH, qa_oc_curve, render_figures
from labelgate.reports.program_report import (
    _iou_distribution,
    _qa_plan,
    build_report,
    write_report,
)
from labelgate.store.db import Database, upgrade
from labelgate.workflow.simulation import SimulationConfig, run_simulation

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()
runner = CliRunner()


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated program (60 images, one batch) in a SQLite file."""
    path = tmp_path_factory.mktemp("program") / "labelgate.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    config = SimulationConfig(images=60, batches=1, gold_images=20, honeypot_images=10, seed=0)
    run_simulation(db, SPEC, config)
    db.dispose()
    return path


@pytest.fixture(scope="module")
def report(program: Path) -> dict[str, Any]:
    db = Database(f"sqlite:///{program}")
    try:
        return build_report(db)
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def figures(report: dict[str, Any]) -> dict[str, bytes]:
    return render_figures(report)


# --- report.json -----------------------------------------------------------------------------


def test_report_keeps_every_key_and_adds_the_figure_data(report: dict[str, Any]) -> None:
    assert set(report) >= {"project", "spec", "stages", "quality", "defects", "cost", "batches"}
    assert set(report) >= {"qa_plan", "rework"}
    assert set(report["quality"]) >= {
        "per_class",
        "per_annotator",
        "iou_distribution",
        "by_density",
    }
    assert set(report["cost"]) >= {"units", "model", "cohorts"}
    assert json.loads(json.dumps(report)) == report  # plain JSON all the way down


def test_iou_quantiles_are_numpy_quantiles_of_the_paired_iou() -> None:
    # five reference boxes of 10x10, each labelled once, shifted right by 0..4 px: IoU of a
    # shift s is (10 - s) / (10 + s); a sixth reference box is never labelled
    shifts = np.arange(5, dtype=np.float64)
    ref_boxes = np.array([[0.0, 0.0, 10.0, 10.0]] * 6) + np.arange(6)[:, None] * 100.0
    other_boxes = ref_boxes[:5] + np.column_stack([shifts, 0 * shifts, shifts, 0 * shifts])
    taxonomy = Taxonomy((ClassInfo(1, "car", tier=PrecisionTier.TIGHT, iou_threshold=0.8),))
    images = Images.create(id=[0], file_name=["a.jpg"], width=[1000], height=[1000])
    ref = Annotations.create(image_id=np.zeros(6, np.int64), class_id=np.ones(6), bbox=ref_boxes)
    reference = Dataset(ref, images, taxonomy)
    other = Annotations.create(
        image_id=np.zeros(5, np.int64), class_id=np.ones(5, np.int64), bbox=other_boxes
    )
    (row,) = _iou_distribution(reference, other)
    iou = (10 - shifts) / (10 + shifts)
    expected = np.quantile(iou, [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
    got = [row[k] for k in ("min", "p10", "p25", "median", "p75", "p90", "max")]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (row["ref_count"], row["paired"], row["iou_threshold"]) == (6, 5, 0.8)
    assert row["below_threshold"] == int((iou < 0.8).sum()) == 3  # shifts 2, 3 and 4


def test_iou_distribution_agrees_with_compare_where_no_pair_is_below_tier(
    report: dict[str, Any],
) -> None:
    per_class = {c["name"]: c for c in report["quality"]["per_class"]}
    checked = 0
    for row in report["quality"]["iou_distribution"]:
        assert row["min"] <= row["p10"] <= row["p25"] <= row["median"] <= row["p75"]
        assert row["p75"] <= row["p90"] <= row["max"] <= 1.0
        assert row["paired"] <= row["ref_count"]
        c = per_class[row["name"]]
        assert row["ref_count"] == c["ref_count"]
        if row["below_threshold"] == 0 and row["paired"] == c["matched"]:
            # the same pairs: compare() measured them at the tier, the report at IoU >= 0.1
            for key in ("p10", "median", "p90"):
                assert row[key] == pytest.approx(c["iou"][key], abs=1e-6)
            checked += 1
    assert checked > 0


def test_missing_rate_by_density_adds_up_to_the_honeypot_comparison(
    report: dict[str, Any],
) -> None:
    rows = report["quality"]["by_density"]
    assert [r["bucket"] for r in rows] == ["0", "1-3", "4-10", "11-30", ">30"]
    total = sum(r["ref_count"] for r in rows)
    assert total == sum(c["ref_count"] for c in report["quality"]["per_class"])
    assert sum(r["missed"] for r in rows) == sum(
        c["missed"] for c in report["quality"]["per_class"]
    )
    for r in rows:
        expected = r["missed"] / r["ref_count"] if r["ref_count"] else None
        assert r["missed_rate"] == (None if expected is None else pytest.approx(expected))


def test_oc_curves_are_the_acceptance_probabilities_of_the_plans(report: dict[str, Any]) -> None:
    qa = report["qa_plan"]
    limit, confidence = qa["limit"], qa["confidence"]
    rates = np.array(qa["rates"])
    at_limit = int(np.flatnonzero(rates == limit)[0])
    design = plan(limit, confidence)
    assert qa["design"]["sample_size"] == design.sample_size == 149
    assert qa["oc"][at_limit] == pytest.approx(
        acceptance_probability(design.sample_size, 0, [limit])[0], abs=1e-6
    )
    assert qa["oc"][at_limit] == pytest.approx(design.consumer_risk, abs=1e-6)
    assert qa["as_run"], "the simulated program ran its QA gate"
    qa_gates = [s for s in report["stages"] if s["gate"] == "qa_defect_rate" and s["value"]]
    assert len(qa["as_run"]) == len(qa_gates)
    for run, gate in zip(qa["as_run"], qa_gates):
        n, c = run["sample_size"], run["acceptance_number"]
        assert n == gate["inputs"]["sampled"]
        # c is the most defects whose Clopper-Pearson bound still clears the limit
        assert clopper_pearson_upper(c, n, confidence) <= limit
        assert clopper_pearson_upper(c + 1, n, confidence) > limit
        # and the gate's own decision is that rule
        assert (run["defects"] <= c) == gate["passed"]
        expected = acceptance_probability(n, c, rates)
        np.testing.assert_allclose(run["oc"], expected, atol=1e-6)


@pytest.mark.parametrize("limit", [0.0, 1.0], ids=["zero limit", "limit of one"])
def test_a_qa_limit_without_a_sampling_plan_draws_no_oc_curve(limit: float) -> None:
    gates = SimpleNamespace(
        defect_limit=limit, confidence=0.95, qa_unit="object", qa_sample_rate=0.1
    )
    qa = _qa_plan(SimpleNamespace(gates=gates), [])
    assert (qa["design"], qa["rates"], qa["as_run"]) == (None, [], [])
    assert qa_oc_curve({"qa_plan": qa}) is None


def test_crowd_vs_managed_prices_the_measured_cohort(report: dict[str, Any]) -> None:
    cost, people = report["cost"], report["quality"]["per_annotator"]
    cohorts = cost["cohorts"]
    managed = [a for a in people if a["cohort"] == "managed"]
    objects = sum(a["objects_labelled"] for a in managed)
    found = sum(sum(a["defects"].values()) for a in managed)
    assert cohorts["managed"]["rates"] == "measured" and cohorts["managed"]["objects"] == objects
    assert cohorts["managed"]["defect_rate"] == pytest.approx(found / objects)
    assert cohorts["crowd"]["rates"] == "seed default"  # the crowd never passed the pilot
    assert cohorts["crowd"]["defect_rate"] == CROWD.defect_rate
    expected = compare_cohorts(
        CostInputs(
            cost["units"],
            cost["unit_price_usd"],
            cost["measured_defect_rate"],
            cost["measured_rework_defect_rate"],
            cycle_cap=3,
        ),
        CROWD,
        Cohort("managed", 2.2, found / objects, found / objects, 0.10),  # spec pool: 2.2x
    )
    assert cohorts["crowd"]["total_usd"] == pytest.approx(expected.crowd.total_usd)
    assert cohorts["managed"]["total_usd"] == pytest.approx(expected.managed.total_usd)


def test_rework_rows_add_up_to_the_cost_figures(report: dict[str, Any]) -> None:
    rows = report["rework"]
    assert sum(r["objects"] for r in rows if r["cycle"] == 0) == report["cost"]["units"]
    assert sum(r["objects"] for r in rows if r["cycle"] > 0) == report["cost"]["reworked_objects"]
    assert sum(r["defects"] for r in rows) <= report["defects"]["total"]
    cycles = {b["name"]: b["rework_cycles"] for b in report["batches"]}
    for r in rows:
        assert r["cycle"] <= cycles[r["batch"]]


@pytest.mark.slow
def test_figure_data_reads_the_same_way_on_every_backend(db: Database) -> None:
    config = SimulationConfig(images=40, batches=1, gold_images=20, honeypot_images=10, seed=1)
    run_simulation(db, SPEC, config)
    report = build_report(db)
    assert report["quality"]["iou_distribution"] and report["qa_plan"]["as_run"]
    assert sum(r["objects"] for r in report["rework"] if r["cycle"] == 0) == report["cost"]["units"]
    assert sum(r["ref_count"] for r in report["quality"]["by_density"]) == sum(
        c["ref_count"] for c in report["quality"]["per_class"]
    )
    assert set(render_figures(report)) == {key for key, _, _ in FIGURES}


# --- figures and the page --------------------------------------------------------------------


def test_every_figure_is_a_png_of_sane_size(figures: dict[str, bytes]) -> None:
    assert list(figures) == [key for key, _, _ in FIGURES]
    for key, png in figures.items():
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG", key
        width, height = image.size
        assert width == round(WIDTH * DPI), key
        assert 250 <= height <= 3000, (key, height)
        # not blank: a figure has ink
        pixels = np.asarray(image.convert("L"))
        assert (pixels < 128).mean() > 0.002, key


def test_a_report_without_data_draws_nothing_and_says_why() -> None:
    empty: dict[str, Any] = {"project": "p", "stages": [], "quality": {}, "defects": {}}
    assert render_figures(empty) == {}
    page = render_html({**empty, "batches": [], "cost": {}, "spec": {}})
    assert "<img" not in page
    assert "no gate has been evaluated yet" in page
    assert "audit chain not checked" in page


def test_html_inlines_every_figure_and_loads_nothing_from_a_network(
    report: dict[str, Any], figures: dict[str, bytes]
) -> None:
    page = render_html(report, figures)
    assert not re.search(r"https?://", page)
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(figures)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert page.count("<table>") >= 6  # the tables stay beside the figures


def test_summary_cards_show_the_measured_total_beside_the_model(report: dict[str, Any]) -> None:
    measured = report["cost"]["measured"]
    assert measured["total_usd"] > 0  # the simulated people log their working time
    page = render_html(report, {})
    card = re.search(r'<div class="card"><b>([^<]*)</b>measured total \(work log\)</div>', page)
    assert card is not None and card.group(1) == f"${measured['total_usd']:,.2f}"


def test_a_gate_value_never_reads_as_its_threshold_when_it_differs() -> None:
    from labelgate.reports.plots import _fmt_against

    assert _fmt_against(0.9795, 0.98) == "0.9795"  # .3g alone would print 0.98
    assert _fmt_against(0.02001, 0.02) == "0.02001"
    assert _fmt_against(0.98, 0.98) == "0.98"
    assert _fmt_against(0.5, 0.98) == "0.5"


# --- labelgate report ------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_report_command_writes_html_and_json(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "delivery.html"
    code, stdout = run("report", "--db", f"sqlite:///{program}", "--out", str(out), "--json")
    assert code == 0, stdout
    document = json.loads(stdout)
    assert document["report_html"] == str(out)
    assert document["report_json"] == str(tmp_path / "delivery.json")
    assert document["figures"] == [key for key, _, _ in FIGURES]
    assert document["audit_ok"] is True
    written = json.loads((tmp_path / "delivery.json").read_text())
    assert written["stages"] == document["report"]["stages"]
    assert written["audit"]["ok"] is True and written["generated_at"]
    assert out.read_text().count("data:image/png;base64,") == len(FIGURES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["delivery.html", "delivery.json"]


def test_report_command_exit_codes(program: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "report.html")
    code, _ = run("report", "--db", str(tmp_path / "missing.db"), "--out", out)
    assert code == 2
    assert not (tmp_path / "missing.db").exists()  # a read never creates a database
    (tmp_path / "empty.db").write_bytes(b"")
    code, stdout = run(
        "report", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--out", out, "--json"
    )
    assert code == 2 and "labelgate db upgrade" in json.loads(stdout)["error"]
    migrated = Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(migrated)
    migrated.dispose()
    code, _ = run("report", "--db", f"sqlite:///{tmp_path / 'migrated.db'}", "--out", out)
    assert code == 2  # no project in it
    code, _ = run("report", "--db", f"sqlite:///{program}", "--project", "nope", "--out", out)
    assert code == 2
    code, _ = run("report", "--db", f"sqlite:///{program}", "--out", str(tmp_path / "r.txt"))
    assert code == 2
    assert not (tmp_path / "report.html").exists()


def test_write_report_replaces_an_earlier_report(program: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("stale")
    db = Database(f"sqlite:///{program}")
    try:
        written = write_report(db, out)
    finally:
        db.dispose()
    assert out.read_text().startswith("<!doctype html>")
    assert written.json_path == tmp_path / "report.json"


# --- in a browser ----------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_report_renders_every_figure_in_chromium(program: Path, tmp_path: Path) -> None:
    """Open report.html from a file:// URL offline; every <img> must decode (naturalWidth)."""
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
    if reason is None and not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (required under CI=true)")
        pytest.skip(reason)
    out = tmp_path / "report.html"
    code, stdout = run("report", "--db", f"sqlite:///{program}", "--out", str(out))
    assert code == 0, stdout
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth, e.clientWidth])"
            )
            overflow = page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert len(images) == len(FIGURES)
    assert all(complete and natural > 0 and shown > 0 for complete, natural, shown in images)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert not overflow  # 1366 px wide: no horizontal scroll
