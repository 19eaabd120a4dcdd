from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.annotations import Annotations, Kind
from labelgate.core.iou import (
    COCO_SIGMAS,
    box_iou_pairs_crowd,
    iou_matrix,
    mask_iou_pairs,
    oks_pairs,
    pair_iou,
    polygon_iou_pairs,
)
from labelgate.core.masks import rle_bbox, rle_from_string
from labelgate.core.pairs import group_pairs
from labelgate.core.ragged import Ragged
from labelgate.errors import ValidationError

mask_util = pytest.importorskip("pycocotools.mask")


# --- helpers ------------------------------------------------------------------------------


def masks_container(masks: list[np.ndarray], image_id: list[int] | None = None) -> Annotations:
    """Encode binary (h, w) masks with pycocotools and hold them as uncompressed RLE."""
    encoded = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    counts = Ragged.from_rows(
        [rle_from_string(e["counts"].decode("ascii")) for e in encoded], dtype=np.int64
    )
    size = np.array([m.shape for m in masks], dtype=np.int64)
    n = len(masks)
    return Annotations.create(
        image_id=image_id if image_id is not None else [1] * n,
        class_id=[1] * n,
        bbox=rle_bbox(counts, size),
        kind=[Kind.MASK] * n,
        rle_counts=counts,
        rle_size=size,
    )


def polygons_container(parts: list[list[np.ndarray]]) -> Annotations:
    """One annotation per list of rings."""
    rings = [ring for rings in parts for ring in rings]
    ring_offsets = np.concatenate([[0], np.cumsum([len(r) for r in parts])])
    points = np.concatenate(rings)
    boxes = [
        np.concatenate([np.concatenate(r).min(axis=0), np.concatenate(r).max(axis=0)])
        for r in parts
    ]
    return Annotations.create(
        image_id=[1] * len(parts),
        class_id=[1] * len(parts),
        bbox=np.array(boxes),
        kind=[Kind.POLYGON] * len(parts),
        rings=Ragged(points, np.concatenate([[0], np.cumsum([len(r) for r in rings])])),
        ring_offsets=ring_offsets,
    )


def square(x: float, y: float, size: float = 1.0) -> np.ndarray:
    return np.array([[x, y], [x + size, y], [x + size, y + size], [x, y + size]])


def random_masks(rng: np.random.Generator, count: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """Blobs (ellipses), rectangles, noise, empty and full masks."""
    height, width = shape
    rows, cols = np.mgrid[:height, :width]
    out = []
    for i in range(count):
        style = i % 6
        if style == 0:
            out.append(np.zeros(shape, dtype=bool))
        elif style == 1:
            out.append(rng.random(shape) < rng.uniform(0.05, 0.6))
        elif style == 2:
            out.append(np.ones(shape, dtype=bool) if i % 12 == 2 else rng.random(shape) < 0.95)
        else:
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            ry, rx = rng.uniform(1, height / 2), rng.uniform(1, width / 2)
            blob = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            if style == 4:
                y0, x0 = rng.integers(0, height), rng.integers(0, width)
                blob |= (rows >= y0) & (rows < y0 + 3) & (cols >= x0) & (cols < x0 + 5)
            out.append(blob)
    return out


# --- masks --------------------------------------------------------------------------------


@pytest.mark.parametrize("crowd", [False, True], ids=["plain", "crowd"])
def test_mask_iou_equals_pycocotools_on_thousands_of_random_pairs(crowd: bool) -> None:
    rng = np.random.default_rng(11)
    checked = 0
    for shape in [(23, 17), (40, 40), (7, 61)]:
        masks = random_masks(rng, 48, shape)
        ann = masks_container(masks)
        encoded = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
        iscrowd = rng.random(len(masks)) < 0.5 if crowd else np.zeros(len(masks), dtype=bool)
        reference = mask_util.iou(encoded, encoded, iscrowd.astype(np.uint8))
        rows_a, rows_b = group_pairs(np.zeros(len(ann), np.int64), np.zeros(len(ann), np.int64))
        got = mask_iou_pairs(ann, rows_a, ann, rows_b, crowd_b=iscrowd[rows_b])
        # whole-pixel counts divided once, as rleIou does: equal bit for bit
        assert np.array_equal(got, reference[rows_a, rows_b])
        checked += len(got)
    assert checked > 6000


def test_mask_iou_between_two_containers_equals_pycocotools() -> None:
    rng = np.random.default_rng(17)
    detections = random_masks(rng, 37, (31, 29))
    truths = random_masks(rng, 23, (31, 29))[::-1]
    dt, gt = masks_container(detections), masks_container(truths)
    encode = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in detections + truths]
    iscrowd = rng.random(len(truths)) < 0.4
    reference = mask_util.iou(encode[:37], encode[37:], iscrowd.astype(np.uint8))
    # a sample of the pairs, in a shuffled order, some repeated
    rows_a = rng.integers(0, 37, 1500)
    rows_b = rng.integers(0, 23, 1500)
    got = mask_iou_pairs(dt, rows_a, gt, rows_b, crowd_b=iscrowd[rows_b])
    np.testing.assert_allclose(got, reference[rows_a, rows_b], rtol=0, atol=1e-12)


