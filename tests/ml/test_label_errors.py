from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from labelgate.core.annotations import Annotations, AttributeColumn, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import Taxonomy
from labelgate.ml.errors import (
    ErrorType,
    confident_thresholds,
    find_label_errors,
    injected_recall,
    softmax_pool,
)
from labelgate.ml.synthetic import labels_with_errors, model_predictions

TAXONOMY = Taxonomy.from_names(["car", "person", "bike"])


def dataset(annotations: Annotations, image_ids: list[int] | None = None) -> Dataset:
    ids = image_ids if image_ids is not None else sorted(set(annotations.image_id.tolist()))
    n = len(ids)
    return Dataset(annotations, Images.create(id=ids, width=[200] * n, height=[200] * n), TAXONOMY)


def boxes(image_id: list[int], class_id: list[int], bbox: list[list[float]], **kw: Any) -> Any:
    return Annotations.create(image_id=image_id, class_id=class_id, bbox=bbox, **kw)


def single_error(report: Any) -> tuple[int | None, str]:
    doc = report.to_dict()
    assert len(doc["errors"]) == 1, doc["errors"]
    return doc["errors"][0]["annotation_id"], doc["errors"][0]["type"]


# --- hand-made cases, one per error type ---------------------------------------------------


def test_a_confident_prediction_with_no_label_is_an_overlooked_object() -> None:
    labels = dataset(boxes([1], [1], [[0, 0, 20, 20]], id=[5]), [1, 2])
    pred = boxes([1, 1], [1, 1], [[0, 0, 20, 20], [100, 100, 130, 140]], score=[0.9, 0.8])
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert single_error(report) == (None, "overlooked")
    assert report.prediction_id[0] == pred.id[1]
    assert report.score[0] == pytest.approx(1.0, abs=0.02)  # nothing near it at all


def test_a_label_under_another_class_prediction_is_a_swapped_class() -> None:
    labels = dataset(boxes([1, 1], [1, 2], [[0, 0, 20, 20], [50, 50, 80, 90]], id=[5, 6]))
    pred = boxes([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 80, 90]], score=[0.9, 0.9])
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert single_error(report) == (6, "swapped_class")
    assert report.score[0] == pytest.approx(1.0)


def test_a_shifted_label_is_badly_located_with_its_prediction_named() -> None:
    labels = dataset(boxes([1, 1], [1, 1], [[0, 0, 20, 20], [60, 50, 100, 90]], id=[5, 6]))
    pred = boxes([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 90, 90]], score=[0.9, 0.95],
                 id=[70, 71])  # fmt: skip
    report = find_label_errors(labels, pred, thresholds=0.5, min_score=0.1)
    assert single_error(report) == (6, "badly_located")
    assert report.prediction_id[0] == 71
    # IoU 30/50 = 0.6, centres 10 px apart, diagonals 56.57: 0.8 * 0.6 + 0.2 * exp(-10/56.57)
    similarity = 0.8 * 0.6 + 0.2 * np.exp(-10 / np.hypot(40, 40))
    assert report.score[0] == pytest.approx(1 - similarity)


def test_the_unsupported_copy_of_a_doubled_label_is_the_duplicate() -> None:
    labels = dataset(boxes([1, 1], [1, 1], [[0, 0, 40, 40], [1, 0, 40, 40]], id=[5, 6]))
    pred = boxes([1], [1], [[1, 0, 40, 40]], score=[0.9])
    report = find_label_errors(labels, pred, thresholds=0.5)
    # label 6 matches the prediction exactly; label 5 is the copy nobody predicted
    assert single_error(report) == (5, "duplicate")
    assert report.score[0] == pytest.approx(39 * 40 / (40 * 40))  # IoU, the copy unsupported


def test_two_overlapping_objects_each_predicted_are_not_a_duplicate() -> None:
    labels = dataset(boxes([1, 1], [1, 1], [[0, 0, 40, 40], [8, 0, 48, 40]]))
    pred = boxes([1, 1], [1, 1], [[0, 0, 40, 40], [8, 0, 48, 40]], score=[0.9, 0.9])
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert len(report) == 0
    assert report.label_subscores[:, 2].max() == 0.0


