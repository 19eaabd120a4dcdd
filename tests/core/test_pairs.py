from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelgate.core.pairs import box_iou_matrix, box_iou_pairs, group_pairs

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
