"""Label Studio JSON export: real converter fixtures, the brush RLE codec, round trips, errors."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_util

from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import FormatError
from labelgate.formats._base import ErrorLog
from labelgate.formats._ls_rle import (
    coco_to_ls_rle,
    decode_ls_rle,
    encode_ls_rle,
    ls_rle_to_coco,
)
from labelgate.formats.label_studio import (
    read_label_studio,
    sniff_label_studio,
    write_label_studio,
)

# pycocotools (the mask oracle) trips a numpy 2 deprecation inside its own code
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def ls_data(shared_data: Path) -> Path:
    return shared_data / "label-studio-converter" / "data"


def write_tasks(path: Path, tasks: Any) -> Path:
    path.write_bytes(orjson.dumps(tasks))
    return path


def rect(
    x: float, y: float, w: float, h: float, label: str = "car", **extra: Any
) -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
    return {
        "id": extra.pop("id", "r1"),
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": extra.pop("original_width", 200),
        "original_height": extra.pop("original_height", 100),
        "value": {**value, **extra},
    }


def task(results: list[dict[str, Any]], task_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": task_id,
        "data": {"image": f"/data/upload/1/img{task_id}.jpg"},
        "annotations": [{"id": 1, "completed_by": 4, "result": results}],
        **extra,
    }


def mask_of(counts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode COCO uncompressed RLE with pycocotools (the oracle)."""
    rle = mask_util.frPyObjects({"counts": counts.tolist(), "size": [height, width]}, height, width)
    return mask_util.decode(rle).astype(bool)


# --- real Label Studio exports (HumanSignal's converter fixtures) --------------------------


def test_coco_fixture_gives_the_converters_rectangle_polygon_and_keypoints(ls_data: Path) -> None:
    ds = read_label_studio(ls_data / "test_export_coco" / "data.json")
    ann = ds.annotations
    assert ds.images.id.tolist() == [175210175]
    assert ds.images.file_name.tolist() == ["test_image1.jpg"]
    assert (ds.images.width.tolist(), ds.images.height.tolist()) == ([500], [320])
    # class ids 1..k over the label names sorted by name
    assert ds.taxonomy.names == (
        "keypoint_label1",
        "keypoint_label2",
        "polygon_label",
        "rectangle_label",
    )
    assert ann.kind.tolist() == [Kind.BOX, Kind.POLYGON, Kind.KEYPOINTS, Kind.KEYPOINTS]
    assert ann.class_id.tolist() == [4, 3, 1, 2]
    # the converter's COCO bbox (x, y, w, h) of the rectangle, EXPECTED.md
    expected = [
        31.941923774954628 / 100 * 500,
        4.113475177304964 / 100 * 320,
        6.352087114337568 / 100 * 500,
        9.929078014184398 / 100 * 320,
    ]
    x1, y1, x2, y2 = ann.bbox[0]
    assert [x1, y1, x2 - x1, y2 - y1] == pytest.approx(expected, rel=1e-12)
    # polygon: segmentation[0] has 6 numbers (3 points), area > 0
    assert ann.rings.values.size == 6 and len(ann.rings) == 1
    assert ann.area[1] > 0
    first = ann.rings.values[0].tolist()
    assert first == pytest.approx([41.74228675136116 / 100 * 500, 3.546099290780142 / 100 * 320])
    # keypoints: one visible point each, inside the image, the box is the point
    kp = ann.keypoints.values
    np.testing.assert_allclose(
        kp,
        [
            [22.595281306715066 / 100 * 500, 31.773049645390074 / 100 * 320, 2],
            [17.78584392014519 / 100 * 500, 28.510638297872344 / 100 * 320, 2],
        ],
        rtol=1e-12,
    )
    assert np.array_equal(ann.bbox[2:, :2], kp[:, :2]) and np.array_equal(
        ann.bbox[2:, 2:], kp[:, :2]
    )
    # no completed_by in this export: annotator unknown; human labels carry no score
    assert ann.annotator_id.tolist() == [-1] * 4
    assert np.isnan(ann.score).all() and (ann.source == Source.HUMAN).all()
    controls = ds.info["label_studio"]["controls"]
    assert controls["keypointlabels"]["keypoint_label2"] == ["keypoint_label", "image"]


