from __future__ import annotations

import numpy as np
import pytest

from labelgate.core import ClassInfo, Images, PrecisionTier, Ragged, Taxonomy, gather_ranges
from labelgate.errors import ValidationError


@pytest.mark.parametrize(
    ("tier", "threshold", "ok"),
    [
        pytest.param(PrecisionTier.LOOSE, 0.5, True, id="loose-floor"),
        pytest.param(PrecisionTier.LOOSE, 0.65, True, id="loose-ceiling"),
        pytest.param(PrecisionTier.LOOSE, 0.66, False, id="loose-above"),
        pytest.param(PrecisionTier.TIGHT, 0.75, True, id="tight-floor"),
        pytest.param(PrecisionTier.TIGHT, 0.9, True, id="tight-ceiling"),
        pytest.param(PrecisionTier.TIGHT, 0.74, False, id="tight-below"),
        pytest.param(PrecisionTier.TIGHT, 0.95, False, id="tight-above"),
    ],
)
def test_tier_bounds_its_iou_threshold(tier: PrecisionTier, threshold: float, ok: bool) -> None:
    if ok:
        assert ClassInfo(1, "c", tier=tier, iou_threshold=threshold).threshold == threshold
    else:
        with pytest.raises(ValidationError, match="allows IoU"):
            ClassInfo(1, "c", tier=tier, iou_threshold=threshold)


def test_thresholds_look_up_per_class_and_nan_for_unknown() -> None:
    taxonomy = Taxonomy(
        (
            ClassInfo(4, "smoke", tier=PrecisionTier.LOOSE),
            ClassInfo(2, "person", tier=PrecisionTier.TIGHT, iou_threshold=0.85),
        )
    )
    got = taxonomy.thresholds(np.array([2, 4, 9, 2]))
    assert got[:2].tolist() == [0.85, 0.5] and np.isnan(got[2]) and got[3] == 0.85
    assert taxonomy.position(np.array([9, 4, 2])).tolist() == [-1, 0, 1]
    assert taxonomy.names_of(np.array([2, 7])) == ["person", "?7"]


def test_duplicate_class_ids_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate class id 1") as info:
        Taxonomy((ClassInfo(1, "a"), ClassInfo(1, "b")))
    assert info.value.row == 1


def test_images_refuse_negative_sizes_and_duplicate_ids() -> None:
    with pytest.raises(ValidationError, match="width >= 0") as info:
        Images.create(id=[1, 2], width=[4, -3], height=[4, 4])
    assert (info.value.field, info.value.row) == ("width", 1)
    with pytest.raises(ValidationError, match="duplicate image id 5") as info:
        Images.create(id=[5, 6, 5])
    assert info.value.row == 2


def test_gather_ranges_matches_a_python_concatenation() -> None:
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 50, 40)
    stops = starts + rng.integers(0, 6, 40)
    expected = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
    assert gather_ranges(starts, stops).tolist() == expected.tolist()


def test_ragged_rejects_inconsistent_offsets() -> None:
    with pytest.raises(ValidationError, match="offsets from 0 to 3"):
        Ragged(np.arange(3), np.array([0, 2]))
    with pytest.raises(ValidationError, match="must not decrease"):
        Ragged(np.arange(3), np.array([0, 2, 1, 3]))
