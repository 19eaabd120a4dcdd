"""The rework-inclusive cost model: the seed's worked example, exact fractions, Monte Carlo."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from labelgate.core.cost import (
    CROWD,
    MANAGED,
    CostDrivers,
    CostInputs,
    compare_cohorts,
    estimate,
    multiplier,
    rework_cycles,
    simulate,
)
from labelgate.errors import ValidationError

# the seed's example: "a dataset of 200,000 images with a 5% defect rate ... 10,000 images
# requiring correction. If the correction round itself has a 5% error rate, you have another
# 500 images to fix"; priced at the seed's "$0.08" label
SEED = CostInputs(units=200_000, unit_price_usd=0.08, defect_rate=0.05, rework_defect_rate=0.05)


def _exact(
    units: int, price: Fraction, d: Fraction, r: Fraction, q: Fraction, e: Fraction, cap: int
) -> dict[str, Fraction]:
    """The closed form in rational arithmetic, cycle by cycle: an oracle free of rounding."""
    cycles: list[Fraction] = []
    rejects = units * d
    while rejects >= 1 and len(cycles) < cap:
        cycles.append(rejects)
        rejects *= r
    open_defects = rejects
    escaped = (sum(cycles, Fraction(0)) + open_defects) * e / (1 - e) + open_defects
    direct = units * price
    return {
        "direct": direct,
        "qa": q * direct,
        "rework": sum(cycles, Fraction(0)) * price,
        "downstream": escaped * 100 * price,
        "cycles": Fraction(len(cycles)),
    }


# --- the seed's worked example ------------------------------------------------------------


def test_rework_cycles_reproduce_the_seeds_10000_500_25_exactly() -> None:
    units = rework_cycles(200_000, 0.05, 0.05)
    assert units.tolist() == [10_000.0, 500.0, 25.0, 1.25]  # stops before 0.0625 < 1 unit
    assert units[0] == 10_000 and units[1] == 500 and units[2] == 25


def test_second_seed_counts_2_percent_of_a_million_as_20000_bad_labels() -> None:
    # seed 004: "A 2% mislabel rate on 1 million images means 20,000 corrupted training signals"
    assert rework_cycles(1_000_000, 0.02, 0.02)[0] == 20_000


def test_worked_example_costs_by_category() -> None:
    cost = estimate(SEED)
    assert [(c.cycle, c.units) for c in cost.rework_cycles] == [
        (1, 10_000.0),
        (2, 500.0),
        (3, 25.0),
        (4, 1.25),
    ]
    assert [c.usd for c in cost.rework_cycles] == pytest.approx([800.0, 40.0, 2.0, 0.1])
    assert cost.direct_usd == pytest.approx(16_000.0)  # "Price per label × volume"
    assert cost.qa_review_usd == pytest.approx(3_200.0)  # 20 %, mid of "15–25%"
    assert cost.rework_usd == pytest.approx(842.10)
    # 10,526.3125 rejects in all; 1 in 19 more escaped; 0.0625 still open; $8.00 each
    assert cost.open_defects == pytest.approx(0.0625)
    assert cost.escaped_defects == pytest.approx(10_526.3125 / 19 + 0.0625)
    assert cost.remediation_usd_per_defect == pytest.approx(8.0)
    assert cost.downstream_usd == pytest.approx(8.0 * (10_526.3125 / 19 + 0.0625))
    assert cost.total_usd == pytest.approx(24_474.7316, abs=1e-4)
    assert cost.hidden_cost_fraction == pytest.approx(8_474.7316 / 16_000, abs=1e-8)


def test_worked_example_hidden_cost_lies_in_the_seeds_30_to_60_percent() -> None:
    # seed: "the total program cost is typically 30–60% higher than the per-label price implies"
    assert 0.30 <= estimate(SEED).hidden_cost_fraction <= 0.60


@pytest.mark.parametrize(
    ("units", "price", "d", "r", "q", "e", "cap"),
    [
        pytest.param(200_000, "0.08", "0.05", "0.05", "0.20", "0.05", 99, id="seed"),
        pytest.param(200_000, "0.08", "0.05", "0.05", "0.20", "0.05", 2, id="seed-capped"),
        pytest.param(1_000_000, "0.10", "0.02", "0.10", "0.15", "0.10", 99, id="million"),
        pytest.param(50_000, "1.90", "0.30", "0.40", "0.25", "0.00", 3, id="masks"),
        pytest.param(10, "0.40", "0.05", "0.05", "0.20", "0.05", 99, id="under-one-unit"),
    ],
)
def test_closed_form_equals_rational_arithmetic(
    units: int, price: str, d: str, r: str, q: str, e: str, cap: int
) -> None:
    oracle = _exact(units, Fraction(price), Fraction(d), Fraction(r), Fraction(q), Fraction(e), cap)
    inputs = CostInputs(
        units,
        float(price),
        float(d),
        float(r),
        qa_share=float(q),
        escape_rate=float(e),
        cycle_cap=None if cap == 99 else cap,
    )
    cost = estimate(inputs)
    assert len(cost.rework_cycles) == oracle["cycles"]
    assert cost.direct_usd == pytest.approx(float(oracle["direct"]), rel=1e-12)
    assert cost.qa_review_usd == pytest.approx(float(oracle["qa"]), rel=1e-12)
    assert cost.rework_usd == pytest.approx(float(oracle["rework"]), rel=1e-12, abs=1e-12)
    assert cost.downstream_usd == pytest.approx(float(oracle["downstream"]), rel=1e-12)
    total = sum(oracle[k] for k in ("direct", "qa", "rework", "downstream"))
    assert cost.total_usd == pytest.approx(float(total), rel=1e-12)


# --- rework cycles: edge cases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "d", "r", "cap", "expected"),
    [
        pytest.param(200_000, 0.05, 0.05, 0, [], id="cap-0-no-rework"),
        pytest.param(200_000, 0.05, 0.05, 3, [10_000.0, 500.0, 25.0], id="cap-3"),
        pytest.param(200_000, 0.0, 0.05, None, [], id="no-defects"),
        pytest.param(10, 0.05, 0.05, None, [], id="half-a-unit"),
        pytest.param(20, 0.05, 0.05, None, [1.0], id="exactly-one-unit"),
        pytest.param(200_000, 0.05, 0.0, None, [10_000.0], id="rework-never-fails"),
        pytest.param(100, 1.0, 1.0, 2, [100.0, 100.0], id="rework-always-fails-capped"),
    ],
)
def test_rework_cycles_stop_below_one_unit_or_at_the_cap(
    units: int, d: float, r: float, cap: int | None, expected: list[float]
) -> None:
    assert rework_cycles(units, d, r, cap).tolist() == expected


def test_rework_that_always_fails_needs_a_cap() -> None:
    with pytest.raises(ValidationError, match="cycle cap"):
        rework_cycles(100, 0.5, 1.0)


def test_a_cycle_cap_ships_the_open_rejects_downstream() -> None:
    capped = estimate(CostInputs(200_000, 0.08, 0.05, 0.05, cycle_cap=1))
    assert capped.open_defects == pytest.approx(500.0)
    assert capped.rework_usd == pytest.approx(800.0)
    assert capped.downstream_usd > estimate(SEED).downstream_usd + 400 * 8.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"units": -1}, "units", id="negative-units"),
        pytest.param({"units": 1.5}, "units", id="fractional-units"),
        pytest.param({"defect_rate": 1.2}, "defect_rate", id="rate-above-1"),
        pytest.param({"escape_rate": 1.0}, "escape_rate", id="escape-1"),
        pytest.param({"unit_price_usd": math.nan}, "unit_price_usd", id="nan-price"),
        pytest.param({"defect_rate": 0.96}, "defect_rate", id="more-defects-than-units"),
        pytest.param({"cycle_cap": -1}, "cycle_cap", id="negative-cap"),
    ],
)
def test_inputs_out_of_range_name_the_field(changes: dict[str, float], field: str) -> None:
    values: dict[str, float] = {
        "units": 100,
        "unit_price_usd": 0.1,
        "defect_rate": 0.05,
        "rework_defect_rate": 0.05,
        **changes,
    }
    with pytest.raises(ValidationError) as info:
        CostInputs(**values)  # type: ignore[arg-type]  # deliberately wrong values
    assert info.value.field == field


# --- Monte Carlo against the closed form ---------------------------------------------------


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param(SEED, id="seed"),
        pytest.param(CostInputs(200_000, 0.08, 0.05, 0.05, cycle_cap=1), id="seed-capped"),
        pytest.param(
            CostInputs(5_000, 0.40, 0.20, 0.30, escape_rate=0.25, multiplier=1.45), id="poor"
        ),
    ],
)
def test_monte_carlo_mean_and_median_agree_with_the_closed_form(inputs: CostInputs) -> None:
    runs = 20_000
    mc = simulate(inputs, n_runs=runs, seed=7)
    expected = estimate(inputs)
    for name in ("direct_usd", "qa_review_usd", "rework_usd", "downstream_usd", "total_usd"):
        summary = getattr(mc, name)
        value = getattr(expected, name)
        standard_error = summary.std / math.sqrt(runs)
        assert abs(summary.mean - value) <= 4 * standard_error + 1e-9, name
        assert summary.p10 <= summary.p50 <= summary.p90, name
        # binomial totals are nearly symmetric: the median sits near the mean
        assert summary.p50 == pytest.approx(value, rel=0.01), name
    assert mc.escaped_defects.mean == pytest.approx(expected.escaped_defects, rel=0.02)
    rework_units = sum(c.units for c in expected.rework_cycles)
    assert mc.rework_units.mean == pytest.approx(rework_units, rel=0.01)


def test_monte_carlo_spread_of_one_cycle_is_binomial() -> None:
    inputs = CostInputs(200_000, 0.08, 0.05, 0.05, cycle_cap=1)
    mc = simulate(inputs, n_runs=20_000, seed=3)
    # one cycle re-labels Binomial(200,000, 0.05) units: sd sqrt(N d (1 - d)) = 97.47
    assert mc.rework_units.std == pytest.approx(math.sqrt(200_000 * 0.05 * 0.95), rel=0.03)
    assert mc.rework_usd.p90 - mc.rework_usd.p10 == pytest.approx(
        2 * 1.2816 * 97.47 * 0.08, rel=0.05
    )


def test_monte_carlo_is_reproducible_from_its_seed() -> None:
    assert simulate(SEED, n_runs=500, seed=11) == simulate(SEED, n_runs=500, seed=11)
    assert simulate(SEED, n_runs=500, seed=11) != simulate(SEED, n_runs=500, seed=12)


def test_monte_carlo_needs_a_run() -> None:
    with pytest.raises(ValidationError):
        simulate(SEED, n_runs=0)


# --- cost drivers --------------------------------------------------------------------------


def test_tight_boxes_add_the_seeds_30_to_60_percent() -> None:
    # seed: "Tight boxes (0.85+ IoU) ... adds 30–60% to per-instance time compared to 0.5 IoU"
    assert multiplier(iou_threshold=0.5) == 1.0
    assert multiplier(iou_threshold=0.85) == pytest.approx(1.45)
    assert multiplier(iou_threshold=0.95) == pytest.approx(1.45)  # "0.85+": no more
    assert 1.0 < multiplier(iou_threshold=0.7) < 1.45
    assert multiplier(iou_threshold=0.85, tight_premium=0.30) == pytest.approx(1.30)
    assert multiplier(iou_threshold=0.85, tight_premium=0.60) == pytest.approx(1.60)


def test_required_attributes_add_cost_linearly() -> None:
    # seed: "multiplies annotation time roughly linearly with the number of required attributes"
    steps = [multiplier(required_attributes=n) for n in range(5)]
    assert [b - a for a, b in itertools.pairwise(steps)] == pytest.approx([0.10] * 4)


def test_deep_qa_adds_the_seeds_20_to_50_percent() -> None:
    # seed: multi-pass review, blind re-annotation, adjudication "cost 20–50% more"
    assert multiplier(deep_qa_share=1.0) == pytest.approx(1.35)
    assert multiplier(deep_qa_share=0.5) == pytest.approx(1.175)
    assert multiplier(deep_qa_share=1.0, deep_qa_premium=0.2) == pytest.approx(1.2)


def test_drivers_multiply() -> None:
    drivers = CostDrivers(
        objects_per_image=40, iou_threshold=0.85, required_attributes=2, specialization=3.0
    )
    assert drivers.factors() == pytest.approx(
        {
            "objects_per_image": 40.0,
            "tier": 1.45,
            "attributes": 1.2,
            "qa_depth": 1.0,
            "specialization": 3.0,
        }
    )
    assert drivers.multiplier() == pytest.approx(40 * 1.45 * 1.2 * 3.0)
    with pytest.raises(ValidationError):
        CostDrivers(specialization=0.0)


# --- crowd vs managed ----------------------------------------------------------------------


def test_cohort_defaults_follow_the_seed() -> None:
    # "crowd-only ... (95% accuracy) versus a managed-service program ... (99.5%+ accuracy)";
    # managed "charges more per label, sometimes 2 – 3 times more"
    assert (CROWD.defect_rate, CROWD.price_multiple, CROWD.qa_share) == (0.05, 1.0, 0.20)
    assert MANAGED.defect_rate == 0.005 and 2.0 <= MANAGED.price_multiple <= 3.0


def test_managed_costs_more_per_label_but_less_rework() -> None:
    result = compare_cohorts(SEED)
    assert result.crowd == estimate(SEED)
    assert result.managed.direct_usd == pytest.approx(2.5 * result.crowd.direct_usd)
    assert result.managed.rework_usd < result.crowd.rework_usd / 4
    assert result.managed.escaped_defects < result.crowd.escaped_defects / 9
    assert result.cheaper == "crowd"
    assert result.saving_usd == pytest.approx(result.managed.total_usd - result.crowd.total_usd)


def test_totals_invert_above_the_break_even_remediation_cost() -> None:
    # seed: "the total cost ... often inverts" once downstream remediation is priced
    break_even = compare_cohorts(SEED).break_even_remediation_usd_per_defect
    assert break_even is not None
    at = compare_cohorts(
        CostInputs(200_000, 0.08, 0.05, 0.05, remediation_usd_per_defect=break_even)
    )
    assert at.crowd.total_usd == pytest.approx(at.managed.total_usd)
    above = CostInputs(200_000, 0.08, 0.05, 0.05, remediation_usd_per_defect=break_even * 1.1)
    assert compare_cohorts(above).cheaper == "managed"
