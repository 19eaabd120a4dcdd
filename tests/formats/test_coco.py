from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from labelgate.core import Annotations, Dataset, Kind
from labelgate.errors import FormatError
from labelgate.formats import ErrorLog, detect_format, read
from labelgate.formats.coco import read_coco, write_coco

COCO_API = pytest.importorskip("pycocotools.coco")
mask_util = pytest.importorskip("pycocotools.mask")


def assert_same_annotations(a: Annotations, b: Annotations) -> None:
    for f in fields(Annotations):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, np.ndarray):
            assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), f.name
        elif f.name == "attributes":
            assert left.keys() == right.keys()
            for key in left:
                assert left[key].to_list() == right[key].to_list(), key
        else:
            assert left.equals(right), f.name


def test_datumaro_instances_hold_what_expected_md_says(shared_data: Path) -> None:
    folder = shared_data / "datumaro-assets/coco_dataset/coco_instances/annotations"
    train = read(folder / "instances_train.json")
    assert train.taxonomy.names == ("a", "b", "c")
    assert train.taxonomy.ids.tolist() == [1, 2, 4]
    assert train.images.id.tolist() == [5]
    assert (train.images.width[0], train.images.height[0]) == (10, 5)
    ann = train.annotations
    assert ann.class_id.tolist() == [2] and ann.id.tolist() == [1]
    assert ann.bbox.tolist() == [[2, 2, 5, 3]]  # x=2, y=2, w=3, h=1
    assert not ann.iscrowd[0]

    val = read(folder / "instances_val.json").annotations
    assert val.id.tolist() == [1, 2]
    assert val.kind.tolist() == [Kind.POLYGON, Kind.MASK]
    assert val.rings.row(0).tolist() == [[0, 0], [1, 0], [1, 2], [0, 2]]
    assert val.bbox[0].tolist() == [0, 0, 1, 2]
    assert val.attributes["x"].to_list() == [1, None]
    assert val.attributes["y"].to_list() == ["hello", None]
    assert val.iscrowd.tolist() == [False, True]
    assert val.rle_counts.row(1).tolist() == [0, 20, 30]
    assert val.rle_size[1].tolist() == [10, 5]
    assert val.bbox[1].tolist() == [0, 0, 1, 9]  # as stored in the json, not the mask extent
    assert val.area[1] == 20.0


def test_coco_val2014_subset_matches_pycocotools(shared_data: Path) -> None:
    path = shared_data / "faster-coco-eval/cocoapi/instances_val2014_100.json"
    ours = read(path)
    reference = COCO_API.COCO(str(path))
    assert len(ours.images) == 100 and len(ours.annotations) == 839
    assert len(ours.taxonomy) == 80
    ann = ours.annotations
    ref_anns = reference.loadAnns(ann.id.tolist())
    ref_xywh = np.array([a["bbox"] for a in ref_anns])
    np.testing.assert_allclose(ann.bbox[:, :2], ref_xywh[:, :2])
    np.testing.assert_allclose(ann.bbox[:, 2:] - ann.bbox[:, :2], ref_xywh[:, 2:], atol=1e-9)
    assert ann.area.tolist() == [a["area"] for a in ref_anns]
    assert ann.iscrowd.tolist() == [bool(a["iscrowd"]) for a in ref_anns]
    assert int(ann.iscrowd.sum()) == 9 and int((ann.kind == Kind.MASK).sum()) == 9
    # every crowd RLE decodes to the mask pycocotools draws for it
    for row in np.flatnonzero(ann.kind == Kind.MASK).tolist():
        expected = reference.annToMask(ref_anns[row])
        height, width = ann.rle_size[row].tolist()
        flat = np.repeat(np.arange(len(ann.rle_counts.row(row))) % 2, ann.rle_counts.row(row))
        ours_mask = flat.reshape(width, height).T
        assert np.array_equal(ours_mask, expected)


def test_segm_results_decode_to_pycocotools_masks_and_boxes(shared_data: Path) -> None:
    results = shared_data / "cocoapi-results/instances_val2014_fakesegm100_results.json"
    truth = read(shared_data / "faster-coco-eval/cocoapi/instances_val2014_100.json")
    ours = read_coco(results, reference=truth)
    records = json.loads(results.read_text())
    assert len(ours.annotations) == len(records) == 734
    ann = ours.annotations
    # pycocotools' loadRes derives each box from its mask with toBbox
    expected = mask_util.toBbox([r["segmentation"] for r in records])
    np.testing.assert_array_equal(ann.bbox[:, :2], expected[:, :2])
    np.testing.assert_array_equal(ann.bbox[:, 2:] - ann.bbox[:, :2], expected[:, 2:])
    np.testing.assert_array_equal(ann.score, [r["score"] for r in records])
    # (pycocotools' area() of a list overflows under numpy 2, so one mask at a time)
    np.testing.assert_array_equal(ann.area, [mask_util.area(r["segmentation"]) for r in records])