YOLO_EXPECTED = [  # EXPECTED.md: LS rectangle -> YOLO (cx, cy, w, h), convert_annotation_to_yolo
    (0, (0.39253187613843354, 0.7304189435336975, 0.04189435336976321, 0.04735883424408015)),
    (1, (0.5969531379367445, 0.6519291273389635, 0.03808577579069383, 0.04636529226693169)),
    (2, (0.39799635701275043, 0.7404371584699453, 0.03825136612021857, 0.04553734061930784)),
]


def test_two_annotator_fixture_splits_like_the_converters_split_labelers(ls_data: Path) -> None:
    ds = read_label_studio(ls_data / "test_export_yolo" / "data.json")
    ann = ds.annotations
    names = dict(zip(ds.images.id.tolist(), ds.images.file_name.tolist()))
    per_file = Counter(
        (a, names[i]) for a, i in zip(ann.annotator_id.tolist(), ann.image_id.tolist())
    )
    # split_labelers=True -> 1/image1.txt, 1/image2.txt, 2/image1.txt with 2 lines each
    assert per_file == {(1, "/image1"): 2, (1, "/image2"): 2, (2, "/image1"): 2}
    assert ds.taxonomy.names == ("parasites", "white")
    width = ds.images.width[ds.images.index_of(ann.image_id)]
    height = ds.images.height[ds.images.index_of(ann.image_id)]
    for row, expected in YOLO_EXPECTED:
        x1, y1, x2, y2 = ann.bbox[row]
        w, h = width[row], height[row]
        yolo = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
        assert yolo == pytest.approx(expected, rel=1e-12)


def test_rotated_fixture_keeps_angle_corners_and_axis_aligned_box(ls_data: Path) -> None:
    path = ls_data / "test_export_yolo" / "data_obb.json"
    ds = read_label_studio(path)
    ann = ds.annotations
    files = dict(zip(ds.images.id.tolist(), ds.images.file_name.tolist()))
    # is_obb=True -> image1.txt, image2.txt, image3.txt with 23, 1, 1 lines
    assert Counter(files[i] for i in ann.image_id.tolist()) == {
        "/image1": 23,
        "/image2": 1,
        "/image3": 1,
    }
    tasks = orjson.loads(path.read_bytes())
    results = [r for t in tasks for a in t["annotations"] for r in a["result"]]
    rotation = ann.attributes["rotation"]
    for row, result in enumerate(results):
        value, w_img, h_img = result["value"], result["original_width"], result["original_height"]
        # the converter's OBB corners (convert_annotation_to_yolo_obb), in pixels
        x, y = value["x"] / 100 * w_img, value["y"] / 100 * h_img
        w, h = value["width"] / 100 * w_img, value["height"] / 100 * h_img
        cos, sin = (
            math.cos(math.radians(value["rotation"])),
            math.sin(math.radians(value["rotation"])),
        )
        corners = [
            (x, y),
            (x + w * cos, y + w * sin),
            (x + w * cos - h * sin, y + w * sin + h * cos),
            (x - h * sin, y + h * cos),
        ]
        xs, ys = zip(*corners)
        assert ann.bbox[row].tolist() == pytest.approx(
            [min(xs), min(ys), max(xs), max(ys)], rel=1e-12
        )
        if value["rotation"]:
            assert rotation.value(row) == value["rotation"]
            ring = ann.rings.values[ann.rings.offsets[ann.ring_offsets[row]] :][:4]
            np.testing.assert_allclose(ring, corners, rtol=1e-12)
        else:
            assert rotation.value(row) is None
    assert (ann.kind == Kind.BOX).all()
    # 9 fields per OBB line: class + 4 corners; every rotated row has exactly one 4-point ring
    rotated = rotation.present
    assert rotated.sum() > 20
    assert (np.diff(ann.ring_offsets)[rotated] == 1).all()
    assert (ann.rings.lengths == 4).all()


