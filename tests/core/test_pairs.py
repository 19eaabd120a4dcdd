from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.pairs import (
    box_iou_matrix,
    box_iou_pairs,
    box_pairs_above,
    box_pairs_overlapping,
    box_pairs_overlapping_within,
    group_pairs,
)

mask_util = pytest.importorskip("pycocotools.mask")


@given(
    st.lists(st.integers(0, 5), max_size=30),
    st.lists(st.integers(0, 5), max_size=30),
)
def test_group_pairs_is_the_cross_product_within_each_key(keys_a: list, keys_b: list) -> None:
    rows_a, rows_b = group_pairs(np.array(keys_a, dtype=np.int64), np.array(keys_b, dtype=np.int64))
    expected = sorted((i, j) for i, a in enumerate(keys_a) for j, b in enumerate(keys_b) if a == b)
    assert sorted(zip(rows_a.tolist(), rows_b.tolist())) == expected


def test_box_iou_matches_pycocotools_without_the_pixel_offset() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 100, (200, 2))
    wh = rng.uniform(0, 40, (200, 2))
    xywh = np.concatenate([xy, wh], axis=1)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    reference = mask_util.iou(xywh[:100], xywh[100:], np.zeros(100, dtype=np.uint8))
    np.testing.assert_allclose(box_iou_matrix(boxes[:100], boxes[100:]), reference, atol=1e-12)
    np.testing.assert_allclose(
        box_iou_pairs(boxes[:100], boxes[100:]), np.diag(reference), atol=1e-12
    )


def test_degenerate_boxes_have_iou_zero_not_nan() -> None:
    point = np.array([[1.0, 1, 1, 1]])
    assert box_iou_matrix(point, point).tolist() == [[0.0]]


def _all_pairs_above(keys_a, boxes_a, threshold_a, keys_b, boxes_b):
    """The oracle: every same-key pair's IoU from box_iou_matrix, kept where >= threshold."""
    iou = box_iou_matrix(boxes_a, boxes_b)
    same = keys_a[:, None] == keys_b[None, :]
    keep = same & (iou >= threshold_a[:, None])
    rows_a, rows_b = np.nonzero(keep)
    return sorted(zip(rows_a.tolist(), rows_b.tolist(), iou[rows_a, rows_b].tolist()))


box_rows = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.floats(-50, 50),
        st.floats(-50, 50),
        st.floats(0, 30),
        st.floats(0, 30),
        st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0, float("nan")]),
    ),
    max_size=30,
)


def _boxes(rows):
    arr = np.array(rows, dtype=float).reshape(-1, 6)
    boxes = np.stack([arr[:, 1], arr[:, 2], arr[:, 1] + arr[:, 3], arr[:, 2] + arr[:, 4]], axis=1)
    return arr[:, 0].astype(np.int64), boxes, arr[:, 5]


@settings(max_examples=300, deadline=None)
@given(box_rows, box_rows, st.sampled_from([1, 7, 10**15]))
def test_box_pairs_above_is_every_same_key_pair_at_or_above_the_threshold(
    rows_a: list, rows_b: list, key_scale: int
) -> None:
    keys_a, boxes_a, threshold_a = _boxes(rows_a)
    keys_b, boxes_b, _ = _boxes(rows_b)
    # key_scale 10**15: sparse huge keys take the renumbering path
    keys_a, keys_b = keys_a * key_scale, keys_b * key_scale
    rows_a_out, rows_b_out, iou = box_pairs_above(keys_a, boxes_a, threshold_a, keys_b, boxes_b)
    got = sorted(zip(rows_a_out.tolist(), rows_b_out.tolist(), iou.tolist()))
    # the IoU is box_iou_matrix's, bit for bit: equal floats, not approximately equal
    assert got == _all_pairs_above(keys_a, boxes_a, threshold_a, keys_b, boxes_b)


def test_box_pairs_above_keeps_pairs_exactly_at_the_threshold() -> None:
    # IoU of [0, 10] x [0, 10] with [0, 5] x [0, 10] is exactly 0.5
    keys = np.zeros(1, dtype=np.int64)
    a = np.array([[0.0, 0, 10, 10]])
    b = np.array([[0.0, 0, 5, 10]])
    for threshold, expected in ((0.5, [0]), (np.nextafter(0.5, 1), [])):
        rows_a, _, iou = box_pairs_above(keys, a, np.array([threshold]), keys, b)
        assert rows_a.tolist() == expected
    rows_a, _, iou = box_pairs_above(keys, b, np.array([0.5]), keys, a)  # narrow side as a
    assert rows_a.tolist() == [0] and iou.tolist() == [0.5]


def test_box_pairs_above_on_many_images_equals_the_cross_product_filtered() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    keys_a, keys_b = rng.integers(0, 40, n), rng.integers(0, 40, n)
    xy_a, xy_b = rng.uniform(0, 500, (n, 2)), rng.uniform(0, 500, (n, 2))
    wh_a, wh_b = rng.uniform(1, 120, (n, 2)), rng.uniform(1, 120, (n, 2))
    boxes_a, boxes_b = np.c_[xy_a, xy_a + wh_a], np.c_[xy_b, xy_b + wh_b]
    threshold = rng.choice([0.1, 0.3, 0.5], n)
    rows_a, rows_b, iou = box_pairs_above(keys_a, boxes_a, threshold, keys_b, boxes_b)
    ga, gb = group_pairs(keys_a, keys_b)
    all_iou = box_iou_pairs(boxes_a[ga], boxes_b[gb])
    keep = all_iou >= threshold[ga]
    expected = sorted(zip(ga[keep].tolist(), gb[keep].tolist(), all_iou[keep].tolist()))
    assert len(expected) > 1000
    assert sorted(zip(rows_a.tolist(), rows_b.tolist(), iou.tolist())) == expected


@settings(max_examples=300, deadline=None)
@given(box_rows, box_rows)
def test_box_pairs_overlapping_is_every_same_key_pair_with_positive_iou(
    rows_a: list, rows_b: list
) -> None:
    keys_a, boxes_a, _ = _boxes(rows_a)
    keys_b, boxes_b, _ = _boxes(rows_b)
    rows_a_out, rows_b_out, iou = box_pairs_overlapping(keys_a, boxes_a, keys_b, boxes_b)
    got = sorted(zip(rows_a_out.tolist(), rows_b_out.tolist(), iou.tolist()))
    expected = [
        p
        for p in _all_pairs_above(keys_a, boxes_a, np.zeros(len(keys_a)), keys_b, boxes_b)
        if p[2] > 0
    ]
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(box_rows)
def test_box_pairs_overlapping_within_gives_each_pair_of_distinct_rows_once(rows: list) -> None:
    keys, boxes, _ = _boxes(rows)
    rows_a, rows_b, iou = box_pairs_overlapping_within(keys, boxes)
    got = sorted((min(a, b), max(a, b), v) for a, b, v in zip(rows_a, rows_b, iou.tolist()))
    expected = [
        (a, b, v)
        for a, b, v in _all_pairs_above(keys, boxes, np.zeros(len(keys)), keys, boxes)
        if v > 0 and a < b
    ]
    assert [(int(a), int(b), v) for a, b, v in got] == expected
