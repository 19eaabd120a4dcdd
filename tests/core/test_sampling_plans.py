"""Acceptance plans, decisions, allocation, OC curves and the SPRT against independent oracles.

Oracles: statsmodels ``proportion_confint(method="beta")`` (a one-sided bound at C is the
upper end of the two-sided interval at 2C - 1), scipy's binomial and hypergeometric
distributions, exhaustive search over small plans, and Monte Carlo simulation with numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from labelgate.core.sampling import (
    DEFAULT_PRODUCER_RISK,
    SamplingPlan,
    acceptance_probability,
    allocate,
    decide,
    hypergeometric_upper,
    oc_curve,
    plan,
    sprt,
    sprt_operating_characteristic,
)
from labelgate.errors import ValidationError


def _statsmodels_upper(defects: int, sampled: int, confidence: float) -> float:
    return float(proportion_confint(defects, sampled, alpha=2 * (1 - confidence), method="beta")[1])


# plans --------------------------------------------------------------------------------------


def test_zero_acceptance_plan_for_two_percent_at_95_is_149() -> None:
    result = plan(0.02, 0.95)
    assert (result.sample_size, result.acceptance_number) == (149, 0)
    assert result.acceptable is None and result.producer_risk is None
    assert _statsmodels_upper(0, 149, 0.95) <= 0.02 < _statsmodels_upper(0, 148, 0.95)
    assert result.consumer_risk == pytest.approx(0.98**149, rel=1e-12)


def _brute_force_binomial_plan(
    limit: float, confidence: float, acceptable: float, risk: float
) -> tuple[int, int]:
    n = 0
    while True:
        n += 1
        c = np.arange(n)
        upper = proportion_confint(c, n, alpha=2 * (1 - confidence), method="beta")[1]
        feasible = (upper <= limit) & (stats.binom.cdf(c, n, acceptable) >= 1 - risk)
        if feasible.any():
            return n, int(c[feasible].max())


@pytest.mark.parametrize(
    ("limit", "confidence", "acceptable"),
    [(0.02, 0.95, 0.005), (0.05, 0.90, 0.01), (0.10, 0.95, 0.02), (0.10, 0.99, 0.0)],
)
def test_binomial_plan_is_the_smallest_that_statsmodels_confirms(
    limit: float, confidence: float, acceptable: float
) -> None:
    result = plan(limit, confidence, acceptable=acceptable)
    expected = _brute_force_binomial_plan(limit, confidence, acceptable, DEFAULT_PRODUCER_RISK)
    assert (result.sample_size, result.acceptance_number) == expected
    n, c = expected
    assert result.producer_risk == pytest.approx(1 - stats.binom.cdf(c, n, acceptable))
    assert result.producer_risk <= DEFAULT_PRODUCER_RISK
    assert result.consumer_risk == pytest.approx(stats.binom.cdf(c, n, limit))
    assert result.consumer_risk <= 1 - confidence


def test_two_percent_plan_passing_half_a_percent_is_523_with_5() -> None:
    result = plan(0.02, 0.95, acceptable=0.005)
    assert (result.sample_size, result.acceptance_number) == (523, 5)
    assert _statsmodels_upper(5, 523, 0.95) <= 0.02 < _statsmodels_upper(5, 522, 0.95)


def test_a_stricter_producer_risk_needs_a_larger_plan() -> None:
    loose = plan(0.02, 0.95, acceptable=0.005, max_producer_risk=0.10)
    strict = plan(0.02, 0.95, acceptable=0.005, max_producer_risk=0.01)
    assert loose.sample_size < 523 < strict.sample_size
    assert strict.producer_risk is not None and strict.producer_risk <= 0.01


def test_plan_close_to_the_limit_is_found_fast_and_still_minimal() -> None:
    result = plan(0.02, 0.95, acceptable=0.019)
    n, c = result.sample_size, result.acceptance_number
    assert n > 100_000
    assert _statsmodels_upper(c, n, 0.95) <= 0.02
    assert stats.binom.cdf(c, n, 0.019) >= 0.95
    # one item less: no acceptance number passes both risks
    cs = np.arange(c - 50, c + 50)
    upper = proportion_confint(cs, n - 1, alpha=0.1, method="beta")[1]
    assert not np.any((upper <= 0.02) & (stats.binom.cdf(cs, n - 1, 0.019) >= 0.95))


def _brute_force_lot_plan(
    limit: float, confidence: float, acceptable: float, lot: int, risk: float
) -> tuple[int, int] | None:
    defects_at_acceptable = math.floor(acceptable * lot + 0.5)
    for n in range(1, lot + 1):
        best = None
        for c in range(n):
            demonstrates = hypergeometric_upper(c, n, lot, confidence) <= limit
            passes = stats.hypergeom.cdf(c, lot, defects_at_acceptable, n) >= 1 - risk
            if demonstrates and passes:
                best = c
        if best is not None:
            return n, best
    return None


@pytest.mark.parametrize(
    ("limit", "confidence", "acceptable", "lot"),
    [(0.05, 0.90, 0.01, 100), (0.10, 0.95, 0.03, 80), (0.08, 0.90, 0.0, 60), (0.2, 0.9, 0.05, 40)],
)
def test_finite_lot_plan_matches_exhaustive_search_on_a_small_lot(
    limit: float, confidence: float, acceptable: float, lot: int
) -> None:
    expected = _brute_force_lot_plan(limit, confidence, acceptable, lot, DEFAULT_PRODUCER_RISK)
    assert expected is not None
    result = plan(limit, confidence, acceptable=acceptable, lot_size=lot)
    assert (result.sample_size, result.acceptance_number) == expected
    assert result.lot_size == lot
    assert result.consumer_risk <= 1 - confidence


@pytest.mark.parametrize("lot", [30, 149, 500, 5000])
def test_finite_lot_zero_acceptance_plan_is_the_smallest_exhaustive_one(lot: int) -> None:
    result = plan(0.02, 0.95, lot_size=lot)
    n = result.sample_size
    assert result.acceptance_number == 0
    assert hypergeometric_upper(0, n, lot, 0.95) <= 0.02
    assert n == 1 or hypergeometric_upper(0, n - 1, lot, 0.95) > 0.02
    assert n <= min(lot, 149)


def test_plan_refuses_what_it_cannot_deliver() -> None:
    with pytest.raises(ValidationError, match="acceptable") as info:
        plan(0.02, 0.95, acceptable=0.02)
    assert info.value.field == "acceptable"
    with pytest.raises(ValidationError) as info:
        plan(0.0, 0.95)
    assert info.value.field == "limit"
    with pytest.raises(ValidationError) as info:
        plan(0.02, 1.0)
    assert info.value.field == "confidence"
    # 10 items: a lot at 15 % holds 2 defects (rounded), but releasing 2 shows only <= 20 %
    with pytest.raises(ValidationError, match="no plan"):
        plan(0.19, 0.9, acceptable=0.15, lot_size=10)
    with pytest.raises(ValidationError) as info:
        plan(0.02, 0.95, lot_size=0)
    assert info.value.field == "lot_size"


def test_plan_serializes_every_field() -> None:
    result = plan(0.02, 0.95, acceptable=0.005, lot_size=10_000)
    document = result.to_dict()
    assert list(document) == [
        "sample_size",
        "acceptance_number",
        "limit",
        "confidence",
        "acceptable",
        "lot_size",
        "producer_risk",
        "consumer_risk",
    ]
    assert SamplingPlan(**document) == result


# decisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampled", "defects", "limit", "confidence"),
    [(149, 0, 0.02, 0.95), (148, 0, 0.02, 0.95), (523, 5, 0.02, 0.95), (522, 5, 0.02, 0.95),
     (300, 1, 0.02, 0.90), (1000, 30, 0.02, 0.95), (20, 0, 0.10, 0.80)],
)  # fmt: skip
def test_decide_releases_only_when_the_statsmodels_bound_is_within_the_limit(
    sampled: int, defects: int, limit: float, confidence: float
) -> None:
    result = decide(sampled, defects, limit, confidence)
    upper = _statsmodels_upper(defects, sampled, confidence)
    assert result["upper_bound"] == pytest.approx(upper, abs=1e-12)
    assert result["defect_rate"] == defects / sampled
    assert result["decision"] == ("release" if upper <= limit else "block")
    assert result["bound"] == "clopper-pearson"


def test_a_zero_point_estimate_alone_never_releases() -> None:
    assert decide(148, 0, 0.02, 0.95)["decision"] == "block"
    assert decide(149, 0, 0.02, 0.95)["decision"] == "release"
    empty = decide(0, 0, 0.02, 0.95)
    assert empty["decision"] == "block" and empty["defect_rate"] is None
    assert empty["upper_bound"] == 1.0


def test_decide_on_a_finite_lot_uses_scipys_hypergeometric() -> None:
    result = decide(100, 1, 0.03, 0.95, lot_size=400)
    assert result["bound"] == "hypergeometric" and result["lot_size"] == 400
    count = round(result["upper_bound"] * 400)
    assert stats.hypergeom.cdf(1, 400, count, 100) > 0.05
    assert stats.hypergeom.cdf(1, 400, count + 1, 100) <= 0.05
    assert result["decision"] == ("release" if count / 400 <= 0.03 else "block")


@pytest.mark.parametrize(
    ("limit", "acceptable", "lot"),
    [(0.02, None, None), (0.02, 0.005, None), (0.05, 0.01, None), (0.02, 0.005, 2000),
     (0.05, None, 300)],
)  # fmt: skip
def test_a_plan_releases_on_its_acceptance_number_and_blocks_on_one_more(
    limit: float, acceptable: float | None, lot: int | None
) -> None:
    result = plan(limit, 0.95, acceptable=acceptable, lot_size=lot)
    n, c = result.sample_size, result.acceptance_number
    assert decide(n, c, limit, 0.95, lot_size=lot)["decision"] == "release"
    assert decide(n, c + 1, limit, 0.95, lot_size=lot)["decision"] == "block"


def test_decide_refuses_impossible_counts() -> None:
    with pytest.raises(ValidationError) as info:
        decide(10, 11, 0.02, 0.95)
    assert info.value.field == "defects"
    with pytest.raises(ValidationError) as info:
        decide(10, 0, 0.02, 0.95, lot_size=5)
    assert info.value.field == "lot_size"


# operating characteristic ---------------------------------------------------------------------

RATES = np.array([0.0, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05])


def _tolerance(probability: np.ndarray, draws: int) -> np.ndarray:
    # 5 binomial standard errors of a simulated proportion, never below one draw
    return 5 * np.sqrt(probability * (1 - probability) / draws) + 1 / draws


def test_binomial_oc_curve_matches_simulation() -> None:
    result = plan(0.02, 0.95, acceptable=0.005)
    exact = oc_curve(result, RATES)
    draws = 20_000
    rng = np.random.default_rng(6)
    defects = rng.binomial(result.sample_size, RATES[:, None], size=(len(RATES), draws))
    simulated = (defects <= result.acceptance_number).mean(axis=1)
    assert np.all(np.abs(simulated - exact) <= _tolerance(exact, draws))
    assert exact[0] == 1.0 and np.all(np.diff(exact) <= 0)
    assert exact[2] == pytest.approx(1 - result.producer_risk)  # type: ignore[operator]
    assert exact[5] == pytest.approx(result.consumer_risk)


def test_finite_lot_oc_curve_matches_simulation_without_replacement() -> None:
    lot = 400
    result = plan(0.05, 0.90, acceptable=0.01, lot_size=lot)
    exact = oc_curve(result, RATES)
    draws = 20_000
    rng = np.random.default_rng(7)
    counts = np.floor(RATES * lot + 0.5).astype(int)
    simulated = np.array(
        [
            (
                rng.hypergeometric(d, lot - d, result.sample_size, size=draws)
                <= result.acceptance_number
            ).mean()
            for d in counts
        ]
    )
    assert np.all(np.abs(simulated - exact) <= _tolerance(exact, draws))
    expected = stats.hypergeom.cdf(result.acceptance_number, lot, counts, result.sample_size)
    np.testing.assert_allclose(exact, expected, rtol=1e-12)


def test_acceptance_probability_refuses_bad_rates_and_oversized_samples() -> None:
    with pytest.raises(ValidationError):
        acceptance_probability(10, 0, [1.5])
    with pytest.raises(ValidationError):
        acceptance_probability(10, 0, [0.1], lot_size=5)
    assert acceptance_probability(4, 4, [1.0])[0] == 1.0


# stratified allocation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "sample", "expected"),
    [
        ([5000, 3000, 2000, 10], 149, [74, 44, 30, 1]),  # quotas 74.4, 44.4, 29.6 + minimum 1
        ([100, 100, 100], 10, [4, 3, 3]),  # ties: earlier strata first
        ([10, 10, 10, 10], 2, [1, 1, 0, 0]),  # too few for one each: largest remainder
        ([3, 0, 500], 10, [1, 0, 9]),  # an empty stratum gets nothing
        ([2, 10], 11, [2, 9]),  # quotas 1.83 and 9.17: the larger remainder gets the item
        ([7, 8, 9], 24, [7, 8, 9]),  # the whole population
        ([7, 8, 9], 0, [0, 0, 0]),
        ([], 0, []),
    ],
)
def test_proportional_allocation_by_hand(
    sizes: list[int], sample: int, expected: list[int]
) -> None:
    assert allocate(sizes, sample).tolist() == expected


def test_neyman_allocation_follows_size_times_standard_deviation() -> None:
    sizes = np.array([5000, 3000, 2000])
    rates = np.array([0.01, 0.02, 0.10])
    weights = sizes * np.sqrt(rates * (1 - rates))  # 497.5, 420.0, 600.0
    quotas = 149 * weights / weights.sum()  # 48.85, 41.24, 58.91
    assert allocate(sizes, 149, method="neyman", expected_rates=rates).tolist() == [49, 41, 59]
    assert np.all(np.abs(allocate(sizes, 149, method="neyman", expected_rates=rates) - quotas) < 1)
    # a stratum with no expected defects keeps its minimum of one
    assert allocate([100, 100], 20, method="neyman", expected_rates=[0.0, 0.2]).tolist() == [1, 19]
    # a quota past a stratum's size (27.3 of 10) is capped and the rest goes elsewhere
    capped = allocate([10, 1000], 200, method="neyman", expected_rates=[0.5, 0.001])
    assert capped.tolist() == [10, 190]
    # no variance anywhere: proportional
    assert allocate([300, 100], 8, method="neyman", expected_rates=[0, 0]).tolist() == [6, 2]


def test_allocation_invariants_hold_on_random_strata() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        k = int(rng.integers(1, 12))
        sizes = rng.integers(0, 60, size=k) * rng.integers(0, 2, size=k) + rng.integers(0, 3, k)
        total = int(sizes.sum())
        sample = int(rng.integers(0, total + 1))
        rates = rng.uniform(0, 0.3, size=k)
        for method in ("proportional", "neyman"):
            counts = allocate(sizes, sample, method=method, expected_rates=rates)  # type: ignore[arg-type]
            assert counts.sum() == sample
            assert np.all((counts >= 0) & (counts <= sizes))
            if sample >= np.count_nonzero(sizes):
                assert np.all(counts[sizes > 0] >= 1)


def test_allocation_refuses_bad_input() -> None:
    with pytest.raises(ValidationError) as info:
        allocate([10, 10], 21)
    assert info.value.field == "sample_size"
    with pytest.raises(ValidationError):
        allocate([10, -1], 5)
    with pytest.raises(ValidationError) as info:
        allocate([10, 10], 5, method="neyman")
    assert info.value.field == "expected_rates"
    with pytest.raises(ValidationError):
        allocate([10, 10], 5, method="optimal")  # type: ignore[arg-type]


# sequential audit -----------------------------------------------------------------------------

# Wald's boundaries for p0 = 1 %, p1 = 5 %, alpha = 5 %, beta = 10 %, worked by hand:
# log(p1/p0) = log 5 = 1.6094379; log((1-p0)/(1-p1)) = log(0.99/0.95) = 0.0412430;
# log(beta/(1-alpha)) = log(0.1/0.95) = -2.2512918; log((1-beta)/alpha) = log 18 = 2.8903718;
# slope 0.0412430 / 1.6506809 = 0.0249854; intercepts -1.363857 and 1.751017.
G1, G2 = math.log(5), math.log(0.99 / 0.95)
HAND = {
    "release_threshold": math.log(0.1 / 0.95),
    "block_threshold": math.log(18),
    "slope": G2 / (G1 + G2),
    "release_intercept": math.log(0.1 / 0.95) / (G1 + G2),
    "block_intercept": math.log(18) / (G1 + G2),
}


def test_sprt_boundaries_match_the_hand_computed_ones() -> None:
    result = sprt([0], p0=0.01, p1=0.05, alpha=0.05, beta=0.10)
    for name, value in HAND.items():
        assert getattr(result, name) == pytest.approx(value, rel=1e-12), name
    assert (result.slope, result.release_intercept) == pytest.approx(
        (0.0249854, -1.363857), abs=1e-6
    )
    assert result.release_line(100) == pytest.approx(-1.363857 + 2.49854, abs=1e-5)
    assert result.block_line(0) == pytest.approx(1.751017, abs=1e-6)


def test_sprt_releases_after_55_clean_items_and_not_before() -> None:
    # -n log(0.99/0.95) <= log(0.1/0.95)  <=>  n >= 54.59
    result = sprt(np.zeros(200, dtype=int), p0=0.01, p1=0.05)
    assert (result.decision, result.sampled, result.defects, result.steps) == ("release", 55, 0, 55)
    assert sprt(np.zeros(54, dtype=int), p0=0.01, p1=0.05).decision == "continue"
    assert len(result.path) == 200  # the path goes on past the decision


def test_sprt_blocks_on_two_early_defects_and_stops_there() -> None:
    # 2 log 5 - 0 = 3.22 >= log 18 = 2.89 at item 2; one defect (1.61) is not enough
    result = sprt([1, 1, 0, 0, 0], p0=0.01, p1=0.05)
    assert (result.decision, result.sampled, result.defects) == ("block", 2, 2)
    assert result.log_likelihood_ratio == pytest.approx(2 * math.log(5))
    assert sprt([1, 0, 0], p0=0.01, p1=0.05).decision == "continue"


def test_sprt_decisions_agree_with_the_boundary_lines() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        outcomes = (rng.random(400) < rng.uniform(0.0, 0.08)).astype(int)
        result = sprt(outcomes, p0=0.01, p1=0.05)
        if result.decision == "release":
            assert result.defects <= result.release_line(result.sampled) + 1e-9
        elif result.decision == "block":
            assert result.defects >= result.block_line(result.sampled) - 1e-9
        else:
            n = np.arange(1, 401)
            d = np.cumsum(outcomes)
            assert np.all((d > result.release_line(n)) & (d < result.block_line(n)))


def test_sprt_on_counts_judges_the_whole_sample_at_once() -> None:
    outcomes = np.zeros(120, dtype=int)
    outcomes[[30, 90]] = 1
    by_item = sprt(outcomes, p0=0.01, p1=0.05)
    at_once = sprt([2], sampled=[120], p0=0.01, p1=0.05)
    assert at_once.log_likelihood_ratio == pytest.approx(by_item.path[-1])
    in_groups = sprt(outcomes.reshape(12, 10).sum(axis=1), sampled=10, p0=0.01, p1=0.05)
    np.testing.assert_allclose(in_groups.path, by_item.path[9::10])
    assert in_groups.sampled % 10 == 0


def _exact_sprt(
    rate: float, p0: float, p1: float, alpha: float, beta: float
) -> tuple[float, float]:
    """Release probability and average sample number by propagating P(d defects after n)."""
    lower, upper = math.log(beta / (1 - alpha)), math.log((1 - beta) / alpha)
    g1, g2 = math.log(p1 / p0), math.log((1 - p0) / (1 - p1))
    horizon = 20_000
    defects = np.arange(horizon + 1)
    mass = np.zeros(horizon + 1)
    mass[0] = 1.0
    released = expected = 0.0
    for n in range(1, horizon + 1):
        mass = mass * (1 - rate) + np.concatenate(([0.0], mass[:-1])) * rate
        llr = defects * g1 - (n - defects) * g2
        release, block = llr <= lower, llr >= upper
        stopped = mass[release].sum() + mass[block].sum()
        released += mass[release].sum()
        expected += n * stopped
        mass[release | block] = 0.0
        if mass.sum() < 1e-13:
            return released, expected
    raise AssertionError("the test did not stop within the horizon")


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.05])
def test_sprt_error_rates_and_average_sample_number_match_simulation(rate: float) -> None:
    p0, p1, alpha, beta = 0.01, 0.05, 0.05, 0.10
    exact_release, exact_asn = _exact_sprt(rate, p0, p1, alpha, beta)
    rng = np.random.default_rng(5)
    runs, length = 3000, 3000
    results = [
        sprt((rng.random(length) < rate).astype(np.int8), p0=p0, p1=p1, alpha=alpha, beta=beta)
        for _ in range(runs)
    ]
    assert all(r.decision != "continue" for r in results)
    released = np.array([r.decision == "release" for r in results])
    sampled = np.array([r.sampled for r in results])
    assert released.mean() == pytest.approx(
        exact_release, abs=5 * math.sqrt(exact_release * (1 - exact_release) / runs)
    )
    assert sampled.mean() == pytest.approx(exact_asn, abs=5 * sampled.std() / math.sqrt(runs))
    if rate == p0:  # Wald: the actual alpha' <= alpha / (1 - beta)
        assert 1 - exact_release <= alpha / (1 - beta)
    if rate == p1:  # and beta' <= beta / (1 - alpha)
        assert exact_release <= beta / (1 - alpha)
    # Wald's approximations ignore the overshoot past a threshold (one defect moves the
    # ratio by log 5 = 1.61 of the 2.89 to block): close for the OC, low for the ASN
    wald_release, wald_asn = sprt_operating_characteristic(
        [rate], p0=p0, p1=p1, alpha=alpha, beta=beta
    )
    assert wald_release[0] == pytest.approx(exact_release, abs=0.04)
    assert wald_asn[0] <= exact_asn <= 1.3 * wald_asn[0]


def test_sprt_operating_characteristic_hits_wald_s_anchor_points() -> None:
    p0, p1, alpha, beta = 0.01, 0.05, 0.05, 0.10
    slope = HAND["slope"]
    rates = np.array([0.0, p0, slope, p1, 1.0])
    release, asn = sprt_operating_characteristic(rates, p0=p0, p1=p1, alpha=alpha, beta=beta)
    log_a, log_b = HAND["block_threshold"], HAND["release_threshold"]
    assert release[1] == pytest.approx(1 - alpha, abs=1e-9)
    assert release[3] == pytest.approx(beta, abs=1e-9)
    assert release[2] == pytest.approx(log_a / (log_a - log_b), abs=1e-6)
    assert release[0] == pytest.approx(1.0) and release[4] == pytest.approx(0.0)
    assert np.all(np.diff(release) < 0)
    g1, g2 = math.log(5), math.log(0.99 / 0.95)
    drift_p0 = p0 * g1 - (1 - p0) * g2
    assert asn[1] == pytest.approx(((1 - alpha) * log_b + alpha * log_a) / drift_p0, rel=1e-9)
    assert asn[2] == pytest.approx(-log_a * log_b / (slope * g1**2 + (1 - slope) * g2**2), rel=1e-6)
    assert asn[0] == pytest.approx(log_b / -g2, rel=1e-9)  # 54.59 clean items
    assert asn[4] == pytest.approx(log_a / g1, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"p0": 0.05, "p1": 0.01}, "p1"), ({"p0": 0.01, "p1": 0.05, "alpha": 0.6, "beta": 0.5},
     "beta"), ({"p0": 0.0, "p1": 0.05}, "p0")],
)  # fmt: skip
def test_sprt_refuses_a_test_that_cannot_decide(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        sprt([0, 1], **kwargs)
    assert info.value.field == field


def test_sprt_refuses_more_defects_than_items() -> None:
    with pytest.raises(ValidationError) as info:
        sprt([0, 2], p0=0.01, p1=0.05)
    assert info.value.field == "defects"
    with pytest.raises(ValidationError) as info:
        sprt([1, 2], sampled=[5, 5, 5], p0=0.01, p1=0.05)
    assert info.value.field == "sampled"
