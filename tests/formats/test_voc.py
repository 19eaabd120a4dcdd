from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, AttributeColumn, Kind
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import FormatError
from labelgate.formats._base import Dropped, ErrorLog
from labelgate.formats.voc import read_voc, sniff_voc, write_voc

VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
    "ignored",
]

# object counts per class in review-object-detection-metrics database/gts/pascalvoc_format
REVIEW_COUNTS = {
    "aeroplane": 15, "bicycle": 14, "bird": 6, "boat": 11, "bottle": 13, "bus": 6, "car": 14,
    "cat": 5, "chair": 15, "cow": 14, "diningtable": 7, "dog": 8, "horse": 7, "motorbike": 5,
    "person": 91, "pottedplant": 7, "sheep": 10, "sofa": 10, "train": 6, "tvmonitor": 9,
}  # fmt: skip


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    """Every field VOC can hold is equal, exactly."""
    assert a.taxonomy.names == b.taxonomy.names
    assert a.taxonomy.ids.tolist() == b.taxonomy.ids.tolist()
    assert a.images.id.tolist() == b.images.id.tolist()
    assert a.images.file_name.tolist() == b.images.file_name.tolist()
    assert a.images.width.tolist() == b.images.width.tolist()
    assert a.images.height.tolist() == b.images.height.tolist()
    x, y = a.annotations, b.annotations
    assert x.id.tolist() == y.id.tolist()
    assert x.image_id.tolist() == y.image_id.tolist()
    assert x.class_id.tolist() == y.class_id.tolist()
    assert x.bbox.tolist() == y.bbox.tolist()
    for flag in ("truncated", "difficult", "occluded"):
        assert getattr(x, flag).tolist() == getattr(y, flag).tolist(), flag
    assert sorted(x.attributes) == sorted(y.attributes)
    for name in x.attributes:
        assert x.attributes[name].to_list() == y.attributes[name].to_list(), name


# --- real files ------------------------------------------------------------------------------


def test_reads_voc_dataset1_boxes_flags_and_pose_skipping_parts(shared_data: Path) -> None:
    ds = read_voc(shared_data / "datumaro-assets/voc_dataset/voc_dataset1")
    assert ds.images.file_name.tolist() == ["2007_000001.jpg"]
    assert (ds.images.width.tolist(), ds.images.height.tolist()) == ([20], [10])
    assert ds.taxonomy.names == ("cat", "person")
    ann = ds.annotations
    assert ann.class_id.tolist() == [1, 2]
    # the person's <part> head (5.5, 6, 7.5, 8) is not an annotation of its own
    assert ann.bbox.tolist() == [[1.0, 2.0, 3.0, 4.0], [4.0, 5.0, 6.0, 7.0]]
    assert ann.truncated.tolist() == [True, False]
    assert ann.difficult.tolist() == [False, False]
    assert ann.occluded.tolist() == [False, False]
    assert ann.attributes["pose"].to_list() == ["Unspecified", None]
    assert ann.kind.tolist() == [Kind.BOX, Kind.BOX]


