"""Acceptance sampling: upper confidence bounds on a defect rate, and zero-acceptance plans.

A QA gate never releases a batch on a point estimate: 0 defects in 20 sampled items is a
0 % rate but says little. The gate releases only when the one-sided upper confidence bound
on the lot's defect rate is at or below the limit:

- an infinite lot (or sampling with replacement): the exact binomial (Clopper-Pearson)
  bound, ``p_U = Beta.ppf(C, d + 1, n - d)``, the ``p`` at which ``P(X <= d) = 1 - C``;
- a finite lot of ``N`` items sampled without replacement: the exact hypergeometric bound,
  the largest defect count ``D`` that a sample with ``d`` defects does not rule out at
  level ``1 - C`` (``P(X <= d | N, D, n) > 1 - C``), as a rate ``D / N``.

On top of the bounds:

- :func:`plan`: the smallest sample size ``n`` and acceptance number ``c`` whose release
  (at most ``c`` defects in ``n``) demonstrates the rate is at or below the limit, optionally
  also passing lots at an acceptable rate ``P0`` with a bounded producer risk;
- :func:`decide`: release or block a sampled batch on the upper bound, never on the rate;
- :func:`allocate`: stratified allocation of a sample by class, scene type or annotator;
- :func:`acceptance_probability` / :func:`oc_curve`: operating-characteristic curves;
- :func:`sprt`: Wald's sequential probability ratio test, which may stop an audit early, and
  :func:`sprt_operating_characteristic` for its approximate OC and average sample number.

References: Clopper & Pearson (1934), Biometrika 26(4), doi:10.1093/biomet/26.4.404;
Wright (1990), "Exact confidence bounds when sampling from small finite universes",
JASA 85(409); Wald (1945), "Sequential tests of statistical hypotheses", Ann. Math.
Statist. 16(2), doi:10.1214/aoms/1177731118; Schilling & Neubauer (2017), *Acceptance
Sampling in Quality Control*, 3rd ed., CRC Press.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike

from labelgate.core._typing import FloatArray, IntArray
from labelgate.errors import ValidationError


class _LazyModule:
    """A module imported on first attribute access.

    scipy.stats takes ~0.3 s to import; the CLI imports this module for every command.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


stats: Any = _LazyModule("scipy.stats")
special: Any = _LazyModule("scipy.special")

__all__ = [
    "DEFAULT_PRODUCER_RISK",
    "Decision",
    "SPRTResult",
    "SamplingPlan",
    "acceptance_probability",
    "allocate",
    "clopper_pearson_upper",
    "decide",
    "hypergeometric_upper",
    "oc_curve",
    "plan",
    "sprt",
    "sprt_operating_characteristic",
    "upper_bound",
    "zero_acceptance_sample_size",
]


def _check(defects: int, sampled: int, confidence: float) -> None:
    if sampled < 0 or not 0 <= defects <= max(sampled, 0):
        raise ValidationError(
            f"expected 0 <= defects <= sampled, got defects={defects} sampled={sampled}",
            field="defects",
        )
    if not 0.0 < confidence < 1.0:
        raise ValidationError(f"expected 0 < confidence < 1, got {confidence}", field="confidence")


def clopper_pearson_upper(defects: int, sampled: int, confidence: float) -> float:
    """One-sided exact binomial upper bound on a defect rate.

    Examples
    --------
    >>> round(clopper_pearson_upper(0, 149, 0.95), 4)  # the zero-acceptance plan at 2 %
    0.0199
    >>> clopper_pearson_upper(3, 3, 0.95), clopper_pearson_upper(0, 0, 0.95)
    (1.0, 1.0)
    """
    _check(defects, sampled, confidence)
    if defects >= sampled:
        return 1.0
    return float(stats.beta.ppf(confidence, defects + 1, sampled - defects))


def hypergeometric_upper(defects: int, sampled: int, lot_size: int, confidence: float) -> float:
    """One-sided exact upper bound on a finite lot's defect rate (sampling without replacement).

    Examples
    --------
    >>> hypergeometric_upper(0, 100, 100, 0.95)  # the whole lot inspected: the rate is known
    0.0
    >>> hypergeometric_upper(0, 50, 100, 0.95)
    0.04
    """
    _check(defects, sampled, confidence)
    if sampled > lot_size:
        raise ValidationError(f"sampled {sampled} items from a lot of {lot_size}", field="lot_size")
    # candidate defect counts in the lot: at least the d seen, at most all unseen items too;
    # P(X <= d | D) falls as D grows, so the plausible ones are a prefix: bisect for its end
    # (evaluating every candidate took a minute on a lot of 100,000)
    alpha = 1.0 - confidence

    def plausible(count: int) -> bool:
        return bool(stats.hypergeom.cdf(defects, lot_size, count, sampled) > alpha)

    low, high = defects, lot_size - (sampled - defects)  # low is plausible: P(X <= d | d) = 1
    if plausible(high):
        return high / lot_size
    while high - low > 1:
        mid = (low + high) // 2
        if plausible(mid):
            low = mid
        else:
            high = mid
    return low / lot_size


