from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import IO

import defusedxml.ElementTree as SafeElementTree
import numpy as np
import pytest

from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import AttributeSpec, AttributeType, ClassInfo, Taxonomy
from labelgate.errors import FormatError
from labelgate.formats import cvat
from labelgate.formats._base import ErrorLog
from labelgate.formats.cvat import read_cvat, sniff_cvat, write_cvat
from labelgate.formats.registry import read as registry_read

mask_util = pytest.importorskip("pycocotools.mask")

REVIEW = "review-object-detection-metrics/database/gts"
IMAGES = "datumaro-assets/cvat_dataset/for_images"


# --- helpers -------------------------------------------------------------------------------


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    for f in fields(Annotations):
        left, right = getattr(a.annotations, f.name), getattr(b.annotations, f.name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype, f.name
            assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), f.name
        elif f.name == "attributes":
            assert left.keys() == right.keys()
            for key in left:
                assert left[key].values.dtype == right[key].values.dtype, key
                assert left[key].to_list() == right[key].to_list(), key
        else:
            assert left.equals(right), f.name
    for f in fields(Images):
        assert getattr(a.images, f.name).tolist() == getattr(b.images, f.name).tolist(), f.name
    assert a.taxonomy == b.taxonomy
    assert a.info == b.info


def round_trip(dataset: Dataset, tmp_path: Path, name: str = "out.xml") -> Dataset:
    target = tmp_path / name
    write_cvat(dataset, target)
    return read_cvat(target)


def cvat_xml(body: str, labels: str = "<label><name>car</name></label>") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"<meta><task><name>t</name><labels>{labels}</labels></task></meta>{body}</annotations>"
    )


