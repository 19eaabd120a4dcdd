"""Geometric agreement: hand-computed pairs, Krippendorff's alpha from its definition, limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labelgate.core.annotations import Annotations
from labelgate.core.generate import NoiseModel, generate_dataset, generate_pool
from labelgate.core.geometry_agreement import geometry_agreement
from labelgate.core.pairs import box_iou_pairs
from labelgate.core.taxonomy import Taxonomy

CAR = Taxonomy.from_names(["car"])


def _boxes(image_id: list[int], bbox: list[list[float]]) -> Annotations:
    return Annotations.create(image_id=image_id, class_id=[1] * len(image_id), bbox=bbox)


def _alpha_by_definition(units: list[tuple[object, object]]) -> float:
    """Krippendorff's alpha from its definition; a value is (image, box) or None (empty)."""

    def delta(x: object, y: object) -> float:
        if x is None and y is None:
            return 0.0
        if x is None or y is None:
            return 1.0
        (image_x, box_x), (image_y, box_y) = x, y  # type: ignore[misc]
        if image_x != image_y:
            return 1.0
        return 1.0 - float(box_iou_pairs(np.array([box_x]), np.array([box_y]))[0])

    observed = sum(delta(x, y) for x, y in units) / len(units)
    values = [v for unit in units for v in unit]
    n = len(values)
    expected = sum(delta(values[i], values[j]) for i, j in itertools.permutations(range(n), 2)) / (
        n * (n - 1)
    )
    return 1.0 - observed / expected


# A: two cars; B: one of them drawn 2 px taller (IoU 100/120) and one car A did not draw.
A = _boxes([1, 1], [[0, 0, 10, 10], [20, 20, 30, 30]])
B = _boxes([1, 1], [[0, 0, 10, 12], [50, 50, 60, 60]])


def test_hand_computed_pair_gives_dice_matched_rate_mean_iou_and_f1() -> None:
    result = geometry_agreement([A, B], CAR, iou_threshold=0.5, n_resamples=0)
    assert result.overall["matched_rate"] == pytest.approx(2 * 1 / (2 + 2))
    assert result.overall["mean_iou"] == pytest.approx(100 / 120)
    assert result.overall["f1"] == pytest.approx(0.5)
    assert result.pair_scores["precision"][0, 0] == pytest.approx(0.5)
    assert result.pair_scores["recall"][0, 0] == pytest.approx(0.5)


def test_alpha_equals_krippendorffs_definition_on_the_hand_computed_pair() -> None:
    units = [
        ((1, A.bbox[0]), (1, B.bbox[0])),
        ((1, A.bbox[1]), None),
        ((1, B.bbox[1]), None),
    ]
    result = geometry_agreement([A, B], CAR, iou_threshold=0.5, n_resamples=0)
    assert result.overall["krippendorff_alpha"] == pytest.approx(14 / 79)
    assert result.overall["krippendorff_alpha"] == pytest.approx(_alpha_by_definition(units))


def test_alpha_equals_definition_across_images_and_several_objects() -> None:
    a = _boxes([1, 1, 2, 3], [[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 4, 4], [0, 0, 8, 8]])
    b = _boxes([1, 1, 2, 2], [[0, 0, 10, 11], [6, 0, 15, 10], [0, 0, 4, 5], [1, 1, 3, 3]])
    result = geometry_agreement([a, b], CAR, iou_threshold=0.5, n_resamples=0)
    # matching by hand: image 1 pairs in order (IoU 0.91, 0.9), image 2 the first boxes (0.8)
    units: list[tuple[object, object]] = [
        ((1, a.bbox[0]), (1, b.bbox[0])),
        ((1, a.bbox[1]), (1, b.bbox[1])),
        ((2, a.bbox[2]), (2, b.bbox[2])),
        ((3, a.bbox[3]), None),
        ((2, b.bbox[3]), None),
    ]
    assert result.overall["matched_rate"] == pytest.approx(6 / 8)
    assert result.overall["krippendorff_alpha"] == pytest.approx(_alpha_by_definition(units))


