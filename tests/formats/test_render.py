"""Rendered scenes: shapes fill their pixel boxes exactly; masks and polygons agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask  # type: ignore[import-untyped]

from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.masks import rle_bbox, rle_to_string
from labelgate.formats import render
from labelgate.formats.render import (
    CLASS_STYLES,
    pixel_boxes,
    render_image,
    render_scenes,
    shapes_as_masks,
    shapes_as_polygons,
    snap_to_pixels,
)


def _png(dataset: Dataset) -> Dataset:
    names = np.array([n.replace(".jpg", ".png") for n in dataset.images.file_name], dtype=object)
    return dataset.replace(images=dataset.images.replace(file_name=names))


def _background(dataset: Dataset, image_id: int, seed: int) -> np.ndarray:
    row = int(dataset.images.index_of(np.array([image_id]))[0])
    rng = render._image_rng(seed, image_id)
    w, h = int(dataset.images.width[row]), int(dataset.images.height[row])
    return render._background(w, h, str(dataset.images.scene_type[row]), rng).transpose(1, 0, 2)


@pytest.fixture(scope="module")
def scenes() -> Dataset:
    return generate_dataset(12, seed=5)


def test_pixels_inside_every_box_differ_from_the_background_and_none_outside(
    scenes: Dataset,
) -> None:
    boxes = pixel_boxes(scenes)
    for image_id in scenes.images.id.tolist():
        pixels = render_image(scenes, image_id, seed=3)
        changed = (pixels != _background(scenes, image_id, 3)).any(axis=2)
        inside = np.zeros_like(changed)
        for x1, y1, x2, y2 in boxes[scenes.annotations.image_id == image_id].tolist():
            assert changed[y1:y2, x1:x2].any()
            inside[y1:y2, x1:x2] = True
        assert not (changed & ~inside).any()  # shapes never leave their boxes


def test_an_unoccluded_shape_touches_all_four_edges_of_its_box(scenes: Dataset) -> None:
    ann = scenes.annotations
    boxes = pixel_boxes(scenes)
    checked = 0
    for image_id in scenes.images.id.tolist():
        rows = np.flatnonzero(ann.image_id == image_id)
        pixels = render_image(scenes, image_id, seed=0)
        changed = (pixels != _background(scenes, image_id, 0)).any(axis=2)
        for row in rows.tolist():
            x1, y1, x2, y2 = boxes[row].tolist()
            others = boxes[rows[rows != row]]
            overlap = (
                (others[:, 0] < x2)
                & (others[:, 2] > x1)
                & (others[:, 1] < y2)
                & (others[:, 3] > y1)
            )
            if overlap.any():
                continue  # a neighbour may cover an edge pixel, or paint beside it
            region = changed[y1:y2, x1:x2]
            assert region[0].any() and region[-1].any(), (image_id, row)
            assert region[:, 0].any() and region[:, -1].any(), (image_id, row)
            checked += 1
    assert checked > 50


def test_masks_hold_exactly_the_drawn_pixels_and_their_boxes(scenes: Dataset) -> None:
    masks = shapes_as_masks(scenes, amodal=True).annotations
    boxes = pixel_boxes(scenes)
    assert (rle_bbox(masks.rle_counts, masks.rle_size) == boxes).all()
    assert np.abs(boxes - scenes.annotations.bbox).max() <= 0.5  # within 1 px: half a pixel
    # one object alone on its image: the painted pixels are the mask, bit for bit, and
    # its visible mask is its whole shape
    for row in range(0, len(masks), 17):
        one = Dataset(scenes.annotations[[row]], scenes.images, scenes.taxonomy)
        image_id = int(one.annotations.image_id[0])
        painted = (render_image(one, image_id, seed=0) != _background(one, image_id, 0)).any(2)
        h, w = masks.rle_size[row]
        encoded = coco_mask.encode(np.asfortranarray(painted.astype(np.uint8)))
        assert encoded["size"] == [h, w]
        assert encoded["counts"].decode() == rle_to_string(masks.rle_counts.row(row))
        visible = shapes_as_masks(one).annotations
        assert encoded["counts"].decode() == rle_to_string(visible.rle_counts.row(0))
        assert not visible.occluded[0] and visible.attributes["visibility"].values[0] == 1.0
    assert np.allclose(masks.area, coco_mask.area(_coco_rles(masks)))


def _coco_rles(masks: object) -> list[dict[str, object]]:
    return [
        {"size": [int(h), int(w)], "counts": rle_to_string(masks.rle_counts.row(i)).encode()}  # type: ignore[attr-defined]
        for i, (h, w) in enumerate(masks.rle_size.tolist())  # type: ignore[attr-defined]
    ]


def test_polygons_span_their_boxes_and_overlap_their_masks(scenes: Dataset) -> None:
    polygons = shapes_as_polygons(scenes).annotations
    boxes = pixel_boxes(scenes).astype(np.float64)
    points = polygons.rings.values
    owner = np.repeat(np.arange(len(polygons)), polygons.rings.lengths)
    low = np.full((len(polygons), 2), np.inf)
    high = np.full((len(polygons), 2), -np.inf)
    np.minimum.at(low, owner, points)
    np.maximum.at(high, owner, points)
    assert np.array_equal(np.hstack([low, high]), boxes)
    # rasterized by pycocotools, a polygon covers (nearly) the drawn whole shape
    masks = shapes_as_masks(scenes, amodal=True).annotations
    big = np.flatnonzero(polygons.area > 400)
    h, w = masks.rle_size[big[0]]
    rles = [
        coco_mask.frPyObjects([polygons.rings.row(i).ravel().tolist()], int(h), int(w))[0]
        for i in big
        if (masks.rle_size[i] == (h, w)).all()
    ]
    ours = [r for i, r in zip(big, _coco_rles(masks[big])) if (masks.rle_size[i] == (h, w)).all()]
    iou = np.diag(coco_mask.iou(rles, ours, [0] * len(ours)))
    assert iou.min() > 0.85 and np.median(iou) > 0.95


def test_every_class_shape_is_convex_and_fills_its_unit_box() -> None:
    for style in CLASS_STYLES:
        render._check_style(style)
    with pytest.raises(Exception, match="convex"):
        render._check_style(
            render.ShapeStyle("dart", ((0, 0), (0.5, 0.6), (1, 0), (0.5, 1)), (0, 0, 0))
        )


def test_files_are_deterministic_by_seed_and_png_is_lossless(tmp_path: Path) -> None:
    ds = _png(generate_dataset(4, seed=1))
    first = render_scenes(ds, tmp_path / "a", seed=7)
    again = render_scenes(ds, tmp_path / "b", seed=7)
    other = render_scenes(ds, tmp_path / "c", seed=8)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[0].read_bytes() != other[0].read_bytes()
    decoded = np.asarray(Image.open(first[2]))
    assert np.array_equal(decoded, render_image(ds, int(ds.images.id[2]), seed=7))
    with pytest.raises(FileExistsError):
        render_scenes(ds, tmp_path / "a", seed=7)


def test_snapped_truth_is_the_pixel_boxes() -> None:
    ds = generate_dataset(5, seed=2)
    snapped = snap_to_pixels(ds)
    assert np.array_equal(snapped.annotations.bbox, pixel_boxes(ds))
    assert np.array_equal(pixel_boxes(snapped), pixel_boxes(ds))