def test_polygon_fixture_gives_one_polygon_on_image2(ls_data: Path) -> None:
    ds = read_label_studio(ls_data / "test_export_yolo" / "data_polygons.json")
    assert ds.images.file_name.tolist() == ["/image2"]
    assert ds.annotations.kind.tolist() == [Kind.POLYGON]
    assert ds.taxonomy.names == ("Airplane",)
    w, h = ds.images.width[0], ds.images.height[0]
    normalised = ds.annotations.rings.values / [w, h]
    assert ((normalised >= 0) & (normalised <= 1)).all()


def test_keypoint_fixture_skips_relations_and_keeps_the_annotator_email(ls_data: Path) -> None:
    ds = read_label_studio(ls_data / "test_export_yolo" / "data_keypoints.json")
    ann = ds.annotations
    assert ds.images.file_name.tolist() == ["/data/upload/18/image1.jpg"]
    assert ds.taxonomy.names == ("left_eye", "nose", "person", "right_eye")
    assert ann.kind.tolist() == [Kind.KEYPOINTS] * 3 + [Kind.BOX]
    assert ann.annotator_id.tolist() == [1] * 4
    kept = ds.info["label_studio"]
    assert kept["skipped_results"] == {"relation": 5}
    assert kept["annotators"] == {"1": "sergei@heartex.test"}
    # image1.txt: keypoint x/y in [0, 1]; the nose inside the person box
    xy = ann.keypoints.values[:, :2] / [216, 174]
    assert ((xy >= 0) & (xy <= 1)).all()
    x1, y1, x2, y2 = ann.bbox[3]
    nose = ann.keypoints.values[1]
    assert x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2


@pytest.mark.parametrize(
    "name",
    [
        "test_export_coco/data.json",
        "test_export_yolo/data.json",
        "test_export_yolo/data_obb.json",
        "test_export_yolo/data_polygons.json",
        "test_export_yolo/data_keypoints.json",
        "test_export_json_min/data.json",
    ],
)
def test_real_exports_survive_write_and_read(ls_data: Path, tmp_path: Path, name: str) -> None:
    first = read_label_studio(ls_data / name)
    report = write_label_studio(first, tmp_path / "out.json")
    assert report.lossless, report.dropped
    assert report.annotations == len(first.annotations)
    second = read_label_studio(tmp_path / "out.json")
    assert_same(first, second)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("test_export_coco/data.json", True),
        ("test_export_yolo/data_obb.json", True),
        ("test_export_json_min/data.json", True),
        ("test_import_coco/coco_import_input.json", False),  # a COCO file
        ("test_export_yolo/label_config.xml", False),
        ("test_import_yolo_data/classes.txt", False),
        ("no_such_file.json", False),
    ],
)
def test_sniff_recognises_exports_only(ls_data: Path, name: str, expected: bool) -> None:
    assert sniff_label_studio(ls_data / name) is expected


# --- sniffing edge cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(
            b'{"id": 1, "data": {"image": "a.jpg"}, "predictions": []}', True, id="one-task"
        ),
        pytest.param(b"[]", False, id="empty-list"),
        pytest.param(
            b'[{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}]', False, id="coco-results"
        ),
        pytest.param(b'{"images": [], "annotations": []}', False, id="coco-instances"),
        pytest.param(
            b'[{"data": {"image": "a.jpg"}, "annotations": [{"result": [', True, id="cut-first-task"
        ),
        pytest.param(b"\x00\xff garbage", False, id="binary"),
    ],
)
def test_sniff_edge_cases(tmp_path: Path, content: bytes, expected: bool) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    assert sniff_label_studio(path) is expected


def test_sniff_reads_a_large_export_by_its_first_task(tmp_path: Path) -> None:
    tasks = [task([rect(1, 1, 5, 5, id=f"r{i}")], task_id=i + 1) for i in range(2000)]
    path = write_tasks(tmp_path / "big.json", tasks)
    assert path.stat().st_size > 64 * 1024
    assert sniff_label_studio(path)
    assert not sniff_label_studio(tmp_path / "big.txt")


# --- brush RLE codec ----------------------------------------------------------------------