def test_mask_iou_is_exact_on_hand_made_masks() -> None:
    left = np.zeros((4, 4), dtype=bool)
    left[:, :2] = True
    middle = np.zeros((4, 4), dtype=bool)
    middle[:, 1:3] = True
    empty = np.zeros((4, 4), dtype=bool)
    ann = masks_container([left, middle, empty])
    rows_a, rows_b = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 0, 2, 0])
    assert mask_iou_pairs(ann, rows_a, ann, rows_b).tolist() == [1.0, 1 / 3, 1 / 3, 0.0, 0.0]
    crowd = np.array([False, True, True, True, True])
    # crowd: the union is the area of the first (detection) mask
    assert mask_iou_pairs(ann, rows_a, ann, rows_b, crowd_b=crowd).tolist() == [
        1.0,
        0.5,
        0.5,
        0.0,
        0.0,
    ]


def test_mask_iou_handles_many_pairs_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import labelgate.core.iou as iou_module

    rng = np.random.default_rng(2)
    masks = random_masks(rng, 30, (30, 20))
    ann = masks_container(masks)
    rows_a, rows_b = group_pairs(np.zeros(len(ann), np.int64), np.zeros(len(ann), np.int64))
    whole = mask_iou_pairs(ann, rows_a, ann, rows_b)
    monkeypatch.setattr(iou_module, "_QUERIES_PER_CHUNK", 64)
    assert np.array_equal(mask_iou_pairs(ann, rows_a, ann, rows_b), whole)


def test_mask_iou_of_different_image_sizes_names_the_rows() -> None:
    ann = masks_container([np.ones((4, 4), bool), np.ones((4, 5), bool)])
    with pytest.raises(ValidationError, match=r"a row 0 is \[4, 4\].*b row 1 is \[4, 5\]"):
        mask_iou_pairs(ann, np.array([0]), ann, np.array([1]))


def test_mask_iou_of_a_row_without_mask_is_an_error() -> None:
    boxes = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 1, 1]])
    with pytest.raises(ValidationError, match="expected an RLE mask"):
        mask_iou_pairs(boxes, np.array([0]), boxes, np.array([0]))


def test_mask_iou_of_no_pairs_is_empty() -> None:
    ann = masks_container([np.ones((2, 2), bool)])
    assert mask_iou_pairs(ann, np.zeros(0, np.int64), ann, np.zeros(0, np.int64)).shape == (0,)


# --- boxes --------------------------------------------------------------------------------


def test_crowd_box_iou_matches_pycocotools() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 100, (300, 2))
    wh = rng.uniform(0, 40, (300, 2))
    wh[:10] = 0  # degenerate boxes
    xywh = np.concatenate([xy, wh], axis=1)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    crowd = rng.random(150) < 0.5
    reference = mask_util.iou(xywh[:150], xywh[150:], crowd.astype(np.uint8))
    rows_a, rows_b = group_pairs(np.zeros(150, np.int64), np.zeros(150, np.int64))
    got = box_iou_pairs_crowd(boxes[rows_a], boxes[150 + rows_b], crowd[rows_b])
    np.testing.assert_allclose(got, reference[rows_a, rows_b], rtol=0, atol=1e-12)


def test_box_inside_a_crowd_region_has_iou_one() -> None:
    small, crowd_box = np.array([[1.0, 1, 2, 2]]), np.array([[0.0, 0, 10, 10]])
    assert box_iou_pairs_crowd(small, crowd_box, np.array([True])).tolist() == [1.0]
    assert box_iou_pairs_crowd(small, crowd_box, np.array([False])).tolist() == [0.01]