def write_text(tmp_path: Path, text: str, name: str = "bad.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- real files ----------------------------------------------------------------------------


def voc_oracle(folder: Path) -> dict[str, tuple[tuple[int, int], list[tuple[object, ...]]]]:
    """file name -> ((width, height), sorted objects), straight from the VOC XML files."""
    out = {}
    for path in sorted(folder.glob("*.xml")):
        root = SafeElementTree.parse(path).getroot()
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        objects = sorted(
            (
                obj.findtext("name"),
                *(float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")),
            )
            for obj in root.iter("object")
        )
        out[root.findtext("filename")] = (size, objects)
    return out


def test_review_cvat_export_agrees_with_its_voc_xml(shared_data: Path) -> None:
    dataset = read_cvat(shared_data / REVIEW / "cvat_format/annotations.xml")
    oracle = voc_oracle(shared_data / REVIEW / "pascalvoc_format")
    ann, images = dataset.annotations, dataset.images
    assert len(images) == len(oracle) == 100
    assert len(ann) == sum(len(objs) for _, objs in oracle.values()) == 273
    assert len(dataset.taxonomy) == 20
    assert dataset.taxonomy.names[:4] == ("person", "cat", "boat", "car")
    assert dataset.taxonomy.ids.tolist() == list(range(1, 21))
    assert (ann.kind == Kind.BOX).all()
    assert (ann.source == Source.HUMAN).all() and not ann.occluded.any()
    assert ann.attributes == {}
    names = dataset.taxonomy.names_of(ann.class_id)
    position = images.index_of(ann.image_id)
    for row, file_name in enumerate(images.file_name.tolist()):
        size, objects = oracle[file_name]
        assert (int(images.width[row]), int(images.height[row])) == size, file_name
        mine = sorted(
            (names[i], *ann.bbox[i].tolist()) for i in np.flatnonzero(position == row).tolist()
        )
        assert mine == objects, file_name
    # image ids are CVAT's frame numbers: 2007_001585.jpg comes first with id 99
    assert images.id[0] == 99 and images.file_name[0] == "2007_001585.jpg"
    assert dataset.info["cvat"]["label_colors"]["person"] == "#c06060"


def test_datumaro_project_export_holds_every_shape(shared_data: Path) -> None:
    dataset = read_cvat(shared_data / IMAGES / "export_project")  # the folder's annotations.xml
    images, ann, taxonomy = dataset.images, dataset.annotations, dataset.taxonomy
    # each subset numbers its frames from 0, so the ids repeat and are renumbered 0..5
    assert images.id.tolist() == [0, 1, 2, 3, 4, 5]
    assert images.file_name.tolist() == ["img0.jpg", "img1.jpg"] * 3
    assert images.width.tolist() == [8, 10] * 3 and images.height.tolist() == [8, 10] * 3
    assert dataset.info["cvat"]["subsets"] == {
        0: "Test", 1: "Test", 2: "Train", 3: "Train", 4: "Validation", 5: "Validation"
    }  # fmt: skip
    assert dataset.info["cvat"]["name"] == "test"
    assert taxonomy.names == ("label1", "label2")
    assert [(a.name, a.type, a.values, a.default, a.classes) for a in taxonomy.attributes] == [
        ("a1", AttributeType.BOOL, ("false", "true"), "false", (1,)),
        ("a2", AttributeType.SELECT, ("v1", "v2", "v3"), "v1", (1,)),
        ("a3", AttributeType.TEXT, ("0001 0002 0003",), "0000", (1,)),
        ("a4", AttributeType.FLOAT, ("2.4", "1", "-5.6"), "0", (1,)),
    ]
    assert dataset.info["cvat"]["radio_attributes"] == ["a2"]

    assert len(ann) == 12
    assert ann.image_id.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    per_subset = [Kind.BOX, Kind.KEYPOINTS, Kind.POLYGON, Kind.KEYPOINTS]
    assert ann.kind.tolist() == per_subset * 3
    assert ann.class_id.tolist() == [1, 2, 1, 2] * 3
    assert ann.z_order.tolist() == [1, 0, 1, 2] * 3
    assert ann.occluded.tolist() == [True, False, False, False] * 3
    first = ann[:4]
    assert first.bbox[0].tolist() == [0, 2, 4, 4]
    assert first.keypoints.row(1).tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2], [7, 8, 2]]
    assert first.rings.row(0).tolist() == [[1, 2], [3, 4], [6, 5]]
    assert first.bbox[2].tolist() == [1, 2, 6, 5]
    assert first.keypoints.row(3).tolist() == [[1, 2, 2], [3, 4, 2], [5, 6, 2]]
    assert first.attributes["cvat_shape"].to_list() == [None, "polyline", None, None]
    assert first.attributes["a1"].to_list() == [True, None, None, None]
    assert first.attributes["a2"].to_list() == ["v3", None, None, None]
    assert first.attributes["a3"].to_list() == ["0003", None, None, None]
    assert first.attributes["a4"].to_list() == [2.4, None, None, None]


def test_datumaro_task_export_refuses_unlabelled_shapes(shared_data: Path) -> None:
    path = shared_data / IMAGES / "export_task/train.xml"
    with pytest.raises(FormatError) as caught:
        read_cvat(path)
    error = caught.value
    assert (error.path.name, error.record, error.field) == (
        "train.xml",
        "image[0] (name=img0.jpg): polyline[0]",
        "label",
    )

    log = ErrorLog(path, collect=True)
    dataset = read_cvat(path, errors=log)
    assert [e.record for e in log.errors] == [
        "image[0] (name=img0.jpg): polyline[0]",
        "image[1] (name=img1.jpg): polygon[0]",
    ]
    ann = dataset.annotations
    assert ann.kind.tolist() == [Kind.BOX, Kind.KEYPOINTS]
    assert ann.class_id.tolist() == [1, 2]
    assert ann.image_id.tolist() == [0, 1]
    assert ann.attributes["a4"].to_list() == [2.4, None]