def reference_decode(rle: list[int]) -> list[int]:
    """A slow bit-string decoder written straight from the rle-pack format description."""
    bits = "".join(f"{b:08b}" for b in rle)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        value = int(bits[pos : pos + n], 2)
        pos += n
        return value

    num, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out: list[int] = []
    while len(out) < num:
        repeat = read(1)
        count = read(sizes[read(2)]) + 1
        out.extend([read(word)] * count if repeat else [read(word) for _ in range(count)])
    return out[:num]


def test_decode_of_a_hand_made_stream_with_a_repeat_and_a_literal_chunk() -> None:
    bits = (
        f"{8:032b}"  # eight words
        + "00111"  # 8-bit words
        + "0010"
        + "0011"
        + "0111"
        + "1111"  # count sizes 3, 4, 8, 16
        + "1"
        + "00"
        + "011"
        + "00000000"  # repeat 0 four times
        + "0"
        + "00"
        + "011"
        + "11111111" * 3
        + "10000000"  # literals 255, 255, 255, 128
    )
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_ls_rle(rle).tolist() == [0, 0, 0, 0, 255, 255, 255, 128]
    # as a 1x2 RGBA canvas: pixel 0 transparent, pixel 1 alpha 128 -> foreground
    counts, bbox = ls_rle_to_coco(rle, 1, 2)
    assert counts.tolist() == [1, 1]
    assert bbox.tolist() == [1.0, 0.0, 2.0, 1.0]


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.integers(0, 300), elements=st.sampled_from([0, 1, 7, 255])))
def test_encode_then_decode_is_identity_and_matches_the_reference_decoder(
    words: np.ndarray,
) -> None:
    rle = encode_ls_rle(words)
    assert decode_ls_rle(rle).tolist() == words.tolist()
    assert reference_decode(rle) == words.tolist()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 24).flatmap(
        lambda h: st.integers(1, 24).flatmap(lambda w: arrays(np.bool_, (h, w)))
    )
)
def test_random_masks_survive_coco_to_brush_and_back(mask: np.ndarray) -> None:
    height, width = mask.shape
    flat = mask.ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]]))
    counts = np.concatenate([[0], runs]) if flat[0] else runs
    rle = coco_to_ls_rle(counts, height, width)
    # Label Studio's converter reads the alpha channel of the h*w*4 canvas
    canvas = np.asarray(reference_decode(rle), dtype=np.uint8).reshape(height, width, 4)
    assert np.array_equal(canvas[:, :, 3] > 0, mask)
    back, bbox = ls_rle_to_coco(rle, height, width)
    assert back.tolist() == counts.tolist()
    assert np.array_equal(mask_of(back, height, width), mask)
    if mask.any():
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert bbox.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_runs_longer_than_65536_words_are_split_into_blocks() -> None:
    mask = np.ones((300, 300), dtype=bool)  # one run of 360000 words
    rle = coco_to_ls_rle(np.array([0, 90000]), 300, 300)
    assert reference_decode(rle) == [255] * 360000
    counts, bbox = ls_rle_to_coco(rle, 300, 300)
    assert np.array_equal(mask_of(counts, 300, 300), mask)
    assert bbox.tolist() == [0.0, 0.0, 300.0, 300.0]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        pytest.param([0, 0, 0], "header", id="short-header"),
        pytest.param([0, 0, 0, 16, 57, 27, 252], "stream ends", id="truncated"),
        pytest.param([0, 0, 0, 4, 17, 27, 252, 96, 0], "8-bit words", id="word-size"),
        pytest.param([0, 0, 0, 4, 300], "0..255", id="not-bytes"),
    ],
)
def test_decode_rejects_malformed_streams(rle: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_ls_rle(rle)


# --- round trips --------------------------------------------------------------------------


def assert_same(first: Dataset, second: Dataset) -> None:
    """Same rows and values; coordinates to 1e-12 relative (percent <-> pixels)."""
    a, b = first.annotations, second.annotations
    for name in ("id", "image_id", "class_id", "kind", "annotator_id", "source", "rle_size"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    np.testing.assert_allclose(a.bbox, b.bbox, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.ring_offsets, b.ring_offsets)
    np.testing.assert_array_equal(a.rings.offsets, b.rings.offsets)
    np.testing.assert_allclose(a.rings.values, b.rings.values, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(a.keypoints.offsets, b.keypoints.offsets)
    np.testing.assert_allclose(a.keypoints.values, b.keypoints.values, rtol=1e-12, atol=1e-9)
    assert a.rle_counts.equals(b.rle_counts)
    assert sorted(a.attributes) == sorted(b.attributes)
    for name, column in a.attributes.items():
        assert column.to_list() == b.attributes[name].to_list(), name
    assert first.taxonomy == second.taxonomy
    for name in ("id", "file_name", "width", "height"):
        assert getattr(first.images, name).tolist() == getattr(second.images, name).tolist()
    kept_a, kept_b = first.info["label_studio"], second.info["label_studio"]
    assert kept_a["controls"] == kept_b["controls"]
    assert kept_a["annotators"] == kept_b["annotators"]


def every_kind_export() -> list[dict[str, Any]]:
    """Two images with every supported result type, two annotators and a prediction."""
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:40, 30:90] = True
    mask[60:70, 150:199] = True
    flat = mask.ravel(order="F")
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]]))
    size = {"original_width": 200, "original_height": 100}
    human = [
        rect(10, 20, 30, 40, "car", id="a"),
        rect(50, 10, 20, 30, "truck", id="b", rotation=30.5),
        {
            "id": "c",
            "type": "polygonlabels",
            "from_name": "poly",
            "to_name": "image",
            **size,
            "value": {"points": [[1.5, 2.5], [60, 3], [30.25, 90]], "polygonlabels": ["road"]},
        },
        {
            "id": "d",
            "type": "keypointlabels",
            "from_name": "kp",
            "to_name": "image",
            **size,
            "value": {"x": 12.5, "y": 80, "width": 0.5, "keypointlabels": ["nose"]},
        },
        {
            "id": "e",
            "type": "brushlabels",
            "from_name": "brush",
            "to_name": "image",
            **size,
            "value": {
                "format": "rle",
                "rle": coco_to_ls_rle(counts, 100, 200),
                "brushlabels": ["sky"],
            },
        },
        {
            "id": "f",
            "type": "choices",
            "from_name": "weather",
            "to_name": "image",
            "value": {"choices": ["day", "sunny"]},
        },
    ]
    return [
        {
            "id": 11,
            "data": {"image": "s3://bucket/a.jpg"},
            "annotations": [
                {"id": 1, "completed_by": {"id": 7, "email": "ann@example.com"}, "result": human},
                {"id": 2, "completed_by": 8, "result": [rect(11, 21, 30, 40, "car", id="g")]},
            ],
            "predictions": [
                {
                    "model_version": "yolo-v2",
                    "score": 0.5,
                    "result": [
                        {**rect(12, 22, 30, 40, "car", id="h"), "score": 0.875},
                        rect(70, 70, 10, 10, "truck", id="i"),  # takes the prediction's score
                    ],
                }
            ],
        },
        {"id": 12, "data": {"image": "/data/upload/3/b.png"}, "annotations": [], "predictions": []},
    ]