@pytest.fixture(scope="module")
def reference() -> Annotations:
    return generate_dataset(40, seed=3).annotations


def test_identical_sets_agree_perfectly(reference: Annotations) -> None:
    taxonomy = generate_dataset(1, seed=3).taxonomy
    result = geometry_agreement([reference, reference, reference], taxonomy, n_resamples=0)
    assert result.overall["matched_rate"] == pytest.approx(1.0)
    assert result.overall["mean_iou"] == pytest.approx(1.0)
    assert result.overall["krippendorff_alpha"] == pytest.approx(1.0)
    assert len(result.pairs) == 3


def test_sets_that_never_overlap_have_alpha_at_most_zero(reference: Annotations) -> None:
    moved = Annotations.create(
        image_id=reference.image_id,
        class_id=reference.class_id,
        bbox=reference.bbox + np.array([1e5, 0, 1e5, 0]),
    )
    taxonomy = generate_dataset(1, seed=3).taxonomy
    result = geometry_agreement([reference, moved], taxonomy, n_resamples=0)
    assert result.overall["matched_rate"] == 0.0
    assert result.overall["krippendorff_alpha"] <= 0.0


def test_low_jitter_annotator_agrees_more_than_high_jitter_one() -> None:
    dataset = generate_dataset(60, seed=5)
    pool = generate_pool(dataset, [NoiseModel(jitter=0.02), NoiseModel(jitter=0.2)], seed=2)
    low, high = pool[pool.annotator_id == 1], pool[pool.annotator_id == 2]
    result = geometry_agreement([dataset.annotations, low, high], dataset.taxonomy, seed=1)
    assert result.pairs[0] == (0, 1) and result.pairs[1] == (0, 2)
    for name in ("matched_rate", "mean_iou", "krippendorff_alpha"):
        scores = np.nanmean(result.pair_scores[name], axis=1)
        assert scores[0] > scores[1], name


def test_bootstrap_interval_contains_the_estimate_and_is_seeded() -> None:
    dataset = generate_dataset(60, seed=5)
    pool = generate_pool(dataset, [NoiseModel(jitter=0.05), NoiseModel(jitter=0.1)], seed=2)
    sets = [pool[pool.annotator_id == 1], pool[pool.annotator_id == 2]]
    result = geometry_agreement(sets, dataset.taxonomy, n_resamples=300, seed=4)
    again = geometry_agreement(sets, dataset.taxonomy, n_resamples=300, seed=4)
    assert sorted(result.ci) == ["krippendorff_alpha", "matched_rate", "mean_iou"]
    for name, (low, high) in result.ci.items():
        assert low <= result.overall[name] <= high, name
        assert low < high, name
    assert result.ci == again.ci


def test_fewer_than_two_sets_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least two sets"):
        geometry_agreement([A], CAR, iou_threshold=0.5)


@pytest.mark.parametrize("iou_threshold", [None, 0.0, 0.5])
def test_box_fast_path_equals_a_custom_pair_iou_of_the_same_boxes(iou_threshold) -> None:
    # the default path forms only overlapping pairs and matches among them; a custom
    # pair_iou forms every pair of each (image, class) and matches with match()
    dataset = generate_dataset(150, seed=5)
    pool = generate_pool(dataset, [NoiseModel()] * 3, seed=6)
    sets = [pool[pool.annotator_id == j] for j in (1, 2, 3)]

    def boxes(a: Annotations, rows_a: np.ndarray, b: Annotations, rows_b: np.ndarray):
        return box_iou_pairs(a.bbox[rows_a], b.bbox[rows_b])

    fast = geometry_agreement(sets, dataset.taxonomy, iou_threshold=iou_threshold, n_resamples=0)
    slow = geometry_agreement(
        sets, dataset.taxonomy, iou_threshold=iou_threshold, pair_iou=boxes, n_resamples=0
    )
    for name, values in fast.pair_scores.items():
        np.testing.assert_allclose(values, slow.pair_scores[name], rtol=1e-12, atol=1e-12)
    assert fast.overall["matched_rate"] > 0.5