def test_video_tracks_become_per_frame_shapes(shared_data: Path) -> None:
    dataset = read_cvat(shared_data / "datumaro-assets/cvat_dataset/for_video")
    images, ann = dataset.images, dataset.annotations
    # start_frame 10, stop_frame 19, frame_filter step=3
    assert images.id.tolist() == [10, 13, 16, 19]
    assert images.file_name.tolist() == [
        "frame_000010",
        "frame_000013",
        "frame_000016",
        "frame_000019",
    ]
    assert images.width.tolist() == [25] * 4 and images.height.tolist() == [20] * 4
    assert dataset.taxonomy.names == ("klhg", "z U k", "II")
    # shapes marked outside="1" are gone: the object is not in those frames
    assert ann.image_id.tolist() == [10, 10, 13]
    assert ann.track_id.tolist() == [0, 1, 2]
    assert ann.kind.tolist() == [Kind.BOX, Kind.KEYPOINTS, Kind.KEYPOINTS]
    assert ann.class_id.tolist() == [3, 1, 3]
    assert ann.bbox[0].tolist() == [3, 4, 10, 5]
    assert ann.occluded.tolist() == [True, False, False]
    assert ann.keypoints.row(1)[:, :2].tolist() == [[21.95, 8.0], [2.55, 15.09], [2.23, 3.16]]
    assert ann.attributes["hgl"].to_list() == [None, "hgkf", None]
    assert ann.attributes["cvat_shape"].to_list() == [None, None, "polyline"]
    spec = dataset.taxonomy.attribute("hgl")
    assert (spec.type, spec.values, spec.mutable, spec.classes) == (
        AttributeType.SELECT,
        ("jk", "hgkf"),
        True,
        (1,),
    )


@pytest.mark.parametrize(
    "relative",
    [f"{REVIEW}/cvat_format/annotations.xml", f"{IMAGES}/export_project/annotations.xml"],
    ids=["review-voc-100", "datumaro-project"],
)
def test_real_files_round_trip_exactly(shared_data: Path, tmp_path: Path, relative: str) -> None:
    original = read_cvat(shared_data / relative)
    report = write_cvat(original, tmp_path / "out.xml")
    assert report.lossless, report.dropped
    assert_same_dataset(original, read_cvat(tmp_path / "out.xml"))


def test_writer_keeps_cvat_number_style_and_full_precision(tmp_path: Path) -> None:
    dataset = Dataset(
        Annotations.create(image_id=[1], class_id=[1], bbox=[[58.0, 0.1 + 0.2, 72.125, 191.0]]),
        Images.create(id=[1], file_name=["a.jpg"], width=[500], height=[500]),
        Taxonomy.from_names(["bottle"]),
    )
    write_cvat(dataset, tmp_path / "a.xml")
    box = SafeElementTree.parse(tmp_path / "a.xml").getroot().find("image/box")
    assert box is not None
    assert (box.get("xtl"), box.get("ytl"), box.get("xbr"), box.get("ybr")) == (
        "58.00",
        "0.30000000000000004",
        "72.125",
        "191.00",
    )
    assert read_cvat(tmp_path / "a.xml").annotations.bbox.tolist() == [
        [58.0, 0.1 + 0.2, 72.125, 191.0]
    ]


# --- a hand-built data set with every kind ------------------------------------------------


def coco_rle(mask: np.ndarray) -> list[int]:
    """Uncompressed column-major COCO counts of a bool mask (the oracle for our masks)."""
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [len(flat)]])).tolist()
    return ([0] if flat[0] else []) + runs