def upper_bound(
    defects: int, sampled: int, confidence: float, *, lot_size: int | None = None
) -> float:
    """Clopper-Pearson without a lot size, the exact hypergeometric bound with one."""
    if lot_size is None:
        return clopper_pearson_upper(defects, sampled, confidence)
    return hypergeometric_upper(defects, sampled, lot_size, confidence)


def zero_acceptance_sample_size(
    limit: float, confidence: float, *, lot_size: int | None = None
) -> int:
    """Smallest sample that, with zero defects found, shows the rate is at or below ``limit``.

    Binomial: ``ceil(log(1 - C) / log(1 - P))``; for a finite lot the smallest ``n`` whose
    hypergeometric bound with 0 defects is at most ``limit`` (never more than the lot).

    Examples
    --------
    >>> zero_acceptance_sample_size(0.02, 0.95)
    149
    >>> zero_acceptance_sample_size(0.02, 0.95, lot_size=500)  # P(0 of 11 defects) < 5 %
    119
    """
    if not 0.0 < limit < 1.0:
        raise ValidationError(f"expected 0 < limit < 1, got {limit}", field="limit")
    _check(0, 0, confidence)
    n_binomial = math.ceil(math.log(1.0 - confidence) / math.log(1.0 - limit))
    if lot_size is None:
        return n_binomial
    low, high = 0, min(lot_size, n_binomial)
    while low < high:  # the bound falls as n grows: bisect for the first n that clears
        mid = (low + high) // 2
        if hypergeometric_upper(0, mid, lot_size, confidence) <= limit:
            high = mid
        else:
            low = mid + 1
    return low


DEFAULT_PRODUCER_RISK = 0.05
"""Default most probability that a plan blocks a lot at the acceptable rate ``P0`` (alpha)."""

_MAX_SAMPLE_SIZE = 1_000_000_000  # a plan past this is a sign P0 sits too close to the limit


