from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, rle_area
from labelgate.core.dataset import Dataset
from labelgate.core.evaluate import Evaluation, evaluate, rasterize_polygons
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.core.images import Images
from labelgate.core.masks import rle_from_string
from labelgate.core.taxonomy import Taxonomy
from labelgate.errors import ValidationError
from labelgate.formats.coco import read_coco, write_coco

coco_module = pytest.importorskip("pycocotools.coco")
cocoeval_module = pytest.importorskip("pycocotools.cocoeval")

TOLERANCE = 1e-9


def run_pycocotools(
    gt_path: Path, results: Path | list[dict[str, Any]], iou_type: str = "bbox", **params: Any
) -> Any:
    """COCOeval on the files, with its prints swallowed; returns the evaluator."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(results if isinstance(results, list) else str(results))
        evaluator = cocoeval_module.COCOeval(coco_gt, coco_dt, iou_type)
        for name, value in params.items():
            setattr(evaluator.params, name, value)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def assert_same(ours: Evaluation, theirs: Any) -> None:
    np.testing.assert_allclose(ours.stats, theirs.stats, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(ours.precision, theirs.eval["precision"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(ours.recall, theirs.eval["recall"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(ours.scores, theirs.eval["scores"], rtol=0, atol=TOLERANCE)


def expected_stats(markdown: Path, heading: str) -> list[float]:
    """The numbers of the list that follows ``heading`` in an EXPECTED.md."""
    text = markdown.read_text()
    start = text.index(heading) + len(heading)
    block = text[start : text.index("]", start)]
    return [float(x) for x in re.findall(r"-?\d+\.\d+", block)]


# --- the shared third-party files -------------------------------------------------------


def test_fake_bbox_results_equal_pycocotools_and_the_published_stats(shared_data: Path) -> None:
    gt_path = shared_data / "faster-coco-eval" / "cocoapi" / "instances_val2014_100.json"
    dt_path = shared_data / "cocoapi-results" / "instances_val2014_fakebbox100_results.json"
    truth = read_coco(gt_path)
    result = evaluate(truth, read_coco(dt_path, reference=truth).annotations)
    assert_same(result, run_pycocotools(gt_path, dt_path))
    published = expected_stats(shared_data / "cocoapi-results" / "EXPECTED.md", "bbox = [")
    np.testing.assert_allclose(result.stats, published, rtol=0, atol=1e-10)
    assert result.images == 100


def test_results_with_their_own_area_use_the_box_area_as_coco_does(shared_data: Path) -> None:
    # dt_dataset.json carries ``area`` (the polygon's) on detections; loadRes replaces it
    gt_path = shared_data / "faster-coco-eval" / "gt_dataset.json"
    dt_path = shared_data / "faster-coco-eval" / "dt_dataset.json"
    truth = read_coco(gt_path)
    result = evaluate(truth, read_coco(dt_path, reference=truth).annotations)
    assert_same(result, run_pycocotools(gt_path, dt_path))


def test_review_object_detection_metrics_sample_equals_pycocotools(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = shared_data / "review-object-detection-metrics" / "tests" / "test_coco_eval"
    gt_path = folder / "gts" / "sampled_gts_bbox_area.json"
    # the detections are an instances-style document; COCOeval takes its annotations list
    records = json.loads((folder / "dets" / "sampled_bbox_results.json").read_text())
    results = tmp_path / "results.json"
    results.write_text(json.dumps(records["annotations"]))
    truth = read_coco(gt_path)
    result = evaluate(truth, read_coco(results, reference=truth).annotations)
    assert_same(result, run_pycocotools(gt_path, results))
    published = [0.503647, 0.696973, 0.571667, 0.593252, 0.557991, 0.489363]
    published += [0.386813, 0.593680, 0.595353, 0.654764, 0.603130, 0.553744]
    np.testing.assert_allclose(result.stats, published, rtol=0, atol=5e-7)


def test_ignore_fixture_with_string_image_ids_equals_pycocotools(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = shared_data / "faster-coco-eval"
    document = json.loads((folder / "gt_ignore_test.json").read_text())
    results = json.loads((folder / "dt_ignore_test.json").read_text())
    # labelgate refuses string image ids; renumber both files the same way
    numbers = {str(image["id"]): n for n, image in enumerate(document["images"], start=1)}
    for image in document["images"]:
        image["id"] = numbers[str(image["id"])]
    for record in document["annotations"] + results:
        record["image_id"] = numbers[str(record["image_id"])]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_path.write_text(json.dumps(document))
    dt_path.write_text(json.dumps(results))
    truth = read_coco(gt_path)
    result = evaluate(truth, read_coco(dt_path, reference=truth).annotations)
    assert_same(result, run_pycocotools(gt_path, dt_path))


def coco_rasterize(rings: list[list[float]], height: int, width: int) -> Any:
    """pycocotools' annToRLE for a polygon: frPyObjects, merge, decoded counts."""
    mask = pytest.importorskip("pycocotools.mask")
    return rle_from_string(mask.merge(mask.frPyObjects(rings, height, width))["counts"].decode())