def every_kind() -> Dataset:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:5] = True
    mask[5, 7] = True
    counts = coco_rle(mask)
    polygon = np.array([[1.5, 1.25], [6.0, 1.0], [4.0, 5.75]])
    rings = Ragged(polygon, np.array([0, 3]))
    keypoints = Ragged.from_rows(
        [
            np.zeros((0, 3)),
            np.zeros((0, 3)),
            np.array([[1.0, 2.0, 2.0], [3.5, 4.0, 2.0]]),
            np.array([[0.5, 0.5, 2.0], [2.0, 3.0, 2.0], [7.0, 1.0, 2.0]]),
            np.zeros((0, 3)),
            np.zeros((0, 3)),
        ]
    )
    rle = Ragged.from_rows(
        [np.zeros(0, np.int64)] * 4 + [np.array(counts, dtype=np.int64), np.zeros(0, np.int64)]
    )
    nan = np.nan
    annotations = Annotations.create(
        image_id=[1, 1, 1, 2, 2, 2],
        class_id=[1, 2, 2, 1, 2, 1],
        kind=[Kind.BOX, Kind.POLYGON, Kind.KEYPOINTS, Kind.KEYPOINTS, Kind.MASK, Kind.TAG],
        bbox=[
            [0.5, 1.0, 3.25, 4.0],
            [1.5, 1.0, 6.0, 5.75],
            [1.0, 2.0, 3.5, 4.0],
            [0.5, 0.5, 7.0, 3.0],
            [2.0, 1.0, 8.0, 6.0],
            [nan, nan, nan, nan],
        ],
        occluded=[True, False, True, False, False, False],
        z_order=[2, 0, 1, 0, -1, 0],
        source=[Source.HUMAN, Source.PRELABEL, Source.MERGED, Source.HUMAN, Source.HUMAN, 0],
        rings=rings,
        ring_offsets=[0, 0, 1, 1, 1, 1, 1],
        keypoints=keypoints,
        rle_counts=rle,
        rle_size=[[0, 0]] * 4 + [[6, 8], [0, 0]],
        truncated=[True, False, False, False, False, False],
        attributes={
            "color": AttributeColumn.from_list(["red", None, "blue", None, None, "red"]),
            "count": AttributeColumn.from_list([3, None, None, 7, None, None]),
            "weight": AttributeColumn.from_list([None, 0.25, None, None, 1e-07, None]),
            "parked": AttributeColumn.from_list([True, None, None, None, None, False]),
            "note": AttributeColumn.from_list([None, "a <b> & 'c'", None, None, "", None]),
            "cvat_group_id": AttributeColumn.from_list([None, 4, 4, None, None, None]),
            "cvat_source": AttributeColumn.from_list([None, None, None, "semi-auto", None, None]),
            "cvat_shape": AttributeColumn.from_list([None, None, None, "polyline", None, None]),
        },
    )
    taxonomy = Taxonomy(
        (ClassInfo(1, "car"), ClassInfo(2, "person & dog")),
        (
            AttributeSpec("color", AttributeType.SELECT, ("red", "blue"), default="red"),
            AttributeSpec("count", AttributeType.INT, ("0", "10", "1"), classes=(1,), default="0"),
            AttributeSpec("weight", AttributeType.FLOAT, ("0.0", "2.5", "0.05"), mutable=True),
            AttributeSpec("parked", AttributeType.BOOL, ("false",), classes=(1,), default="false"),
            AttributeSpec("truncated", AttributeType.BOOL, ("false",), default="false"),
            # CVAT declares attributes per label: the reader lists them by first label
            AttributeSpec("note", AttributeType.TEXT, (), classes=(2,)),
        ),
    )
    images = Images.create(
        id=[1, 2], file_name=["dir/a b.jpg", "é.png"], width=[8, 8], height=[6, 6]
    )
    info = {"cvat": {"version": "1.1", "name": "hand built", "subsets": {2: "val"}}}
    return Dataset(annotations, images, taxonomy, info)


def test_hand_built_dataset_of_every_kind_round_trips_exactly(tmp_path: Path) -> None:
    original = every_kind()
    report = write_cvat(original, tmp_path / "every.xml")
    assert report.lossless, report.dropped
    again = read_cvat(tmp_path / "every.xml")
    assert_same_dataset(original, again)
    # and a second generation is byte-identical
    write_cvat(again, tmp_path / "again.xml")
    assert (tmp_path / "again.xml").read_bytes() == (tmp_path / "every.xml").read_bytes()