def test_every_kind_reads_as_documented(tmp_path: Path) -> None:
    ds = read_label_studio(write_tasks(tmp_path / "in.json", every_kind_export()))
    ann = ds.annotations
    assert ds.taxonomy.names == ("car", "day", "nose", "road", "sky", "sunny", "truck")
    assert ann.kind.tolist() == [1, 1, 2, 4, 3, 0, 0, 1, 1, 1]
    assert ann.annotator_id.tolist() == [7] * 7 + [8, -1, -1]
    assert ann.source.tolist() == [0] * 8 + [1, 1]
    np.testing.assert_array_equal(ann.score, [np.nan] * 8 + [0.875, 0.5])
    assert ann.attributes["model_version"].to_list() == [None] * 8 + ["yolo-v2"] * 2
    assert ann.attributes["rotation"].to_list() == [None, 30.5] + [None] * 8
    # percent -> pixels exactly as x / 100 * W
    assert ann.bbox[0].tolist() == [
        10 / 100 * 200,
        20 / 100 * 100,
        10 / 100 * 200 + 30 / 100 * 200,
        20 / 100 * 100 + 40 / 100 * 100,
    ]
    assert np.isnan(ann.bbox[5:7]).all()
    assert ann.bbox[4].tolist() == [30.0, 10.0, 199.0, 70.0]
    assert ann.area[4] == 30 * 60 + 10 * 49
    assert ds.images.width.tolist() == [200, 0] and ds.images.height.tolist() == [100, 0]
    assert ds.images.file_name.tolist() == ["s3://bucket/a.jpg", "/data/upload/3/b.png"]


