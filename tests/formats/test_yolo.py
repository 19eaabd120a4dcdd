from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from labelgate.core.annotations import Annotations, AttributeColumn, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import ClassInfo, Taxonomy
from labelgate.errors import FormatError
from labelgate.formats._base import Dropped, ErrorLog
from labelgate.formats.voc import read_voc
from labelgate.formats.yolo import read_yolo, sniff_yolo, write_yolo

LABELS = tuple(f"label_{i}" for i in range(10))
# datumaro tests/unit/test_yolo_format.py: Bbox(0, 2, 4, 2, label=2), Bbox(3, 3, 2, 3, label=4)
# (x, y, w, h) on a 15 x 10 image; the files round them to 6 decimals
DATUMARO_BOXES = [[0.0, 2.0, 4.0, 4.0], [3.0, 3.0, 5.0, 6.0]]
REVIEW = "review-object-detection-metrics/database/gts"


def image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height)).save(path)


def sizes_of(ds: Dataset) -> dict[str, tuple[int, int]]:
    names = ds.images.file_name.tolist()
    return dict(zip(names, zip(ds.images.width.tolist(), ds.images.height.tolist())))


def objects(ds: Dataset) -> list[tuple[int, str, list[float]]]:
    ann = ds.annotations
    return sorted(zip(ann.image_id.tolist(), ds.taxonomy.names_of(ann.class_id), ann.bbox.tolist()))


# --- real files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "file_names"),
    [
        ("strict", ["obj_train_data/1.jpg"]),
        ("annotations", ["Images/1.jpg"]),
        ("labels", ["images/train/1.jpg", "images/val/1.jpg"]),
    ],
)
def test_reads_the_three_datumaro_layouts(
    shared_data: Path, layout: str, file_names: list[str]
) -> None:
    ds = read_yolo(shared_data / "datumaro-assets/yolo_dataset" / layout)
    assert ds.taxonomy.names == LABELS
    assert ds.taxonomy.ids.tolist() == list(range(10))  # the YOLO index is the class id
    assert ds.images.file_name.tolist() == file_names
    assert set(ds.images.width.tolist()) == {15}
    assert set(ds.images.height.tolist()) == {10}
    n = len(file_names)
    ann = ds.annotations
    assert ann.class_id.tolist() == [2, 4] * n
    assert ann.image_id.tolist() == sorted(list(range(1, n + 1)) * 2)
    np.testing.assert_allclose(ann.bbox, DATUMARO_BOXES * n, atol=1e-4)
    assert ann.kind.tolist() == [Kind.BOX] * 2 * n


def test_review_metrics_yolo_agrees_with_voc_box_by_box(shared_data: Path) -> None:
    voc = read_voc(shared_data / REVIEW / "pascalvoc_format")
    # no images are shipped: the sizes come from the VOC <size> elements
    yolo = read_yolo(shared_data / REVIEW / "yolo_format", image_sizes=sizes_of(voc))
    assert len(yolo.images) == 100
    assert len(yolo.annotations) == 273
    assert yolo.taxonomy.names[:3] == ("person", "cat", "boat")  # obj.names order, ids 0..19
    assert yolo.taxonomy.ids.tolist() == list(range(20))
    assert yolo.images.file_name.tolist() == voc.images.file_name.tolist()
    a, b = objects(voc), objects(yolo)
    assert [(i, n) for i, n, _ in a] == [(i, n) for i, n, _ in b]
    # 6 decimals of a coordinate normalized by <= 500 px: off by at most 0.5e-6 * 500 * 1.5 px
    difference = np.abs(np.array([box for *_, box in a]) - np.array([box for *_, box in b]))
    assert difference.max() < 4e-4


# --- round trips -----------------------------------------------------------------------------


