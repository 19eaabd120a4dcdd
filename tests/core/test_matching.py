from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from labelgate.core.annotations import Annotations
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.core.matching import match
from labelgate.core.pairs import box_iou_matrix


def hungarian_totals(ref: Annotations, other: Annotations, threshold: np.ndarray):
    """Per (image, class) linear_sum_assignment: (count, IoU sum, count where greedy differs)."""
    count, total = 0, 0.0
    keys_ref = {}
    for row, key in enumerate(zip(ref.image_id.tolist(), ref.class_id.tolist())):
        keys_ref.setdefault(key, []).append(row)
    keys_other = {}
    for row, key in enumerate(zip(other.image_id.tolist(), other.class_id.tolist())):
        keys_other.setdefault(key, []).append(row)
    for key, rows_a in keys_ref.items():
        rows_b = keys_other.get(key)
        if not rows_b:
            continue
        iou = box_iou_matrix(ref.bbox[rows_a], other.bbox[rows_b])
        iou = np.where(iou >= threshold[rows_a][:, None], iou, 0.0)
        r, c = linear_sum_assignment(-iou)
        ok = iou[r, c] > 0
        count += int(ok.sum())
        total += float(iou[r, c][ok].sum())
    return count, total


def greedy_total(ref: Annotations, other: Annotations, threshold: float) -> float:
    """Best-IoU-first greedy matching, to show the data has cases where greedy is not optimal."""
    total = 0.0
    for image in np.unique(ref.image_id).tolist():
        a = np.flatnonzero(ref.image_id == image)
        b = np.flatnonzero(other.image_id == image)
        iou = box_iou_matrix(ref.bbox[a], other.bbox[b])
        iou *= ref.class_id[a][:, None] == other.class_id[b][None, :]
        iou = np.where(iou >= threshold, iou, 0.0)
        while iou.size and iou.max() > 0:
            i, j = np.unravel_index(np.argmax(iou), iou.shape)
            total += iou[i, j]
            iou[i, :] = 0
            iou[:, j] = 0
    return total


@pytest.fixture(scope="module")
def crowded():
    dataset = generate_dataset(2000, seed=7)
    noisy = perturb(dataset, NoiseModel(jitter=0.25, duplicate_probability=0.2), seed=8)
    return dataset, noisy


def test_totals_equal_per_image_class_hungarian_on_crowded_scenes(crowded):
    dataset, noisy = crowded
    ref, other = dataset.annotations, noisy.annotations
    m = match(ref, other, iou_threshold=0.3, swaps=False)
    count, total = hungarian_totals(ref, other, np.full(len(ref), 0.3))
    assert len(m.ref_rows) == count
    assert m.iou.sum() == pytest.approx(total, abs=1e-9)
    # the data must contain scenes where greedy and optimal matching differ
    assert greedy_total(ref, other, 0.3) < total - 1e-6


def test_per_class_thresholds_come_from_the_taxonomy(crowded):
    dataset, noisy = crowded
    ref, other = dataset.annotations, noisy.annotations
    m = match(ref, other, taxonomy=dataset.taxonomy, swaps=False)
    threshold = dataset.taxonomy.thresholds(ref.class_id)
    assert len(np.unique(threshold[np.isfinite(threshold)])) > 1
    count, total = hungarian_totals(ref, other, threshold)
    assert len(m.ref_rows) == count
    assert m.iou.sum() == pytest.approx(total, abs=1e-9)
    assert np.all(m.iou >= threshold[m.ref_rows])


def test_swapped_classes_show_up_as_swaps():
    dataset = generate_dataset(1000, seed=3)
    noisy = perturb(dataset, NoiseModel(swap_probability=0.3), seed=4)
    m = match(dataset.annotations, noisy.annotations, iou_threshold=0.5)
    swapped = np.flatnonzero(noisy.swapped)
    assert len(swapped) > 100
    found = np.isin(swapped, m.swap_other_rows)
    assert found.mean() > 0.8
    assert np.all(
        dataset.annotations.class_id[m.swap_ref_rows]
        != noisy.annotations.class_id[m.swap_other_rows]
    )
    assert not np.any(m.missed()[m.swap_ref_rows])
    assert not np.any(m.extra()[m.swap_other_rows])


def test_tags_never_match():
    nan = [np.nan] * 4
    ref = Annotations.create(image_id=[1, 1], class_id=[1, 1], bbox=[nan, [0, 0, 5, 5]])
    other = Annotations.create(image_id=[1, 1], class_id=[1, 2], bbox=[nan, nan])
    m = match(ref, other, iou_threshold=0.0)
    assert len(m.ref_rows) == 0 and len(m.swap_ref_rows) == 0
    assert m.missed().tolist() == [True, True]
    assert m.extra().tolist() == [True, True]