def _check_rate(value: float, field: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValidationError(f"expected 0 < {field} < 1, got {value}", field=field)


def _check_lot(lot_size: int | None) -> None:
    if lot_size is not None and (isinstance(lot_size, bool) or lot_size < 1):
        raise ValidationError(
            f"expected a lot of at least 1 item, got {lot_size}", field="lot_size"
        )


def _first_count_above(limit: float, lot_size: int) -> int:
    """Smallest defect count ``D`` with ``D / N > limit``, in the float arithmetic of the bounds."""
    count = math.floor(limit * lot_size) + 1
    while count > 0 and (count - 1) / lot_size > limit:
        count -= 1
    while count / lot_size <= limit:
        count += 1
    return count


def _defect_counts(rates: FloatArray, lot_size: int) -> FloatArray:
    """Defects in a lot of ``N`` at each rate: ``round(p N)``, halves rounded up."""
    return np.floor(rates * lot_size + 0.5)


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """A single sampling plan: inspect ``sample_size`` items, release on ``acceptance_number``.

    A lot is released when the sample holds at most ``acceptance_number`` defects, and that
    release demonstrates the lot's defect rate is at or below ``limit`` at ``confidence``.

    Attributes
    ----------
    sample_size : int
        Items to inspect, ``n``.
    acceptance_number : int
        Most defects in the sample that still release the lot, ``c``.
    limit : float
        The defect rate the plan guards (``P``; the LTPD or rejectable quality level).
    confidence : float
        ``C``: a lot above the limit is released with probability at most ``1 - C``.
    acceptable : float or None
        ``P0`` (the acceptable quality level); None for a zero-acceptance plan.
    lot_size : int or None
        ``N`` for a finite lot sampled without replacement (hypergeometric); None: binomial.
    producer_risk : float or None
        Probability of blocking a lot at the acceptable rate; None without ``P0``.
    consumer_risk : float
        Probability of releasing a lot at the limit (binomial), or, for a finite lot, one with
        the fewest defects above it; at most ``1 - confidence``.
    """

    sample_size: int
    acceptance_number: int
    limit: float
    confidence: float
    acceptable: float | None
    lot_size: int | None
    producer_risk: float | None
    consumer_risk: float

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, in field order."""
        return {
            "sample_size": self.sample_size,
            "acceptance_number": self.acceptance_number,
            "limit": self.limit,
            "confidence": self.confidence,
            "acceptable": self.acceptable,
            "lot_size": self.lot_size,
            "producer_risk": self.producer_risk,
            "consumer_risk": self.consumer_risk,
        }


def _binomial_demonstrates(
    acceptance: IntArray, sampled: IntArray, limit: float, confidence: float
) -> Any:
    # the very call clopper_pearson_upper makes, elementwise: plan and decide agree to the bit
    bound = stats.beta.ppf(confidence, acceptance + 1, sampled - acceptance)
    return (sampled > acceptance) & (bound <= limit)


def _hypergeometric_demonstrates(
    acceptance: IntArray, sampled: IntArray, limit: float, confidence: float, lot_size: int
) -> Any:
    # hypergeometric_upper(c, n, N, C) <= limit  <=>  the fewest defects above the limit, D1,
    # is impossible (more than the unseen items plus c) or rejected: P(X <= c | D1) <= 1 - C;
    # the cdf falls as D grows, so every larger count is rejected too
    above = _first_count_above(limit, lot_size)
    impossible = above > lot_size - sampled + acceptance
    rejected = stats.hypergeom.cdf(acceptance, lot_size, above, sampled) <= 1.0 - confidence
    return (acceptance < above) & (impossible | rejected)


def _smallest_demonstrating_n(
    acceptance: IntArray,
    limit: float,
    confidence: float,
    lot_size: int | None,
    bisect: bool = False,
) -> IntArray:
    """For each ``c``, the smallest ``n`` whose release on ``<= c`` defects demonstrates ``limit``.

    Vectorized bisection over ``c``: the bound falls as ``n`` grows at fixed ``c``. Entries with
    no such ``n`` (past the lot, or past ``_MAX_SAMPLE_SIZE``) come back as ``-1``.
    """

    def ok(n: IntArray) -> Any:
        if lot_size is None:
            return _binomial_demonstrates(acceptance, n, limit, confidence)
        return _hypergeometric_demonstrates(acceptance, n, limit, confidence, lot_size)

    low = acceptance.copy()  # n = c never demonstrates anything: the bound is 1 (or c >= D1)
    if lot_size is None and not bisect:
        # bdtrin inverts the binomial cdf in a continuous n: its ceiling is n_c but for
        # rounding, which the two exact checks catch; only the misses are bisected
        with np.errstate(invalid="ignore"):
            guess = np.ceil(special.bdtrin(acceptance, 1.0 - confidence, limit))
        guess = np.where(np.isfinite(guess), guess, acceptance + 1)
        guess = np.clip(guess, acceptance + 1, _MAX_SAMPLE_SIZE).astype(np.int64)
        exact = ok(guess) & ~ok(guess - 1)
        if exact.all():
            return guess
        rest = _smallest_demonstrating_n(acceptance[~exact], limit, confidence, lot_size, True)
        guess[~exact] = rest
        return guess
    if lot_size is None:
        high = np.maximum(acceptance + 1, np.ceil((acceptance + 1) / limit)).astype(np.int64)
        while True:
            short = ~ok(high) & (high <= _MAX_SAMPLE_SIZE)
            if not short.any():
                break
            low = np.where(short, high, low)
            high = np.where(short, high * 2, high)
        found = high <= _MAX_SAMPLE_SIZE
        high = np.where(found, high, _MAX_SAMPLE_SIZE)
        found &= ok(high)
    else:
        high = np.full_like(acceptance, lot_size)
        found = ok(high)
    while np.any(high - low > 1):
        mid = np.where(high - low > 1, (low + high) // 2, high)
        good = ok(mid)
        high = np.where(good, mid, high)
        low = np.where(good, low, mid)
    return np.where(found, high, -1).astype(np.int64)


def _accepts(
    acceptance: IntArray, sampled: IntArray, rate: float, lot_size: int | None
) -> FloatArray:
    if lot_size is None:
        return np.asarray(stats.binom.cdf(acceptance, sampled, rate), dtype=np.float64)
    count = _defect_counts(np.asarray(rate, dtype=np.float64), lot_size)
    return np.asarray(stats.hypergeom.cdf(acceptance, lot_size, count, sampled), np.float64)


def _plan_with_acceptable(
    limit: float, confidence: float, acceptable: float, lot_size: int | None, max_risk: float
) -> tuple[int, int]:
    """Smallest ``(n, c)`` demonstrating ``limit`` that blocks a lot at ``P0`` at most ``max_risk``.

    For a fixed ``c`` the demonstration holds from some ``n_c`` on, and the acceptance
    probability at ``P0`` only falls as ``n`` grows; so ``c`` is feasible exactly when it is
    at ``n_c``, and the answer is ``n_c`` of the first feasible ``c`` (``n_c`` never falls as
    ``c`` grows). The search walks ``c`` in doubling chunks, vectorized within each.
    """
    stop = None if lot_size is None else _first_count_above(limit, lot_size)  # c < D1
    start, width = 0, 64
    while stop is None or start < stop:
        end = start + width if stop is None else min(start + width, stop)
        acceptance = np.arange(start, end, dtype=np.int64)
        sampled = _smallest_demonstrating_n(acceptance, limit, confidence, lot_size)
        found = sampled > 0
        feasible = found & (
            _accepts(acceptance, np.where(found, sampled, 1), acceptable, lot_size)
            >= 1.0 - max_risk
        )
        if feasible.any():
            first = int(np.argmax(feasible))
            n, c = int(sampled[first]), int(acceptance[first])
            # at the same n a larger c may demonstrate the limit too: it only helps the producer
            while _demonstrates_one(c + 1, n, limit, confidence, lot_size):
                c += 1
            return n, c
        if lot_size is None and not found.any():
            break
        start, width = end, width * 2
    where = "a binomial plan" if lot_size is None else f"a lot of {lot_size}"
    raise ValidationError(
        f"no plan for {where} demonstrates limit {limit} at confidence {confidence} while "
        f"blocking a lot at {acceptable} with probability <= {max_risk}"
        + (f" within {_MAX_SAMPLE_SIZE:,} items" if lot_size is None else "")
        + "; move the acceptable rate further below the limit",
        field="acceptable",
    )


def _demonstrates_one(
    acceptance: int, sampled: int, limit: float, confidence: float, lot_size: int | None
) -> bool:
    c, n = np.array([acceptance]), np.array([sampled])
    if lot_size is None:
        return bool(_binomial_demonstrates(c, n, limit, confidence)[0])
    return bool(_hypergeometric_demonstrates(c, n, limit, confidence, lot_size)[0])


def plan(
    limit: float,
    confidence: float,
    *,
    acceptable: float | None = None,
    lot_size: int | None = None,
    max_producer_risk: float = DEFAULT_PRODUCER_RISK,
) -> SamplingPlan:
    """Smallest sampling plan whose release demonstrates a defect rate at or below ``limit``.

    Parameters
    ----------
    limit : float
        ``P`` in (0, 1): the defect rate a released lot must be shown to be at or below.
    confidence : float
        ``C`` in (0, 1): a lot above the limit is released with probability at most ``1 - C``.
    acceptable : float, optional
        ``P0`` in [0, ``limit``): a rate at which lots should pass. Without it the plan is
        zero-acceptance (``c = 0``), the smallest that demonstrates the limit at all.
    lot_size : int, optional
        ``N``: the lot is finite and sampled without replacement (exact hypergeometric);
        without it, binomial (an infinite lot, or sampling with replacement).
    max_producer_risk : float, default 0.05
        With ``P0``: the most probability of blocking a lot at the acceptable rate (alpha).

    Returns
    -------
    SamplingPlan
        ``n`` and ``c``, the inputs, and the achieved producer and consumer risks.

    Raises
    ------
    ValidationError
        A rate or the confidence outside (0, 1), ``P0 >= P``, or (with ``P0``) no plan
        exists: on a small lot, or one past 10^9 items when ``P0`` sits very close to ``P``.

    Notes
    -----
    A plan ``(n, c)`` *demonstrates* the limit when the one-sided upper bound at ``C`` for
    ``c`` defects in ``n`` is at or below ``P``: ``Beta.ppf(C, c + 1, n - c) <= P``
    (Clopper-Pearson), equivalently ``P(X <= c | n, P) <= 1 - C``; for a finite lot,
    :func:`hypergeometric_upper` ``<= P``. So releasing on ``<= c`` defects is exactly a
    :func:`decide` release. With ``P0`` the plan also needs ``P(X <= c | n, P0) >= 1 - alpha``;
    of the smallest such ``n`` it takes the largest ``c``. A finite lot at rate ``p`` holds
    ``round(p N)`` defects. See Schilling & Neubauer (2017), ch. 3-4.

    Examples
    --------
    >>> zero = plan(0.02, 0.95)
    >>> zero.sample_size, zero.acceptance_number, round(zero.consumer_risk, 4)
    (149, 0, 0.0493)
    >>> two_sided = plan(0.02, 0.95, acceptable=0.005)
    >>> two_sided.sample_size, two_sided.acceptance_number, round(two_sided.producer_risk, 4)
    (523, 5, 0.0497)
    >>> plan(0.02, 0.95, lot_size=500).sample_size  # a finite lot needs fewer
    119
    """
    _check_rate(limit, "limit")
    _check(0, 0, confidence)
    _check_lot(lot_size)
    if acceptable is None:
        sample_size = zero_acceptance_sample_size(limit, confidence, lot_size=lot_size)
        acceptance_number = 0
    else:
        if not 0.0 <= acceptable < limit:
            raise ValidationError(
                f"expected 0 <= acceptable < limit ({limit}), got {acceptable}", field="acceptable"
            )
        _check_rate(max_producer_risk, "max_producer_risk")
        sample_size, acceptance_number = _plan_with_acceptable(
            limit, confidence, acceptable, lot_size, max_producer_risk
        )
    c, n = np.array([acceptance_number]), np.array([sample_size])
    if lot_size is None:
        consumer = float(stats.binom.cdf(c, n, limit)[0])
    else:
        above = _first_count_above(limit, lot_size)
        consumer = float(stats.hypergeom.cdf(c, lot_size, above, n)[0])
    producer = None
    if acceptable is not None:
        producer = float(1.0 - _accepts(c, n, acceptable, lot_size)[0])
    return SamplingPlan(
        sample_size=sample_size,
        acceptance_number=acceptance_number,
        limit=limit,
        confidence=confidence,
        acceptable=acceptable,
        lot_size=lot_size,
        producer_risk=producer,
        consumer_risk=consumer,
    )


def acceptance_probability(
    sample_size: int, acceptance_number: int, rates: ArrayLike, *, lot_size: int | None = None
) -> FloatArray:
    """Probability that a plan ``(n, c)`` releases a lot, at each true defect rate.

    Parameters
    ----------
    sample_size, acceptance_number : int
        The plan: inspect ``n`` items, release on at most ``c`` defects.
    rates : array_like of float
        True defect rates in [0, 1], any shape.
    lot_size : int, optional
        A finite lot of ``N``: exact hypergeometric with ``round(p N)`` defects; else binomial.

    Returns
    -------
    FloatArray
        ``P(X <= c)``, the shape of ``rates``.

    Examples
    --------
    >>> acceptance_probability(149, 0, [0.0, 0.005, 0.02]).round(4)
    array([1.    , 0.4738, 0.0493])
    >>> acceptance_probability(2, 0, [0.5], lot_size=4)  # P(both from the 2 good of 4) = 1/6
    array([0.16666667])
    """
    if sample_size < 0 or acceptance_number < 0:
        raise ValidationError(
            f"expected sample_size >= 0 and acceptance_number >= 0, got {sample_size} and "
            f"{acceptance_number}",
            field="sample_size",
        )
    _check_lot(lot_size)
    if lot_size is not None and sample_size > lot_size:
        raise ValidationError(
            f"sampled {sample_size} items from a lot of {lot_size}", field="lot_size"
        )
    values = np.asarray(rates, dtype=np.float64)
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValidationError("expected defect rates in [0, 1]", field="rates")
    c, n = np.int64(acceptance_number), np.int64(sample_size)
    if lot_size is None:
        return np.asarray(stats.binom.cdf(c, n, values), dtype=np.float64)
    counts = _defect_counts(values, lot_size)
    return np.asarray(stats.hypergeom.cdf(c, lot_size, counts, n), dtype=np.float64)


def oc_curve(sampling_plan: SamplingPlan, rates: ArrayLike) -> FloatArray:
    """Operating characteristic of a plan: its release probability at each defect rate.

    Exact: binomial, or hypergeometric for a plan with a lot size
    (see :func:`acceptance_probability`).

    Examples
    --------
    >>> oc_curve(plan(0.02, 0.95, acceptable=0.005), [0.005, 0.02]).round(4)
    array([0.9503, 0.0499])
    """
    return acceptance_probability(
        sampling_plan.sample_size,
        sampling_plan.acceptance_number,
        rates,
        lot_size=sampling_plan.lot_size,
    )


class Decision(TypedDict):
    """What :func:`decide` returns: the inputs, the bound, and release or block."""

    sampled: int
    defects: int
    limit: float
    confidence: float
    lot_size: int | None
    bound: Literal["clopper-pearson", "hypergeometric"]
    defect_rate: float | None
    upper_bound: float
    decision: Literal["release", "block"]


def decide(
    sampled: int, defects: int, limit: float, confidence: float, *, lot_size: int | None = None
) -> Decision:
    """Release or block a sampled lot on the upper confidence bound of its defect rate.

    ``decision`` is ``"release"`` only when the one-sided upper bound at ``confidence``
    (Clopper-Pearson; exact hypergeometric with ``lot_size``) is at or below ``limit``; an
    empty sample always blocks. The point estimate ``defect_rate`` is reported, never used.

    Parameters
    ----------
    sampled, defects : int
        Items inspected and defects found among them.
    limit : float
        ``P`` in (0, 1).
    confidence : float
        ``C`` in (0, 1).
    lot_size : int, optional
        ``N`` of a finite lot sampled without replacement.

    Returns
    -------
    Decision
        ``sampled``, ``defects``, ``limit``, ``confidence``, ``lot_size``, ``bound`` (which
        bound), ``defect_rate`` (None for an empty sample), ``upper_bound``, ``decision``.

    Examples
    --------
    >>> decide(149, 0, 0.02, 0.95)["decision"]
    'release'
    >>> result = decide(100, 0, 0.02, 0.95)  # 0 % observed, but 100 items cannot show < 2 %
    >>> result["defect_rate"], round(result["upper_bound"], 4), result["decision"]
    (0.0, 0.0295, 'block')
    >>> decide(100, 0, 0.02, 0.95, lot_size=200)["decision"]
    'release'
    """
    _check_rate(limit, "limit")
    _check_lot(lot_size)
    bound = upper_bound(defects, sampled, confidence, lot_size=lot_size)
    return {
        "sampled": sampled,
        "defects": defects,
        "limit": limit,
        "confidence": confidence,
        "lot_size": lot_size,
        "bound": "clopper-pearson" if lot_size is None else "hypergeometric",
        "defect_rate": defects / sampled if sampled else None,
        "upper_bound": bound,
        "decision": "release" if sampled > 0 and bound <= limit else "block",
    }


def _water_fill(
    weights: FloatArray, lower: FloatArray, upper: FloatArray, total: float
) -> FloatArray:
    """``x = clip(lam * w, lower, upper)`` summing to ``total`` (``sum(lower) <= total``)."""
    positive = weights > 0
    capacity = float(np.where(positive, upper, lower).sum())
    if capacity <= total:  # the weighted strata are full: the rest goes by remaining room
        filled = np.where(positive, upper, lower)
        room = np.where(positive, 0.0, upper - lower)
        if total - capacity <= 0 or not np.any(room > 0):
            return filled
        zero = np.zeros_like(room)
        return filled + _water_fill(room, zero, room, total - capacity)
    low, high = 0.0, float(np.max(upper[positive] / weights[positive]))
    for _ in range(200):  # bisection on lam; the exact solve below removes its last error
        mid = 0.5 * (low + high)
        if np.clip(mid * weights, lower, upper).sum() < total:
            low = mid
        else:
            high = mid
    x = np.clip(high * weights, lower, upper)
    free = positive & (high * weights > lower) & (high * weights < upper)
    if free.any():
        lam = (total - x[~free].sum()) / weights[free].sum()
        x[free] = np.clip(lam * weights[free], lower[free], upper[free])
    return x


def allocate(
    strata_sizes: ArrayLike,
    sample_size: int,
    *,
    method: Literal["proportional", "neyman"] = "proportional",
    expected_rates: ArrayLike | None = None,
) -> IntArray:
    """Split a sample across strata (classes, scene types, annotators) exactly.

    Parameters
    ----------
    strata_sizes : array_like of int, shape (k,)
        Items in each stratum (e.g. ``np.bincount(class_id)``).
    sample_size : int
        Items to sample in all, at most ``sum(strata_sizes)``.
    method : {"proportional", "neyman"}, default "proportional"
        ``proportional``: ``n_h`` proportional to ``N_h``. ``neyman``: proportional to
        ``N_h S_h`` with ``S_h = sqrt(p_h (1 - p_h))``, which puts the sample where defects
        vary most (the least variance of the overall rate for a given ``n``).
    expected_rates : array_like of float, shape (k,), optional
        Prior defect rate ``p_h`` of each stratum; required by ``neyman``. When every
        non-empty stratum has ``S_h = 0``, ``neyman`` falls back to proportional.

    Returns
    -------
    IntArray, shape (k,)
        Items to sample per stratum: sums to ``sample_size`` exactly, never more than a
        stratum holds, and at least 1 in every non-empty stratum when ``sample_size`` is at
        least the number of non-empty strata.

    Raises
    ------
    ValidationError
        Negative sizes, a sample larger than all strata, or rates missing or outside [0, 1].

    Notes
    -----
    The real-valued allocation ``x_h = clip(lam w_h, lower_h, N_h)`` (``lower_h`` 1 or 0)
    with ``sum(x_h) = n`` is rounded by largest remainder (Hamilton's method): floors first,
    then one more item to the largest fractional parts, earlier strata first on ties.
    Neyman (1934), doi:10.2307/2342192; Cochran (1977), *Sampling Techniques*, ch. 5.

    Examples
    --------
    >>> allocate([5000, 3000, 2000, 10], 149)
    array([74, 44, 30,  1])
    >>> allocate([5000, 3000, 2000], 149, method="neyman", expected_rates=[0.01, 0.02, 0.10])
    array([49, 41, 59])
    >>> allocate([3, 0, 500], 10)  # a stratum never gives more than it holds
    array([1, 0, 9])
    """
    sizes = np.asarray(strata_sizes)
    if (
        sizes.ndim != 1
        or (sizes.size and not np.all(sizes == np.round(sizes)))
        or np.any(sizes < 0)
    ):
        raise ValidationError(
            "expected a 1-D array of non-negative integer stratum sizes", field="strata_sizes"
        )
    sizes = sizes.astype(np.int64)
    total = int(sizes.sum())
    if not 0 <= sample_size <= total:
        raise ValidationError(
            f"expected 0 <= sample_size <= {total} (the strata's items), got {sample_size}",
            field="sample_size",
        )
    if method == "proportional":
        weights = sizes.astype(np.float64)
    elif method == "neyman":
        if expected_rates is None:
            raise ValidationError("neyman allocation needs expected_rates", field="expected_rates")
        rates = np.asarray(expected_rates, dtype=np.float64)
        if rates.shape != sizes.shape or not np.all((rates >= 0.0) & (rates <= 1.0)):
            raise ValidationError(
                f"expected {len(sizes)} rates in [0, 1], got {rates.tolist()}",
                field="expected_rates",
            )
        weights = sizes * np.sqrt(rates * (1.0 - rates))
        if not np.any(weights > 0):
            weights = sizes.astype(np.float64)
    else:
        raise ValidationError(
            f"expected method 'proportional' or 'neyman', got {method!r}", field="method"
        )
    nonempty = sizes > 0
    lower = nonempty.astype(np.float64) if sample_size >= nonempty.sum() else np.zeros(len(sizes))
    upper = sizes.astype(np.float64)
    x = _water_fill(weights, lower, upper, float(sample_size))
    counts = np.floor(x).astype(np.int64)
    short = sample_size - int(counts.sum())
    assert 0 <= short <= len(sizes)  # floors of a real allocation summing to n
    remainder = np.where(counts < sizes, x - counts, -np.inf)
    counts[np.argsort(-remainder, kind="stable")[:short]] += 1
    return counts


@dataclass(frozen=True, slots=True, eq=False)  # == on the path array is ambiguous
class SPRTResult:
    """Outcome of Wald's sequential probability ratio test on an audit.

    Attributes
    ----------
    decision : {"release", "block", "continue"}
        ``release`` (accept ``p = p0``) when the log-likelihood ratio reaches
        ``release_threshold``, ``block`` when it reaches ``block_threshold``, else inspect more.
    sampled, defects : int
        Items and defects counted up to the decision (all of them on ``continue``).
    steps : int
        Inspection steps used up to the decision (items, for an item-by-item audit).
    log_likelihood_ratio : float
        ``log L(p1) / L(p0)`` at that point.
    path : FloatArray, shape (steps_given,)
        The log-likelihood ratio after every step given, also past the decision.
    p0, p1, alpha, beta : float
        The test: ``P(block | p0) ~ alpha``, ``P(release | p1) ~ beta``.
    release_threshold, block_threshold : float
        ``log(beta / (1 - alpha))`` and ``log((1 - beta) / alpha)``.
    slope, release_intercept, block_intercept : float
        The same boundaries as lines in defects: release while ``defects <=
        release_intercept + slope n``, block once ``defects >= block_intercept + slope n``.
    """

    decision: Literal["release", "block", "continue"]
    sampled: int
    defects: int
    steps: int
    log_likelihood_ratio: float
    path: FloatArray
    p0: float
    p1: float
    alpha: float
    beta: float
    release_threshold: float
    block_threshold: float
    slope: float
    release_intercept: float
    block_intercept: float

    def release_line(self, sampled: ArrayLike) -> FloatArray:
        """Most defects after ``n`` items that still release: ``release_intercept + slope n``."""
        return self.release_intercept + self.slope * np.asarray(sampled, dtype=np.float64)

    def block_line(self, sampled: ArrayLike) -> FloatArray:
        """Fewest defects after ``n`` items that block: ``block_intercept + slope n``."""
        return self.block_intercept + self.slope * np.asarray(sampled, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Every field but ``path``, JSON-ready."""
        return {
            "decision": self.decision,
            "sampled": self.sampled,
            "defects": self.defects,
            "steps": self.steps,
            "log_likelihood_ratio": self.log_likelihood_ratio,
            "p0": self.p0,
            "p1": self.p1,
            "alpha": self.alpha,
            "beta": self.beta,
            "release_threshold": self.release_threshold,
            "block_threshold": self.block_threshold,
            "slope": self.slope,
            "release_intercept": self.release_intercept,
            "block_intercept": self.block_intercept,
        }


def _sprt_constants(p0: float, p1: float, alpha: float, beta: float) -> tuple[float, ...]:
    _check_rate(p0, "p0")
    _check_rate(p1, "p1")
    if not p0 < p1:
        raise ValidationError(f"expected p0 < p1, got p0={p0} p1={p1}", field="p1")
    _check_rate(alpha, "alpha")
    _check_rate(beta, "beta")
    if alpha + beta >= 1.0:
        raise ValidationError(f"expected alpha + beta < 1, got {alpha} + {beta}", field="beta")
    defect_weight = math.log(p1 / p0)  # added per defect
    good_weight = math.log((1.0 - p0) / (1.0 - p1))  # subtracted per good item
    release = math.log(beta / (1.0 - alpha))
    block = math.log((1.0 - beta) / alpha)
    return defect_weight, good_weight, release, block


def sprt(
    defects: ArrayLike,
    *,
    sampled: ArrayLike | None = None,
    p0: float,
    p1: float,
    alpha: float = 0.05,
    beta: float = 0.10,
) -> SPRTResult:
    """Wald's sequential probability ratio test: stop an audit as soon as it can decide.

    Parameters
    ----------
    defects : array_like of int, shape (steps,)
        Defects found at each inspection step: 0/1 per item for an item-by-item audit.
    sampled : array_like of int, optional
        Items inspected at each step (a scalar applies to every step); default 1 per step.
        ``sprt(d, sampled=n)`` with one count each judges a whole sample at once.
    p0 : float
        Acceptable defect rate: lots at ``p0`` are blocked with probability about ``alpha``.
    p1 : float
        Rejectable defect rate (``> p0``): lots at ``p1`` are released with probability about
        ``beta``. For a gate at limit ``P`` and confidence ``C`` use ``p1 = P``, ``beta = 1 - C``.
    alpha, beta : float, default 0.05, 0.10
        Producer and consumer risks, ``alpha + beta < 1``.

    Returns
    -------
    SPRTResult
        The decision at the first step whose log-likelihood ratio crosses a threshold
        (``continue`` when none does), with the thresholds and boundary lines.

    Notes
    -----
    After ``n`` items with ``d`` defects, ``llr = d log(p1/p0) - (n - d) log((1-p0)/(1-p1))``,
    a cumulative sum over steps. Release once ``llr <= log(beta / (1 - alpha))``, block once
    ``llr >= log((1 - beta) / alpha)`` (Wald 1945). Wald's bounds on the actual risks are
    ``alpha' <= alpha / (1 - beta)`` and ``beta' <= beta / (1 - alpha)``.

    Examples
    --------
    >>> result = sprt(np.zeros(60, dtype=int), p0=0.01, p1=0.05)
    >>> result.decision, result.sampled  # 55 clean items are enough to release
    ('release', 55)
    >>> sprt([1, 1, 0], p0=0.01, p1=0.05).decision
    'block'
    >>> sprt([0], sampled=[20], p0=0.01, p1=0.05).decision
    'continue'
    >>> round(float(result.release_line(100)), 3), round(float(result.block_line(100)), 3)
    (1.135, 4.25)
    """
    defect_weight, good_weight, release, block = _sprt_constants(p0, p1, alpha, beta)
    found = np.atleast_1d(np.asarray(defects))
    if found.ndim != 1 or not np.all(found == np.round(found)) or np.any(found < 0):
        raise ValidationError("expected a 1-D sequence of defect counts >= 0", field="defects")
    found = found.astype(np.int64)
    if sampled is None:
        inspected = np.ones_like(found)
    else:
        given = np.asarray(sampled)
        if given.ndim > 1 or given.size not in (1, found.size):
            raise ValidationError(
                f"expected {found.size} sample counts (one per step), got {given.size}",
                field="sampled",
            )
        if not np.all(given == np.round(given)) or np.any(given < 0):
            raise ValidationError("expected sample counts >= 0", field="sampled")
        inspected = np.broadcast_to(given, found.shape).astype(np.int64)
    if np.any(found > inspected):
        step = int(np.argmax(found > inspected))
        raise ValidationError(
            f"step {step}: {found[step]} defects in {inspected[step]} items", field="defects"
        )
    total_defects = np.cumsum(found)
    total_sampled = np.cumsum(inspected)
    path = total_defects * defect_weight - (total_sampled - total_defects) * good_weight
    crossed = (path <= release) | (path >= block)
    decision: Literal["release", "block", "continue"] = "continue"
    at = len(path) - 1
    if crossed.any():
        at = int(np.argmax(crossed))
        decision = "release" if path[at] <= release else "block"
    scale = defect_weight + good_weight
    return SPRTResult(
        decision=decision,
        sampled=int(total_sampled[at]) if len(path) else 0,
        defects=int(total_defects[at]) if len(path) else 0,
        steps=at + 1,
        log_likelihood_ratio=float(path[at]) if len(path) else 0.0,
        path=path.astype(np.float64),
        p0=p0,
        p1=p1,
        alpha=alpha,
        beta=beta,
        release_threshold=release,
        block_threshold=block,
        slope=good_weight / scale,
        release_intercept=release / scale,
        block_intercept=block / scale,
    )


def sprt_operating_characteristic(
    rates: ArrayLike, *, p0: float, p1: float, alpha: float = 0.05, beta: float = 0.10
) -> tuple[FloatArray, FloatArray]:
    """Wald's approximate release probability and average sample number of an item-by-item SPRT.

    Parameters
    ----------
    rates : array_like of float
        True defect rates in [0, 1], any shape.
    p0, p1, alpha, beta : float
        The test, as in :func:`sprt`.

    Returns
    -------
    release_probability, expected_sample_size : FloatArray
        Each the shape of ``rates``.

    Notes
    -----
    Each rate ``p`` maps to the ``h != 0`` solving ``p (p1/p0)^h + (1-p) ((1-p1)/(1-p0))^h
    = 1``; then ``L(p) = (A^h - 1) / (A^h - B^h)`` with ``A = (1-beta)/alpha`` and
    ``B = beta/(1-alpha)``, and ``ASN = (L log B + (1 - L) log A) / E[z]``, ``z`` the
    log-likelihood ratio of one item (``-log A log B / E[z^2]`` where ``E[z] = 0``). Both
    ignore the overshoot past a threshold, so the true ASN is a little larger
    (Wald 1945, sections 3-4).

    Examples
    --------
    >>> release, asn = sprt_operating_characteristic([0.01, 0.05], p0=0.01, p1=0.05)
    >>> release.round(4), asn.round(1)
    (array([0.95, 0.1 ]), array([80.6, 57.5]))
    """
    defect_weight, good_weight, release, block = _sprt_constants(p0, p1, alpha, beta)
    p = np.asarray(rates, dtype=np.float64)
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValidationError("expected defect rates in [0, 1]", field="rates")

    def rate_of(h: FloatArray) -> FloatArray:
        # p(h) = (1 - b^h) / (a^h - b^h), a = p1/p0, b = 1/exp(good_weight); falls from 1 to 0
        zero = np.abs(h) < 1e-12
        safe = np.where(zero, 1.0, h)
        value = -np.expm1(-safe * good_weight) / (
            np.exp(safe * defect_weight) - np.exp(-safe * good_weight)
        )
        return np.where(zero, good_weight / (defect_weight + good_weight), value)

    reach = 700.0 / max(defect_weight, good_weight)  # exp() stays finite within +-reach
    low = np.full(p.shape, -reach)
    high = np.full(p.shape, reach)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(200):
            mid = 0.5 * (low + high)
            above = rate_of(mid) > p  # p(h) falls: the root lies to the right
            low = np.where(above, mid, low)
            high = np.where(above, high, mid)
    h = 0.5 * (low + high)
    span = block - release
    positive = h > 0
    # L(h) = (A^h - 1) / (A^h - B^h), rearranged so every exponent is <= 0
    hp = np.where(positive, h, 1.0)
    hn = np.where(positive, -1.0, h)
    when_positive = np.expm1(-hp * block) / np.expm1(-hp * span)
    when_negative = (np.exp(hn * span) - np.exp(-hn * release)) / np.expm1(hn * span)
    probability = np.where(positive, when_positive, when_negative)
    probability = np.where(np.abs(h) < 1e-9, block / span, probability)
    drift = p * defect_weight - (1.0 - p) * good_weight
    spread = p * defect_weight**2 + (1.0 - p) * good_weight**2
    flat = np.abs(drift) < 1e-9 * spread
    asn = np.where(
        flat,
        -release * block / spread,
        (probability * release + (1.0 - probability) * block) / np.where(flat, 1.0, drift),
    )
    return probability.astype(np.float64), asn.astype(np.float64)