# --- polygons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rings_a", "rings_b", "expected"),
    [
        pytest.param([square(0, 0)], [square(0.5, 0)], 1 / 3, id="offset-by-half"),
        pytest.param([square(0, 0)], [square(0, 0)], 1.0, id="identical"),
        pytest.param([square(0, 0)], [square(1, 0)], 0.0, id="touching-edge"),
        pytest.param([square(0, 0)], [square(5, 5)], 0.0, id="far-apart"),
        pytest.param([square(0, 0), square(2, 0)], [square(0, 0)], 0.5, id="two-parts-one-hit"),
        pytest.param(
            [square(0, 0), square(2, 0)], [square(0, 0), square(2, 0)], 1.0, id="two-parts-both"
        ),
        pytest.param(
            [square(0, 0, 2), square(1, 0, 2)], [square(0, 0, 3)], 6 / 9, id="overlapping-rings"
        ),
        pytest.param(
            [np.array([[0.0, 0], [2, 2], [2, 0], [0, 2]])],  # a bow tie: two triangles
            [square(0, 0, 2)],
            0.5,
            id="self-intersecting",
        ),
    ],
)
def test_polygon_iou_hand_computed(rings_a: list, rings_b: list, expected: float) -> None:
    ann = polygons_container([rings_a, rings_b])
    got = polygon_iou_pairs(ann, np.array([0]), ann, np.array([1]))
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_polygon_iou_matches_shapely_pair_by_pair() -> None:
    rng = np.random.default_rng(3)
    parts = []
    for i in range(60):
        rings = []
        for _ in range(1 + i % 3):
            centre = rng.uniform(0, 20, 2)
            angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 9)))
            radius = rng.uniform(1, 6, len(angles))
            rings.append(centre + radius[:, None] * np.c_[np.cos(angles), np.sin(angles)])
        parts.append(rings)
    ann = polygons_container(parts)
    rows_a, rows_b = group_pairs(np.zeros(len(ann), np.int64), np.zeros(len(ann), np.int64))
    crowd = rng.random(len(rows_a)) < 0.3
    got = polygon_iou_pairs(ann, rows_a, ann, rows_b, crowd_b=crowd)
    # the reference: each ring made valid, then one shapely union per annotation, pair by pair
    shapes = [
        shapely.union_all([shapely.make_valid(shapely.Polygon(r), method="structure") for r in rs])
        for rs in parts
    ]
    expected = []
    for i, j, c in zip(rows_a.tolist(), rows_b.tolist(), crowd.tolist()):
        inter = shapes[i].intersection(shapes[j]).area
        union = shapes[i].area if c else shapes[i].union(shapes[j]).area
        expected.append(inter / union if inter > 0 else 0.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert (got > 0).sum() > 200


# --- keypoints ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_dets", [20, 1000], ids=["coco-maxdets", "all-detections"])
def test_oks_equals_cocoeval_compute_oks(shared_data: Path, max_dets: int) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from labelgate.formats import read

    folder = shared_data / "faster-coco-eval" / "keypoints_dataset"
    gt = read(folder / "gt_dataset.json").annotations
    dt = read(folder / "dt_dataset.json").annotations
    coco_gt = COCO(str(folder / "gt_dataset.json"))
    coco_dt = coco_gt.loadRes(str(folder / "dt_dataset.json"))
    evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
    evaluator.params.maxDets = [max_dets]
    evaluator._prepare()
    compared = 0
    for image_id in evaluator.params.imgIds:
        for class_id in evaluator.params.catIds:
            reference = np.asarray(evaluator.computeOks(image_id, class_id))
            gt_rows = np.flatnonzero((gt.image_id == image_id) & (gt.class_id == class_id))
            dt_rows = np.flatnonzero((dt.image_id == image_id) & (dt.class_id == class_id))
            # computeOks orders detections by score (mergesort) and keeps max_dets of them
            dt_rows = dt_rows[np.argsort(-dt.score[dt_rows], kind="mergesort")][:max_dets]
            if not len(gt_rows) or not len(dt_rows):
                assert reference.size == 0
                continue
            rows_a = np.repeat(dt_rows, len(gt_rows))
            rows_b = np.tile(gt_rows, len(dt_rows))
            got = oks_pairs(dt, rows_a, gt, rows_b).reshape(len(dt_rows), len(gt_rows))
            np.testing.assert_allclose(got, reference, rtol=0, atol=1e-12)
            compared += got.size
    assert compared == 14 * min(max_dets, 128)


def keypoint_container(points: list[list[list[float]]], boxes: list, area: list) -> Annotations:
    values = np.array([p for row in points for p in row], dtype=np.float64).reshape(-1, 3)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in points])])
    n = len(points)
    return Annotations.create(
        image_id=[1] * n,
        class_id=[1] * n,
        bbox=boxes,
        area=area,
        kind=[Kind.KEYPOINTS] * n,
        keypoints=Ragged(values, offsets),
    )