@pytest.mark.parametrize(
    ("iou_threshold", "taxonomy"), [(None, None), (0.5, "both")], ids=["neither", "both"]
)
def test_threshold_needs_exactly_one_source(iou_threshold, taxonomy):
    empty = Annotations.empty()
    tax = generate_dataset(1, seed=0).taxonomy if taxonomy else None
    with pytest.raises(ValueError, match="exactly one"):
        match(empty, empty, iou_threshold=iou_threshold, taxonomy=tax)


@pytest.mark.parametrize(
    ("shift", "matched"),
    [(0.0, True), (2.0, True), (3.4, False)],
    ids=["identical", "just-above", "just-below"],
)
def test_threshold_edges(shift, matched):
    # IoU of [0,10]x[0,10] with a shifted copy is (10-s)/(10+s): 0.667 at 2, 0.493 at 3.4
    ref = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 10, 10]])
    other = Annotations.create(image_id=[1], class_id=[1], bbox=[[shift, 0, 10 + shift, 10]])
    m = match(ref, other, iou_threshold=0.5)
    assert m.ref_matched().tolist() == [matched]


def test_empty_inputs_give_an_empty_matching():
    m = match(Annotations.empty(), Annotations.empty(), iou_threshold=0.5)
    assert m.n_ref == 0 and len(m.ref_rows) == 0 and len(m.missed()) == 0


def test_optimal_beats_greedy_on_a_hand_made_case():
    # greedy takes the 0.9 pair and strands the rest; optimal takes two 0.8-ish pairs
    ref = Annotations.create(
        image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 10, 10], [3, 0, 13, 10]]
    )
    other = Annotations.create(
        image_id=[1, 1], class_id=[1, 1], bbox=[[1, 0, 11, 10], [-2, 0, 8, 10]]
    )
    m = match(ref, other, iou_threshold=0.5, swaps=False)
    iou = box_iou_matrix(ref.bbox, other.bbox)
    r, c = linear_sum_assignment(-np.where(iou >= 0.5, iou, 0))
    assert len(m.ref_rows) == 2
    assert m.iou.sum() == pytest.approx(iou[r, c].sum(), abs=1e-12)


boxes = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(1, 3),
        st.floats(0, 20),
        st.floats(0, 20),
        st.floats(1, 15),
        st.floats(1, 15),
    ),
    max_size=25,
)


def _build(rows):
    if not rows:
        return Annotations.empty()
    arr = np.array(rows, dtype=float)
    bbox = np.stack([arr[:, 2], arr[:, 3], arr[:, 2] + arr[:, 4], arr[:, 3] + arr[:, 5]], axis=1)
    return Annotations.create(
        image_id=arr[:, 0].astype(int), class_id=arr[:, 1].astype(int), bbox=bbox
    )


@settings(max_examples=200, deadline=None)
@given(boxes, boxes, st.floats(0.05, 0.95))
def test_never_pairs_an_object_twice(rows_a, rows_b, threshold):
    ref, other = _build(rows_a), _build(rows_b)
    m = match(ref, other, iou_threshold=threshold)
    for used in (
        np.r_[m.ref_rows, m.swap_ref_rows],
        np.r_[m.other_rows, m.swap_other_rows],
    ):
        assert len(np.unique(used)) == len(used)
    assert np.all(m.iou >= threshold) and np.all(m.swap_iou >= threshold)
    assert np.all(ref.class_id[m.ref_rows] == other.class_id[m.other_rows])
    assert np.all(ref.image_id[m.ref_rows] == other.image_id[m.other_rows])
    assert np.all(ref.class_id[m.swap_ref_rows] != other.class_id[m.swap_other_rows])
    count, total = hungarian_totals(ref, other, np.full(len(ref), threshold))
    assert len(m.ref_rows) == count
    assert m.iou.sum() == pytest.approx(total, abs=1e-9)


