"""The pieces of pre-label measurement against independent references.

- ``decide``: accept / adjust / reject of boxes, polygons (IoU from shapely) and tags;
- ``welch_interval`` against scipy's Welch t-test interval and statsmodels' CompareMeans;
- ``bootstrap_saved_fraction`` against ``scipy.stats.bootstrap`` (percentile method).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from labelgate.core.annotations import Annotations, Kind
from labelgate.core.ragged import Ragged
from labelgate.workflow.prelabel import (
    DECISIONS,
    bootstrap_saved_fraction,
    decide,
    welch_interval,
)


def _polygons(ids: list[int], classes: list[int], rings: list[np.ndarray]) -> Annotations:
    points = np.concatenate(rings)
    boxes = [np.concatenate([r.min(axis=0), r.max(axis=0)]) for r in rings]
    return Annotations.create(
        id=ids,
        image_id=[1] * len(rings),
        class_id=classes,
        bbox=np.array(boxes),
        kind=[Kind.POLYGON] * len(rings),
        rings=Ragged(points, np.concatenate([[0], np.cumsum([len(r) for r in rings])])),
        ring_offsets=np.arange(len(rings) + 1),
    )


def test_decide_polygons_against_shapely() -> None:
    square = np.array([[0.0, 0], [10, 0], [10, 10], [0, 10]])
    triangle = np.array([[20.0, 0], [30, 0], [25, 8]])
    moved = np.array([[0.0, 0], [10, 0], [13, 12], [0, 10]])  # one vertex dragged
    proposed = _polygons([1, 2, 3, 4], [1, 1, 1, 2], [square, triangle, square + 40, square])
    # 1 unchanged (vertices listed from another start: the same region), 2 adjusted,
    # 3 relabelled to class 2 with the same outline, 4 deleted
    final = _polygons([1, 2, 3], [1, 1, 2], [np.roll(square, 1, axis=0), moved, square + 40])
    final = final.replace(id=np.array([1, 2, 3]))
    codes, iou = decide(proposed, final)
    assert [DECISIONS[c] for c in codes] == ["accept", "adjust", "adjust", "reject"]
    expected = shapely.Polygon(moved).intersection(shapely.Polygon(triangle)).area / (
        shapely.Polygon(moved).union(shapely.Polygon(triangle)).area
    )
    assert iou[0] == 1.0 and iou[1] == pytest.approx(expected, abs=1e-12)
    assert iou[2] == pytest.approx(1.0) and np.isnan(iou[3])


def test_decide_tags_and_empty_sides() -> None:
    tags = Annotations.create(
        id=[1, 2], image_id=[1, 1], class_id=[3, 4], bbox=np.full((2, 4), np.nan)
    )
    kept = tags.replace(class_id=np.array([3, 5]))
    codes, iou = decide(tags, kept)
    assert [DECISIONS[c] for c in codes] == ["accept", "adjust"] and iou.tolist() == [1.0, 1.0]
    codes, iou = decide(tags, Annotations.empty())
    assert [DECISIONS[c] for c in codes] == ["reject", "reject"] and np.isnan(iou).all()
    codes, iou = decide(Annotations.empty(), tags)
    assert len(codes) == len(iou) == 0


def test_decide_boxes_many_at_once_matches_a_per_object_reference() -> None:
    rng = np.random.default_rng(3)
    n = 500
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    proposed = Annotations.create(
        id=np.arange(1, n + 1),
        image_id=np.ones(n, dtype=int),
        class_id=rng.integers(0, 3, n),
        bbox=np.hstack([xy, xy + wh]),
    )
    action = rng.integers(0, 4, n)  # 0 keep, 1 move, 2 relabel, 3 delete
    bbox = proposed.bbox.copy()
    bbox[action == 1] += rng.uniform(-5, 5, ((action == 1).sum(), 1))
    classes = np.where(action == 2, proposed.class_id + 1, proposed.class_id)
    keep = action != 3
    final = proposed.replace(bbox=bbox, class_id=classes)[keep]
    final = final.take(rng.permutation(len(final)))  # order carries no meaning
    codes, iou = decide(proposed, final)
    for i in range(n):  # the reference: one object at a time, by hand
        if action[i] == 3:
            assert DECISIONS[codes[i]] == "reject" and np.isnan(iou[i])
            continue
        a, b = proposed.bbox[i], bbox[i]
        inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(
            0, min(a[3], b[3]) - max(a[1], b[1])
        )
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        assert iou[i] == pytest.approx(inter / union, abs=1e-12)
        same = action[i] == 0 or (action[i] == 1 and np.array_equal(a, b))
        assert DECISIONS[codes[i]] == ("accept" if same else "adjust")


@pytest.mark.parametrize(("n_a", "n_b", "confidence"), [(5, 9, 0.95), (40, 12, 0.9), (2, 3, 0.99)])
def test_welch_interval_matches_scipy_and_statsmodels(
    n_a: int, n_b: int, confidence: float
) -> None:
    rng = np.random.default_rng(n_a * 100 + n_b)
    a = rng.gamma(4.0, 20.0, n_a)
    b = rng.gamma(2.0, 15.0, n_b)
    diff, low, high = welch_interval(a, b, confidence)
    scipy_ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    sm_low, sm_high = CompareMeans(DescrStatsW(a), DescrStatsW(b)).tconfint_diff(
        alpha=1 - confidence, usevar="unequal"
    )
    assert diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), rel=1e-10)
    assert (low, high) == pytest.approx((sm_low, sm_high), rel=1e-10)
    assert welch_interval(np.array([3.0, 3.0]), np.array([1.0, 1.0])) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="2 values"):
        welch_interval(np.array([1.0]), b)


def test_bootstrap_fraction_matches_scipy_bootstrap() -> None:
    rng = np.random.default_rng(7)
    control = rng.gamma(5.0, 12.0, 30)  # ~60 s a task
    treated = rng.gamma(5.0, 7.0, 45)  # ~35 s a task
    point, low, high = bootstrap_saved_fraction(control, treated, resamples=40_000, seed=1)
    reference = stats.bootstrap(
        (control, treated),
        lambda a, b, axis: 1 - b.mean(axis=axis) / a.mean(axis=axis),
        method="percentile",
        n_resamples=40_000,
        vectorized=True,
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert point == pytest.approx(1 - treated.mean() / control.mean(), rel=1e-12)
    # independent Monte Carlo runs of the same interval: they agree to a few thousandths
    assert low == pytest.approx(reference.low, abs=0.006)
    assert high == pytest.approx(reference.high, abs=0.006)
    assert low < point < high
    # the same seed gives the same interval
    assert bootstrap_saved_fraction(control, treated, resamples=40_000, seed=1) == (
        point,
        low,
        high,
    )