def test_an_attribute_the_model_predicts_otherwise_is_attribute_inconsistent() -> None:
    labels = dataset(
        boxes([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 80, 90]], id=[5, 6]).with_attribute(
            "color", AttributeColumn.from_list(["red", "blue"])
        )
    )
    pred = boxes([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 80, 90]], score=[0.9, 0.9])
    pred = pred.with_attribute("color", AttributeColumn.from_list(["red", "green"]))
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert single_error(report) == (6, "attribute_inconsistent")


def test_labels_that_agree_with_the_model_raise_nothing_and_every_image_is_scored() -> None:
    labels = dataset(boxes([1, 2], [1, 2], [[0, 0, 20, 20], [5, 5, 50, 60]]), [1, 2, 3])
    pred = boxes([1, 2], [1, 2], [[0, 0, 20, 20], [5, 5, 50, 60]], score=[0.9, 0.8])
    report = find_label_errors(labels, pred)
    assert len(report) == 0
    assert sorted(report.images.tolist()) == [1, 2, 3]
    assert report.image_score.max() == pytest.approx(0.0)


def test_a_class_threshold_above_the_score_silences_that_class() -> None:
    labels = dataset(boxes([1], [1], [[0, 0, 20, 20]]))
    pred = boxes([1, 1], [1, 2], [[100, 100, 130, 140], [150, 150, 180, 190]], score=[0.7, 0.7])
    report = find_label_errors(labels, pred, thresholds={1: 0.5, 2: 0.9})
    assert report.to_dict()["thresholds"] == {"1": 0.5, "2": 0.9}
    assert report.prediction_id.tolist() == [pred.id[0]]