def test_yolo_to_yolo_keeps_subsets_names_and_boxes(shared_data: Path, tmp_path: Path) -> None:
    original = read_yolo(shared_data / "datumaro-assets/yolo_dataset/labels")
    report = write_yolo(original, tmp_path / "out")
    assert report.dropped == []
    assert (report.images, report.annotations) == (2, 4)
    config = yaml.safe_load((tmp_path / "out/data.yaml").read_text())
    assert config["names"] == list(LABELS)
    assert (config["train"], config["val"], config["nc"]) == ("images/train", "images/val", 10)
    assert config["path"] == str((tmp_path / "out").resolve())
    assert (tmp_path / "out/labels/train/1.txt").read_text() == (
        "2 0.133333 0.3 0.266667 0.2\n4 0.266667 0.45 0.133333 0.3\n"
    )
    assert not (tmp_path / "out/images").exists()  # images are not copied
    again = read_yolo(tmp_path / "out", image_sizes=sizes_of(original))
    assert again.taxonomy == original.taxonomy
    assert again.images.file_name.tolist() == original.images.file_name.tolist()
    assert again.images.id.tolist() == original.images.id.tolist()
    assert again.annotations.id.tolist() == original.annotations.id.tolist()
    assert again.annotations.class_id.tolist() == original.annotations.class_id.tolist()
    np.testing.assert_allclose(again.annotations.bbox, original.annotations.bbox, rtol=0, atol=1e-9)


def test_review_metrics_yolo_round_trip(shared_data: Path, tmp_path: Path) -> None:
    sizes = sizes_of(read_voc(shared_data / REVIEW / "pascalvoc_format"))
    original = read_yolo(shared_data / REVIEW / "yolo_format", image_sizes=sizes)
    assert write_yolo(original, tmp_path / "out").dropped == []
    again = read_yolo(tmp_path / "out", image_sizes=sizes)
    assert again.images.file_name.tolist() == original.images.file_name.tolist()
    assert again.annotations.class_id.tolist() == original.annotations.class_id.tolist()
    np.testing.assert_allclose(again.annotations.bbox, original.annotations.bbox, rtol=0, atol=1e-9)


def test_polygon_lines_become_polygons_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [road, sign]\n")
    image(root / "images/p.png", 200, 100)
    (root / "labels/p.txt").write_text("0 0.1 0.2 0.5 0.2 0.5 0.8\n\n1 0.5 0.5 0.2 0.4\n")
    ds = read_yolo(root)
    ann = ds.annotations
    assert ds.images.file_name.tolist() == ["images/p.png"]
    assert ann.kind.tolist() == [Kind.POLYGON, Kind.BOX]
    np.testing.assert_allclose(ann.rings.values, [[20, 20], [100, 20], [100, 80]])
    assert ann.ring_offsets.tolist() == [0, 1, 1]
    np.testing.assert_allclose(ann.bbox, [[20, 20, 100, 80], [80, 30, 120, 70]])
    np.testing.assert_allclose(ann.area, [2400.0, 1600.0])
    write_yolo(ds, tmp_path / "out")
    assert (tmp_path / "out/labels/p.txt").read_text() == (
        "0 0.1 0.2 0.5 0.2 0.5 0.8\n1 0.5 0.5 0.2 0.4\n"
    )


def test_big_images_keep_sub_pixel_precision(tmp_path: Path) -> None:
    # %.6f would move x1 by up to 0.05 px on a 100 000 px wide image
    ds = Dataset(
        Annotations.create(image_id=[1], class_id=[0], bbox=[[12345.5, 7.25, 12346.75, 9.0]]),
        Images.create(id=[1], file_name=["pano.jpg"], width=[100_000], height=[10]),
        Taxonomy.from_names(["x"], first_id=0),
    )
    write_yolo(ds, tmp_path / "out")
    assert (tmp_path / "out/labels/pano.txt").read_text() == "0 0.12346125 0.8125 1.25e-05 0.175\n"
    back = read_yolo(tmp_path / "out", image_sizes={"pano.jpg": (100_000, 10)})
    np.testing.assert_allclose(back.annotations.bbox, ds.annotations.bbox, rtol=0, atol=1e-6)