# pycocotools 2.0.x under numpy 2 warns about __array__(copy=...); not our code
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_masks_convert_between_cvat_crops_and_coco_rle(tmp_path: Path) -> None:
    # a 3 x 4 crop at left=2, top=1 of a 5 x 7 image, row-major, starting with background
    crop = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=bool)
    runs = [1, 2, 1, 4, 3, 1]
    body = (
        '<image id="0" name="m.png" width="7" height="5">'
        f'<mask label="car" rle="{", ".join(map(str, runs))}" left="2" top="1" width="4" '
        'height="3" z_order="0"/></image>'
    )
    ann = read_cvat(write_text(tmp_path, cvat_xml(body), "m.xml")).annotations
    full = np.zeros((5, 7), dtype=bool)
    full[1:4, 2:6] = crop
    assert ann.kind.tolist() == [Kind.MASK]
    assert ann.rle_size.tolist() == [[5, 7]]
    # pycocotools decodes our counts to the very same pixels
    rle = mask_util.frPyObjects({"counts": ann.rle_counts.row(0).tolist(), "size": [5, 7]}, 5, 7)
    assert np.array_equal(mask_util.decode(rle).astype(bool), full)
    assert ann.area.tolist() == [float(mask_util.area(rle))] == [7.0]
    assert ann.bbox.tolist() == [[2.0, 1.0, 6.0, 4.0]]
    # the writer crops to the set pixels again, giving CVAT's own numbers back
    write_cvat(read_cvat(tmp_path / "m.xml"), tmp_path / "out.xml")
    element = SafeElementTree.parse(tmp_path / "out.xml").getroot().find("image/mask")
    assert element is not None
    assert [element.get(k) for k in ("left", "top", "width", "height")] == ["2", "1", "4", "3"]
    assert [int(v) for v in (element.get("rle") or "").split(",")] == runs


def test_rotated_box_becomes_its_exact_polygon(tmp_path: Path) -> None:
    body = (
        '<image id="0" name="r.jpg" width="20" height="20">'
        '<box label="car" xtl="2" ytl="4" xbr="6" ybr="6" rotation="90"/></image>'
    )
    ann = read_cvat(write_text(tmp_path, cvat_xml(body))).annotations
    assert ann.kind.tolist() == [Kind.POLYGON]
    corners = ann.rings.row(0)
    # centre (4, 5); a 4 x 2 box turned a quarter becomes 2 x 4
    assert np.allclose(ann.bbox[0], [3, 3, 5, 7])
    assert np.allclose(corners.mean(axis=0), [4, 5])
    assert ann.area[0] == pytest.approx(8.0)


def test_multi_ring_polygon_is_written_as_grouped_polygons(tmp_path: Path) -> None:
    rings = Ragged(
        np.array([[0.0, 0], [2, 0], [2, 2], [5, 5], [6, 5], [6, 6]]), np.array([0, 3, 6])
    )
    dataset = Dataset(
        Annotations.create(
            image_id=[1],
            class_id=[1],
            kind=[Kind.POLYGON],
            bbox=[[0, 0, 6, 6]],
            rings=rings,
            ring_offsets=[0, 2],
        ),
        Images.create(id=[1], file_name=["p.jpg"], width=[10], height=[10]),
        Taxonomy.from_names(["car"]),
    )
    report = write_cvat(dataset, tmp_path / "p.xml")
    assert [(d.what, d.count) for d in report.dropped] == [("polygons with several rings", 1)]
    again = read_cvat(tmp_path / "p.xml").annotations
    assert len(again) == 2
    assert again.attributes["cvat_group_id"].to_list() == [1, 1]
    assert again.rings.values.tolist() == rings.values.tolist()