def segm_inputs(gt_path: Path, dt_path: Path) -> tuple[Dataset, Annotations]:
    """Both files read, with their polygons rasterized as COCOeval rasterizes them."""
    truth = read_coco(gt_path)
    found = read_coco(dt_path, reference=truth).annotations
    truth = Dataset(
        rasterize_polygons(truth.annotations, truth.images, coco_rasterize),
        truth.images,
        truth.taxonomy,
    )
    return truth, rasterize_polygons(found, truth.images, coco_rasterize)


def test_fake_segm_results_equal_pycocotools_and_the_published_stats(shared_data: Path) -> None:
    # crowd ground truths are uncompressed RLE, the rest polygons; detections compressed RLE
    gt_path = shared_data / "faster-coco-eval" / "cocoapi" / "instances_val2014_100.json"
    dt_path = shared_data / "cocoapi-results" / "instances_val2014_fakesegm100_results.json"
    truth, found = segm_inputs(gt_path, dt_path)
    assert truth.annotations.iscrowd.any()
    result = evaluate(truth, found, iou_type="segm")
    assert_same(result, run_pycocotools(gt_path, dt_path, "segm"))
    published = expected_stats(shared_data / "cocoapi-results" / "EXPECTED.md", "segm = [")
    np.testing.assert_allclose(result.stats, published, rtol=0, atol=1e-10)