def test_every_kind_survives_read_write_read(tmp_path: Path) -> None:
    first = read_label_studio(write_tasks(tmp_path / "in.json", every_kind_export()))
    report = write_label_studio(first, tmp_path / "out.json")
    assert report.lossless, report.dropped
    assert (report.images, report.annotations) == (2, 10)
    second = read_label_studio(tmp_path / "out.json")
    assert_same(first, second)
    # and writing the re-read data set gives the same bytes
    write_label_studio(second, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "out.json").read_bytes()


def test_writer_groups_annotators_and_predictions_and_restores_names(tmp_path: Path) -> None:
    first = read_label_studio(write_tasks(tmp_path / "in.json", every_kind_export()))
    write_label_studio(first, tmp_path / "out.json")
    tasks = orjson.loads((tmp_path / "out.json").read_bytes())
    assert [t["id"] for t in tasks] == [11, 12]
    assert tasks[1]["annotations"] == [] and tasks[1]["predictions"] == []
    annotations = tasks[0]["annotations"]
    assert [a["completed_by"] for a in annotations] == [{"id": 7, "email": "ann@example.com"}, 8]
    assert [len(a["result"]) for a in annotations] == [6, 1]
    choices = annotations[0]["result"][5]
    assert choices["value"]["choices"] == ["day", "sunny"]
    assert (choices["from_name"], choices["to_name"]) == ("weather", "image")
    (prediction,) = tasks[0]["predictions"]
    assert prediction["model_version"] == "yolo-v2"
    assert [r["score"] for r in prediction["result"]] == [0.875, 0.5]
    assert prediction["score"] == pytest.approx(0.6875)
    rotated = annotations[0]["result"][1]["value"]
    assert rotated["rotation"] == 30.5
    assert [rotated[k] for k in ("x", "y", "width", "height")] == pytest.approx(
        [50, 10, 20, 30], rel=1e-12
    )


def test_writer_reports_what_label_studio_cannot_hold(tmp_path: Path) -> None:
    points = np.array([[0, 0], [10, 0], [10, 10], [20, 20], [30, 20], [30, 30.0]])
    ann = Annotations.create(
        image_id=[1, 1, 1, 2, 1],
        class_id=[1, 1, 2, 1, 1],
        kind=[Kind.BOX, Kind.POLYGON, Kind.KEYPOINTS, Kind.BOX, Kind.BOX],
        bbox=[[1, 1, 5, 5], [0, 0, 30, 30], [2, 2, 8, 8], [1, 1, 2, 2], [0, 0, 1, 1]],
        occluded=[True, False, False, False, True],
        track_id=[3, -1, -1, -1, -1],
        rings=Ragged(points, np.array([0, 3, 6])),
        ring_offsets=[0, 0, 2, 2, 2, 2],
        keypoints=Ragged(
            np.array([[2, 2, 2], [8, 8, 1], [5, 5, 0.0]]), np.array([0, 0, 0, 3, 3, 3])
        ),
        attributes={"color": AttributeColumn.from_list(["red", None, None, None, "blue"])},
    )
    images = Images.create(id=[1, 2], file_name=["a.jpg", "b.jpg"], width=[40, 0], height=[40, 0])
    ds = Dataset(ann, images, Taxonomy.from_names(["car", "person", "unused"]))
    report = write_label_studio(ds, tmp_path / "out.json")
    dropped = {d.what: d.count for d in report.dropped}
    assert dropped == {
        "annotations on images of unknown size": 1,
        "occluded flags": 2,
        "track ids": 1,
        "attribute color": 2,
        "multi-ring polygons (one region per ring)": 1,
        "keypoint sets with more than one keypoint (one region per keypoint)": 1,
        "keypoints with visibility 0 (not written)": 1,
        "keypoint visibility 1 (written as visible)": 1,
        "classes without annotations": 1,
        # regions 1, 2a, 2b, 3a, 3b, 5 come back numbered 1..6
        "annotation ids (a reader numbers regions 1..n)": 4,
    }
    assert report.annotations == 4
    back = read_label_studio(tmp_path / "out.json")
    # 2 boxes + 2 polygon regions + 2 keypoint regions
    assert back.annotations.kind.tolist() == [1, 2, 2, 4, 4, 1]
    assert back.images.width.tolist() == [40, 0]


