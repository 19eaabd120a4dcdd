from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.cost import CostDrivers, CostInputs, estimate
from labelgate.spec import load_spec

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spec.toml"
SEED_ARGS = [
    "cost",
    "--units",
    "200000",
    "--unit-price",
    "0.08",
    "--defect-rate",
    "0.05",
    "--rework-defect-rate",
    "0.05",
]


def _run(*args: str, code: int = 0) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_cost_json_reproduces_the_seeds_worked_example() -> None:
    document = _run(*SEED_ARGS, "--runs", "2000")
    assert list(document)[:8] == [
        "rework_cycles",
        "direct_usd",
        "qa_review_usd",
        "rework_usd",
        "downstream_usd",
        "total_usd",
        "hidden_cost_fraction",
        "monte_carlo",
    ]
    assert document["rework_cycles"] == [
        {"cycle": 1, "units": 10_000.0, "usd": pytest.approx(800.0)},
        {"cycle": 2, "units": 500.0, "usd": pytest.approx(40.0)},
        {"cycle": 3, "units": 25.0, "usd": pytest.approx(2.0)},
        {"cycle": 4, "units": 1.25, "usd": pytest.approx(0.1)},
    ]
    assert document["direct_usd"] == pytest.approx(16_000.0)
    assert document["qa_review_usd"] == pytest.approx(3_200.0)
    assert document["rework_usd"] == pytest.approx(842.10)
    assert document["downstream_usd"] == pytest.approx(4_432.6316, abs=1e-4)
    assert document["total_usd"] == pytest.approx(24_474.7316, abs=1e-4)
    assert document["hidden_cost_fraction"] == pytest.approx(0.52967, abs=1e-5)
    mc = document["monte_carlo"]
    assert (mc["runs"], mc["seed"]) == (2000, 0)
    assert mc["p10"] < mc["p50"] < mc["p90"]
    assert mc["p50"] == pytest.approx(document["total_usd"], rel=0.01)
    assert abs(mc["mean"] - document["total_usd"]) < 4 * mc["std"] / 2000**0.5
    assert set(mc["categories"]) >= {"rework_usd", "downstream_usd", "total_usd"}
    assert document["compare_cohorts"] is None


def test_cost_options_reach_the_model() -> None:
    document = _run(
        *SEED_ARGS,
        "--cycles-cap", "1", "--qa-share", "0.25", "--escape-rate", "0.1",
        "--remediation-usd", "50", "--objects-per-image", "3", "--iou-threshold", "0.85",
        "--required-attributes", "2", "--deep-qa-share", "1", "--specialization", "2",
        "--runs", "0",
    )  # fmt: skip
    drivers = CostDrivers(3, 0.85, 2, 1.0, 2.0)
    expected = estimate(
        CostInputs(
            200_000, 0.08, 0.05, 0.05, qa_share=0.25, escape_rate=0.1,
            remediation_usd_per_defect=50, cycle_cap=1, multiplier=drivers.multiplier(),
        )
    )  # fmt: skip
    assert document["total_usd"] == pytest.approx(expected.total_usd)
    assert len(document["rework_cycles"]) == 1
    assert document["multipliers"]["multiplier"] == pytest.approx(3 * 1.45 * 1.2 * 1.35 * 2)
    assert document["monte_carlo"] is None


def test_rework_defect_rate_defaults_to_the_defect_rate_and_price_to_the_seed_mid_range() -> None:
    document = _run("cost", "--units", "1000", "--defect-rate", "0.1", "--kind", "mask")
    assert document["inputs"]["rework_defect_rate"] == 0.1
    assert document["inputs"]["quoted_unit_price_usd"] == 1.90  # mid of "$0.80-3.00/image"
    assert document["rework_cycles"][1]["units"] == pytest.approx(10.0)


