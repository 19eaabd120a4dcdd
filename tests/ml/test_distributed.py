"""Ray scale-out: every sharded function equals its single-process counterpart exactly.

The module starts one local Ray instance (2 CPUs) for all its tests. Data are generated
(labelgate.core.generate / labelgate.ml.synthetic) with rows shuffled, so no shard is a
contiguous block of rows, and split into 3 or more shards.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.evaluate import Evaluation, evaluate
from labelgate.core.images import Images
from labelgate.errors import ValidationError
from labelgate.ml.distributed import (
    evaluate_sharded,
    find_label_errors_sharded,
    plan_shards,
    prelabel_sharded,
)
from labelgate.ml.errors import ErrorReport, find_label_errors
from labelgate.ml.synthetic import labels_with_errors, model_predictions

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'labelgate[ray]'")


@pytest.fixture(scope="module", autouse=True)
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def shuffled(ann: Annotations, seed: int) -> Annotations:
    return ann.take(np.random.default_rng(seed).permutation(len(ann)))


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Annotations]:
    inj = labels_with_errors(300, error_rate=0.01, seed=4)
    labels = inj.labels.replace(annotations=shuffled(inj.labels.annotations, 1))
    pred = shuffled(model_predictions(inj.truth, seed=5).annotations, 2)
    return labels, pred


def assert_reports_equal(a: ErrorReport, b: ErrorReport) -> None:
    for f in dataclasses.fields(ErrorReport):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            assert np.array_equal(x, y), f.name
        else:
            assert x == y, f.name
    assert a.to_dict() == b.to_dict()


def assert_evaluations_equal(a: Evaluation, b: Evaluation) -> None:
    for f in dataclasses.fields(Evaluation):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y, equal_nan=True), f.name
        else:
            assert x == y, f.name


def test_shards_are_contiguous_id_ranges_balanced_by_objects() -> None:
    ids = np.repeat(np.arange(1, 11), [10, 1, 1, 1, 1, 1, 1, 1, 1, 2])  # image 1 is heavy
    plan = plan_shards(ids, 3)
    assert len(plan) == 3
    shard = plan.shard_of(np.arange(1, 11))
    assert (np.diff(shard) >= 0).all()  # contiguous ranges in id order
    weight = np.bincount(plan.shard_of(ids), minlength=3)
    assert weight.tolist() == [10, 5, 5]  # the heavy image alone; the rest split evenly
    # sparse ids (counted after a sort, not in a table) and explicit weights: the same cuts
    assert (plan_shards(ids * 10**9, 3).starts == plan.starts * 10**9).all()
    assert (plan_shards(ids, 3, weights=np.full(len(ids), 2.0)).starts == plan.starts).all()
    rows = plan.rows(ids[::-1])
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(ids)))
    assert all((np.diff(r) > 0).all() for r in rows)  # row order kept within a shard
    with pytest.raises(ValidationError, match="at least 1 shard"):
        plan_shards(ids, 0)


@pytest.mark.parametrize("shards", [3, 7])
def test_label_errors_equal_the_single_process_run(
    data: tuple[Dataset, Annotations], shards: int
) -> None:
    labels, pred = data
    single = find_label_errors(labels, pred)
    assert len(single) > 20  # a real ranking with every kind to merge
    assert_reports_equal(find_label_errors_sharded(labels, pred, shards=shards), single)


def test_label_errors_with_given_thresholds_and_options(
    data: tuple[Dataset, Annotations],
) -> None:
    labels, pred = data
    options: dict[str, Any] = {"thresholds": {1: 0.3, 2: 0.7}, "min_score": 0.1, "temperature": 0.3}
    single = find_label_errors(labels, pred, **options)
    assert_reports_equal(find_label_errors_sharded(labels, pred, shards=4, **options), single)
    with pytest.raises(ValidationError, match=r"in \[0, 1\] for class 1"):
        find_label_errors_sharded(labels, pred, thresholds={1: 1.5}, shards=3)


def test_predictions_on_images_outside_the_table_are_scored_as_single_process(
    data: tuple[Dataset, Annotations],
) -> None:
    labels, pred = data
    extra = pred.take(np.arange(5)).replace(
        id=np.arange(5) + int(pred.id.max()) + 1, image_id=np.full(5, 10_000, dtype=np.int64)
    )
    pred2 = Annotations.concat([pred, extra])
    single = find_label_errors(labels, pred2)
    assert 10_000 in single.images.tolist()
    assert_reports_equal(find_label_errors_sharded(labels, pred2, shards=3), single)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"use_cats": False},
        {"max_dets": (1, 3, 5)},
        {"iou_thresholds": [0.3, 0.5, 0.9]},
    ],
    ids=["coco", "no-cats", "max-dets", "thresholds"],
)
def test_coco_evaluation_equals_the_single_process_run(
    data: tuple[Dataset, Annotations], options: dict[str, Any]
) -> None:
    labels, pred = data
    ann = labels.annotations
    # crowd regions (they absorb detections) and a gt with id 0 (COCOeval's no-match quirk)
    crowd = np.zeros(len(ann), dtype=bool)
    crowd[::37] = True
    ids = ann.id.copy()
    ids[5] = 0
    truth = labels.replace(annotations=ann.replace(iscrowd=crowd, id=ids))
    single = evaluate(truth, pred, **options)
    assert single.stats[1] > 0.3  # AP50: a meaningful evaluation, not an empty one
    assert_evaluations_equal(evaluate_sharded(truth, pred, shards=3, **options), single)


def test_per_class_thresholds_and_more_shards_than_images(
    data: tuple[Dataset, Annotations],
) -> None:
    labels, pred = data
    tiers = np.linspace(0.4, 0.8, len(labels.taxonomy.ids))
    single = evaluate(labels, pred, per_class_thresholds=tiers)
    sharded = evaluate_sharded(labels, pred, per_class_thresholds=tiers, shards=1000)
    assert_evaluations_equal(sharded, single)


def test_evaluation_without_detections(data: tuple[Dataset, Annotations]) -> None:
    labels, pred = data
    none = pred.take(np.zeros(0, dtype=np.int64))
    assert_evaluations_equal(evaluate_sharded(labels, none, shards=3), evaluate(labels, none))


def test_prelabeling_with_the_opencv_cascade_equals_one_predict_call() -> None:
    pytest.importorskip("cv2", reason="opencv-python-headless is the [ml] extra")
    from labelgate.ml.predictors import CascadePredictor, draw_face

    images = Images.create(id=[3, 1, 8, 5, 9, 2])
    faces = [draw_face(size) for size in (256, 200, 320, 256, 180, 240)]
    factory = functools.partial(CascadePredictor, {1: "haarcascade_frontalface_default.xml"})
    single = factory().predict(images, faces)
    assert len(np.unique(single.image_id)) >= 4  # the drawn faces are found
    # the predictor itself pickles (its classifiers are reloaded on the worker); a factory too
    for predictor in (factory(), factory):
        sharded = prelabel_sharded(predictor, images, faces, shards=3)
        for f in ("id", "image_id", "class_id", "bbox", "score", "source"):
            assert np.array_equal(getattr(sharded, f), getattr(single, f)), f

    import threading

    locked = factory()
    locked.lock = threading.Lock()  # type: ignore[attr-defined]  # a lock never pickles
    with pytest.raises(ValidationError, match="pass a factory"):
        prelabel_sharded(locked, images, faces, shards=3)


def test_cli_errors_and_eval_print_the_same_json_with_shards(
    data: tuple[Dataset, Annotations], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app
    from labelgate.formats.coco import write_coco

    labels, pred = data
    write_coco(labels, tmp_path / "labels.json")
    write_coco(labels.replace(annotations=pred), tmp_path / "pred.json", results=True)
    runner = CliRunner()
    commands = [
        ["errors", "--labels", str(tmp_path / "labels.json"), "--predictions",
         str(tmp_path / "pred.json"), "--json"],
        ["eval", str(tmp_path / "labels.json"), str(tmp_path / "pred.json"), "--json"],
    ]  # fmt: skip
    for command in commands:
        single = runner.invoke(app, command)
        assert single.exit_code == 0, single.stdout
        # the module's Ray session is running: --ray local joins it, --shards alone too
        for extra in (["--shards", "3"], ["--ray", "local", "--shards", "4"]):
            sharded = runner.invoke(app, [*command, *extra])
            assert sharded.exit_code == 0, sharded.stdout
            assert json.loads(sharded.stdout) == json.loads(single.stdout)


def test_tied_scores_and_images_without_detections(data: tuple[Dataset, Annotations]) -> None:
    labels, pred = data
    # scores rounded to one decimal: many ties, broken by COCO's file order within an image
    tied = pred.replace(score=np.round(pred.score, 1))
    tied = tied[~np.isin(tied.image_id, labels.images.id[::9])]
    single = evaluate(labels, tied)
    assert_evaluations_equal(evaluate_sharded(labels, tied, shards=5), single)
    assert_reports_equal(
        find_label_errors_sharded(labels, tied, shards=5), find_label_errors(labels, tied)
    )


def test_segm_on_cocoapi_results_with_crowds_equals_the_single_process_run(
    shared_data: Path,
) -> None:
    from labelgate.cli.evaluate import _rasterize  # pycocotools' rasterization, as COCOeval
    from labelgate.core.evaluate import rasterize_polygons
    from labelgate.formats.coco import read_coco

    gt_path = shared_data / "faster-coco-eval" / "cocoapi" / "instances_val2014_100.json"
    dt_path = shared_data / "cocoapi-results" / "instances_val2014_fakesegm100_results.json"
    truth = read_coco(gt_path)
    found = read_coco(dt_path, reference=truth).annotations
    truth = Dataset(
        rasterize_polygons(truth.annotations, truth.images, _rasterize),
        truth.images,
        truth.taxonomy,
    )
    found = rasterize_polygons(found, truth.images, _rasterize)
    assert truth.annotations.iscrowd.any()
    single = evaluate(truth, found, iou_type="segm")
    assert single.stats[0] > 0.3  # the published fake-segm AP is 0.320
    assert_evaluations_equal(evaluate_sharded(truth, found, iou_type="segm", shards=4), single)


def test_keypoints_equal_the_single_process_run(shared_data: Path) -> None:
    from labelgate.formats.coco import read_coco

    folder = shared_data / "faster-coco-eval" / "keypoints_dataset"
    truth = read_coco(folder / "gt_dataset.json")
    found = read_coco(folder / "dt_dataset.json", reference=truth).annotations
    single = evaluate(truth, found, iou_type="keypoints")
    assert single.stats[0] > 0
    sharded = evaluate_sharded(truth, found, iou_type="keypoints", shards=3)
    assert_evaluations_equal(sharded, single)


def test_label_errors_with_polygons_in_some_shards_only(
    data: tuple[Dataset, Annotations],
) -> None:
    from labelgate.core.annotations import Kind
    from labelgate.core.ragged import Ragged

    labels, pred = data
    ann = labels.annotations
    # the labels of the lowest image ids become polygons: one shard holds them all
    rows = np.flatnonzero(ann.image_id <= 40)
    boxes = ann.bbox[rows]
    rings = Ragged.from_rows([np.array([[a, b], [c, b], [c, d], [a, d]]) for a, b, c, d in boxes])
    polygons = Annotations.create(
        id=ann.id[rows],
        image_id=ann.image_id[rows],
        class_id=ann.class_id[rows],
        bbox=boxes,
        kind=[Kind.POLYGON] * len(rows),
        rings=rings,
        ring_offsets=np.arange(len(rows) + 1),
    )
    others = ann.take(np.flatnonzero(ann.image_id > 40))
    mixed = labels.replace(annotations=Annotations.concat([others, polygons]))
    single = find_label_errors(mixed, pred)
    assert_reports_equal(find_label_errors_sharded(mixed, pred, shards=4), single)


def test_ray_missing_or_unreachable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from labelgate.ml.distributed import ray_session

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
        with pytest.raises(ValidationError, match=r"pip install 'labelgate\[ray\]'"):
            ray_session()

    def refuse(**kwargs: Any) -> None:
        raise ConnectionError(f"could not connect to {kwargs['address']}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ValidationError, match=r"cannot start or join 'ray://nowhere:1'"):
        ray_session("ray://nowhere:1")


@pytest.mark.parametrize("mode", ["one-threshold", "taxonomy", "per-row", "no-swaps"])
def test_matching_equals_the_single_process_match(
    data: tuple[Dataset, Annotations], mode: str
) -> None:
    from labelgate.core.matching import Matching, match
    from labelgate.ml.distributed import match_sharded

    labels, pred = data
    ref, other = labels.annotations, pred
    kwargs: dict[str, Any] = {"iou_threshold": 0.5}
    if mode == "taxonomy":
        kwargs = {"taxonomy": labels.taxonomy}
    elif mode == "per-row":
        kwargs = {"iou_threshold": np.random.default_rng(0).uniform(0.3, 0.8, len(ref))}
    elif mode == "no-swaps":
        kwargs = {"iou_threshold": 0.5, "swaps": False}
    single = match(ref, other, **kwargs)
    assert len(single.ref_rows) > 1000
    assert mode == "no-swaps" or len(single.swap_ref_rows) > 0
    sharded = match_sharded(ref, other, shards=4, **kwargs)
    for f in dataclasses.fields(Matching):
        x, y = getattr(sharded, f.name), getattr(single, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("mode", ["tiers", "one-threshold", "per-row", "annotators", "no-swaps"])
def test_compare_equals_the_single_process_compare(
    data: tuple[Dataset, Annotations], mode: str
) -> None:
    from labelgate.core.compare import compare
    from labelgate.ml.distributed import compare_sharded

    labels, pred = data
    other = pred
    kwargs: dict[str, Any] = {}
    if mode == "one-threshold":
        kwargs = {"iou_threshold": 0.6}
    elif mode == "per-row":
        rng = np.random.default_rng(3)
        kwargs = {"row_thresholds": rng.uniform(0.3, 0.8, len(labels.annotations))}
    elif mode == "annotators":  # one matching per annotator, each sharded
        who = np.random.default_rng(4).choice([3, 7, 9], len(pred))
        other = pred.replace(annotator_id=who.astype(np.int64))
    elif mode == "no-swaps":
        kwargs = {"swaps": False}
    single = compare(labels, other, **kwargs)
    assert single.overall["matched"] > 1000
    assert mode == "no-swaps" or single.overall["class_swaps"] > 0
    sharded = compare_sharded(labels, other, shards=4, **kwargs)
    assert json.dumps(sharded.to_dict()) == json.dumps(single.to_dict())
    if mode == "annotators":
        assert [row["annotator_id"] for row in sharded.to_dict()["by_annotator"]] == [3, 7, 9]


def test_cli_compare_prints_the_same_bytes_with_shards(
    data: tuple[Dataset, Annotations], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from labelgate.cli.app import app
    from labelgate.formats.coco import write_coco

    labels, pred = data
    write_coco(labels, tmp_path / "ref.json")
    write_coco(labels.replace(annotations=pred), tmp_path / "other.json")
    runner = CliRunner()
    base = ["compare", str(tmp_path / "ref.json"), str(tmp_path / "other.json"), "--json"]
    for options in ([], ["--iou-threshold", "0.7", "--no-swaps"]):
        single = runner.invoke(app, [*base, *options])
        assert single.exit_code == 0, single.stdout
        assert json.loads(single.stdout)["overall"]["matched"] > 1000
        for extra in (["--shards", "3"], ["--ray", "local", "--shards", "5"]):
            sharded = runner.invoke(app, [*base, *options, *extra])
            assert sharded.exit_code == 0, sharded.stdout
            assert sharded.stdout == single.stdout  # byte for byte


def test_the_package_exports_the_scale_out_without_importing_ray() -> None:
    import subprocess

    code = (
        "import sys, labelgate.ml as ml, labelgate.ml.distributed as d\n"
        "assert set(d.__all__) <= set(ml.__all__), set(d.__all__) - set(ml.__all__)\n"
        "assert all(getattr(ml, n) is getattr(d, n) for n in d.__all__)\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
