"""QA sampling bounds against statsmodels and scipy, and hand-checked plans."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from labelgate.core.sampling import (
    clopper_pearson_upper,
    hypergeometric_upper,
    upper_bound,
    zero_acceptance_sample_size,
)
from labelgate.errors import ValidationError


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("defects", "sampled"), [(0, 1), (0, 149), (1, 20), (7, 300), (19, 20)])
def test_clopper_pearson_equals_statsmodels_beta_interval(
    defects: int, sampled: int, confidence: float
) -> None:
    # a one-sided bound at C is the upper end of the two-sided interval at 2C - 1
    _, upper = proportion_confint(defects, sampled, alpha=2 * (1 - confidence), method="beta")
    assert clopper_pearson_upper(defects, sampled, confidence) == pytest.approx(upper, abs=1e-12)


def test_zero_acceptance_plan_for_two_percent_at_95_is_149() -> None:
    assert zero_acceptance_sample_size(0.02, 0.95) == 149
    assert clopper_pearson_upper(0, 149, 0.95) <= 0.02 < clopper_pearson_upper(0, 148, 0.95)


@pytest.mark.parametrize(("defects", "sampled", "lot"), [(0, 50, 100), (2, 40, 500), (5, 5, 9)])
def test_hypergeometric_bound_is_the_largest_plausible_defect_count(
    defects: int, sampled: int, lot: int
) -> None:
    bound = hypergeometric_upper(defects, sampled, lot, 0.95)
    count = round(bound * lot)
    # count is not rejected at 5 %, count + 1 is (or impossible)
    assert stats.hypergeom.cdf(defects, lot, count, sampled) > 0.05
    if count + 1 <= lot - (sampled - defects):
        assert stats.hypergeom.cdf(defects, lot, count + 1, sampled) <= 0.05


def test_finite_lot_bound_is_tighter_than_binomial_and_exact_at_full_inspection() -> None:
    assert hypergeometric_upper(1, 100, 400, 0.95) < clopper_pearson_upper(1, 100, 0.95)
    assert hypergeometric_upper(3, 80, 80, 0.95) == 3 / 80
    assert upper_bound(0, 10, 0.95) == clopper_pearson_upper(0, 10, 0.95)
    assert upper_bound(0, 10, 0.95, lot_size=10) == 0.0


def test_finite_lot_zero_acceptance_plan_is_minimal() -> None:
    n = zero_acceptance_sample_size(0.02, 0.95, lot_size=500)
    assert hypergeometric_upper(0, n, 500, 0.95) <= 0.02 < hypergeometric_upper(0, n - 1, 500, 0.95)
    # small lots: with 0 defects allowed, the plan may have to inspect everything
    assert zero_acceptance_sample_size(0.02, 0.95, lot_size=30) <= 30
    assert math.isclose(hypergeometric_upper(0, 30, 30, 0.95), 0.0)


@pytest.mark.parametrize(
    ("defects", "sampled", "confidence"), [(-1, 5, 0.9), (6, 5, 0.9), (0, 5, 1.0), (0, 5, 0.0)]
)
def test_bad_arguments_name_the_field(defects: int, sampled: int, confidence: float) -> None:
    with pytest.raises(ValidationError):
        clopper_pearson_upper(defects, sampled, confidence)


def test_bound_covers_the_true_rate_at_least_at_the_stated_confidence() -> None:
    rng = np.random.default_rng(0)
    p, n = 0.03, 120
    defects = rng.binomial(n, p, size=4000)
    covered = np.mean([clopper_pearson_upper(int(d), n, 0.95) >= p for d in defects])
    assert covered >= 0.95


def test_bisected_hypergeometric_bound_equals_the_exhaustive_scan() -> None:
    # the bound bisects over defect counts; scanning every candidate is the definition
    for lot in (1, 7, 40, 150):
        for sampled in {0, 1, lot // 3, lot // 2, lot}:
            for defects in {0, 1, sampled // 4, sampled}:
                if defects > sampled:
                    continue
                for confidence in (0.8, 0.95):
                    candidates = np.arange(defects, lot - (sampled - defects) + 1)
                    plausible = stats.hypergeom.cdf(defects, lot, candidates, sampled) > (
                        1 - confidence
                    )
                    expected = float(candidates[plausible].max()) / lot
                    assert hypergeometric_upper(defects, sampled, lot, confidence) == expected


def test_finite_lot_bound_on_a_large_lot_is_quick() -> None:
    # a scan over every candidate took about a minute here
    bound = hypergeometric_upper(5, 522, 100_000, 0.95)
    assert (
        clopper_pearson_upper(5, 522, 0.95) - 0.001 < bound <= clopper_pearson_upper(5, 522, 0.95)
    )