def test_writer_maps_class_ids_to_contiguous_indices(tmp_path: Path) -> None:
    taxonomy = Taxonomy((ClassInfo(9, "dog"), ClassInfo(5, "cat")))
    ds = Dataset(
        Annotations.create(image_id=[1, 1], class_id=[5, 9], bbox=[[0, 0, 2, 2], [2, 2, 4, 4]]),
        Images.create(id=[1], file_name=["a.jpg"], width=[4], height=[4]),
        taxonomy,
    )
    report = write_yolo(ds, tmp_path / "out")
    assert report.dropped == [
        Dropped("class ids", 2, "classes renumbered 0..k-1 in taxonomy order")
    ]
    assert (
        tmp_path / "out/labels/a.txt"
    ).read_text() == "1 0.25 0.25 0.5 0.5\n0 0.75 0.75 0.5 0.5\n"
    back = read_yolo(tmp_path / "out", image_sizes={"a.jpg": (4, 4)})
    assert back.taxonomy.names == ("dog", "cat")
    assert back.taxonomy.names_of(back.annotations.class_id) == ["cat", "dog"]


def mixed_dataset() -> Dataset:
    """Six annotations on one 10x5 image: box, polygon, tag, mask, keypoints, crowd box."""
    nan = float("nan")
    rings = Ragged(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0]]), np.array([0, 3]))
    ann = Annotations.create(
        image_id=[1] * 6,
        class_id=[1, 2, 1, 1, 2, 2],
        bbox=[[0, 0, 2, 1], [0, 0, 4, 3], [nan] * 4, [0, 0, 1, 2], [1, 1, 3, 3], [5, 1, 9, 4]],
        kind=[Kind.BOX, Kind.POLYGON, Kind.TAG, Kind.MASK, Kind.KEYPOINTS, Kind.BOX],
        score=[0.9, nan, nan, nan, nan, nan],
        track_id=[-1, -1, -1, -1, 7, -1],
        occluded=[False, True, False, False, False, False],
        truncated=[False, False, False, False, False, True],
        difficult=[False, False, False, False, False, True],
        iscrowd=[False, False, False, False, False, True],
        rings=rings,
        ring_offsets=[0, 0, 1, 1, 1, 1, 1],
        rle_counts=Ragged.from_rows(
            [np.zeros(0, np.int64)] * 3 + [np.array([0, 4, 6])] + [np.zeros(0, np.int64)] * 2,
            dtype=np.int64,
        ),
        rle_size=[[0, 0]] * 3 + [[2, 5]] + [[0, 0]] * 2,
        keypoints=Ragged.from_rows(
            [np.zeros((0, 3))] * 4 + [np.array([[1.0, 1, 2], [3, 3, 2]])] + [np.zeros((0, 3))]
        ),
        attributes={"color": AttributeColumn.from_list(["red", None, None, None, None, 2])},
    )
    return Dataset(
        ann,
        Images.create(id=[1, 2], file_name=["img.jpg", "empty.jpg"], width=[10, 0], height=[5, 0]),
        Taxonomy.from_names(["car", "bus"]),
    )


def test_writer_reports_each_kind_of_loss(tmp_path: Path) -> None:
    report = write_yolo(mixed_dataset(), tmp_path / "out")
    assert report.annotations == 5
    assert report.dropped == [
        Dropped("tags", 1, "whole-image labels have no YOLO form"),
        Dropped("masks as boxes", 1),
        Dropped("keypoints as boxes", 1),
        Dropped("attributes", 2, "color"),
        Dropped("occluded flags", 1),
        Dropped("truncated flags", 1),
        Dropped("difficult flags", 1),
        Dropped("scores", 1),
        Dropped("iscrowd", 1),
        Dropped("track ids", 1),
        Dropped("class ids", 2, "classes renumbered 0..k-1 in taxonomy order"),
        Dropped("image ids", 2, "renumbered in file name order"),
        Dropped("annotation ids", 3, "renumbered in file and line order"),
    ]
    assert (tmp_path / "out/labels/img.txt").read_text() == (
        "0 0.1 0.1 0.2 0.2\n"
        "1 0 0 0.4 0 0.4 0.6\n"
        "0 0.05 0.2 0.1 0.4\n"
        "1 0.2 0.4 0.2 0.4\n"
        "1 0.7 0.5 0.4 0.6\n"
    )
    # an image without objects still gets its (empty) label file: YOLO's background image
    assert (tmp_path / "out/labels/empty.txt").read_text() == ""


