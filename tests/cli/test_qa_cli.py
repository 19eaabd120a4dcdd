from __future__ import annotations

import json

import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from labelgate.cli.app import app

runner = CliRunner()

PLAN_KEYS = [
    "sample_size",
    "acceptance_number",
    "limit",
    "confidence",
    "acceptable",
    "lot_size",
    "producer_risk",
    "consumer_risk",
    "max_producer_risk",
    "oc",
    "allocation",
]
DECIDE_KEYS = [
    "sampled",
    "defects",
    "limit",
    "confidence",
    "lot_size",
    "bound",
    "defect_rate",
    "upper_bound",
    "decision",
]


def run(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["qa", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_plan_for_two_percent_at_95_is_149_with_zero_acceptance() -> None:
    code, document = run("plan", "--limit", "0.02", "--confidence", "0.95")
    assert code == 0
    assert list(document) == PLAN_KEYS
    assert (document["sample_size"], document["acceptance_number"]) == (149, 0)
    assert document["producer_risk"] is None and document["allocation"] is None
    oc = {row["rate"]: row["acceptance_probability"] for row in document["oc"]}
    assert oc[0.0] == 1.0
    assert oc[0.02] == pytest.approx(0.98**149) == pytest.approx(document["consumer_risk"])
    assert list(oc) == sorted(oc)


def test_plan_with_an_acceptable_rate_and_a_lot_reports_both_risks() -> None:
    code, document = run(
        "plan", "--limit", "0.02", "--confidence", "0.95", "--acceptable", "0.005",
        "--lot-size", "10000", "--producer-risk", "0.05",
    )  # fmt: skip
    assert code == 0
    n, c = document["sample_size"], document["acceptance_number"]
    assert document["lot_size"] == 10_000 and document["max_producer_risk"] == 0.05
    assert document["producer_risk"] == pytest.approx(1 - stats.hypergeom.cdf(c, 10_000, 50, n))
    assert document["producer_risk"] <= 0.05 and document["consumer_risk"] <= 0.05
    assert 0.005 in [row["rate"] for row in document["oc"]]


def test_plan_splits_the_sample_across_strata() -> None:
    code, document = run(
        "plan", "--limit", "0.02", "--confidence", "0.95", "--strata",
        "person=5000,car=3000,bike=2000,scooter=10",
    )  # fmt: skip
    assert code == 0
    allocation = document["allocation"]
    assert allocation["method"] == "proportional"
    assert [(s["name"], s["size"], s["sample_size"]) for s in allocation["strata"]] == [
        ("person", 5000, 74),
        ("car", 3000, 44),
        ("bike", 2000, 30),
        ("scooter", 10, 1),
    ]
    code, document = run(
        "plan", "--limit", "0.02", "--confidence", "0.95", "--strata", "a=5000,b=3000,c=2000",
        "--allocation", "neyman", "--expected-rates", "c=0.10,b=0.02,a=0.01",
    )  # fmt: skip
    assert code == 0
    assert [s["sample_size"] for s in document["allocation"]["strata"]] == [49, 41, 59]


@pytest.mark.parametrize(
    ("sampled", "defects", "decision", "code"),
    [("149", "0", "release", 0), ("148", "0", "block", 1), ("523", "5", "release", 0),
     ("523", "6", "block", 1), ("0", "0", "block", 1)],
)  # fmt: skip
def test_decide_exits_0_on_release_and_1_on_block(
    sampled: str, defects: str, decision: str, code: int
) -> None:
    exit_code, document = run(
        "decide", "--sampled", sampled, "--defects", defects, "--limit", "0.02",
        "--confidence", "0.95",
    )  # fmt: skip
    assert (exit_code, document["decision"]) == (code, decision)
    assert list(document) == DECIDE_KEYS
    if int(sampled):
        _, upper = proportion_confint(int(defects), int(sampled), alpha=0.1, method="beta")
        assert document["upper_bound"] == pytest.approx(upper, abs=1e-12)
        assert document["defect_rate"] == int(defects) / int(sampled)


def test_decide_on_a_finite_lot_uses_the_hypergeometric_bound() -> None:
    code, document = run(
        "decide", "--sampled", "119", "--defects", "0", "--limit", "0.02", "--confidence",
        "0.95", "--lot-size", "500",
    )  # fmt: skip
    assert code == 0 and document["bound"] == "hypergeometric"
    assert document["upper_bound"] <= 0.02


def test_human_decide_says_why() -> None:
    result = runner.invoke(
        app, ["qa", "decide", "--sampled", "100", "--defects", "0", "--limit", "0.02",
              "--confidence", "0.95"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "block" in result.stdout and "2.95%" in result.stdout


def test_sprt_on_an_item_sequence_stops_at_the_decision() -> None:
    code, document = run("sprt", "--p0", "0.01", "--p1", "0.05", "--defects", "1,1,0,0")
    assert code == 1
    assert (document["decision"], document["sampled"], document["defects"]) == ("block", 2, 2)
    code, document = run("sprt", "--p0", "0.01", "--p1", "0.05", "--defects", ",".join("0" * 55))
    assert (code, document["decision"], document["sampled"]) == (0, "release", 55)
    assert set(document["wald_expected_sample_size"]) == {"p0", "p1"}


def test_sprt_on_counts_may_continue() -> None:
    code, document = run(
        "sprt", "--p0", "0.01", "--p1", "0.05", "--sampled", "30", "--defects", "0"
    )
    assert (code, document["decision"], document["steps"]) == (1, "continue", 1)
    assert document["release_intercept"] < 0 < document["block_intercept"]


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--limit", "0.02", "--confidence", "1.5"],
        ["plan", "--limit", "0.02", "--confidence", "0.95", "--acceptable", "0.03"],
        ["plan", "--limit", "0.02", "--confidence", "0.95", "--strata", "a=10,b=20"],
        ["plan", "--limit", "0.02", "--confidence", "0.95", "--strata", "a=1000", "--lot-size",
         "500"],
        ["plan", "--limit", "0.02", "--confidence", "0.95", "--strata", "a=10x"],
        ["plan", "--limit", "0.02", "--confidence", "0.95", "--strata", "a=1000,b=900",
         "--allocation", "neyman", "--expected-rates", "a=0.1"],
        ["decide", "--sampled", "10", "--defects", "11", "--limit", "0.02", "--confidence",
         "0.95"],
        ["decide", "--sampled", "10", "--defects", "1", "--limit", "2", "--confidence", "0.95"],
        ["decide", "--sampled", "10", "--defects", "1", "--limit", "0.02", "--confidence",
         "0.95", "--lot-size", "5"],
        ["sprt", "--p0", "0.05", "--p1", "0.01", "--defects", "0,1"],
        ["sprt", "--p0", "0.01", "--p1", "0.05", "--defects", "0,2"],
        ["sprt", "--p0", "0.01", "--p1", "0.05", "--defects", "0,-1"],
        ["sprt", "--p0", "0.01", "--p1", "0.05", "--defects", "1,2", "--sampled", "5,5,5"],
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_json_error(args: list[str]) -> None:
    code, document = run(*args)
    assert code == 2
    assert list(document) == ["error"] and document["error"]
