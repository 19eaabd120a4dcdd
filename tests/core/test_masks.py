from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelgate.core.masks import rle_bbox, rle_from_string, rle_to_string
from labelgate.core.ragged import Ragged
from labelgate.errors import ValidationError

mask_util = pytest.importorskip("pycocotools.mask")


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 24), st.integers(1, 24)),
        elements=st.integers(0, 1),
    )
)
def test_string_codec_and_extent_agree_with_pycocotools(mask: np.ndarray) -> None:
    encoded = mask_util.encode(np.asfortranarray(mask))
    counts = rle_from_string(encoded["counts"].decode())
    assert int(counts.sum()) == mask.size
    assert rle_to_string(counts) == encoded["counts"].decode()
    box = rle_bbox(Ragged(counts, np.array([0, len(counts)])), np.array([mask.shape]))[0]
    x, y, w, h = mask_util.toBbox(encoded)
    assert box.tolist() == [x, y, x + w, y + h]


def test_extent_of_many_masks_at_once() -> None:
    # 10x5 mask whose first two columns are set, as in Datumaro's COCO crowd sample
    counts = Ragged(np.array([0, 20, 30, 7, 1, 2]), np.array([0, 3, 6]))
    boxes = rle_bbox(counts, np.array([[10, 5], [2, 5]]))
    assert boxes.tolist() == [[0, 0, 2, 10], [3, 1, 4, 2]]


def test_bad_characters_are_refused() -> None:
    with pytest.raises(ValidationError, match="unexpected character"):
        rle_from_string("0d\x01")