def test_writing_an_unknown_image_size_fails_and_leaves_no_target(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.create(image_id=[2], class_id=[0], bbox=[[0, 0, 1, 1]]),
        Images.create(id=[1, 2], file_name=["ok.jpg", "nosize.jpg"], width=[4, 0], height=[4, 0]),
        Taxonomy.from_names(["x"], first_id=0),
    )
    with pytest.raises(FormatError) as info:
        write_yolo(ds, tmp_path / "out")
    assert str(info.value) == (
        "out: images[1] (nosize.jpg): width/height: expected a known image size to normalize "
        "coordinates, got 0x0 (1 image(s) without a size)"
    )
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_target(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.create(image_id=[1, 2], class_id=[0, 0], bbox=[[0, 0, 1, 1]] * 2),
        Images.create(id=[1, 2], file_name=["a.jpg", "b\x00c.jpg"], width=[4, 4], height=[4, 4]),
        Taxonomy.from_names(["x"], first_id=0),
    )
    with pytest.raises(ValueError, match="null"):
        write_yolo(ds, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# --- layouts ---------------------------------------------------------------------------------


def test_names_mapping_in_data_yaml_keeps_its_indices(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("names:\n  0: car\n  3: truck\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/a.txt").write_text("3 0.5 0.5 1 1\n")
    ds = read_yolo(tmp_path, image_sizes={"a.jpg": (10, 20)})
    assert ds.taxonomy.ids.tolist() == [0, 3]
    assert ds.taxonomy.names == ("car", "truck")
    assert ds.annotations.bbox.tolist() == [[0.0, 0.0, 10.0, 20.0]]


def test_images_without_labels_are_images_without_objects(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("a\n")
    image(tmp_path / "images/x.jpg", 8, 4)
    image(tmp_path / "images/y.png", 6, 3)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    ds = read_yolo(tmp_path)
    assert ds.images.file_name.tolist() == ["images/x.jpg", "images/y.png"]
    assert ds.images.width.tolist() == [8, 6]
    assert ds.annotations.image_id.tolist() == [1]
    assert ds.annotations.bbox.tolist() == [[2.0, 1.0, 6.0, 3.0]]


def test_a_label_without_image_or_size_names_the_label(tmp_path: Path) -> None:
    (tmp_path / "obj.names").write_text("a\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/lonely.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with pytest.raises(FormatError) as info:
        read_yolo(tmp_path)
    error = info.value
    assert error.path == tmp_path / "labels/lonely.txt"
    assert (error.record, error.field) == ("image", "size")
    assert "expected an image named lonely with one of .jpg" in error.reason


def test_missing_class_names_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with pytest.raises(
        FormatError, match=r"expected class names in data\.yaml, obj\.names or classes\.txt"
    ):
        read_yolo(tmp_path)


# --- malformed files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("0 0.5 0.5 0.5", "values", "expected 5 values (class cx cy w h) or 1 + 2k values"),
        ("0 0.1 0.1 0.2 0.2 0.3", "values", "got 6"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "values", "got 8"),
        ("7 0.5 0.5 0.5 0.5", "class", "expected a class index in 0..1, got 7"),
        ("-1 0.5 0.5 0.5 0.5", "class", "expected a class index in 0..1, got -1"),
        ("0.5 0.5 0.5 0.5 0.5", "class", "expected a class index in 0..1, got 0.5"),
        ("0 0.5 abc 0.5 0.5", "cy", "expected a number, got 'abc'"),
        ("1 0.5 0.5 1.2 0.5", "w", "expected w in [0, 1], got 1.2"),
        ("1 0.5 0.5 0.5 -0.2", "h", "expected h in [0, 1], got -0.2"),
        ("1 0.5 0.5 0.5 nan", "h", "expected h in [0, 1], got nan"),
        ("0 0.1 0.1 0.5 0.1 0.5 1.5", "y3", "expected y3 in [0, 1], got 1.5"),
        ("0 0.1 0.1 0.5 x 0.5 0.5", "y2", "expected a number, got 'x'"),
        (
            "0 0.05 0.5 0.5 0.5",
            "cx cy w h",
            "box [-2.0, 2.5, 3.0, 7.5] lies outside its 10x10 image",
        ),
    ],
)
def test_malformed_line_names_file_line_and_field(
    tmp_path: Path, line: str, field: str, message: str
) -> None:
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/img.txt").write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(FormatError) as info:
        read_yolo(tmp_path, image_sizes={"img.jpg": (10, 10)})
    error = info.value
    assert error.path == tmp_path / "labels/img.txt"
    assert (error.record, error.field) == ("line 2", field)
    assert message in error.reason
    assert str(error).startswith(f"img.txt: line 2: {field}: ")


def test_slightly_outside_values_are_tolerated(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("a\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/img.txt").write_text("0 0.5 0.5 1.0005 0.5\n")
    ds = read_yolo(tmp_path, image_sizes={"img.jpg": (100, 10)})
    np.testing.assert_allclose(ds.annotations.bbox, [[-0.025, 2.5, 100.025, 7.5]])


def test_collecting_lists_every_problem_and_keeps_good_lines(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/img.txt").write_text(
        "0 0.5 0.5 0.5\n"  # 1: too few values
        "5 0.5 0.5 0.5 0.5\n"  # 2: class out of range
        "1 0.25 0.5 0.5 0.5\n"  # 3: good
        "1 0.5 0.5 0.5 2\n"  # 4: h outside
        "1 0.5 q 0.5 0.5\n"  # 5: not a number
        "0 0.1 0.1 0.9 0.1 0.9 0.9\n"  # 6: good polygon
    )
    (tmp_path / "labels/other.txt").write_text("0 0.9 0.5 0.5 0.5\n")  # outside the image
    log = ErrorLog(tmp_path, collect=True)
    ds = read_yolo(tmp_path, errors=log, image_sizes={"img.jpg": (10, 10), "other.jpg": (10, 10)})
    assert sorted((e.path.name, e.record, e.field) for e in log.errors) == [
        ("img.txt", "line 1", "values"),
        ("img.txt", "line 2", "class"),
        ("img.txt", "line 4", "h"),
        ("img.txt", "line 5", "cy"),
        ("other.txt", "line 1", "cx cy w h"),
    ]
    assert ds.annotations.kind.tolist() == [Kind.BOX, Kind.POLYGON]
    assert ds.annotations.bbox.tolist() == [[0.0, 2.5, 5.0, 7.5], [1.0, 1.0, 9.0, 9.0]]


# --- detection -------------------------------------------------------------------------------


def test_sniff_recognises_yolo_and_nothing_else(shared_data: Path, tmp_path: Path) -> None:
    yolo = shared_data / "datumaro-assets/yolo_dataset"
    for layout in ("strict", "annotations", "labels"):
        assert sniff_yolo(yolo / layout), layout
    assert sniff_yolo(shared_data / REVIEW / "yolo_format")
    assert not sniff_yolo(shared_data / "datumaro-assets/voc_dataset/voc_dataset1")
    assert not sniff_yolo(tmp_path / "missing")
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    assert sniff_yolo(tmp_path)
    assert sniff_yolo(tmp_path / "data.yaml")
