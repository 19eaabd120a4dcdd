"""``from_objects``: a box payload builds no geometry columns; a mixed one keeps them."""

from __future__ import annotations

import numpy as np

from labelgate.api.labels import from_objects
from labelgate.api.schemas import LabelObject
from labelgate.core.annotations import Kind


def test_box_payload_converts_to_the_same_container_as_the_full_path() -> None:
    boxes = [
        LabelObject(id=2, class_id=1, bbox=[1.5, 2.0, 4.5, 6.0], score=0.25),
        LabelObject(id=9, class_id=3, bbox=[0, 0, 10, 10], track_id=4, occluded=True),
    ]
    got = from_objects(boxes, image_id=5)
    # hand-built reference: boxes, no rings, no keypoints, areas 3 x 4 and 10 x 10
    assert got.id.tolist() == [2, 9]
    assert got.image_id.tolist() == [5, 5]
    assert got.kind.tolist() == [Kind.BOX, Kind.BOX]
    assert got.bbox.tolist() == [[1.5, 2.0, 4.5, 6.0], [0, 0, 10, 10]]
    assert got.area.tolist() == [12.0, 100.0]
    assert got.score[0] == 0.25 and np.isnan(got.score[1])
    assert got.track_id.tolist() == [-1, 4]
    assert got.occluded.tolist() == [False, True]
    assert len(got.rings) == 0 and got.ring_offsets.tolist() == [0, 0, 0]
    assert len(got.keypoints) == 2 and got.keypoints.lengths.tolist() == [0, 0]
    assert got.attributes == {}


def test_mixed_payload_keeps_its_geometry() -> None:
    objects = [
        LabelObject(id=1, class_id=1, kind="polygon", polygon=[[[0, 0], [4, 0], [4, 3]]]),
        LabelObject(id=2, class_id=1, kind="keypoints", keypoints=[[1, 2, 2], [5, 7, 0]]),
        LabelObject(id=3, class_id=2, kind="tag", attributes={"night": True}),
    ]
    got = from_objects(objects)
    assert got.kind.tolist() == [Kind.POLYGON, Kind.KEYPOINTS, Kind.TAG]
    assert got.ring_offsets.tolist() == [0, 1, 1, 1]
    assert got.rings.values.tolist() == [[0, 0], [4, 0], [4, 3]]
    assert got.keypoints.lengths.tolist() == [0, 2, 0]
    # the polygon's box from its points; the keypoints' from the visible one only
    assert got.bbox[:2].tolist() == [[0, 0, 4, 3], [1, 2, 1, 2]]
    assert got.area[0] == 6.0  # the triangle's shoelace area, by hand
    assert got.attributes["night"].to_list() == [None, None, True]


def test_a_mask_read_from_a_task_can_be_sent_back_unchanged() -> None:
    from pycocotools import mask as mask_utils

    from labelgate.api.labels import to_objects

    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:7] = True
    mask[5, 0] = True
    # runs by hand, column-major over 6 rows: col 0 -> 5 bg, 1 fg; col 1 -> 6 bg;
    # cols 2..6 -> 1 bg, 3 fg, 2 bg each (bg runs join across columns); col 7 -> 6 bg
    counts = [5, 1, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 8]
    assert sum(counts) == 48
    decoded = mask_utils.decode(
        mask_utils.frPyObjects({"size": [6, 8], "counts": counts}, 6, 8)
    ).astype(bool)
    assert (decoded == mask).all()  # the hand-written runs are pycocotools' mask
    sent = [
        LabelObject(id=4, class_id=2, kind="mask", mask={"size": [6, 8], "counts": counts}),
        LabelObject(id=5, class_id=1, bbox=[0, 0, 2, 2]),
    ]
    got = from_objects(sent, image_id=3)
    assert got.kind.tolist() == [Kind.MASK, Kind.BOX]
    # derived tight box: pycocotools' toBbox is xywh
    x, y, w, h = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))
    assert got.bbox[0].tolist() == [x, y, x + w, y + h] == [0.0, 1.0, 7.0, 6.0]
    assert got.area[0] == mask.sum() == 16
    # the read form of those labels validates as a request and converts back to the same
    objects = [LabelObject.model_validate(o) for o in to_objects(got)]
    again = from_objects(objects, image_id=3)
    assert again.rle_counts.values.tolist() == counts
    assert again.rle_size.tolist() == [[6, 8], [0, 0]]
    assert again.bbox.tolist() == got.bbox.tolist()


def test_a_mask_whose_runs_do_not_fill_its_size_is_refused_naming_the_object() -> None:
    import pytest

    from labelgate.errors import ValidationError

    bad = [LabelObject(id=1, class_id=1, kind="mask", mask={"size": [2, 2], "counts": [1, 2]})]
    with pytest.raises(ValidationError, match="rle_counts"):
        from_objects(bad)
    with pytest.raises(ValidationError, match="needs RLE counts"):
        from_objects([LabelObject(id=1, class_id=1, kind="mask")])