def test_cost_takes_prices_tiers_attributes_cap_and_pools_from_a_spec() -> None:
    spec = load_spec(EXAMPLE)
    document = _run(
        "cost", "--spec", str(EXAMPLE), "--units", "100000", "--defect-rate", "0.05",
        "--class", "person", "--pool", "managed-pod", "--runs", "0",
    )  # fmt: skip
    assert document["inputs"]["quoted_unit_price_usd"] == spec.prices.box == 0.08
    assert document["inputs"]["cycles_cap"] == spec.gates.max_rework_cycles
    factors = document["multipliers"]
    # person: IoU 0.75 (between 0.5 and 0.85), occluded + truncated required, dual review
    # of every item, the managed pod's 2.2x
    assert factors["tier"] == pytest.approx(1 + 0.45 * 0.25 / 0.35)
    assert factors["attributes"] == pytest.approx(1.2)
    assert factors["qa_depth"] == pytest.approx(1.35)
    assert factors["specialization"] == pytest.approx(2.2)
    assert document["unit_price_usd"] == pytest.approx(0.08 * factors["multiplier"])


def test_compare_cohorts_prices_crowd_and_managed() -> None:
    document = _run(*SEED_ARGS, "--runs", "0", "--compare-cohorts")
    cohorts = document["compare_cohorts"]
    assert cohorts["crowd"]["total_usd"] == pytest.approx(document["total_usd"])
    assert cohorts["managed"]["price_multiple"] == 2.5
    assert cohorts["managed"]["direct_usd"] == pytest.approx(40_000.0)
    assert cohorts["cheaper"] == "crowd"
    break_even = cohorts["break_even_remediation_usd_per_defect"]
    above = _run(
        *SEED_ARGS, "--runs", "0", "--compare-cohorts", "--remediation-usd", str(break_even * 2)
    )
    assert above["compare_cohorts"]["cheaper"] == "managed"


def test_cost_prints_a_table_for_people() -> None:
    result = runner.invoke(app, [*SEED_ARGS, "--runs", "500", "--compare-cohorts"])
    assert result.exit_code == 0, result.output
    assert "rework-inclusive cost" in result.stdout and "10,000.00" in result.stdout
    assert "$24,474.73" in result.stdout and "53.0%" in result.stdout
    assert "crowd vs managed" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--kind", "hexagon"], id="unknown-kind"),
        pytest.param(["--class", "car"], id="class-without-spec"),
        pytest.param(["--escape-rate", "0.97"], id="more-defects-than-units"),
        pytest.param(["--spec", "missing.toml"], id="missing-spec"),
        pytest.param(["--spec", str(EXAMPLE), "--class", "zebra"], id="unknown-class"),
        pytest.param(["--spec", str(EXAMPLE), "--pool", "nobody"], id="unknown-pool"),
    ],
)
def test_bad_input_exits_2_with_an_error_document(args: list[str]) -> None:
    document = _run("cost", "--units", "100", "--defect-rate", "0.05", *args, code=2)
    assert document["error"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param([], "give --units and --defect-rate (or --db URL", id="nothing"),
        pytest.param(["--units", "10"], "give --defect-rate", id="no-defect-rate"),
        pytest.param(
            ["--units", "10", "--defect-rate", "0.1", "--project", "p"],
            "--project needs --db",
            id="project-without-db",
        ),
        pytest.param(["--db", "missing-labelgate.db"], "no database at", id="missing-db"),
    ],
)
def test_unit_price_mode_needs_its_inputs_and_db_mode_a_database(
    args: list[str], fragment: str
) -> None:
    document = _run("cost", *args, code=2)
    assert fragment in document["error"], document


def test_cost_db_on_an_empty_program_has_no_measured_cost(tmp_path: Path) -> None:
    from labelgate.store.db import Database, upgrade
    from labelgate.workflow.program import Program

    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade(db)
    Program.create(db, EXAMPLE.read_text())
    db.dispose()
    document = _run("cost", "--db", str(tmp_path / "p.db"))
    assert document["project"] == "street-scenes" and document["spec_version"] == 1
    assert document["units"] == 0 and document["measured"] is None
    assert "model" not in document
    table = runner.invoke(app, ["cost", "--db", str(tmp_path / "p.db")])
    assert table.exit_code == 0 and "nothing labelled and no work time logged" in table.stdout
