"""Pricing measured work (:func:`labelgate.core.cost.price_measured`) against hand sums."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from labelgate.core.cost import WORK_ACTIVITIES, CostInputs, estimate, price_measured
from labelgate.errors import ValidationError

RATES = {"annotator_hourly_usd": 36.0, "review_hourly_usd": 24.0}


def test_a_small_program_by_hand() -> None:
    # two images by a 2.5x annotator, reviewed by staff (1x); image 2 fails, is re-drawn in
    # cycle 1 (saved twice) and fails again, cycle 2 re-draws it once more
    activity = ["annotate", "annotate", "review", "review", "qa", "adjudicate",
                "rework", "rework", "review", "qa", "rework", "review"]  # fmt: skip
    seconds = [120, 240, 36, 72, 60, 18, 90, 30, 24, 12, 60, 6]
    cycle = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    multiple = [2.5, 2.5, 1, 1, 1, 1, 2.5, 2.5, 1, 1, 2.5, 1]
    task = [1, 2, 1, 2, 9, -1, 3, 3, 3, 10, 4, 4]
    objects = [5, 8, 5, 8, 0, 1, 8, 8, 8, 1, 8, 8]
    cost = price_measured(
        activity, seconds, cycle, multiple=multiple, task=task, objects=objects, **RATES
    )
    # direct: (120 + 240) s = 0.1 h x 36 x 2.5 = 9.00
    assert cost.direct_usd == pytest.approx(9.0)
    assert cost.direct_hours == pytest.approx(0.1)
    # QA / review at cycle 0: (36 + 72 + 60 + 18) s = 186 s x 24 / 3600 = 1.24
    assert cost.qa_review_usd == pytest.approx(1.24)
    assert cost.qa_review_hours == pytest.approx(186 / 3600)
    # cycle 1: 120 s of drawing at 90 USD/h = 3.00, 36 s of checking at 24 = 0.24
    # cycle 2: 60 s at 90 = 1.50, 6 s at 24 = 0.04
    cycles = [(c.cycle, c.units, c.usd, c.hours) for c in cost.rework_cycles]
    assert cycles == [
        (1, 1, pytest.approx(3.24), pytest.approx(156 / 3600)),
        (2, 1, pytest.approx(1.54), pytest.approx(66 / 3600)),
    ]
    assert cost.rework_usd == pytest.approx(4.78)
    assert cost.downstream_usd == 0.0  # no model, nothing given
    assert cost.total_usd == pytest.approx(9.0 + 1.24 + 4.78)
    assert cost.hidden_cost_fraction == pytest.approx((1.24 + 4.78) / 9.0)
    assert cost.total_hours == pytest.approx(sum(seconds) / 3600)
    assert cost.by_activity["rework"] == {
        "entries": 3.0,
        "hours": pytest.approx(180 / 3600),
        "usd": pytest.approx(4.5),
        "objects": 24.0,
    }
    assert cost.by_activity["adjudicate"]["usd"] == pytest.approx(18 * 24 / 3600)
    assert cost.model_total_usd is None and cost.ratio_to_model is None


def test_downstream_and_ratios_come_from_the_model() -> None:
    model = estimate(CostInputs(100, 0.10, 0.05, 0.05))
    # 100 boxes at 10 s, 1x: exactly the model's direct 10.00
    cost = price_measured(
        ["annotate"] * 100 + ["rework"] * 5,
        [10.0] * 105,
        [0] * 100 + [1] * 5,
        task=list(range(105)),
        annotator_hourly_usd=36.0,
        review_hourly_usd=36.0,
        model=model,
    )
    assert cost.direct_usd == pytest.approx(model.direct_usd) == pytest.approx(10.0)
    assert cost.rework_usd == pytest.approx(model.rework_usd) == pytest.approx(0.5)
    assert cost.escaped_defects == pytest.approx(model.escaped_defects)
    assert cost.downstream_usd == pytest.approx(model.downstream_usd)
    assert cost.qa_review_usd == 0.0
    assert cost.ratio_by_category == {
        "direct_usd": pytest.approx(1.0),
        "qa_review_usd": pytest.approx(0.0),
        "rework_usd": pytest.approx(1.0),
        "downstream_usd": pytest.approx(1.0),
    }
    expected_total = model.total_usd - model.qa_review_usd
    assert cost.total_usd == pytest.approx(expected_total)
    assert cost.ratio_to_model == pytest.approx(expected_total / model.total_usd)
    assert cost.model_total_usd == model.total_usd
    # explicit downstream inputs win over the model's
    other = price_measured(
        ["annotate"], [10.0], [0], model=model, escaped_defects=2.0,
        remediation_usd_per_defect=5.0, **RATES,
    )  # fmt: skip
    assert other.downstream_usd == 10.0


def test_agrees_with_a_row_by_row_reference_on_random_logs() -> None:
    rng = np.random.default_rng(3)
    n = 2_000
    cycle = rng.integers(0, 4, n)
    drawing = rng.random(n) < 0.6
    activity = np.where(
        drawing,
        np.where(cycle > 0, "rework", "annotate"),
        rng.choice(["review", "qa", "adjudicate"], n),
    )
    seconds = rng.exponential(40.0, n)
    multiple = rng.choice([1.0, 2.2, 2.5, 3.0], n)
    task = rng.integers(0, 300, n)
    cost = price_measured(activity, seconds, cycle, multiple=multiple, task=task, **RATES)
    # plain Python: one row at a time
    total: dict[str, float] = defaultdict(float)
    per_cycle: dict[int, float] = defaultdict(float)
    units: dict[int, set[int]] = defaultdict(set)
    for a, s, c, m, t in zip(activity, seconds, cycle, multiple, task):
        rate = RATES["annotator_hourly_usd"] if a in ("annotate", "rework") else 24.0
        usd = s / 3600 * rate * m
        if c > 0:
            total["rework"] += usd
            per_cycle[int(c)] += usd
            if a == "rework":
                units[int(c)].add(int(t))
        elif a == "annotate":
            total["direct"] += usd
        else:
            total["qa"] += usd
    assert cost.direct_usd == pytest.approx(total["direct"], rel=1e-12)
    assert cost.qa_review_usd == pytest.approx(total["qa"], rel=1e-12)
    assert cost.rework_usd == pytest.approx(total["rework"], rel=1e-12)
    assert [(c.cycle, c.units, c.usd) for c in cost.rework_cycles] == [
        (k, len(units[k]), pytest.approx(per_cycle[k], rel=1e-12)) for k in (1, 2, 3)
    ]
    assert sum(v["entries"] for v in cost.by_activity.values()) == n
    assert set(cost.by_activity) == set(WORK_ACTIVITIES)


def test_no_work_costs_nothing() -> None:
    cost = price_measured([], [], [], **RATES)
    assert (cost.direct_usd, cost.total_usd, cost.rework_cycles) == (0.0, 0.0, ())
    assert math.isnan(cost.hidden_cost_fraction)
    assert cost.to_dict()["hidden_cost_fraction"] is None


@pytest.mark.parametrize(
    ("change", "field", "row", "fragment"),
    [
        ({"activity": ["annotate", "drawing"]}, "activity", 1, "'drawing'"),
        ({"seconds": [10.0, -1.0]}, "seconds", 1, "seconds >= 0"),
        ({"seconds": [float("nan"), 1.0]}, "seconds", 0, "finite"),
        ({"cycle": [0, -1]}, "cycle", 1, "cycle >= 0"),
        ({"activity": ["rework", "review"]}, "cycle", 0, "rework cycle >= 1"),
        ({"multiple": [1.0, 0.0]}, "multiple", 1, "multiple > 0"),
        ({"seconds": [1.0]}, "seconds", None, "expected shape (2,)"),
    ],
)
def test_bad_rows_are_named(
    change: dict[str, list[object]], field: str, row: int | None, fragment: str
) -> None:
    args: dict[str, list[object]] = {
        "activity": ["annotate", "review"],
        "seconds": [10.0, 5.0],
        "cycle": [0, 0],
        "multiple": [1.0, 1.0],
    } | change
    with pytest.raises(ValidationError) as info:
        price_measured(
            args["activity"], args["seconds"], args["cycle"], multiple=args["multiple"], **RATES
        )
    assert info.value.field == field and info.value.row == row
    assert fragment in str(info.value)


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValidationError, match="finite number >= 0"):
        price_measured(["annotate"], [1.0], [0], annotator_hourly_usd=-1, review_hourly_usd=1)


def test_a_batchs_first_qa_pass_is_overhead_and_later_passes_are_rework() -> None:
    # batch 1: QA first at cycle 2 (review failed twice before), again at cycle 3;
    # batch 2: QA at cycle 0 only. 360 s of QA each, at 24 USD/h = 2.40 each
    activity = ["qa", "qa", "qa", "rework"]
    cycle = [2, 3, 0, 3]
    batch = [1, 1, 2, 1]
    seconds = [360, 360, 360, 100]
    cost = price_measured(activity, seconds, cycle, batch=batch, task=[5, 6, 7, 8], **RATES)
    assert cost.qa_review_usd == pytest.approx(4.8)  # batch 1 at cycle 2, batch 2 at 0
    assert [(c.cycle, c.units, c.usd) for c in cost.rework_cycles] == [
        (3, 1, pytest.approx(2.4 + 1.0)),  # the re-inspection and 100 s at 36 USD/h
    ]
    # without batches QA follows its cycle: both batch-1 passes are rework
    plain = price_measured(activity, seconds, cycle, task=[5, 6, 7, 8], **RATES)
    assert plain.qa_review_usd == pytest.approx(2.4)
    assert [c.cycle for c in plain.rework_cycles] == [2, 3]
