"""Acceptance sampling: upper confidence bounds on a defect rate, and zero-acceptance plans.

A QA gate never releases a batch on a point estimate: 0 defects in 20 sampled items is a
0 % rate but says little. The gate releases only when the one-sided upper confidence bound
on the lot's defect rate is at or below the limit:

- an infinite lot (or sampling with replacement): the exact binomial (Clopper-Pearson)
  bound, ``p_U = Beta.ppf(C, d + 1, n - d)``, the ``p`` at which ``P(X <= d) = 1 - C``;
- a finite lot of ``N`` items sampled without replacement: the exact hypergeometric bound,
  the largest defect count ``D`` that a sample with ``d`` defects does not rule out at
  level ``1 - C`` (``P(X <= d | N, D, n) > 1 - C``), as a rate ``D / N``.

Reference: Clopper & Pearson (1934), Biometrika 26(4), doi:10.1093/biomet/26.4.404;
Wright (1990), "Exact confidence bounds when sampling from small finite universes",
JASA 85(409).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.errors import ValidationError

__all__ = [
    "clopper_pearson_upper",
    "hypergeometric_upper",
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
    # candidate defect counts in the lot: at least the d seen, at most all unseen items too
    candidates = np.arange(defects, lot_size - (sampled - defects) + 1)
    alpha = 1.0 - confidence
    plausible = stats.hypergeom.cdf(defects, lot_size, candidates, sampled) > alpha
    return float(candidates[plausible].max()) / lot_size


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