def test_keypoint_results_take_their_box_from_the_keypoints(shared_data: Path) -> None:
    path = shared_data / "cocoapi-results/person_keypoints_val2014_fakekeypoints100_results.json"
    ours = read(path)
    records = json.loads(path.read_text())
    first = np.array(records[0]["keypoints"], dtype=float).reshape(-1, 3)
    assert ours.annotations.keypoints.row(0).tolist() == first.tolist()
    assert ours.annotations.bbox[0].tolist() == [
        first[:, 0].min(),
        first[:, 1].min(),
        first[:, 0].max(),
        first[:, 1].max(),
    ]
    assert (ours.annotations.kind == Kind.KEYPOINTS).all()
    assert ours.info == {"coco_results": True}


@pytest.mark.parametrize(
    "relative",
    [
        "datumaro-assets/coco_dataset/coco_instances/annotations/instances_val.json",
        "datumaro-assets/coco_dataset/coco_person_keypoints/annotations/person_keypoints_train.json",
        "faster-coco-eval/cocoapi/instances_val2014_100.json",
        "faster-coco-eval/keypoints_dataset/gt_dataset.json",
        "faster-coco-eval/dt_dataset.json",
    ],
)
def test_coco_round_trip_is_lossless(shared_data: Path, tmp_path: Path, relative: str) -> None:
    original = read(shared_data / relative)
    report = write_coco(original, tmp_path / "out.json")
    assert report.lossless
    again = read(tmp_path / "out.json")
    assert_same_annotations(original.annotations, again.annotations)
    assert again.images.file_name.tolist() == original.images.file_name.tolist()
    assert again.taxonomy == original.taxonomy
    # and pycocotools reads what we wrote, with the same boxes
    reference = COCO_API.COCO(str(tmp_path / "out.json"))
    assert len(reference.anns) == len(original.annotations)


def test_results_round_trip_through_the_results_list(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "cocoapi-results/instances_val2014_fakebbox100_results.json"
    truth = read(shared_data / "faster-coco-eval/cocoapi/instances_val2014_100.json")
    results = read_coco(path, reference=truth)
    write_coco(results, tmp_path / "res.json", results=True)
    written = json.loads((tmp_path / "res.json").read_text())
    original = json.loads(path.read_text())
    assert [r["image_id"] for r in written] == [r["image_id"] for r in original]
    assert [r["score"] for r in written] == [r["score"] for r in original]
    np.testing.assert_allclose(
        [r["bbox"] for r in written], [r["bbox"] for r in original], atol=1e-9
    )
    # pycocotools accepts our results list against the ground truth
    reference = COCO_API.COCO(
        str(shared_data / "faster-coco-eval/cocoapi/instances_val2014_100.json")
    )
    assert len(reference.loadRes(str(tmp_path / "res.json")).anns) == len(original)


@pytest.mark.parametrize("branch", ["bbox", "segmentation", "keypoints"])
@pytest.mark.parametrize("checked", [False, True])
def test_results_area_is_the_one_load_res_sets(tmp_path: Path, branch: str, checked: bool) -> None:
    # loadRes picks its branch from the first record and never keeps a result's own area:
    # with a bbox (even beside a segmentation) the area is the box's w * h
    document = minimal()
    document["images"][0].update(width=60, height=50)
    gt_path = write_json(tmp_path / "gt.json", document)
    polygons = [[3.5, 2.25, 30.0, 4.0, 27.5, 40.75, 5.0, 33.0], [10, 10, 50, 12, 40, 45]]
    results = []
    for index, polygon in enumerate(polygons * 2):
        record = {"image_id": 1, "category_id": 1, "score": 0.9 - index / 10, "area": 7.5}
        if branch == "keypoints":
            record["keypoints"] = [
                v for x, y in zip(polygon[::2], polygon[1::2]) for v in (x, y, 2)
            ]
        else:
            rle = mask_util.merge(mask_util.frPyObjects([polygon], 50, 60))
            record["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            record["bbox"] = [1.5 + index, 2.25, 30.5, 40.125]  # not the mask's box
        results.append(record)
    if branch == "bbox":
        results[3]["segmentation"] = [polygons[1]]  # a polygon beside its box
    if branch == "segmentation":
        del results[0]["bbox"]  # the first record decides; the others keep their box
    dt_path = write_json(tmp_path / "dt.json", results)
    truth = read_coco(gt_path)
    errors = ErrorLog(dt_path, collect=True) if checked else None  # the checked path
    ours = read_coco(dt_path, reference=truth, errors=errors)
    reference = COCO_API.COCO(str(gt_path)).loadRes(str(dt_path))
    expected = [float(reference.anns[i + 1]["area"]) for i in range(len(results))]
    assert ours.annotations.area.tolist() == expected
    if branch == "bbox":
        assert expected == [r["bbox"][2] * r["bbox"][3] for r in results]


def test_string_image_ids_are_named_not_guessed(shared_data: Path) -> None:
    path = shared_data / "faster-coco-eval/gt_ignore_test.json"
    with pytest.raises(FormatError) as info:
        read(path)
    assert (info.value.record, info.value.field) == ("images[0] (id=2299)", "id")
    assert "got '2299'" in str(info.value)


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def minimal(**annotation: object) -> dict:
    record = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}
    record.update(annotation)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "car"}],
        "annotations": [record],
    }