def test_writer_reports_what_cvat_cannot_hold(tmp_path: Path) -> None:
    dataset = Dataset(
        Annotations.create(
            image_id=[1, 1, 1],
            class_id=[5, 5, 5],
            bbox=[[0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 4, 4]],
            score=[0.9, 0.8, np.nan],
            annotator_id=[-1, 7, -1],
            truncated=[True, True, False],
            difficult=[False, True, False],
            track_id=[-1, -1, 3],
        ),
        Images.create(id=[1], width=[10], height=[10], tags=[("night",)]),
        Taxonomy((ClassInfo(5, "car", supercategory="vehicle"),)),
    )
    report = write_cvat(dataset, tmp_path / "r.xml")
    assert {d.what: d.count for d in report.dropped} == {
        "scores": 2,
        "annotator ids": 1,
        "track ids": 1,
        "truncated flags": 2,
        "difficult flags": 1,
        "class ids": 1,
        "class metadata (supercategory, tier, IoU threshold, keypoint names)": 1,
        "image tags": 1,
    }
    again = read_cvat(tmp_path / "r.xml")
    assert again.annotations.bbox.tolist() == dataset.annotations.bbox.tolist()
    assert again.taxonomy.ids.tolist() == [1]


def test_undeclared_attribute_columns_are_declared_with_their_type(tmp_path: Path) -> None:
    dataset = Dataset(
        Annotations.create(
            image_id=[1, 1],
            class_id=[1, 1],
            bbox=[[0, 0, 2, 2], [1, 1, 3, 3]],
            attributes={
                "lanes": AttributeColumn.from_list([2, 5]),
                "blur": AttributeColumn.from_list([0.5, None]),
                "moving": AttributeColumn.from_list([None, True]),
                "plate": AttributeColumn.from_list(["AB 12", None]),
            },
        ),
        Images.create(id=[1], width=[10], height=[10]),
        Taxonomy.from_names(["car"]),
    )
    again = round_trip(dataset, tmp_path)
    types = {a.name: a.type for a in again.taxonomy.attributes}
    assert types == {
        "lanes": AttributeType.INT,
        "blur": AttributeType.FLOAT,
        "moving": AttributeType.BOOL,
        "plate": AttributeType.TEXT,
    }
    for name, column in dataset.annotations.attributes.items():
        assert again.annotations.attributes[name].to_list() == column.to_list()


def test_source_words_map_to_sources_and_keep_the_original(tmp_path: Path) -> None:
    words = ["manual", "auto", "semi-auto", "file", "consensus"]
    boxes = "".join(
        f'<box label="car" source="{w}" xtl="1" ytl="1" xbr="2" ybr="2" group_id="{i}"/>'
        for i, w in enumerate(words)
    )
    dataset = read_cvat(write_text(tmp_path, cvat_xml(IMAGE.format(boxes)), "s.xml"))
    ann = dataset.annotations
    assert ann.source.tolist() == [
        Source.HUMAN, Source.PRELABEL, Source.HUMAN, Source.HUMAN, Source.MERGED
    ]  # fmt: skip
    assert ann.attributes["cvat_source"].to_list() == [None, None, "semi-auto", "file", None]
    assert ann.attributes["cvat_group_id"].to_list() == [None, 1, 2, 3, 4]
    # a source changed after reading wins over the remembered word
    changed = dataset.replace(annotations=ann.replace(source=np.full(5, Source.PRELABEL)))
    write_cvat(changed, tmp_path / "out.xml")
    root = SafeElementTree.parse(tmp_path / "out.xml").getroot()
    assert [b.get("source") for b in root.iter("box")] == ["auto"] * 5


# --- bad input -----------------------------------------------------------------------------

BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<annotations><version>&lol3;</version></annotations>"
)
SELECT = (
    "<label><name>car</name><attributes><attribute><name>color</name>"
    "<input_type>select</input_type><default_value>red</default_value>"
    "<values>red\nblue</values></attribute></attributes></label>"
)
IMAGE = '<image id="0" name="a.jpg" width="10" height="10">{}</image>'