def test_voc_dataset2_takes_class_ids_from_labelmap_order(shared_data: Path) -> None:
    ds = read_voc(shared_data / "datumaro-assets/voc_dataset/voc_dataset2")
    assert ds.taxonomy.names == tuple(VOC_CLASSES)
    assert ds.taxonomy.ids.tolist() == list(range(1, 23))
    # "@.xml" has no objects and sorts first; no <size> anywhere means unknown sizes
    assert ds.images.file_name.tolist() == ["@.jpg", "a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert ds.images.id.tolist() == [1, 2, 3, 4, 5]
    assert ds.images.width.tolist() == [0] * 5
    ann = ds.annotations
    assert ann.image_id.tolist() == [2, 3, 4, 5]
    assert ann.class_id.tolist() == [1, 2, 3, 4]  # background, aeroplane, bicycle, bird
    assert ann.bbox.tolist() == [[1, 2, 4, 6], [2, 2, 7, 6], [3, 1, 11, 6], [4, 4, 8, 8]]
    assert ann.occluded.tolist() == [True, True, False, False]
    assert ds.info["voc_labelmap"]["aeroplane"] == "128,0,0::"


def test_single_file_and_plain_folder_read_like_the_tree(shared_data: Path) -> None:
    root = shared_data / "datumaro-assets/voc_dataset/voc_dataset3"
    tree = read_voc(root)
    assert tree.annotations.bbox.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert_same_dataset(tree, read_voc(root / "Annotations"))
    assert_same_dataset(tree, read_voc(root / "Annotations" / "2007_000001.xml"))


def test_review_metrics_voc_ground_truth_counts_and_boxes(shared_data: Path) -> None:
    ds = read_voc(shared_data / "review-object-detection-metrics/database/gts/pascalvoc_format")
    assert len(ds.images) == 100
    assert len(ds.annotations) == 273
    assert ds.taxonomy.names == tuple(sorted(REVIEW_COUNTS))
    ids, counts = ds.annotations.counts_by_class()
    assert dict(zip(ds.taxonomy.names_of(ids), counts.tolist())) == REVIEW_COUNTS
    first = ds.annotations[ds.annotations.image_id == 1]
    assert ds.images.file_name[0] == "2007_000027.jpg"
    assert (ds.images.width[0], ds.images.height[0]) == (486, 500)
    assert first.bbox.tolist() == [[174.0, 101.0, 349.0, 351.0]]
    assert ds.taxonomy.names_of(first.class_id) == ["person"]


def test_review_metrics_cvat_voc_export_matches_pascal_files(shared_data: Path) -> None:
    gts = shared_data / "review-object-detection-metrics/database/gts"
    pascal = read_voc(gts / "pascalvoc_format")
    cvat = read_voc(gts / "imagenet_format")
    # the CVAT export's labelmap puts background first: 21 classes, ids by that order
    assert cvat.taxonomy.names[:3] == ("background", "person", "cat")
    assert len(cvat.taxonomy) == 21
    assert cvat.images.file_name.tolist() == pascal.images.file_name.tolist()
    # CVAT writes each image's objects in another order: compare them as sorted rows
    assert objects(cvat) == objects(pascal)
    assert len(objects(cvat)) == 273


def objects(ds: Dataset) -> list[tuple[int, str, list[float]]]:
    ann = ds.annotations
    names = ds.taxonomy.names_of(ann.class_id)
    return sorted(zip(ann.image_id.tolist(), names, ann.bbox.tolist()))


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "datumaro-assets/voc_dataset/voc_dataset1",
        "datumaro-assets/voc_dataset/voc_dataset2",
        "datumaro-assets/voc_dataset/voc_dataset3",
        "review-object-detection-metrics/database/gts/pascalvoc_format",
        "review-object-detection-metrics/database/gts/imagenet_format",
    ],
)
def test_voc_to_voc_is_lossless(shared_data: Path, tmp_path: Path, relative: str) -> None:
    original = read_voc(shared_data / relative)
    report = write_voc(original, tmp_path / "out")
    assert report.dropped == []
    assert (report.images, report.annotations) == (len(original.images), len(original.annotations))
    again = read_voc(tmp_path / "out")
    assert_same_dataset(original, again)
    labelmap = (tmp_path / "out" / "labelmap.txt").read_text().splitlines()
    assert labelmap[1:] == [f"{n}:{again.info['voc_labelmap'][n]}" for n in original.taxonomy.names]
    listed = (tmp_path / "out/ImageSets/Main/default.txt").read_text().split()
    assert listed == sorted(p.stem for p in (tmp_path / "out/Annotations").glob("*.xml"))


def test_writer_keeps_float_coordinates_exactly(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.create(
            image_id=[1, 1],
            class_id=[1, 1],
            bbox=[[0.1, 2.0, 3.25, 4.0], [1 / 3, 0.0, 7.0, 5.5]],
        ),
        Images.create(id=[1], file_name=["x.png"], width=[8], height=[6]),
        Taxonomy.from_names(["dog"]),
    )
    write_voc(ds, tmp_path / "out")
    text = (tmp_path / "out/Annotations/x.xml").read_text()
    assert "<xmin>0.1</xmin>" in text
    assert "<ymin>2</ymin>" in text
    assert "<xmax>3.25</xmax>" in text
    assert f"<xmin>{1 / 3!r}</xmin>" in text
    assert read_voc(tmp_path / "out").annotations.bbox.tolist() == ds.annotations.bbox.tolist()


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
        Images.create(id=[1], file_name=["img.jpg"], width=[10], height=[5]),
        Taxonomy.from_names(["car", "bus"]),
    )


def test_writer_reports_each_kind_of_loss(tmp_path: Path) -> None:
    report = write_voc(mixed_dataset(), tmp_path / "out")
    assert report.annotations == 5
    assert report.dropped == [
        Dropped("tags", 1, "whole-image labels have no VOC form"),
        Dropped(
            "geometry as boxes", 3, "polygons, masks and keypoints written as their bounding boxes"
        ),
        Dropped("scores", 1, "VOC has no confidence field"),
        Dropped("track ids", 1),
        Dropped("iscrowd", 1),
        Dropped("annotation ids", 3, "renumbered in file order"),
    ]
    back = read_voc(tmp_path / "out")
    assert back.annotations.bbox.tolist() == [
        [0, 0, 2, 1],
        [0, 0, 4, 3],
        [0, 0, 1, 2],
        [1, 1, 3, 3],
        [5, 1, 9, 4],
    ]
    assert back.annotations.attributes["color"].to_list() == ["red", None, None, None, "2"]
    assert back.annotations.occluded.tolist() == [False, True, False, False, False]
    assert back.annotations.difficult.tolist() == [False, False, False, False, True]