@pytest.mark.parametrize(
    ("annotation", "field", "message"),
    [
        pytest.param({"bbox": [1, 1, -3, 2]}, "bbox", "width and height >= 0", id="negative-width"),
        pytest.param(
            {"bbox": [1, 1, 2]}, "bbox", "expected [x, y, width, height]", id="three-numbers"
        ),
        pytest.param(
            {"bbox": [1, "1", 2, 2]}, "bbox", "expected 4 numbers", id="string-coordinate"
        ),
        pytest.param(
            {"category_id": 9}, "category_id", "unknown class id 9", id="unknown-category"
        ),
        pytest.param({"image_id": 3}, "image_id", "unknown image id 3", id="unknown-image"),
        pytest.param(
            {"bbox": [5, 5, 20, 2]}, "bbox", "outside its 10x10 image", id="outside-image"
        ),
        pytest.param(
            {"segmentation": [[0, 0, 1]]}, "segmentation", "polygons of >= 3", id="short-polygon"
        ),
        pytest.param(
            {"segmentation": {"size": [2, 2], "counts": [1, 2]}},
            "segmentation",
            "runs cover 3 pixels, expected height*width = 4",
            id="rle-wrong-length",
        ),
        pytest.param({"score": "high"}, "score", "expected a number", id="string-score"),
    ],
)
def test_malformed_annotation_names_file_record_and_field(
    tmp_path: Path, annotation: dict, field: str, message: str
) -> None:
    path = write_json(tmp_path / "bad.json", minimal(**annotation))
    with pytest.raises(FormatError) as info:
        read(path)
    error = info.value
    assert error.path == path
    assert error.record == "annotations[0] (id=7)"
    assert error.field == field
    assert message in str(error)
    assert str(error).startswith("bad.json: annotations[0] (id=7): ")


def test_truncated_json_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(minimal())[:-20])
    with pytest.raises(FormatError, match=r"cut\.json: invalid JSON"):
        read(path, "coco")


def test_negative_image_size_is_named(tmp_path: Path) -> None:
    document = minimal()
    document["images"][0]["height"] = -4
    with pytest.raises(FormatError) as info:
        read(write_json(tmp_path / "bad.json", document))
    assert (info.value.record, info.value.field) == ("images[0] (id=1)", "height")


def test_collecting_lists_every_problem_and_keeps_the_good_records(tmp_path: Path) -> None:
    document = minimal()
    good = dict(document["annotations"][0], id=8)
    document["annotations"] = [
        dict(good, id=1, bbox=[0, 0, -1, 1]),
        good,
        dict(good, id=3, category_id=5),
        dict(good, id=4, bbox=[1, 2]),
    ]
    path = write_json(tmp_path / "many.json", document)
    log = ErrorLog(path, collect=True)
    dataset = read(path, errors=log)
    assert [(e.record, e.field) for e in log.errors] == [
        ("annotations[0] (id=1)", "bbox"),
        ("annotations[3] (id=4)", "bbox"),
        ("annotations[2] (id=3)", "category_id"),
    ]
    assert dataset.annotations.id.tolist() == [8]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    dataset = read(write_json(tmp_path / "ok.json", minimal()))
    target = tmp_path / "out.json"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="exists"):
        write_coco(dataset, target)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.json", "out.json"]


def test_detection_tells_coco_from_results(shared_data: Path) -> None:
    assert detect_format(shared_data / "faster-coco-eval/dt_dataset.json") == "coco"
    assert (
        detect_format(shared_data / "cocoapi-results/instances_val2014_fakebbox100_results.json")
        == "coco"
    )


def test_tags_are_reported_as_dropped(tmp_path: Path) -> None:
    base = read(write_json(tmp_path / "ok.json", minimal()))
    tag = Annotations.create(image_id=[1], class_id=[1], bbox=[[np.nan] * 4], id=[99])
    dataset = Dataset(Annotations.concat([base.annotations, tag]), base.images, base.taxonomy)
    report = write_coco(dataset, tmp_path / "out.json")
    assert [(d.what, d.count) for d in report.dropped] == [("tags", 1)]
    assert len(json.loads((tmp_path / "out.json").read_text())["annotations"]) == 1