def test_oks_without_labelled_ground_truth_uses_distance_to_the_enlarged_box() -> None:
    # the ground truth box is [10, 10, 20, 20]; enlarged by its size: [0, 0, 30, 30]
    gt = keypoint_container([[[0, 0, 0], [0, 0, 0]]], [[10, 10, 20, 20]], [100.0])
    dt = keypoint_container([[[15, 15, 2], [33, 26, 2]]], [[15, 15, 33, 26]], [0.0])
    sigmas = np.array([0.1, 0.2])
    got = oks_pairs(dt, np.array([0]), gt, np.array([0]), sigmas=sigmas)
    e = np.array([0.0, 9.0]) / (sigmas * 2) ** 2 / (100.0 + np.spacing(1)) / 2
    assert got[0] == pytest.approx(np.exp(-e).mean(), abs=1e-15)


def test_oks_uses_per_class_sigmas_and_pads_short_rows() -> None:
    gt = keypoint_container([[[10, 10, 2]], [[10, 10, 2]]], [[0, 0, 20, 20]] * 2, [400.0, 400.0])
    gt = gt.replace(class_id=np.array([1, 2]))
    dt = keypoint_container([[[11, 10, 2]], [[11, 10, 2]]], [[0, 0, 20, 20]] * 2, [0.0, 0.0])
    sigmas = {1: np.array([0.1, 0.5]), 2: np.array([0.2])}
    got = oks_pairs(dt, np.array([0, 1]), gt, np.array([0, 1]), sigmas=sigmas)
    expected = [np.exp(-1 / 0.2**2 / (400 + np.spacing(1)) / 2)] * 2
    expected[1] = np.exp(-1 / 0.4**2 / (400 + np.spacing(1)) / 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    with pytest.raises(ValidationError, match="no sigmas for class 2"):
        oks_pairs(dt, np.array([1]), gt, np.array([1]), sigmas={1: np.array([0.1])})


def test_oks_rejects_more_keypoints_than_sigmas() -> None:
    gt = keypoint_container([[[1, 1, 2]] * 18], [[0, 0, 2, 2]], [4.0])
    with pytest.raises(ValidationError, match="at most 17 keypoints"):
        oks_pairs(gt, np.array([0]), gt, np.array([0]))
    assert len(COCO_SIGMAS) == 17


# --- dispatch -----------------------------------------------------------------------------


def mixed_container() -> Annotations:
    """Rows: box, polygon, mask, keypoints, tag, polygon, mask."""
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:6, 2:6] = True
    other = np.zeros((10, 10), dtype=bool)
    other[4:8, 4:8] = True
    masks = masks_container([mask, other])
    empty_rle = np.zeros(0, dtype=np.int64)
    rle_rows = [empty_rle, empty_rle, masks.rle_counts.row(0), empty_rle, empty_rle, empty_rle]
    rle_rows.append(masks.rle_counts.row(1))
    rings = Ragged(np.concatenate([square(0, 0, 4), square(2, 0, 4)]), np.array([0, 4, 8]))
    keypoints = Ragged(np.array([[1.0, 1, 2], [3, 3, 2]]), np.array([0, 0, 0, 0, 2, 2, 2, 2]))
    nan = [np.nan] * 4
    return Annotations.create(
        image_id=[1] * 7,
        class_id=[1] * 7,
        bbox=[
            [0, 0, 4, 4],
            [0, 0, 4, 4],
            [2, 2, 6, 6],
            [1, 1, 3, 3],
            nan,
            [2, 0, 6, 4],
            [4, 4, 8, 8],
        ],
        kind=[Kind.BOX, Kind.POLYGON, Kind.MASK, Kind.KEYPOINTS, Kind.TAG, Kind.POLYGON, Kind.MASK],
        rings=rings,
        ring_offsets=[0, 0, 1, 1, 1, 1, 2, 2],
        rle_counts=Ragged.from_rows(rle_rows, dtype=np.int64),
        rle_size=[[0, 0], [0, 0], [10, 10], [0, 0], [0, 0], [0, 0], [10, 10]],
        keypoints=keypoints,
    )