def _coco_pair(gt: Annotations, dt: Annotations, n_images: int):
    from pycocotools.coco import COCO

    def boxes(ann: Annotations):
        xywh = np.c_[ann.bbox[:, :2], ann.bbox[:, 2:] - ann.bbox[:, :2]]
        return xywh.tolist()

    images = [{"id": i, "width": 2000, "height": 2000} for i in range(1, n_images + 1)]
    cats = [{"id": int(c)} for c in np.unique(np.r_[gt.class_id, dt.class_id])]
    gt_anns = [
        {"id": r + 1, "image_id": int(i), "category_id": int(c), "bbox": b,
         "area": b[2] * b[3], "iscrowd": int(k)}
        for r, (i, c, b, k) in enumerate(
            zip(gt.image_id.tolist(), gt.class_id.tolist(), boxes(gt), gt.iscrowd.tolist())
        )
    ]  # fmt: skip
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "categories": cats, "annotations": gt_anns}
    coco_gt.createIndex()
    dt_anns = [
        {"id": r + 1, "image_id": int(i), "category_id": int(c), "bbox": b,
         "area": b[2] * b[3], "score": float(s), "iscrowd": 0}
        for r, (i, c, b, s) in enumerate(
            zip(dt.image_id.tolist(), dt.class_id.tolist(), boxes(dt), dt.score.tolist())
        )
    ]  # fmt: skip
    coco_dt = COCO()
    coco_dt.dataset = {"images": images, "categories": cats, "annotations": dt_anns}
    coco_dt.createIndex()
    return coco_gt, coco_dt


@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_greedy_matches_pycocotools_evaluate_img(threshold):
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    from labelgate.core.matching import match_greedy

    n_images = 300
    dataset = generate_dataset(n_images, seed=11)
    noisy = perturb(
        dataset, NoiseModel(jitter=0.15, duplicate_probability=0.2), seed=12, as_predictions=True
    )
    gt, dt = dataset.annotations, noisy.annotations
    rng = np.random.default_rng(0)
    crowd = rng.random(len(gt)) < 0.1
    gt = Annotations.create(image_id=gt.image_id, class_id=gt.class_id, bbox=gt.bbox, iscrowd=crowd)
    dt = Annotations.create(
        image_id=dt.image_id, class_id=dt.class_id, bbox=dt.bbox, score=dt.score
    )
    assert crowd.sum() > 50
    coco_gt, coco_dt = _coco_pair(gt, dt, n_images)
    evaluator = COCOeval(coco_gt, coco_dt, "bbox")
    evaluator.params.iouThrs = np.array([threshold])
    evaluator.params.areaRng = [[0, 1e10]]
    evaluator.params.areaRngLbl = ["all"]
    evaluator.params.maxDets = [10_000]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    expected_dt = np.zeros(len(dt), dtype=np.int64)  # matched gt id (row + 1), 0 when none
    for result in evaluator.evalImgs:
        if result is None:
            continue
        ids = np.asarray(result["dtIds"], dtype=np.int64)
        expected_dt[ids - 1] = np.asarray(result["dtMatches"][0], dtype=np.int64)
    m = match_greedy(gt, dt, iou_threshold=threshold)
    got_dt = np.zeros(len(dt), dtype=np.int64)
    got_dt[m.other_rows] = m.ref_rows + 1
    assert (expected_dt > 0).sum() > 100
    assert np.any(gt.iscrowd[m.ref_rows])
    np.testing.assert_array_equal(got_dt, expected_dt)


@pytest.mark.parametrize("seed", range(6))
def test_dense_clusters_of_every_shape_match_hungarian_totals(seed):
    # many boxes piled on a few spots: components from 2 x 2 up to dozens of boxes a side,
    # so every solver path (stars, scored assignments, linear_sum_assignment) runs
    rng = np.random.default_rng(seed)

    def pile(n):
        image = rng.integers(0, 30, n)
        spot = rng.integers(0, 3, n) * 60.0
        xy = spot[:, None] + rng.normal(0, 6, (n, 2))
        wh = rng.uniform(20, 40, (n, 2))
        return Annotations.create(
            image_id=image, class_id=rng.integers(0, 2, n), bbox=np.c_[xy, xy + wh]
        )

    ref, other = pile(900), pile(1000)
    for threshold in (0.2, 0.5):
        m = match(ref, other, iou_threshold=threshold, swaps=False)
        count, total = hungarian_totals(ref, other, np.full(len(ref), threshold))
        assert len(m.ref_rows) == count
        assert m.iou.sum() == pytest.approx(total, abs=1e-9)
        assert np.all(np.diff(m.ref_rows) > 0)


def test_one_threshold_per_reference_row(crowded):
    dataset, noisy = crowded
    ref, other = dataset.annotations, noisy.annotations
    rng = np.random.default_rng(2)
    threshold = rng.choice([0.3, 0.5, 0.7, np.nan], len(ref))
    m = match(ref, other, iou_threshold=threshold, swaps=False)
    count, total = hungarian_totals(ref, other, threshold)
    assert len(m.ref_rows) == count
    assert m.iou.sum() == pytest.approx(total, abs=1e-9)
    assert not np.isnan(threshold[m.ref_rows]).any()
    with pytest.raises(ValueError, match="one per"):
        match(ref, other, iou_threshold=threshold[:-1])