def test_confident_learning_threshold_is_the_mean_score_of_agreeing_predictions() -> None:
    labels = boxes([1, 1, 1], [1, 1, 2], [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    pred = boxes([1, 1, 1, 1], [1, 1, 2, 2], [[0, 0, 10, 10], [20, 20, 30, 30],
                 [50, 50, 60, 60], [90, 90, 99, 99]], score=[0.9, 0.6, 0.7, 0.1])  # fmt: skip
    # class 2's unmatched prediction (0.1) is no self-confidence: only the matched 0.7
    assert confident_thresholds(labels, pred) == {1: 0.75, 2: 0.7}


def test_the_image_score_is_a_soft_maximum_of_its_object_scores() -> None:
    values = np.array([0.9, 0.1, 0.1, 0.5])
    pooled = softmax_pool(np.array([0, 0, 0, 1]), values, 2, temperature=0.1)
    weights = np.exp(values[:3] / 0.1)
    assert pooled[0] == pytest.approx((values[:3] * weights).sum() / weights.sum())
    assert pooled[1] == 0.5
    cold = softmax_pool(np.array([0, 0, 0]), values[:3], 1, temperature=1e-3)
    assert cold[0] == pytest.approx(0.9)


def test_row_order_does_not_change_any_score() -> None:
    inj = labels_with_errors(150, seed=4, error_rate=0.01)
    pred = model_predictions(inj.truth, seed=5).annotations
    a = find_label_errors(inj.labels, pred)
    rng = np.random.default_rng(0)
    shuffled = inj.labels.replace(
        annotations=inj.labels.annotations.take(rng.permutation(len(inj.labels.annotations)))
    )
    b = find_label_errors(shuffled, pred.take(rng.permutation(len(pred))))
    score_a = dict(zip(a.images.tolist(), a.image_score.tolist()))
    score_b = dict(zip(b.images.tolist(), b.image_score.tolist()))
    assert score_a.keys() == score_b.keys()
    assert np.allclose([score_a[k] for k in score_a], [score_b[k] for k in score_a])


def test_bad_scores_are_refused() -> None:
    labels = dataset(boxes([1], [1], [[0, 0, 20, 20]]))
    pred = boxes([1], [1], [[0, 0, 20, 20]], score=[1.5])
    with pytest.raises(ValueError, match="scores in \\[0, 1\\]"):
        find_label_errors(labels, pred)


# --- other geometries ------------------------------------------------------------------


def rect_ring(box: list[float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def polygons(image_id: list[int], class_id: list[int], rects: list[list[float]], **kw: Any) -> Any:
    rings = Ragged.from_rows([rect_ring(r) for r in rects])
    return Annotations.create(
        image_id=image_id, class_id=class_id, bbox=rects, kind=[Kind.POLYGON] * len(rects),
        rings=rings, ring_offsets=np.arange(len(rects) + 1), **kw,
    )  # fmt: skip


def test_a_swapped_polygon_is_found_with_polygon_iou() -> None:
    labels = dataset(polygons([1, 1], [1, 2], [[0, 0, 20, 20], [50, 50, 80, 90]], id=[5, 6]))
    pred = polygons([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 80, 90]], score=[0.9, 0.9])
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert single_error(report) == (6, "swapped_class")


def masks(image_id: list[int], class_id: list[int], rects: list[list[int]], **kw: Any) -> Any:
    counts, bbox = [], []
    for x1, y1, x2, y2 in rects:
        canvas = np.zeros((100, 100), dtype=np.uint8, order="F")
        canvas[y1:y2, x1:x2] = 1
        flat = canvas.ravel(order="F")  # COCO RLE runs are column-major, zeros first
        bounds = np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1, len(flat)]
        runs = np.diff(bounds)
        runs = np.r_[0, runs] if flat[0] else runs
        rle = mask_utils.frPyObjects({"counts": runs.tolist(), "size": [100, 100]}, 100, 100)
        assert mask_utils.area(rle) == (x2 - x1) * (y2 - y1)
        counts.append(runs)
        bbox.append([x1, y1, x2, y2])
    ragged = Ragged.from_rows([np.asarray(c, dtype=np.int64) for c in counts])
    return Annotations.create(
        image_id=image_id, class_id=class_id, bbox=bbox, kind=[Kind.MASK] * len(rects),
        rle_counts=ragged, rle_size=[[100, 100]] * len(rects), **kw,
    )  # fmt: skip


def test_an_overlooked_mask_is_found() -> None:
    labels = dataset(masks([1], [1], [[0, 0, 20, 20]]))
    pred = masks([1, 1], [1, 1], [[0, 0, 20, 20], [50, 50, 80, 90]], score=[0.9, 0.9])
    report = find_label_errors(labels, pred, thresholds=0.5)
    assert single_error(report) == (None, "overlooked")


def test_a_badly_located_mask_is_scored_on_mask_iou() -> None:
    labels = dataset(masks([1], [1], [[10, 0, 50, 40]], id=[5]))
    pred = masks([1], [1], [[0, 0, 40, 40]], score=[0.9])
    report = find_label_errors(labels, pred, thresholds=0.5, min_score=0.0)
    assert single_error(report) == (5, "badly_located")
    similarity = 0.8 * (30 / 50) + 0.2 * np.exp(-10 / np.hypot(40, 40))
    assert report.score[0] == pytest.approx(1 - similarity)


def test_keypoints_far_from_the_predicted_ones_are_badly_located() -> None:
    def skeleton(dx: float, score: list[float] | None = None, ids: list[int] | None = None) -> Any:
        points = np.array([[10 + dx, 10, 2], [30 + dx, 10, 2], [20 + dx, 40, 2]], dtype=float)
        return Annotations.create(
            image_id=[1], class_id=[2], bbox=[[10 + dx, 10, 30 + dx, 40]],
            kind=[Kind.KEYPOINTS], keypoints=Ragged.from_rows([points]), area=[600.0],
            score=score, id=ids,
        )  # fmt: skip

    labels = dataset(skeleton(6.0, ids=[9]))
    pred = skeleton(0.0, score=[0.95])
    report = find_label_errors(labels, pred, thresholds=0.5, min_score=0.05)
    assert single_error(report) == (9, "badly_located")
    same = find_label_errors(dataset(skeleton(0.0, ids=[9])), pred, thresholds=0.5, min_score=0.05)
    assert len(same) == 0


# --- injected errors on generated data ---------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> tuple[Any, Any, Any]:
    inj = labels_with_errors(3000, seed=11)
    result = model_predictions(inj.truth, seed=12)
    return inj, result, find_label_errors(inj.labels, result.annotations)


#: measured 0.55-0.63 on seeds 0-2 (benchmarks/bench_errors.py); cleanlab about 0.1
RECALL_FLOOR = 0.45


def test_injected_errors_rank_in_the_top_five_percent_of_images(generated: Any) -> None:
    inj, _, report = generated
    assert 0.02 < len(np.unique(inj.image_id)) / len(inj.truth.images) < 0.05
    recall = injected_recall(report, inj.image_id)
    assert recall >= RECALL_FLOOR
    # far above chance: a random ranking finds 5 %
    assert recall > 5 * 0.05


def test_found_errors_carry_the_injected_type(generated: Any) -> None:
    inj, _, report = generated
    listed = dict(zip(report.annotation_id.tolist(), report.type.tolist()))
    # share of each kind listed under its own label: a shifted label is only seen when
    # the model's box on the object reaches its class threshold (about half of them)
    for kind, error_type, floor in (
        ("swapped", ErrorType.SWAPPED_CLASS, 0.5),
        ("shifted", ErrorType.BADLY_LOCATED, 0.3),
    ):
        ids = inj.annotation_id[inj.kind == kind]
        found = [listed[i] for i in ids.tolist() if i in listed]
        assert len(found) >= floor * len(ids), kind
        assert np.mean([t == error_type for t in found]) >= 0.8, (kind, found)
    # a duplicate is listed on whichever copy the model does not support, and a missing
    # object as an overlooked prediction: both on the injected error's image
    for kind, error_type, floor in (
        ("duplicated", ErrorType.DUPLICATE, 0.8),
        ("missing", ErrorType.OVERLOOKED, 0.35),  # the model misses small ones too
    ):
        images = set(inj.image_id[inj.kind == kind].tolist())
        flagged = set(report.image_id[report.type == str(error_type)].tolist())
        assert len(images & flagged) >= floor * len(images), kind


@pytest.mark.parametrize(
    ("label_rows", "prediction_rows", "expected_errors"),
    [
        pytest.param(1, 0, [], id="labels, no predictions"),
        pytest.param(0, 1, [(None, "overlooked")], id="predictions, no labels"),
        pytest.param(0, 0, [], id="neither"),
    ],
)
def test_empty_sides_still_score_every_image(
    label_rows: int, prediction_rows: int, expected_errors: list[tuple[None, str]]
) -> None:
    ann = boxes([1], [1], [[0, 0, 5, 5]])[:label_rows]
    labels = Dataset(ann, Images.create(id=[1, 2]), TAXONOMY)
    pred = boxes([2], [1], [[0, 0, 5, 5]], score=[0.9])[:prediction_rows]
    report = find_label_errors(labels, pred)
    doc = report.to_dict()
    assert [(e["annotation_id"], e["type"]) for e in doc["errors"]] == expected_errors
    assert sorted(row["image_id"] for row in doc["images"]) == [1, 2]


@pytest.mark.parametrize("groups", ["sorted", "shuffled"])
def test_best_per_group_takes_the_first_maximum_as_a_plain_loop_does(groups: str) -> None:
    from labelgate.ml.errors import _best_per_group

    rng = np.random.default_rng(7)
    for trial in range(300):
        m, n = int(rng.integers(0, 60)), int(rng.integers(1, 12))
        group = rng.integers(0, n, m)
        if groups == "sorted":
            group = np.sort(group)
        value = rng.integers(0, 4, m) / 4.0  # few distinct values: many ties
        if trial % 4 == 0 and m:
            value[rng.integers(0, m, 3)] = -0.0  # equal to 0.0: a tie, not a larger value
        if trial % 5 == 0 and m:
            value[rng.integers(0, m, 2)] = np.nan  # ignored unless a group holds nothing else
        best, where = _best_per_group(group, value, n)
        for g in range(n):  # reference: the first position of the largest non-NaN value
            rows = np.flatnonzero(group == g)
            numbers = rows[~np.isnan(value[rows])]
            pick = -1
            for r in numbers.tolist():
                if pick < 0 or value[r] > value[pick]:
                    pick = r
            if pick < 0 and len(rows):
                pick = int(rows[0])  # only NaN: the first, its value NaN
            assert where[g] == pick, (trial, g)
            expect = value[pick] if pick >= 0 else 0.0
            assert np.array_equal(best[g], expect, equal_nan=True), (trial, g)
            assert np.signbit(best[g]) == np.signbit(expect), (trial, g)