def test_writer_refuses_an_existing_file_unless_overwrite(tmp_path: Path) -> None:
    first = read_label_studio(write_tasks(tmp_path / "in.json", every_kind_export()))
    target = tmp_path / "out.json"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        write_label_studio(first, target)
    assert target.read_bytes() == b"keep me"
    write_label_studio(first, target, overwrite=True)
    assert len(read_label_studio(target).annotations) == 10


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = read_label_studio(write_tasks(tmp_path / "in.json", every_kind_export()))
    out = tmp_path / "out"
    out.mkdir()

    def fail(self: Path, data: bytes) -> int:
        with open(self, "wb") as handle:
            handle.write(data[:10])  # half-written, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(OSError, match="No space"):
        write_label_studio(first, out / "export.json")
    monkeypatch.undo()
    assert os.listdir(out) == []


# --- malformed input ----------------------------------------------------------------------


def brush(rle: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "type": "brushlabels",
        "original_width": 4,
        "original_height": 3,
        "value": {"format": "rle", "rle": rle, "brushlabels": ["sky"]},
    }


BAD = [
    pytest.param(
        b'[{"id": 1, "data": {"image": "a.jpg"}, "annot', None, None, "invalid JSON", id="truncated"
    ),
    pytest.param(b'"tasks"', None, None, "expected a list of tasks, got str", id="top-level-str"),
    pytest.param(b'{"images": []}', None, None, "expected a list of tasks", id="top-level-dict"),
    pytest.param([7], "tasks[0]", None, "expected a task object", id="task-not-object"),
    pytest.param(
        [{"id": 3, "data": {"text": "hi"}, "annotations": []}],
        "tasks[0] (id=3)",
        "data.image",
        "expected an image URL or path",
        id="no-image",
    ),
    pytest.param(
        [
            task(
                [
                    {
                        **rect(1, 2, 3, 4),
                        "value": {"y": 2, "width": 3, "height": 4, "rectanglelabels": ["a"]},
                    }
                ]
            )
        ],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "value.x",
        "missing",
        id="missing-x",
    ),
    pytest.param(
        [task([rect(1, 2, 3, 4, original_width="wide")])],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "original_width",
        "expected a number, got 'wide'",
        id="non-numeric-width",
    ),
    pytest.param(
        [task([rect(1, 2, 3, 4, original_height=-10)])],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "original_height",
        "expected a value >= 0, got -10",
        id="negative-size",
    ),
    pytest.param(
        [task([rect(-1.5, 2, 3, 4)])],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "value.x",
        "expected a value >= 0, got -1.5",
        id="negative-percent",
    ),
    pytest.param(
        [task([rect(1, 2, 3, 4), {"id": "t9", "type": "ellipselabels", "value": {}}])],
        "tasks[0] (id=1): annotations[0].result[1] (id=t9)",
        "type",
        "unsupported result type 'ellipselabels'",
        id="unknown-type",
    ),
    pytest.param(
        [task([brush(coco_to_ls_rle(np.array([6]), 2, 3))])],
        "tasks[0] (id=1): annotations[0].result[0] (id=m1)",
        "value.rle",
        "decodes to 24 values, expected height*width*4 = 3*4*4 = 48",
        id="brush-wrong-length",
    ),
    pytest.param(
        [task([brush("abc")])],
        "tasks[0] (id=1): annotations[0].result[0] (id=m1)",
        "value.rle",
        "expected a list of bytes",
        id="brush-not-a-list",
    ),
    pytest.param(
        [task([rect(90, 2, 30, 4)])],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "value",
        "lies outside its 200x100 image",
        id="box-outside-image",
    ),
    pytest.param(
        [task([rect(1, 2, 3, 4, rectanglelabels=[])])],
        "tasks[0] (id=1): annotations[0].result[0] (id=r1)",
        "value.rectanglelabels",
        "expected a non-empty list of labels",
        id="no-label",
    ),
    pytest.param(
        [task([rect(1, 2, 3, 4), rect(1, 2, 3, 4, id="r2", original_width=300)])],
        "tasks[0] (id=1): annotations[0].result[1] (id=r2)",
        "original_width",
        "differs from 200x100",
        id="size-disagrees",
    ),
    pytest.param(
        [task([], task_id=5), task([], task_id=5)],
        "tasks[1]",
        "id",
        "duplicate task id (also tasks[0])",
        id="duplicate-task-id",
    ),
    pytest.param(
        [
            task(
                [
                    {
                        "id": "p",
                        "type": "polygonlabels",
                        "original_width": 10,
                        "original_height": 10,
                        "value": {"points": [["1", "2"], [3, 4], [5, 6]], "polygonlabels": ["a"]},
                    }
                ]
            )
        ],
        "tasks[0] (id=1): annotations[0].result[0] (id=p)",
        "value.points",
        "expected a list of [x, y] numbers",
        id="polygon-point-strings",
    ),
    pytest.param(
        [{**task([]), "annotations": [{"completed_by": "bob", "result": []}]}],
        "tasks[0] (id=1): annotations[0]",
        "completed_by",
        "expected a user id",
        id="bad-annotator",
    ),
]