def test_typed_attributes_survive_a_round_trip(tmp_path: Path) -> None:
    ann = Annotations.create(
        image_id=[1, 1, 1],
        class_id=[1, 1, 1],
        bbox=[[0, 0, 1, 1]] * 3,
        attributes={
            "moving": AttributeColumn.from_list([True, False, None]),
            "count": AttributeColumn.from_list([3, None, -1]),
            "speed": AttributeColumn.from_list([0.5, 2.0, None]),
            "note": AttributeColumn.from_list(["a b", None, "<&>"]),
        },
    )
    ds = Dataset(ann, Images.create(id=[1], file_name=["i.jpg"], width=[4], height=[4]),
                 Taxonomy.from_names(["x"]))  # fmt: skip
    assert write_voc(ds, tmp_path / "out").dropped == []
    back = read_voc(tmp_path / "out").annotations.attributes
    assert back["moving"].to_list() == [True, False, None]
    assert back["count"].to_list() == [3, None, -1]
    assert back["speed"].to_list() == [0.5, 2.0, None]
    assert back["note"].to_list() == ["a b", None, "<&>"]


def test_existing_target_is_refused_unless_overwrite(shared_data: Path, tmp_path: Path) -> None:
    ds = read_voc(shared_data / "datumaro-assets/voc_dataset/voc_dataset3")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_voc(ds, target)
    assert (target / "keep.txt").read_text() == "mine"
    write_voc(ds, target, overwrite=True)
    assert not (target / "keep.txt").exists()
    assert read_voc(target).annotations.bbox.tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_failed_write_leaves_no_target(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.create(image_id=[1, 2], class_id=[1, 1], bbox=[[0, 0, 1, 1]] * 2),
        # the second name cannot be a file name: the write fails after the first file
        Images.create(id=[1, 2], file_name=["a.jpg", "b\x00c.jpg"], width=[4, 4], height=[4, 4]),
        Taxonomy.from_names(["x"]),
    )
    with pytest.raises(ValueError, match="null"):
        write_voc(ds, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_clashing_stems_are_refused_before_writing(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.empty(),
        Images.create(id=[1, 2, 3], file_name=["t/1.jpg", "v/1.jpg", "t__1.jpg"]),
        Taxonomy.from_names(["x"]),
    )
    with pytest.raises(FormatError) as info:
        write_voc(ds, tmp_path / "out")
    assert info.value.record == "images[2]"
    assert info.value.field == "file_name"
    assert "'t/1.jpg' and 't__1.jpg'" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_clashing_stems_fall_back_to_the_path(tmp_path: Path) -> None:
    ds = Dataset(
        Annotations.create(image_id=[2], class_id=[1], bbox=[[0, 0, 1, 1]]),
        Images.create(
            id=[1, 2], file_name=["train/1.jpg", "val/1.jpg"], width=[2, 2], height=[2, 2]
        ),
        Taxonomy.from_names(["x"]),
    )
    write_voc(ds, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out/Annotations").iterdir()) == [
        "train__1.xml",
        "val__1.xml",
    ]
    back = read_voc(tmp_path / "out")
    assert back.images.file_name.tolist() == ["train/1.jpg", "val/1.jpg"]
    assert back.annotations.image_id.tolist() == [2]


# --- malformed files -------------------------------------------------------------------------

GOOD_OBJECT = (
    "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax>"
    "</bndbox></object>"
)


def voc_xml(body: str, size: str = "<size><width>8</width><height>6</height></size>") -> str:
    return f"<annotation><filename>a.jpg</filename>{size}{body}</annotation>"


BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n<annotation><filename>&lol9;</filename></annotation>"
).replace("&lol0;", "&lol;")