def test_pair_iou_dispatches_each_pair_type_to_its_geometry() -> None:
    ann = mixed_container()
    rows_a = np.array([1, 2, 3, 0, 1, 4, 2])
    rows_b = np.array([5, 6, 3, 1, 2, 4, 6])
    crowd = np.array([False, False, False, False, False, False, True])
    got = pair_iou(ann, rows_a, ann, rows_b, crowd_b=crowd)
    # polygons 16 ∩ 16 offset by 2: 8 / 24; masks 4x4 offset by (2, 2): 4 / 28; OKS identical;
    # box vs polygon and polygon vs mask by box; a tag 0; crowd mask: 4 / 16
    box_polygon_vs_mask = 4 / 28
    assert got.tolist() == pytest.approx(
        [1 / 3, 4 / 28, 1.0, 1.0, box_polygon_vs_mask, 0.0, 0.25], abs=1e-12
    )


def test_iou_matrix_is_pair_iou_over_every_pair() -> None:
    ann = mixed_container()
    matrix = iou_matrix(ann, ann)
    rows_a, rows_b = np.divmod(np.arange(len(ann) ** 2), len(ann))
    assert matrix.shape == (7, 7)
    assert np.array_equal(matrix.reshape(-1), pair_iou(ann, rows_a, ann, rows_b))
    assert np.allclose(matrix, matrix.T, atol=1e-12)


# --- properties ---------------------------------------------------------------------------

coordinates = st.floats(0, 50, allow_nan=False)
sizes = st.floats(0.01, 30, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(coordinates, coordinates, sizes, sizes), min_size=1, max_size=6))
def test_polygon_iou_is_symmetric_bounded_and_one_with_itself(rects: list) -> None:
    rings = [np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]) for x, y, w, h in rects]
    ann = polygons_container([[ring] for ring in rings])
    rows_a, rows_b = group_pairs(np.zeros(len(ann), np.int64), np.zeros(len(ann), np.int64))
    forward = polygon_iou_pairs(ann, rows_a, ann, rows_b)
    backward = polygon_iou_pairs(ann, rows_b, ann, rows_a)
    np.testing.assert_allclose(forward, backward, rtol=0, atol=1e-12)
    assert ((forward >= 0) & (forward <= 1 + 1e-12)).all()
    same = rows_a == rows_b
    np.testing.assert_allclose(forward[same], 1.0, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**20 - 1), min_size=1, max_size=6), st.integers(1, 5))
def test_mask_iou_is_symmetric_bounded_and_one_with_itself(bits: list, height: int) -> None:
    width = 20 // height
    masks = [(b >> np.arange(height * width)) & 1 == 1 for b in bits]
    ann = masks_container([m.reshape(height, width) for m in masks])
    rows_a, rows_b = group_pairs(np.zeros(len(ann), np.int64), np.zeros(len(ann), np.int64))
    forward = mask_iou_pairs(ann, rows_a, ann, rows_b)
    assert np.array_equal(forward, mask_iou_pairs(ann, rows_b, ann, rows_a))
    assert ((forward >= 0) & (forward <= 1)).all()
    nonempty = np.array([m.any() for m in masks])
    same = (rows_a == rows_b) & nonempty[rows_a]
    assert (forward[same] == 1.0).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(coordinates, coordinates, sizes, sizes), min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=36, max_size=36),
)
def test_box_iou_crowd_is_bounded_and_symmetric_without_crowd(rects: list, crowd: list) -> None:
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in rects])
    rows_a, rows_b = group_pairs(np.zeros(len(boxes), np.int64), np.zeros(len(boxes), np.int64))
    plain = box_iou_pairs_crowd(boxes[rows_a], boxes[rows_b])
    assert np.array_equal(plain, box_iou_pairs_crowd(boxes[rows_b], boxes[rows_a]))
    np.testing.assert_allclose(plain[rows_a == rows_b], 1.0, rtol=0, atol=1e-12)
    with_crowd = box_iou_pairs_crowd(boxes[rows_a], boxes[rows_b], np.array(crowd[: len(rows_a)]))
    assert ((with_crowd >= 0) & (with_crowd <= 1 + 1e-12)).all()
    assert (with_crowd >= plain - 1e-12).all()