@pytest.mark.parametrize(("content", "record", "field", "message"), BAD)
def test_malformed_input_names_file_record_and_field(
    tmp_path: Path, content: Any, record: str | None, field: str | None, message: str
) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(content if isinstance(content, bytes) else orjson.dumps(content))
    with pytest.raises(FormatError) as info:
        read_label_studio(path)
    error = info.value
    assert error.path == path
    assert (error.record, error.field) == (record, field)
    assert message in error.reason
    assert str(error).startswith("export.json: ")


def test_collecting_reports_every_bad_region_and_keeps_the_good_ones(tmp_path: Path) -> None:
    results = [
        rect(1, 2, 3, 4, id="ok1"),
        {"id": "x", "type": "ellipselabels", "value": {}},
        rect(1, 2, 3, 4, id="neg", width=-3),
        rect(5, 6, 7, 8, "person", id="ok2"),
        rect(95, 6, 7, 8, "person", id="out"),
    ]
    duplicate = task([rect(1, 1, 1, 1, id="dup")])
    path = write_tasks(tmp_path / "export.json", [task(results), [1, 2], duplicate])
    log = ErrorLog(path, collect=True)
    ds = read_label_studio(path, errors=log)
    assert [(e.record, e.field) for e in log.errors] == [
        ("tasks[0] (id=1): annotations[0].result[1] (id=x)", "type"),
        ("tasks[0] (id=1): annotations[0].result[2] (id=neg)", "value.width"),
        ("tasks[1]", None),
        ("tasks[2]", "id"),
        ("tasks[0] (id=1): annotations[0].result[4] (id=out)", "value"),
    ]
    assert ds.images.id.tolist() == [1]
    assert len(ds.annotations) == 2
    assert ds.annotations.bbox[:, 0].tolist() == [2.0, 10.0]


def test_tasks_without_id_get_ids_after_the_largest(tmp_path: Path) -> None:
    tasks = [
        {"data": {"image": "a.jpg"}, "predictions": []},
        {"id": 40, "data": {"image": "b.jpg"}, "annotations": []},
        {"data": {"image": "c.jpg"}},
    ]
    ds = read_label_studio(write_tasks(tmp_path / "import.json", tasks))
    assert ds.images.id.tolist() == [41, 40, 42]
    assert ds.images.width.tolist() == [0, 0, 0]


def test_a_single_task_object_reads_as_one_image(tmp_path: Path) -> None:
    path = write_tasks(tmp_path / "one.json", task([rect(10, 10, 10, 10)], task_id=9))
    ds = read_label_studio(path)
    assert ds.images.id.tolist() == [9]
    assert ds.annotations.bbox.tolist() == [[20.0, 10.0, 40.0, 20.0]]
