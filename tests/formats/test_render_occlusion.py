"""Rendered masks of occluded objects hold only their visible pixels; occlusion is measured."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask  # type: ignore[import-untyped]

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.core.masks import rle_to_string
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import ValidationError
from labelgate.formats import render
from labelgate.formats.render import (
    OCCLUDED_HIDDEN_SHARE,
    measure_occlusion,
    pixel_boxes,
    render_image,
    shapes_as_masks,
    visible_fraction,
)

# pycocotools' decode warns under numpy 2 on every call (its __array__ signature)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# class 4 is the fourth style: a rectangle, which fills its box exactly
_TAXONOMY = Taxonomy.from_names(["car", "person", "sign", "light"])
_RECTANGLE = 4


def _rectangles(boxes: list[list[float]], z_order: list[int], width: int = 20) -> Dataset:
    ann = Annotations.create(
        image_id=[1] * len(boxes),
        class_id=[_RECTANGLE] * len(boxes),
        bbox=boxes,
        z_order=z_order,
    )
    images = Images.create(id=[1], file_name=["a.png"], width=[width], height=[10])
    return Dataset(ann, images, _TAXONOMY)


@pytest.fixture(scope="module")
def scenes() -> Dataset:
    return render.snap_to_pixels(generate_dataset(6, seed=5))


def test_two_rectangles_by_hand() -> None:
    # A fills columns 0-9, rows 0-9; B (z_order 1, drawn above) columns 6-14, rows 2-7:
    # B hides columns 6-9 x rows 2-7 of A, 4 x 6 = 24 of A's 100 pixels
    ds = _rectangles([[0, 0, 10, 10], [6, 2, 15, 8]], z_order=[0, 1])
    masks = shapes_as_masks(ds).annotations
    assert masks.area.tolist() == [76.0, 54.0]
    # column-major runs over the 10 x 20 image: columns 0-5 and rows 0-1 of column 6 (62),
    # then each of columns 6-9 shows rows 8-9 and the next one's rows 0-1
    assert masks.rle_counts.row(0).tolist() == [0, 62, 6, 4, 6, 4, 6, 4, 6, 2, 100]
    expected = np.zeros((10, 20), dtype=np.uint8)
    expected[:, 0:10] = 1
    expected[2:8, 6:10] = 0
    encoded = coco_mask.encode(np.asfortranarray(expected))
    assert encoded["counts"].decode() == rle_to_string(masks.rle_counts.row(0))
    assert masks.occluded.tolist() == [True, False]
    assert masks.attributes["visibility"].values.tolist() == [0.76, 1.0]
    assert visible_fraction(ds).tolist() == [0.76, 1.0]
    # the box stays the whole object's extent (amodal)
    assert masks.bbox.tolist() == [[0, 0, 10, 10], [6, 2, 15, 8]]
    # the amodal masks are the whole rectangles
    assert shapes_as_masks(ds, amodal=True).annotations.area.tolist() == [100.0, 54.0]
    # without z_order the bottom edge decides: A (bottom 10) is nearer and hides B
    flat = shapes_as_masks(_rectangles([[0, 0, 10, 10], [6, 2, 15, 8]], [0, 0])).annotations
    assert flat.area.tolist() == [100.0, 54.0 - 24.0]


def test_occluded_follows_the_hidden_share() -> None:
    # B hides 1 of A's 10 columns: 10% hidden
    ds = _rectangles([[0, 0, 10, 10], [9, 0, 12, 10]], z_order=[0, 1])
    assert visible_fraction(ds).tolist() == [0.9, 1.0]
    assert OCCLUDED_HIDDEN_SHARE < 0.1
    assert shapes_as_masks(ds).annotations.occluded.tolist() == [True, False]
    assert measure_occlusion(ds).annotations.occluded.tolist() == [True, False]
    lenient = measure_occlusion(ds, hidden_share=0.1).annotations
    assert lenient.occluded.tolist() == [False, False]  # 0.9 is not below 1 - 0.1
    assert shapes_as_masks(ds, hidden_share=0.15).annotations.occluded.tolist() == [False] * 2
    with pytest.raises(ValidationError, match="hidden share"):
        measure_occlusion(ds, hidden_share=1.0)
    with pytest.raises(ValidationError, match="hidden share"):
        shapes_as_masks(ds, hidden_share=-0.1)


def test_a_wholly_hidden_object_is_dropped_or_kept_empty() -> None:
    # C lies inside B, which is drawn above it
    ds = _rectangles([[0, 0, 10, 10], [6, 2, 15, 8], [8, 3, 12, 6]], z_order=[0, 2, 1])
    assert visible_fraction(ds).tolist() == [0.76, 1.0, 0.0]
    dropped = shapes_as_masks(ds).annotations
    assert dropped.id.tolist() == ds.annotations.id[:2].tolist()
    kept = shapes_as_masks(ds, keep_hidden=True).annotations
    assert kept.id.tolist() == ds.annotations.id.tolist()
    assert kept.rle_counts.row(2).tolist() == [200]  # all zeros
    assert kept.area[2] == 0 and kept.occluded[2]
    assert kept.attributes["visibility"].values[2] == 0.0
    assert kept.bbox[2].tolist() == [8, 3, 12, 6]
    truth = measure_occlusion(ds)
    assert truth.annotations.id.tolist() == ds.annotations.id[:2].tolist()
    assert len(measure_occlusion(ds, keep_hidden=True).annotations) == 3
    # dropping what nobody sees changes no pixel of any mask
    again = shapes_as_masks(truth).annotations
    assert np.array_equal(again.rle_counts.values, dropped.rle_counts.values)
    assert np.array_equal(again.rle_counts.offsets, dropped.rle_counts.offsets)


def test_visible_masks_are_the_amodal_masks_painted_in_draw_order(scenes: Dataset) -> None:
    ann = scenes.annotations
    boxes = pixel_boxes(scenes)
    amodal = shapes_as_masks(scenes, amodal=True).annotations
    visible = shapes_as_masks(scenes, keep_hidden=True).annotations
    assert np.array_equal(visible.id, ann.id)
    assert np.array_equal(visible.bbox, boxes)
    hidden_somewhere = 0
    for image_id in scenes.images.id.tolist():
        rows = np.flatnonzero(ann.image_id == image_id)
        whole = [coco_mask.decode(rle).astype(bool) for rle in _coco(amodal[rows])]
        seen = [coco_mask.decode(rle).astype(bool) for rle in _coco(visible[rows])]
        # reference z-buffer: pycocotools' amodal masks painted in the documented order
        order = np.lexsort((rows, boxes[rows, 3], ann.z_order[rows]))
        reference = np.full(whole[0].shape, -1)
        for k in order.tolist():
            reference[whole[k]] = k
        owners = np.zeros(whole[0].shape, dtype=np.int64)
        owner = np.full(whole[0].shape, -1)
        for k in range(len(rows)):
            owners += seen[k]
            owner[seen[k]] = k
            assert not (seen[k] & ~whole[k]).any()  # visible is part of the shape
            hidden_somewhere += int(seen[k].sum() < whole[k].sum())
        assert owners.max() <= 1  # disjoint
        # so each pixel has one owner or none, the reference's; the unions are equal
        assert np.array_equal(owner, reference), image_id
        # the image agrees: one colour per visible mask, nothing painted outside the union
        pixels = render_image(scenes, image_id, seed=0)
        background = render._background(
            int(pixels.shape[1]),
            int(pixels.shape[0]),
            str(scenes.images.scene_type[scenes.images.index_of(np.array([image_id]))[0]]),
            render._image_rng(0, image_id),
        ).transpose(1, 0, 2)
        changed = (pixels != background).any(axis=2)
        assert not (changed & (owner < 0)).any()
        for k in range(len(rows)):
            colours = pixels[seen[k]]
            assert (colours == colours[:1]).all(), (image_id, k)
    assert hidden_somewhere > 10
    # areas, flags and visibility agree with the decoded pixels
    fraction = visible.area / amodal.area
    assert np.allclose(visible.area, coco_mask.area(_coco(visible)))
    assert np.array_equal(visible.attributes["visibility"].values, fraction)
    assert np.array_equal(visible.occluded, fraction < 1 - OCCLUDED_HIDDEN_SHARE)
    assert np.array_equal(visible_fraction(scenes), fraction)
    dropped = shapes_as_masks(scenes).annotations
    assert np.array_equal(dropped.id, ann.id[fraction > 0])


def _coco(masks: Annotations) -> list[dict[str, object]]:
    return [
        {"size": [int(h), int(w)], "counts": rle_to_string(masks.rle_counts.row(i)).encode()}
        for i, (h, w) in enumerate(masks.rle_size.tolist())
    ]


def test_measured_truth_keeps_boxes_and_the_other_fields(scenes: Dataset) -> None:
    truth = measure_occlusion(scenes).annotations
    fraction = visible_fraction(scenes)
    keep = fraction > 0
    before = scenes.annotations[keep]
    assert np.array_equal(truth.id, before.id)
    assert np.array_equal(truth.bbox, before.bbox)
    assert np.array_equal(truth.class_id, before.class_id)
    assert np.array_equal(truth.attributes["visibility"].values, fraction[keep])
    assert np.array_equal(truth.occluded, fraction[keep] < 1 - OCCLUDED_HIDDEN_SHARE)


def test_a_box_over_the_left_edge_stays_inside_the_image() -> None:
    ds = _rectangles([[-1.0, 0, 4, 5]], z_order=[0])
    assert pixel_boxes(ds).tolist() == [[0, 0, 4, 5]]
    painted = render_image(ds, 1, seed=0)
    background = render._background(20, 10, "", render._image_rng(0, 1)).transpose(1, 0, 2)
    changed = (painted != background).any(axis=2)
    assert changed[:5, :4].all() and not changed[:, 4:].any()  # nothing wraps to the right
    assert shapes_as_masks(ds).annotations.area.tolist() == [20.0]


def test_objects_on_an_image_of_unknown_size_are_refused() -> None:
    ann = Annotations.create(image_id=[1], class_id=[_RECTANGLE], bbox=[[0, 0, 4, 5]])
    ds = Dataset(ann, Images.create(id=[1], file_name=["a.png"]), _TAXONOMY)
    with pytest.raises(ValidationError, match="image 1: expected a known size"):
        shapes_as_masks(ds)
    with pytest.raises(ValidationError, match="image 1: expected a known size"):
        visible_fraction(ds)


def test_no_objects_give_no_masks() -> None:
    ds = generate_dataset(2, seed=0)
    empty = ds.replace(annotations=ds.annotations[np.zeros(len(ds.annotations), dtype=bool)])
    assert len(shapes_as_masks(empty).annotations) == 0
    assert len(shapes_as_masks(empty, amodal=True).annotations) == 0
    assert len(measure_occlusion(empty).annotations) == 0
    assert visible_fraction(empty).shape == (0,)