@pytest.mark.parametrize(
    ("text", "record", "field", "message"),
    [
        pytest.param(
            "<annotation><object></annotation>", "line 1, column 22", "xml", "mismatched tag",
            id="malformed-xml",
        ),
        pytest.param(BOMB, "<!DOCTYPE>", "entity lol", "XML bomb guard", id="billion-laughs"),
        pytest.param(
            '<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            "<annotation><filename>&xxe;</filename></annotation>",
            "<!DOCTYPE>", "entity xxe", "got EntitiesForbidden",
            id="external-entity",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT + "<object><name>cat</name></object>"),
            "object[1] (cat)", "bndbox", "expected a <bndbox> element, got none",
            id="missing-bndbox",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("<ymax>3</ymax>", "<ymax>3px</ymax>")),
            "object[0] (dog)", "bndbox/ymax", "expected a number, got '3px'",
            id="non-numeric",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("<xmin>1</xmin>", "")),
            "object[0] (dog)", "bndbox/xmin", "expected a number, got nothing",
            id="missing-coordinate",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("<xmax>3</xmax>", "<xmax>0.5</xmax>")),
            "object[0] (dog)", "bndbox", "expected x2 >= x1, got x1=1.0 x2=0.5",
            id="xmax-below-xmin",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT, "<size><width>-8</width><height>6</height></size>"),
            "annotation", "size/width", "expected a non-negative integer, got '-8'",
            id="negative-size",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("<ymax>3</ymax>", "<ymax>9</ymax>")),
            "object[0] (dog)", "bndbox", "box [1.0, 1.0, 3.0, 9.0] lies outside its 8x6 image",
            id="outside-image",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("<name>dog</name>", "")),
            "object[0]", "name", "expected a class name, got none",
            id="missing-name",
        ),
        pytest.param(
            voc_xml(GOOD_OBJECT.replace("</name>", "</name><difficult>maybe</difficult>")),
            "object[0] (dog)", "difficult", "expected 0 or 1, got 'maybe'",
            id="bad-flag",
        ),
    ],
)  # fmt: skip
def test_malformed_file_names_file_record_and_field(
    tmp_path: Path, text: str, record: str, field: str, message: str
) -> None:
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(text)
    with pytest.raises(FormatError) as info:
        read_voc(tmp_path)
    error = info.value
    assert error.path.name == "a.xml"
    assert (error.record, error.field) == (record, field)
    assert message in error.reason
    assert str(error).startswith(f"a.xml: {record}: {field}: ")


def test_unknown_class_against_labelmap_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\ncat:1,2,3::\n")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(voc_xml(GOOD_OBJECT))
    with pytest.raises(FormatError) as info:
        read_voc(tmp_path)
    assert (
        str(info.value)
        == "a.xml: object[0] (dog): name: expected a class listed in labelmap.txt, got 'dog'"
    )


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"expected Annotations/\*\.xml or \*\.xml files"):
        read_voc(tmp_path)


def test_collecting_lists_every_problem_and_keeps_good_objects(tmp_path: Path) -> None:
    folder = tmp_path / "Annotations"
    folder.mkdir()
    (folder / "a.xml").write_text(voc_xml(GOOD_OBJECT + "<object><name>cat</name></object>"))
    (folder / "b.xml").write_text("<annotation>")
    (folder / "c.xml").write_text(
        voc_xml(
            GOOD_OBJECT.replace("<xmax>3</xmax>", "<xmax>x</xmax>")
            + GOOD_OBJECT.replace("<xmax>3</xmax>", "<xmax>0</xmax>")
            + GOOD_OBJECT.replace("<ymax>3</ymax>", "<ymax>60</ymax>")
            + GOOD_OBJECT
        )
    )
    log = ErrorLog(tmp_path, collect=True)
    ds = read_voc(tmp_path, errors=log)
    assert [(e.path.name, e.record, e.field) for e in log.errors] == [
        ("a.xml", "object[1] (cat)", "bndbox"),
        ("b.xml", "line 1, column 12", "xml"),
        ("c.xml", "object[0] (dog)", "bndbox/xmax"),
        ("c.xml", "object[1] (dog)", "bndbox"),
        ("c.xml", "object[2] (dog)", "bndbox"),
    ]
    # b.xml cannot be read at all: two images, one good object in each
    assert ds.images.file_name.tolist() == ["a.jpg", "a.jpg"]
    assert ds.annotations.image_id.tolist() == [1, 2]
    assert ds.annotations.bbox.tolist() == [[1, 1, 3, 3], [1, 1, 3, 3]]


# --- detection -------------------------------------------------------------------------------


def test_sniff_recognises_voc_and_nothing_else(shared_data: Path, tmp_path: Path) -> None:
    voc = shared_data / "datumaro-assets/voc_dataset"
    assert sniff_voc(voc / "voc_dataset1")
    assert sniff_voc(voc / "voc_dataset2")
    assert sniff_voc(voc / "voc_dataset3/Annotations/2007_000001.xml")
    assert not sniff_voc(shared_data / "datumaro-assets/yolo_dataset/strict")
    assert not sniff_voc(tmp_path / "missing")
    (tmp_path / "cvat.xml").write_text("<annotations><version>1.1</version></annotations>")
    assert not sniff_voc(tmp_path / "cvat.xml")