@pytest.mark.parametrize(
    ("text", "record", "field", "message"),
    [
        pytest.param(
            cvat_xml(IMAGE.format('<box label="car" xtl="1" ytl="1" xbr="2" ybr="2">')),
            None,
            None,
            "malformed XML: mismatched tag",
            id="malformed",
        ),
        pytest.param(BOMB, None, None, "refused unsafe XML (EntitiesForbidden)", id="bomb"),
        pytest.param(
            "<annotation><object/></annotation>",
            None,
            None,
            "expected root element <annotations>, got <annotation>",
            id="not-cvat",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<box label="bus" xtl="1" ytl="1" xbr="2" ybr="2"/>')),
            "image[0] (name=a.jpg): box[0]",
            "label",
            "unknown label 'bus' (meta declares ['car'])",
            id="unknown-label",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<box label="car" xtl="1" ytl="one" xbr="2" ybr="2"/>')),
            "image[0] (name=a.jpg): box[0]",
            "ytl",
            "expected a number, got 'one'",
            id="non-numeric-box",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<polygon label="car" points="1,2;3,x;5,6"/>')),
            "image[0] (name=a.jpg): polygon[0]",
            "points",
            "expected numbers 'x,y;x,y;...', got '1,2;3,x;5,6'",
            id="non-numeric-points",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<polygon label="car" points="1,2;3,4"/>')),
            "image[0] (name=a.jpg): polygon[0]",
            "points",
            "expected a polygon of >= 3 points, got 2",
            id="short-polygon",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<box label="car" xtl="5" ytl="1" xbr="2" ybr="2"/>')),
            "image[0] (name=a.jpg): box[0]",
            "xbr",
            "expected xbr >= xtl, got xtl=5.0 xbr=2.0",
            id="xbr-below-xtl",
        ),
        pytest.param(
            cvat_xml('<image id="0" name="a.jpg" width="10" height="-4"/>'),
            "image[0] (name=a.jpg)",
            "height",
            "expected height >= 0, got -4",
            id="negative-size",
        ),
        pytest.param(
            cvat_xml(
                IMAGE.format(
                    '<box label="car" xtl="1" ytl="1" xbr="2" ybr="2">'
                    '<attribute name="color">green</attribute></box>'
                ),
                labels=SELECT,
            ),
            "image[0] (name=a.jpg): box[0]",
            "attribute[name=color]",
            "expected one of ['red', 'blue'], got 'green'",
            id="attribute-value",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<ellipse label="car" cx="3" cy="3" rx="1" ry="1"/>')),
            "image[0] (name=a.jpg): ellipse[0]",
            None,
            "<ellipse> shapes are not supported",
            id="ellipse",
        ),
        pytest.param(
            cvat_xml(IMAGE.format('<box label="car" xtl="1" ytl="1" xbr="20" ybr="2"/>')),
            "image[0] (name=a.jpg): box[0]",
            "xtl/ytl/xbr/ybr",
            "lies outside its 10x10 image",
            id="outside-image",
        ),
        pytest.param(
            cvat_xml(
                IMAGE.format('<mask label="car" rle="1, 2" left="0" top="0" width="2" height="2"/>')
            ),
            "image[0] (name=a.jpg): mask[0]",
            "rle",
            "cover width*height = 4 pixels, got 3",
            id="mask-runs",
        ),
    ],
)
def test_bad_input_names_file_record_and_field(
    tmp_path: Path, text: str, record: str | None, field: str | None, message: str
) -> None:
    path = write_text(tmp_path, text)
    with pytest.raises(FormatError) as caught:
        read_cvat(path)
    error = caught.value
    assert error.path == path
    assert (error.record, error.field) == (record, field)
    assert message in error.reason
    assert str(error).startswith("bad.xml: ")


