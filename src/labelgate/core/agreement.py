"""Agreement between annotators on categorical labels: percent, Cohen, Fleiss, Krippendorff.

Ratings come as a long table of integer codes (``item_id``, ``annotator_id``, ``label_id``,
one row per rating; a missing rating is an absent row). Everything is computed from one
sparse item x category count matrix (:func:`category_counts`), so a million ratings cost a
few sorts, not a Python loop per rating.

Every statistic is a weighted sum over items. That makes the bootstrap cheap: a resample of
items is a row of integer weights (how often each item was drawn), and one matrix product
evaluates hundreds of resamples at once. The ``*_batch`` functions take such a weight matrix
of shape (b, n_items) and return b values; the point estimate is the same function with
weights of one.

Undefined values (no variation at all, so the expected disagreement is zero) are NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]  # scipy ships no type hints

from labelgate.core._typing import FloatArray, IntArray
from labelgate.errors import ValidationError

__all__ = [
    "LEVELS",
    "CategoricalAgreement",
    "Level",
    "bootstrap_ci",
    "bootstrap_cis",
    "categorical_agreement",
    "category_counts",
    "cohen_kappa",
    "cohen_kappa_batch",
    "fleiss_kappa",
    "fleiss_kappa_batch",
    "krippendorff_alpha",
    "krippendorff_alpha_batch",
    "paired_labels",
    "percent_agreement",
    "percent_agreement_batch",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
KappaWeights = Literal["linear", "quadratic"] | None
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")

# Bound on the elements of one (resamples x items) or (resamples x categories^2) block, so
# the bootstrap of a million items runs in chunks of memory instead of all at once.
_BLOCK_ELEMENTS = 20_000_000


def category_counts(
    item_id: IntArray,
    label_id: IntArray,
    *,
    n_items: int | None = None,
    n_categories: int | None = None,
) -> sp.csr_matrix:
    """Count the ratings of each item per category: a sparse (n_items, n_categories) matrix.

    Parameters
    ----------
    item_id, label_id
        (n,) non-negative integer codes, one row per rating.
    n_items, n_categories
        Shape of the result; default one more than the largest code.

    Examples
    --------
    >>> category_counts(np.array([0, 0, 1]), np.array([1, 1, 0])).toarray()
    array([[0, 2],
           [1, 0]])
    """
    item_id = np.asarray(item_id, dtype=np.int64)
    label_id = np.asarray(label_id, dtype=np.int64)
    if item_id.shape != label_id.shape or item_id.ndim != 1:
        raise ValidationError(
            f"expected two (n,) arrays, got shapes {item_id.shape} and {label_id.shape}",
            field="label_id",
        )
    if item_id.size and (item_id.min() < 0 or label_id.min() < 0):
        raise ValidationError("expected non-negative codes", field="label_id")
    rows = n_items if n_items is not None else int(item_id.max(initial=-1)) + 1
    cols = n_categories if n_categories is not None else int(label_id.max(initial=-1)) + 1
    ones = np.ones(item_id.size, dtype=np.int64)
    counts = sp.csr_matrix((ones, (item_id, label_id)), shape=(rows, cols))
    counts.sum_duplicates()  # coo -> csr already adds duplicates; this also sorts indices
    return counts


def _as_counts(counts: Any) -> sp.csr_matrix:
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if matrix.nnz and matrix.data.min() < 0:
        raise ValidationError("expected non-negative counts", field="counts")
    return matrix


def _ones(n: int) -> FloatArray:
    return np.ones((1, n), dtype=np.float64)


def _check_weights(weights: FloatArray, n_items: int) -> FloatArray:
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.ndim != 2 or weights.shape[1] != n_items:
        raise ValidationError(
            f"expected item weights of shape (b, {n_items}), got {weights.shape}", field="weights"
        )
    return weights


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _pairwise_agreement(counts: sp.csr_matrix) -> tuple[FloatArray, FloatArray]:
    """Per item: share of agreeing ordered pairs, and whether it has >= 2 ratings."""
    m = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    same = np.asarray(counts.multiply(counts).sum(axis=1), dtype=np.float64).ravel() - m
    pairs = m * (m - 1)
    share = _ratio(same, pairs)
    pairable = (m >= 2).astype(np.float64)
    return np.nan_to_num(share), pairable


# ---------------------------------------------------------------------------------------------
# percent agreement


def percent_agreement_batch(counts: Any, weights: FloatArray) -> FloatArray:
    """Percent agreement under b item weightings: (b, n_items) weights -> (b,) values."""
    matrix = _as_counts(counts)
    weights = _check_weights(weights, matrix.shape[0])
    share, pairable = _pairwise_agreement(matrix)
    return _ratio(weights @ (share * pairable), weights @ pairable)


def percent_agreement(counts: Any) -> float:
    """Share of agreeing annotator pairs, averaged over items with at least two ratings.

    For item ``u`` with ``m_u >= 2`` ratings, ``n_uc`` of them in category ``c``,
    ``P_u = sum_c n_uc (n_uc - 1) / (m_u (m_u - 1))`` is the share of ordered pairs of
    different annotators who chose the same category; the result is the unweighted mean of
    ``P_u``, Fleiss' (1971) P-bar. Items with fewer than two ratings are left out. With two
    annotators it is the plain share of common items labelled alike.

    Parameters
    ----------
    counts
        (n_items, n_categories) ratings per item and category, sparse or dense.

    Returns
    -------
    float
        In [0, 1]; NaN when no item has two ratings.

    Examples
    --------
    >>> percent_agreement(np.array([[2, 0], [1, 1], [3, 0]]))
    0.6666666666666666
    """
    matrix = _as_counts(counts)
    return float(percent_agreement_batch(matrix, _ones(matrix.shape[0]))[0])


# ---------------------------------------------------------------------------------------------
# Cohen's kappa


def paired_labels(
    item_id: IntArray, annotator_id: IntArray, label_id: IntArray, first: int, second: int
) -> tuple[IntArray, IntArray]:
    """Labels of two annotators on the items both rated, aligned by item (sorted by item).

    Examples
    --------
    >>> paired_labels(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 0, 0, 1]),
    ...               np.array([3, 3, 1, 2, 0]), 0, 1)
    (array([3, 2]), array([3, 0]))
    """
    item_id = np.asarray(item_id, dtype=np.int64)
    annotator_id = np.asarray(annotator_id, dtype=np.int64)
    label_id = np.asarray(label_id, dtype=np.int64)
    a_mask = annotator_id == first
    b_mask = annotator_id == second
    common, a_at, b_at = np.intersect1d(
        item_id[a_mask], item_id[b_mask], assume_unique=True, return_indices=True
    )
    del common
    return label_id[a_mask][a_at], label_id[b_mask][b_at]


def _kappa_disagreement_weights(n_categories: int, weights: KappaWeights) -> FloatArray:
    codes = np.arange(n_categories, dtype=np.float64)
    distance = np.abs(codes[:, None] - codes[None, :])
    if weights is None:
        return (distance > 0).astype(np.float64)
    if weights == "linear":
        return distance
    if weights == "quadratic":
        return distance**2
    raise ValidationError(f"expected weights None, 'linear' or 'quadratic', got {weights!r}")


def cohen_kappa_batch(
    a: IntArray,
    b: IntArray,
    weights: FloatArray,
    *,
    kappa_weights: KappaWeights = None,
    n_categories: int | None = None,
) -> FloatArray:
    """Cohen's kappa under b weightings of the common items: (b, n) weights -> (b,) values."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValidationError(
            f"expected two (n,) label arrays, got shapes {a.shape} and {b.shape}", field="b"
        )
    weights = _check_weights(weights, a.size)
    k = (
        n_categories
        if n_categories is not None
        else int(max(a.max(initial=-1), b.max(initial=-1))) + 1
    )
    cell = a * k + b
    one_hot = sp.csr_matrix((np.ones(a.size), (np.arange(a.size), cell)), shape=(a.size, k * k))
    disagreement = _kappa_disagreement_weights(k, kappa_weights)
    values = np.empty(weights.shape[0])
    step = max(1, _BLOCK_ELEMENTS // max(k * k, a.size, 1))
    for start in range(0, weights.shape[0], step):
        block = weights[start : start + step]
        observed = np.asarray((one_hot.T @ block.T).T).reshape(-1, k, k)
        total = observed.sum(axis=(1, 2))
        rows, cols = observed.sum(axis=2), observed.sum(axis=1)
        expected = (
            rows[:, :, None] * cols[:, None, :] / np.where(total == 0, 1, total)[:, None, None]
        )
        values[start : start + step] = 1.0 - _ratio(
            (observed * disagreement).sum(axis=(1, 2)), (expected * disagreement).sum(axis=(1, 2))
        )
    return values


def cohen_kappa(
    a: IntArray,
    b: IntArray,
    *,
    weights: KappaWeights = None,
    n_categories: int | None = None,
) -> float:
    """Cohen's kappa of two annotators' labels on the same items.

    Parameters
    ----------
    a, b
        (n,) category codes of annotator A and B, aligned by item (see :func:`paired_labels`).
    weights
        ``None`` (nominal), ``"linear"`` (disagreement ``|i - j|``) or ``"quadratic"``
        (``(i - j)^2``), on the category codes, which must then be in order.
    n_categories
        Number of categories; default one more than the largest code.

    Returns
    -------
    float
        ``1 - sum(w * O) / sum(w * E)``, with ``O`` the observed confusion matrix and ``E``
        the product of its margins over ``n`` (Cohen 1960; Cohen 1968 for the weighted
        form); NaN when ``E`` puts all mass on the diagonal.

    Examples
    --------
    >>> cohen_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    0.5
    """
    a = np.asarray(a, dtype=np.int64)
    return float(
        cohen_kappa_batch(a, b, _ones(a.size), kappa_weights=weights, n_categories=n_categories)[0]
    )


# ---------------------------------------------------------------------------------------------
# Fleiss' kappa


def _equal_ratings(matrix: sp.csr_matrix) -> tuple[int | None, str | None]:
    m = np.asarray(matrix.sum(axis=1)).ravel()
    m = m[m > 0]
    if m.size == 0:
        return None, "no ratings"
    if m.min() != m.max():
        return None, (
            f"needs the same number of ratings per item; items have {int(m.min())} to "
            f"{int(m.max())}"
        )
    if m[0] < 2:
        return None, "needs at least two ratings per item"
    return int(m[0]), None


def fleiss_kappa_batch(counts: Any, weights: FloatArray) -> FloatArray:
    """Fleiss' kappa under b item weightings: (b, n_items) -> (b,); NaN if undefined."""
    matrix = _as_counts(counts)
    weights = _check_weights(weights, matrix.shape[0])
    raters, _ = _equal_ratings(matrix)
    if raters is None:
        return np.full(weights.shape[0], np.nan)
    rated = np.asarray(matrix.sum(axis=1)).ravel() > 0
    weights = weights * rated  # unrated rows (gaps in the item codes) are not items
    share, _ = _pairwise_agreement(matrix)
    total = weights.sum(axis=1)
    observed = _ratio(weights @ share, total)
    proportions = np.asarray((matrix.T @ weights.T).T) / np.where(total == 0, 1, total)[:, None]
    expected = (proportions / raters) ** 2
    chance = expected.sum(axis=1)
    return _ratio(observed - chance, 1.0 - chance)


def fleiss_kappa(counts: Any) -> tuple[float | None, str | None]:
    """Fleiss' kappa for items that all have the same number of ratings.

    ``kappa = (P - P_e) / (1 - P_e)`` with ``P`` the mean per-item agreement of
    :func:`percent_agreement` and ``P_e = sum_j p_j^2``, ``p_j`` the share of all ratings in
    category ``j`` (Fleiss 1971, doi:10.1037/h0031619).

    Parameters
    ----------
    counts
        (n_items, n_categories) ratings per item and category; rows without ratings are
        ignored.

    Returns
    -------
    tuple of (float or None, str or None)
        The kappa and ``None``; or ``None`` and the reason it is undefined (items with
        different numbers of ratings, fewer than two ratings per item).

    Examples
    --------
    >>> kappa, reason = fleiss_kappa(np.array([[2, 0], [0, 2], [1, 1]]))
    >>> round(kappa, 4), reason
    (0.3333, None)
    >>> fleiss_kappa(np.array([[2, 0], [0, 3]]))
    (None, 'needs the same number of ratings per item; items have 2 to 3')
    """
    matrix = _as_counts(counts)
    raters, reason = _equal_ratings(matrix)
    if raters is None:
        return None, reason
    return float(fleiss_kappa_batch(matrix, _ones(matrix.shape[0]))[0]), None


# ---------------------------------------------------------------------------------------------
# Krippendorff's alpha


def _coincidences_per_item(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each pairable item's coincidences as one sparse row of length C^2.

    ``o_u[c, k] = (n_uc n_uk - [c == k] n_uc) / (m_u - 1)``: every ordered pair of different
    ratings of the item, weighted so that each item contributes ``m_u`` values in all.
    Built from the pairs of nonzero entries within each row (sort once, ``np.repeat``).
    """
    n_items, n_cat = matrix.shape
    m = np.asarray(matrix.sum(axis=1)).ravel()
    entries = np.diff(matrix.indptr)
    entries = np.where(m >= 2, entries, 0)  # an item rated once has no pairs
    pairs_per_item = entries**2
    total = int(pairs_per_item.sum())
    item = np.repeat(np.arange(n_items), pairs_per_item)
    local = np.arange(total) - np.repeat(np.cumsum(pairs_per_item) - pairs_per_item, pairs_per_item)
    width = entries[item]
    start = matrix.indptr[:-1][item]
    first = start + local // np.maximum(width, 1)
    second = start + local % np.maximum(width, 1)
    n_first, n_second = matrix.data[first], matrix.data[second]
    value = (n_first * n_second - np.where(first == second, n_first, 0.0)) / (m[item] - 1)
    column = matrix.indices[first] * n_cat + matrix.indices[second]
    return sp.csr_matrix((value, (item, column)), shape=(n_items, n_cat * n_cat))


def _category_values(n_categories: int, values: FloatArray | None, level: Level) -> FloatArray:
    if values is None:
        if level in ("interval", "ratio"):
            raise ValidationError(
                f"level {level!r} needs the numeric value of each category", field="values"
            )
        return np.arange(n_categories, dtype=np.float64)
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (n_categories,) or not np.isfinite(out).all():
        raise ValidationError(
            f"expected {n_categories} finite category values, got shape {out.shape}",
            field="values",
        )
    return out


def _fixed_distance(level: Level, values: FloatArray) -> FloatArray:
    """delta^2 between categories for the metrics that do not depend on the marginals."""
    diff: FloatArray = values[:, None] - values[None, :]
    if level == "nominal":
        different: FloatArray = (diff != 0).astype(np.float64)
        return different
    if level == "interval":
        return np.square(diff)
    if level == "ratio":
        total = values[:, None] + values[None, :]
        relative = np.zeros_like(diff)  # 0 and 0 are the same value: no distance
        np.divide(diff, total, out=relative, where=total != 0)
        return np.square(relative)
    raise ValidationError(f"level {level!r} has no fixed metric", field="level")


def _ordinal_distance(marginals: FloatArray, order: IntArray) -> FloatArray:
    """Krippendorff's rank metric for (b, C) marginals: (b, C, C) squared distances.

    ``delta^2(c, k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2`` with categories in rank order;
    as ``cum_k - cum_c + (n_c - n_k) / 2`` it holds for ``c > k`` too (the sign flips only).
    """
    ranked = marginals[:, order]
    cum = np.cumsum(ranked, axis=1)
    inner = cum[:, None, :] - cum[:, :, None] + (ranked[:, :, None] - ranked[:, None, :]) / 2
    distance = np.empty_like(inner)
    back = np.empty_like(order)
    back[order] = np.arange(order.size)
    distance[:] = (inner**2)[:, back][:, :, back]
    return distance


def krippendorff_alpha_batch(
    counts: Any,
    weights: FloatArray,
    *,
    level: Level = "nominal",
    values: FloatArray | None = None,
) -> FloatArray:
    """Krippendorff's alpha under b item weightings: (b, n_items) -> (b,) values."""
    if level not in LEVELS:
        raise ValidationError(f"expected level in {LEVELS}, got {level!r}", field="level")
    matrix = _as_counts(counts)
    n_items, n_cat = matrix.shape
    weights = _check_weights(weights, n_items)
    category_values = _category_values(n_cat, values, level)
    per_item = _coincidences_per_item(matrix)
    pairable = matrix.multiply((np.asarray(matrix.sum(axis=1)) >= 2).astype(np.float64)).tocsr()
    out = np.empty(weights.shape[0])
    fixed = None if level == "ordinal" else _fixed_distance(level, category_values)
    disagreement_per_item = None if fixed is None else per_item @ fixed.ravel()
    order = np.argsort(category_values, kind="stable")
    step = max(1, _BLOCK_ELEMENTS // max(n_items, n_cat * n_cat * (2 if fixed is None else 1), 1))
    for start in range(0, weights.shape[0], step):
        block = weights[start : start + step]
        marginals = np.asarray((pairable.T @ block.T).T)  # (b, C): n_c
        n = marginals.sum(axis=1)
        if fixed is not None:
            assert disagreement_per_item is not None
            observed = block @ disagreement_per_item
            expected = ((marginals @ fixed) * marginals).sum(axis=1)
        else:
            distance = _ordinal_distance(marginals, order)
            coincidences = np.asarray((per_item.T @ block.T).T).reshape(-1, n_cat, n_cat)
            observed = (coincidences * distance).sum(axis=(1, 2))
            expected = np.einsum("bc,bck,bk->b", marginals, distance, marginals)
        # alpha = 1 - D_o / D_e with D_o = sum o*d / n and D_e = sum n_c n_k d / (n (n - 1))
        alpha = 1.0 - (n - 1) * _ratio(observed, expected)
        out[start : start + step] = np.where(n >= 2, alpha, np.nan)
    return out


def krippendorff_alpha(
    counts: Any, *, level: Level = "nominal", values: FloatArray | None = None
) -> float:
    """Krippendorff's alpha from item x category counts; missing ratings are simply absent.

    ``alpha = 1 - D_o / D_e = 1 - (n - 1) sum_ck o_ck d_ck / sum_ck n_c n_k d_ck`` with the
    coincidence matrix ``o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1)`` over items
    with ``m_u >= 2`` ratings, ``n_c = sum_k o_ck`` and ``n = sum_c n_c`` (Krippendorff 2011,
    "Computing Krippendorff's Alpha-Reliability", https://repository.upenn.edu/asc_papers/43).

    Parameters
    ----------
    counts
        (n_items, n_categories) ratings per item and category.
    level
        The metric ``d_ck``: ``"nominal"`` ``[c != k]``; ``"ordinal"`` the rank metric
        ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2``; ``"interval"`` ``(v_c - v_k)^2``;
        ``"ratio"`` ``((v_c - v_k) / (v_c + v_k))^2``.
    values
        (n_categories,) numeric value ``v_c`` of each category: required for interval and
        ratio; for ordinal it gives the order (default: the codes are in order).

    Returns
    -------
    float
        1 for perfect agreement, 0 for chance; NaN when undefined (fewer than two pairable
        values, or no variation at all).

    Examples
    --------
    >>> counts = np.array([[2, 0, 0], [0, 2, 0], [0, 1, 1], [0, 0, 2]])
    >>> round(krippendorff_alpha(counts), 4)
    0.6667
    >>> round(krippendorff_alpha(counts, level="interval", values=np.array([1.0, 2, 3])), 4)
    0.8205
    """
    matrix = _as_counts(counts)
    batch = krippendorff_alpha_batch(matrix, _ones(matrix.shape[0]), level=level, values=values)
    return float(batch[0])


# ---------------------------------------------------------------------------------------------
# bootstrap


def bootstrap_ci(
    statistic: Callable[[FloatArray], FloatArray],
    n_items: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic, resampling items with replacement.

    Parameters
    ----------
    statistic
        Maps item weights (b, n_items), each row how often each item was drawn, to (b,)
        values: one of the ``*_batch`` functions with its data bound, e.g.
        ``lambda w: krippendorff_alpha_batch(counts, w)``.
    n_items
        Number of items (rows of the data) to resample.
    n_resamples, confidence, seed
        Number of resamples; central coverage of the interval; seed of
        ``numpy.random.default_rng`` (or a Generator).

    Returns
    -------
    tuple of float
        ``(low, high)``: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
        of the resampled values, ignoring resamples where the statistic is undefined; NaN
        when there are none (Efron & Tibshirani 1993, ch. 13).

    Examples
    --------
    >>> counts = np.array([[2, 0], [0, 2], [1, 1], [2, 0], [0, 2], [2, 0]])
    >>> low, high = bootstrap_ci(lambda w: percent_agreement_batch(counts, w), 6, seed=1)
    >>> bool(0.0 <= low <= percent_agreement(counts) <= high <= 1.0)
    True
    """
    intervals = bootstrap_cis(
        {"statistic": statistic},
        n_items,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return intervals["statistic"]


def bootstrap_cis(
    statistics: Mapping[str, Callable[[FloatArray], FloatArray]],
    n_items: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> dict[str, tuple[float, float]]:
    """Intervals of several statistics of the same items from one set of resamples.

    Drawing the resamples costs more than evaluating most statistics on them, so statistics
    of the same items share the draws; see :func:`bootstrap_ci` for the parameters.

    Examples
    --------
    >>> counts = np.array([[2, 0], [0, 2], [1, 1], [2, 0], [0, 2], [2, 0]])
    >>> cis = bootstrap_cis({"percent": lambda w: percent_agreement_batch(counts, w),
    ...                      "alpha": lambda w: krippendorff_alpha_batch(counts, w)}, 6)
    >>> sorted(cis)
    ['alpha', 'percent']
    """
    if not 0.0 < confidence < 1.0:
        raise ValidationError(
            f"expected confidence in (0, 1), got {confidence}", field="confidence"
        )
    nan = (float("nan"), float("nan"))
    if n_resamples < 1 or n_items < 1:
        return dict.fromkeys(statistics, nan)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    values = {name: np.empty(n_resamples) for name in statistics}
    step = max(1, _BLOCK_ELEMENTS // n_items)
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        drawn = rng.integers(0, n_items, size=(b, n_items))
        drawn += (np.arange(b) * n_items)[:, None]  # one bincount for the whole block
        counts = np.bincount(drawn.ravel(), minlength=b * n_items).reshape(b, n_items)
        weights = counts.astype(np.float64)
        for name, statistic in statistics.items():
            values[name][start : start + b] = statistic(weights)
    tail = (1.0 - confidence) / 2
    out: dict[str, tuple[float, float]] = {}
    for name, resampled in values.items():
        finite = resampled[np.isfinite(resampled)]
        if finite.size == 0:
            out[name] = nan
            continue
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        out[name] = (float(low), float(high))
    return out


# ---------------------------------------------------------------------------------------------
# all at once


_CI_ORDER = ("percent_agreement", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha")


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True, slots=True)
class CategoricalAgreement:
    """Every agreement statistic of one rating table; ``None`` where undefined."""

    items: int
    annotators: int
    ratings: int
    categories: int
    level: Level
    percent_agreement: float | None
    cohen_kappa: float | None
    cohen_kappa_reason: str | None
    fleiss_kappa: float | None
    fleiss_kappa_reason: str | None
    krippendorff_alpha: float | None
    ci: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    n_resamples: int = 0
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``labelgate agreement --json``."""
        return {
            "items": self.items,
            "annotators": self.annotators,
            "ratings": self.ratings,
            "categories": self.categories,
            "level": self.level,
            "percent_agreement": self.percent_agreement,
            "cohen_kappa": self.cohen_kappa,
            "cohen_kappa_reason": self.cohen_kappa_reason,
            "fleiss_kappa": self.fleiss_kappa,
            "fleiss_kappa_reason": self.fleiss_kappa_reason,
            "krippendorff_alpha": self.krippendorff_alpha,
            "ci": {name: list(bounds) for name, bounds in self.ci.items()},
            "bootstrap": {"n_resamples": self.n_resamples, "confidence": self.confidence},
        }


def categorical_agreement(
    item_id: IntArray,
    annotator_id: IntArray,
    label_id: IntArray,
    *,
    level: Level = "nominal",
    values: FloatArray | None = None,
    n_categories: int | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CategoricalAgreement:
    """Compute every statistic of this module, with bootstrap intervals, for one table.

    Parameters
    ----------
    item_id, annotator_id, label_id
        (n,) codes, one row per rating; each (item, annotator) pair at most once.
    level, values
        Krippendorff's metric and the categories' numeric values (see
        :func:`krippendorff_alpha`).
    n_categories
        Size of the category vocabulary; default one more than the largest label code.
    n_resamples, confidence, seed
        Bootstrap over items (see :func:`bootstrap_ci`); ``n_resamples=0`` skips it.

    Raises
    ------
    ValidationError
        Arrays of different lengths, negative codes, or an (item, annotator) pair twice.

    Examples
    --------
    >>> result = categorical_agreement(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
    ...                                np.array([0, 0, 1, 0]), n_resamples=0)
    >>> result.percent_agreement, result.cohen_kappa, result.krippendorff_alpha
    (0.5, 0.0, 0.0)
    """
    item_id = np.asarray(item_id, dtype=np.int64)
    annotator_id = np.asarray(annotator_id, dtype=np.int64)
    label_id = np.asarray(label_id, dtype=np.int64)
    if not (item_id.shape == annotator_id.shape == label_id.shape) or item_id.ndim != 1:
        raise ValidationError("expected item_id, annotator_id, label_id of one shape (n,)")
    if item_id.size and min(item_id.min(), annotator_id.min(), label_id.min()) < 0:
        raise ValidationError("expected non-negative codes")
    _, inverse = np.unique(item_id, return_inverse=True)
    annotators = np.unique(annotator_id)
    n_annotators = annotators.size
    key = inverse.astype(np.int64) * max(n_annotators, 1) + np.searchsorted(
        annotators, annotator_id
    )
    unique_keys, first_row = np.unique(key, return_index=True)
    if unique_keys.size != key.size:
        duplicate = np.setdiff1d(np.arange(key.size), first_row)[0]
        raise ValidationError(
            f"annotator {annotator_id[duplicate]} rated item {item_id[duplicate]} twice",
            field="annotator_id",
            row=int(duplicate),
        )
    n_cat = n_categories if n_categories is not None else int(label_id.max(initial=-1)) + 1
    counts = category_counts(inverse, label_id, n_categories=n_cat)
    m = np.asarray(counts.sum(axis=1)).ravel()
    pairable = counts[m >= 2]

    # statistics of the same items share one set of resamples
    pairable_statistics: dict[str, Callable[[FloatArray], FloatArray]] = {}
    cohen_statistics: dict[str, Callable[[FloatArray], FloatArray]] = {}

    percent = _finite(percent_agreement(pairable)) if pairable.shape[0] else None
    alpha = (
        _finite(krippendorff_alpha(pairable, level=level, values=values))
        if pairable.shape[0]
        else None
    )
    pairable_statistics["percent_agreement"] = lambda w: percent_agreement_batch(pairable, w)
    pairable_statistics["krippendorff_alpha"] = lambda w: krippendorff_alpha_batch(
        pairable, w, level=level, values=values
    )

    cohen: float | None = None
    cohen_reason: str | None = None
    n_common = 0
    if n_annotators != 2:
        cohen_reason = f"needs exactly two annotators, got {n_annotators}"
    else:
        a, b = paired_labels(
            item_id, annotator_id, label_id, int(annotators[0]), int(annotators[1])
        )
        n_common = a.size
        if n_common == 0:
            cohen_reason = "the two annotators rated no item in common"
        else:
            cohen = _finite(cohen_kappa(a, b, n_categories=n_cat))
            if cohen is None:
                cohen_reason = "undefined: chance agreement is 1 (a single category)"
            cohen_statistics["cohen_kappa"] = lambda w: cohen_kappa_batch(
                a, b, w, n_categories=n_cat
            )

    fleiss_value, fleiss_reason = fleiss_kappa(counts)
    fleiss = _finite(fleiss_value)
    if fleiss_value is not None and fleiss is None:
        fleiss_reason = "undefined: chance agreement is 1 (a single category)"
    if fleiss_value is not None:
        # equal ratings per item, at least two: every item is pairable, in the same order
        pairable_statistics["fleiss_kappa"] = lambda w: fleiss_kappa_batch(pairable, w)

    ci: dict[str, tuple[float | None, float | None]] = {}
    if n_resamples > 0:
        for statistics, n in (
            (pairable_statistics, pairable.shape[0]),
            (cohen_statistics, n_common),
        ):
            if not statistics or n == 0:
                continue
            found = bootstrap_cis(
                statistics, n, n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            ci.update({name: (_finite(low), _finite(high)) for name, (low, high) in found.items()})
        ci = {name: ci[name] for name in _CI_ORDER if name in ci}

    return CategoricalAgreement(
        items=int(counts.shape[0]),
        annotators=int(n_annotators),
        ratings=int(item_id.size),
        categories=n_cat,
        level=level,
        percent_agreement=percent,
        cohen_kappa=cohen,
        cohen_kappa_reason=cohen_reason,
        fleiss_kappa=fleiss,
        fleiss_kappa_reason=fleiss_reason,
        krippendorff_alpha=alpha,
        ci=ci,
        n_resamples=n_resamples,
        confidence=confidence,
    )