def test_polygon_detections_merged_to_rle_equal_the_published_segm_stats(
    shared_data: Path, tmp_path: Path
) -> None:
    # faster-coco-eval's test_coco_eval: bbox dropped, each polygon merged to one RLE
    mask = pytest.importorskip("pycocotools.mask")
    folder = shared_data / "faster-coco-eval"
    gt_path = folder / "gt_dataset.json"
    images = {i["id"]: i for i in json.loads(gt_path.read_text())["images"]}
    results = json.loads((folder / "dt_dataset.json").read_text())
    for record in results:
        image = images[record["image_id"]]
        rle = mask.merge(mask.frPyObjects(record["segmentation"], image["height"], image["width"]))
        record["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
        del record["bbox"]
    dt_path = tmp_path / "dt.json"
    dt_path.write_text(json.dumps(results))
    truth, found = segm_inputs(gt_path, dt_path)
    result = evaluate(truth, found, iou_type="segm")
    assert_same(result, run_pycocotools(gt_path, dt_path, "segm"))
    published = [0.6947194719471946, 0.6947194719471946, 0.6947194719471946, -1.0]
    published += [0.7367986798679867, 0.0, 0.6666666666666666, 0.75, 0.75, -1.0]
    published += [0.7916666666666666, 0.0]
    np.testing.assert_allclose(result.stats, published, rtol=0, atol=1e-12)


def test_keypoints_equal_pycocotools_and_the_published_stats(shared_data: Path) -> None:
    folder = shared_data / "faster-coco-eval" / "keypoints_dataset"
    gt_path, dt_path = folder / "gt_dataset.json", folder / "dt_dataset.json"
    truth = read_coco(gt_path)
    result = evaluate(truth, read_coco(dt_path, reference=truth).annotations, iou_type="keypoints")
    assert_same(result, run_pycocotools(gt_path, dt_path, "keypoints"))
    published = expected_stats(shared_data / "faster-coco-eval" / "EXPECTED.md", "`):\n[")
    np.testing.assert_allclose(result.stats, published, rtol=0, atol=1e-12)
    assert result.stats_names == (
        "AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large"
    )  # fmt: skip
    assert result.max_dets == (20,)


# --- generated data with every awkward case ----------------------------------------------


def awkward_pair(seed: int, n_images: int = 60) -> tuple[Dataset, Dataset]:
    """Generated truth and predictions with crowds, score ties and missing images/classes."""
    rng = np.random.default_rng(seed)
    truth = generate_dataset(n_images, seed=seed)
    ann = truth.annotations
    n = len(ann)
    # crowd regions, and COCO-style areas (a polygon's, below the box's)
    crowd = rng.random(n) < 0.08
    area = ann.area * rng.uniform(0.4, 1.0, n)
    # one class keeps no ground truth at all (its detections are all false positives)
    absent = int(truth.taxonomy.ids[rng.integers(len(truth.taxonomy))])
    keep = ann.class_id != absent
    ann = ann.replace(iscrowd=crowd, area=area).take(np.flatnonzero(keep))
    truth = Dataset(ann, truth.images, truth.taxonomy)
    noise = NoiseModel(jitter=0.08, duplicate_probability=0.05, false_positives_per_image=2.0)
    predicted = perturb(
        generate_dataset(n_images, seed=seed), noise, seed=seed + 1, as_predictions=True
    ).annotations
    # tied scores, images without detections
    score = np.round(predicted.score, 1)
    no_dets = rng.choice(truth.images.id, size=max(1, n_images // 10), replace=False)
    rows = np.flatnonzero(~np.isin(predicted.image_id, no_dets))
    predicted = predicted.replace(score=score).take(rows)
    return truth, Dataset(predicted, truth.images, truth.taxonomy)


@pytest.mark.parametrize("seed", range(12))
def test_generated_data_equals_pycocotools(seed: int, tmp_path: Path) -> None:
    truth, predicted = awkward_pair(seed)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    write_coco(truth, gt_path)
    write_coco(predicted, dt_path, results=True)
    truth = read_coco(gt_path)
    detections = read_coco(dt_path, reference=truth).annotations
    assert truth.annotations.iscrowd.any()
    assert_same(evaluate(truth, detections), run_pycocotools(gt_path, dt_path))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_dets", [(1, 2, 3), (1, 5, 10)])
def test_max_dets_truncation_equals_pycocotools(
    seed: int, max_dets: tuple[int, int, int], tmp_path: Path
) -> None:
    truth, predicted = awkward_pair(100 + seed)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    write_coco(truth, gt_path)
    write_coco(predicted, dt_path, results=True)
    truth = read_coco(gt_path)
    detections = read_coco(dt_path, reference=truth).annotations
    ours = evaluate(truth, detections, max_dets=max_dets)
    assert_same(ours, run_pycocotools(gt_path, dt_path, maxDets=list(max_dets)))
    assert ours.stats_names[6:9] == tuple(f"AR{m}" for m in max_dets)


@pytest.mark.parametrize("seed", range(3))
def test_pooled_classes_equal_pycocotools_use_cats_0(seed: int, tmp_path: Path) -> None:
    truth, predicted = awkward_pair(200 + seed)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    write_coco(truth, gt_path)
    write_coco(predicted, dt_path, results=True)
    truth = read_coco(gt_path)
    detections = read_coco(dt_path, reference=truth).annotations
    ours = evaluate(truth, detections, use_cats=False)
    assert_same(ours, run_pycocotools(gt_path, dt_path, useCats=0))


@pytest.mark.parametrize("thresholds", [[0.3], [0.1, 0.9, 0.99], [0.0, 1.0], [0.8, 0.5, 0.8, 0.65]])
def test_custom_iou_thresholds_equal_pycocotools(thresholds: list[float], tmp_path: Path) -> None:
    truth, predicted = awkward_pair(300, n_images=30)
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dt.json"
    write_coco(truth, gt_path)
    write_coco(predicted, dt_path, results=True)
    truth = read_coco(gt_path)
    detections = read_coco(dt_path, reference=truth).annotations
    ours = evaluate(truth, detections, iou_thresholds=thresholds)
    assert_same(ours, run_pycocotools(gt_path, dt_path, iouThrs=np.array(thresholds)))


def octagon(x: float, y: float, w: float, h: float) -> list[float]:
    """A polygon inside the box (its corners cut), so that mask and box IoU differ."""
    a, b = w / 4, h / 4
    points = [(x + a, y), (x + w - a, y), (x + w, y + b), (x + w, y + h - b)]
    points += [(x + w - a, y + h), (x + a, y + h), (x, y + h - b), (x, y + b)]
    return [round(c, 2) for point in points for c in point]


def octagon_files(seed: int, folder: Path, *, boxes: bool) -> tuple[Path, Path]:
    """Generated octagon masks (crowds as uncompressed RLE) and compressed-RLE detections.

    With ``boxes`` each detection keeps its ``bbox`` beside its ``segmentation``, so that
    ``COCO.loadRes`` takes its bbox branch (area = the box's ``w * h``, not the mask's).
    """
    mask = pytest.importorskip("pycocotools.mask")
    truth, predicted = awkward_pair(seed, n_images=30)
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    write_coco(truth, gt_path)
    write_coco(predicted, dt_path, results=True)
    document = json.loads(gt_path.read_text())
    images = {i["id"]: (i["height"], i["width"]) for i in document["images"]}
    for record in document["annotations"]:
        record["segmentation"] = [octagon(*record["bbox"])]
        if record["iscrowd"]:  # crowd regions as uncompressed RLE, as COCO stores them
            rle = mask.frPyObjects(record["segmentation"], *images[record["image_id"]])
            counts = rle_from_string(mask.merge(rle)["counts"].decode()).tolist()
            record["segmentation"] = {"size": list(images[record["image_id"]]), "counts": counts}
    gt_path.write_text(json.dumps(document))
    results = json.loads(dt_path.read_text())
    for record in results:  # detections as compressed RLE
        height, width = images[record["image_id"]]
        box = record["bbox"] if boxes else record.pop("bbox")
        rle = mask.merge(mask.frPyObjects([octagon(*box)], height, width))
        record["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


@pytest.mark.parametrize("seed", range(4))
def test_generated_masks_with_crowds_equal_pycocotools_segm(seed: int, tmp_path: Path) -> None:
    # without a box, loadRes sets a detection's area to its mask's pixel count
    gt_path, dt_path = octagon_files(400 + seed, tmp_path, boxes=False)
    found_truth, found = segm_inputs(gt_path, dt_path)
    assert found_truth.annotations.iscrowd.any()
    result = evaluate(found_truth, found, iou_type="segm")
    assert_same(result, run_pycocotools(gt_path, dt_path, "segm"))


@pytest.mark.parametrize("seed", range(3))
def test_segm_results_with_a_bbox_use_the_box_area_as_coco_does(seed: int, tmp_path: Path) -> None:
    # bbox and segmentation on every result: loadRes's bbox branch wins, area = w * h
    gt_path, dt_path = octagon_files(500 + seed, tmp_path, boxes=True)
    found_truth, found = segm_inputs(gt_path, dt_path)
    result = evaluate(found_truth, found, iou_type="segm")
    assert_same(result, run_pycocotools(gt_path, dt_path, "segm"))
    # the case is exercised: box and mask areas fall on either side of an area-range bound
    box_area = np.prod(found.bbox[:, 2:] - found.bbox[:, :2], axis=1)
    pixels = rle_area(found.rle_counts)
    low, high = np.minimum(box_area, pixels), np.maximum(box_area, pixels)
    assert any(((low < bound) & (high > bound)).any() for bound in (32.0**2, 96.0**2))


def keypoint_files(seed: int, folder: Path) -> tuple[Path, Path]:
    """Generated people: crowds, unlabelled ones, areas on every range, tied scores."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "width": 900, "height": 900, "file_name": f"{i}.jpg"} for i in range(20)]
    people, results = [], []
    for image in range(20):
        for _ in range(int(rng.integers(0, 6))):
            x, y = rng.uniform(0, 400, 2)
            w, h = rng.uniform(10, 200, 2)
            points = np.stack(
                [x + rng.uniform(0, w, 17), y + rng.uniform(0, h, 17), rng.integers(0, 3, 17)], 1
            )
            if rng.random() < 0.15:
                points[:, 2] = 0  # no labelled keypoint: ignored
            points[points[:, 2] == 0, :2] = 0
            people.append(
                {
                    "id": len(people) + 1,
                    "image_id": image,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": float(w * h * rng.uniform(0.3, 1.0)),
                    "iscrowd": int(rng.random() < 0.08),
                    "num_keypoints": int((points[:, 2] > 0).sum()),
                    "keypoints": points.ravel().tolist(),
                }
            )
            for _ in range(int(rng.integers(0, 3))):
                found = points.copy()
                found[:, :2] = np.array([x, y]) + rng.normal(0, 0.03, (17, 2)) * [w, h]
                found[:, :2] += (points[:, :2] - [x, y]) * (points[:, 2:] > 0)
                found[:, :2] = np.clip(found[:, :2], 0, 899)
                found[:, 2] = 1
                record = {
                    "image_id": image,
                    "category_id": 1,
                    "keypoints": found.ravel().tolist(),
                    "score": float(np.round(rng.random(), 1)),
                }
                results.append(record)
    document = {
        "images": images,
        "annotations": people,
        "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)]}],
    }
    gt_path, dt_path = folder / "gt.json", folder / "dt.json"
    gt_path.write_text(json.dumps(document))
    dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


@pytest.mark.parametrize("seed", range(6))
def test_generated_keypoints_equal_pycocotools(seed: int, tmp_path: Path) -> None:
    gt_path, dt_path = keypoint_files(seed, tmp_path)
    truth = read_coco(gt_path)
    found = read_coco(dt_path, reference=truth).annotations
    result = evaluate(truth, found, iou_type="keypoints")
    assert_same(result, run_pycocotools(gt_path, dt_path, "keypoints"))


# --- hand-made cases -----------------------------------------------------------------------


def small_truth(boxes: list[list[float]], crowd: list[bool] | None = None) -> Dataset:
    return Dataset(
        Annotations.create(
            image_id=[1] * len(boxes), class_id=[1] * len(boxes), bbox=boxes, iscrowd=crowd
        ),
        Images.create(id=[1, 2], width=[200, 200], height=[200, 200]),
        Taxonomy.from_names(["car", "bus"]),
    )


def detections(boxes: list[list[float]], scores: list[float], image: int = 1) -> Annotations:
    return Annotations.create(
        image_id=[image] * len(boxes), class_id=[1] * len(boxes), bbox=boxes, score=scores
    )


def test_detection_inside_a_crowd_box_is_ignored_not_a_false_positive() -> None:
    truth = small_truth([[0, 0, 50, 50], [100, 100, 200, 200]], crowd=[False, True])
    alone = evaluate(truth, detections([[0, 0, 50, 50]], [0.9]))
    with_crowd = evaluate(truth, detections([[0, 0, 50, 50], [110, 110, 120, 120]], [0.9, 0.95]))
    assert alone.stats[0] == pytest.approx(1.0)
    assert with_crowd.stats[0] == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    result = evaluate(truth, detections([[0, 0, 50, 50], [0, 0, 50, 50]], [0.9, 0.8]))
    assert result.stats[0] == pytest.approx(1.0)  # the duplicate ranks below the match
    flipped = evaluate(truth, detections([[0, 0, 50, 50], [0, 0, 50, 40]], [0.8, 0.9]))
    # the better-scored box (IoU 0.8) takes the gt; AP is 1 up to IoU 0.8, then 0.5
    assert 0.5 < flipped.stats[0] < 1.0


def test_class_without_ground_truth_has_ap_minus_one() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    result = evaluate(truth, detections([[0, 0, 50, 50]], [0.9]))
    assert result.class_ap().tolist() == pytest.approx([1.0, -1.0])
    assert result.class_ap(0.5).tolist() == pytest.approx([1.0, -1.0])


def test_detections_on_unknown_classes_and_images_are_dropped() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    stray = Annotations.create(
        id=[2, 3], image_id=[1, 7], class_id=[9, 1], bbox=[[0, 0, 50, 50]] * 2, score=[0.99, 0.99]
    )
    found = Annotations.concat([detections([[0, 0, 50, 50]], [0.5]), stray])
    result = evaluate(truth, found)
    assert result.dt == 1
    assert result.stats[0] == pytest.approx(1.0)


def test_per_class_thresholds_evaluate_each_class_at_its_own_iou() -> None:
    truth = small_truth([[0, 0, 100, 100]])
    found = detections([[0, 0, 100, 70]], [0.9])  # IoU 0.7
    loose = evaluate(truth, found, per_class_thresholds=np.array([0.5, 0.9]))
    tight = evaluate(truth, found, per_class_thresholds=np.array([0.75, 0.5]))
    assert loose.class_ap().tolist() == pytest.approx([1.0, -1.0])
    assert tight.class_ap().tolist() == [0.0, -1.0]
    assert loose.precision.shape[0] == 1


def test_empty_detections_give_zero_ap_and_recall() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    result = evaluate(truth, Annotations.empty())
    assert result.stats[0] == 0.0
    assert result.stats[8] == 0.0


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (np.array([0.5]), "one threshold per class"),
    ],
)
def test_bad_thresholds_are_refused(thresholds: Any, message: str) -> None:
    truth = small_truth([[0, 0, 50, 50]])
    with pytest.raises(ValidationError, match=message):
        evaluate(truth, Annotations.empty(), per_class_thresholds=thresholds)


def test_unscored_detection_is_refused() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    unscored = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 5, 5]])
    with pytest.raises(ValidationError, match="score"):
        evaluate(truth, unscored)


# --- the command line --------------------------------------------------------------------


def test_eval_command_prints_the_pycocotools_stats_as_json(shared_data: Path) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app

    gt_path = shared_data / "faster-coco-eval" / "cocoapi" / "instances_val2014_100.json"
    dt_path = shared_data / "cocoapi-results" / "instances_val2014_fakebbox100_results.json"
    outcome = CliRunner().invoke(app, ["eval", str(gt_path), str(dt_path), "--json"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.output)
    published = expected_stats(shared_data / "cocoapi-results" / "EXPECTED.md", "bbox = [")
    np.testing.assert_allclose(document["stats"], published, rtol=0, atol=1e-10)
    assert document["stats_names"][0] == "AP"
    assert (document["images"], document["dt"]) == (100, 734)
    person = next(row for row in document["per_class"] if row["name"] == "person")
    assert 0 < person["ap"] < person["ap50"] <= 1


@pytest.mark.parametrize(
    ("iou_type", "gt_name", "dt_name", "heading"),
    [
        (
            "segm",
            "faster-coco-eval/cocoapi/instances_val2014_100.json",
            "cocoapi-results/instances_val2014_fakesegm100_results.json",
            "segm = [",
        ),
        (
            "keypoints",
            "faster-coco-eval/keypoints_dataset/gt_dataset.json",
            "faster-coco-eval/keypoints_dataset/dt_dataset.json",
            "`):\n[",
        ),
    ],
)
def test_eval_command_segm_and_keypoints_print_the_published_stats(
    shared_data: Path, iou_type: str, gt_name: str, dt_name: str, heading: str
) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app

    arguments = [str(shared_data / gt_name), str(shared_data / dt_name), "--json"]
    outcome = CliRunner().invoke(app, ["eval", *arguments, "--iou-type", iou_type])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.output)
    expected = shared_data / ("cocoapi-results" if iou_type == "segm" else "faster-coco-eval")
    published = expected_stats(expected / "EXPECTED.md", heading)
    np.testing.assert_allclose(document["stats"], published, rtol=0, atol=1e-10)
    assert document["iou_type"] == iou_type


def test_eval_command_refuses_an_unknown_iou_type(shared_data: Path) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app

    gt_path = shared_data / "faster-coco-eval" / "gt_dataset.json"
    outcome = CliRunner().invoke(
        app, ["eval", str(gt_path), str(gt_path), "--iou-type", "mask", "--json"]
    )
    assert outcome.exit_code == 2
    assert "segm" in json.loads(outcome.output)["error"]


def test_segm_without_masks_is_refused() -> None:
    truth = small_truth([[0, 0, 50, 50]])
    with pytest.raises(ValidationError, match="RLE mask"):
        evaluate(truth, detections([[0, 0, 50, 50]], [0.9]), iou_type="segm")


def test_eval_command_exits_2_on_bad_input(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app

    missing = tmp_path / "missing.json"
    outcome = CliRunner().invoke(app, ["eval", str(missing), str(missing), "--json"])
    assert outcome.exit_code == 2
    assert "missing.json" in json.loads(outcome.output)["error"]