def test_collecting_reports_every_bad_shape_and_keeps_the_good_ones(tmp_path: Path) -> None:
    body = (
        '<image id="0" name="a.jpg" width="10" height="10">'
        '<box label="car" xtl="1" ytl="1" xbr="2" ybr="2"/>'
        '<box label="bus" xtl="1" ytl="1" xbr="2" ybr="2"/>'
        '<polygon label="car" points="1,2;3,4"/>'
        '<points label="car" points="1,2"/></image>'
        '<image id="1" name="b.jpg" width="-1" height="10">'
        '<box label="car" xtl="1" ytl="1" xbr="2" ybr="2"/></image>'
        '<image id="2" name="c.jpg" width="10" height="10">'
        '<box label="car" xtl="1" ytl="1" xbr="30" ybr="2"/><tag label="car"/></image>'
    )
    path = write_text(tmp_path, cvat_xml(body))
    log = ErrorLog(path, collect=True)
    dataset = read_cvat(path, errors=log)
    assert [(e.record, e.field) for e in log.errors] == [
        ("image[0] (name=a.jpg): box[1]", "label"),
        ("image[0] (name=a.jpg): polygon[0]", "points"),
        ("image[1] (name=b.jpg)", "width"),
        ("image[2] (name=c.jpg): box[0]", "xtl/ytl/xbr/ybr"),
    ]
    assert dataset.images.id.tolist() == [0, 2]
    assert dataset.annotations.kind.tolist() == [Kind.BOX, Kind.KEYPOINTS, Kind.TAG]
    assert dataset.annotations.image_id.tolist() == [0, 0, 2]


def test_shapes_before_meta_are_refused(tmp_path: Path) -> None:
    text = '<annotations><image id="0" name="a.jpg" width="1" height="1"/></annotations>'
    with pytest.raises(FormatError, match="expected <meta> with the labels before"):
        read_cvat(write_text(tmp_path, text))


# --- writing safely ------------------------------------------------------------------------


def test_existing_file_is_refused_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="exists"):
        write_cvat(every_kind(), target)
    assert target.read_text() == "keep me"
    write_cvat(every_kind(), target, overwrite=True)
    assert sniff_cvat(target)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    target = tmp_path / "out.xml"
    if existing:
        target.write_text("old")
    calls = []

    def explode(*args: object) -> str | None:
        calls.append(args)
        raise OSError("disk full")

    # the mask is on the second image, so the first has already been streamed out
    monkeypatch.setattr(cvat, "_mask_attributes", explode)
    monkeypatch.setattr(cvat, "_stream", _small_chunks)
    with pytest.raises(OSError, match="disk full"):
        write_cvat(every_kind(), target, overwrite=existing)
    assert calls
    assert os.listdir(tmp_path) == (["out.xml"] if existing else [])
    if existing:
        assert target.read_text() == "old"


def _small_chunks(handle: IO[str], pieces: Iterator[str]) -> None:
    for piece in pieces:
        handle.write(piece)
        handle.flush()


# --- detection -----------------------------------------------------------------------------


def test_sniff_accepts_cvat_files_and_folders_only(shared_data: Path, tmp_path: Path) -> None:
    assert sniff_cvat(shared_data / REVIEW / "cvat_format/annotations.xml")
    assert sniff_cvat(shared_data / REVIEW / "cvat_format")
    assert sniff_cvat(shared_data / IMAGES / "export_task/train.xml")  # no XML declaration
    assert not sniff_cvat(shared_data / IMAGES / "export_task")  # no annotations.xml in it
    assert not sniff_cvat(shared_data / REVIEW / "pascalvoc_format/2007_000027.xml")
    assert not sniff_cvat(shared_data / REVIEW / "coco_format_v1/instances_default.json")
    assert not sniff_cvat(tmp_path / "missing.xml")
    assert not sniff_cvat(write_text(tmp_path, "<annotationsX/>", "x.xml"))


def test_registry_reads_cvat_by_name(shared_data: Path) -> None:
    dataset = registry_read(shared_data / REVIEW / "cvat_format/annotations.xml", "cvat")
    assert len(dataset.annotations) == 273
