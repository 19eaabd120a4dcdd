from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.dataset import Dataset
from labelgate.core.generate import NoiseModel, generate_dataset, generate_pool
from labelgate.core.masks import rle_bbox, rle_from_string, rle_to_string
from labelgate.core.matching import match
from labelgate.core.merge import merge
from labelgate.core.ragged import Ragged
from labelgate.formats.coco import write_coco
from labelgate.formats.registry import read

runner = CliRunner()


def _boxes(class_id: list[int], bbox: list[list[float]], image_id: int = 1) -> Annotations:
    return Annotations.create(image_id=[image_id] * len(class_id), class_id=class_id, bbox=bbox)


# Image 1 holds three objects. Object P: all three annotators, classes 1, 1, 2 (2-vs-1 vote).
# Object Q: annotators A and B only. Object R: annotator C only (a lone box).
A = _boxes([1, 3], [[0, 0, 10, 10], [100, 100, 120, 120]])
B = _boxes([1, 3], [[2, 0, 12, 10], [101, 100, 121, 122]])
C = _boxes([2, 5], [[1, 1, 11, 13], [300, 300, 310, 310]])


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_three_annotators_merge_by_median_and_vote_with_hand_computed_score() -> None:
    result = merge([A, B, C], iou_threshold=0.5, quorum=0.5)
    merged = result.annotations
    assert result.n_annotators == 3
    assert result.n_clusters == 3
    # P (3 members) and Q (2 members) reach quorum 0.5 (>= 1.5 annotators); R does not
    assert merged.bbox.tolist() == [[1.0, 0.0, 11.0, 10.0], [100.5, 100.0, 120.5, 121.0]]
    assert merged.class_id.tolist() == [1, 3]  # P: 2 votes for class 1 beat 1 for class 2
    assert merged.attributes["members"].values.tolist() == [3, 2]
    p = [[0, 0, 10, 10], [2, 0, 12, 10], [1, 1, 11, 13]]
    shape_p = (_iou(p[0], p[1]) + _iou(p[0], p[2]) + _iou(p[1], p[2])) / 3
    shape_q = _iou([100, 100, 120, 120], [101, 100, 121, 122])
    np.testing.assert_allclose(merged.score, [2 / 3 * shape_p, 1.0 * shape_q], rtol=1e-12)
    assert merged.source.tolist() == [Source.MERGED] * 2
    assert merged.annotator_id.tolist() == [-1, -1]
    assert merged.id.tolist() == [1, 2]
    # the lone box of annotator C goes to adjudication, with its cluster id
    adjudication = result.adjudication
    assert adjudication.bbox.tolist() == [[300.0, 300.0, 310.0, 310.0]]
    assert adjudication.class_id.tolist() == [5]
    assert adjudication.attributes["annotator_index"].values.tolist() == [2]
    assert adjudication.attributes["original_id"].values.tolist() == [2]
    lone_cluster = int(adjudication.attributes["cluster_id"].values[0])
    assert lone_cluster not in merged.attributes["cluster_id"].values.tolist()
    assert result.to_dict() == {
        "annotators": 3,
        "clusters": 3,
        "merged": 2,
        "adjudication": 1,
        "quorum": 0.5,
        "iou_threshold": 0.5,
        "mean_score": pytest.approx(float(merged.score.mean())),
    }


def test_quorum_two_thirds_sends_two_annotator_clusters_to_adjudication() -> None:
    result = merge([A, B, C], iou_threshold=0.5, quorum=0.67)
    assert result.annotations.bbox.tolist() == [[1.0, 0.0, 11.0, 10.0]]
    adjudication = result.adjudication
    # Q's two members share one cluster id; R has its own
    assert sorted(adjudication.bbox[:, 0].tolist()) == [100.0, 101.0, 300.0]
    clusters = adjudication.attributes["cluster_id"].values
    q = clusters[adjudication.bbox[:, 0] < 200]
    assert len(set(q.tolist())) == 1
    assert len(set(clusters.tolist())) == 2


def test_exactly_two_thirds_counts_as_quorum() -> None:
    result = merge([A, B, C], iou_threshold=0.5, quorum=2 / 3)
    assert len(result.annotations) == 2


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        pytest.param([4, 2, 4], 4, id="majority"),
        pytest.param([4, 2, 7], 2, id="three-way-tie-goes-to-smallest-id"),
        pytest.param([9, 9, 9], 9, id="unanimous"),
    ],
)
def test_label_is_the_vote_winner_and_ties_go_to_the_smallest_class_id(
    classes: list[int], expected: int
) -> None:
    sets = [_boxes([c], [[0, 0, 10, 10]]) for c in classes]
    result = merge(sets, iou_threshold=0.5)
    assert result.annotations.class_id.tolist() == [expected]
    votes = max(classes.count(c) for c in classes)
    assert result.annotations.score.tolist() == [pytest.approx(votes / 3)]


@pytest.mark.parametrize(
    ("shift", "clusters"),
    [
        pytest.param(3.0, 1, id="iou-0.54-joins"),  # 7x10 / 13x10 = 0.538
        pytest.param(4.0, 2, id="iou-0.43-stays-apart"),  # 6x10 / 14x10 = 0.429
    ],
)
def test_a_box_joins_a_cluster_only_at_or_above_the_threshold(shift: float, clusters: int) -> None:
    result = merge(
        [_boxes([1], [[0, 0, 10, 10]]), _boxes([1], [[shift, 0, 10 + shift, 10]])],
        iou_threshold=0.5,
    )
    assert result.n_clusters == clusters


def test_one_annotator_never_has_two_objects_in_a_cluster() -> None:
    a = _boxes([1, 1], [[0, 0, 10, 10], [1, 0, 11, 10]])  # two overlapping boxes
    b = _boxes([1], [[0, 0, 10, 10]])
    result = merge([a, b], iou_threshold=0.5, quorum=1.0)
    assert result.n_clusters == 2
    assert result.annotations.bbox.tolist() == [[0.0, 0.0, 10.0, 10.0]]
    assert result.adjudication.bbox.tolist() == [[1.0, 0.0, 11.0, 10.0]]


def test_objects_on_different_images_never_cluster() -> None:
    result = merge(
        [_boxes([1], [[0, 0, 10, 10]], image_id=1), _boxes([1], [[0, 0, 10, 10]], image_id=2)],
        iou_threshold=0.5,
        quorum=1.0,
    )
    assert len(result.annotations) == 0
    assert sorted(result.adjudication.image_id.tolist()) == [1, 2]


def test_keypoints_merge_by_median_over_visible_members() -> None:
    def person(points: list[list[float]]) -> Annotations:
        return Annotations.create(
            image_id=[1],
            class_id=[1],
            bbox=[[0, 0, 20, 20]],
            kind=[Kind.KEYPOINTS],
            keypoints=Ragged(np.array(points, dtype=np.float64), np.array([0, len(points)])),
        )

    sets = [
        person([[1, 1, 2], [10, 10, 2], [0, 0, 0]]),
        person([[3, 1, 2], [50, 50, 0], [0, 0, 0]]),  # second keypoint not labelled
        person([[2, 4, 1], [12, 14, 2], [0, 0, 0]]),
    ]
    merged = merge(sets, iou_threshold=0.5).annotations
    assert merged.kind.tolist() == [Kind.KEYPOINTS]
    assert merged.keypoints_dense().tolist() == [[[2, 1, 2], [11, 12, 2], [0, 0, 0]]]


def test_empty_and_invalid_inputs() -> None:
    result = merge([Annotations.empty(), Annotations.empty()])
    assert (len(result.annotations), len(result.adjudication), result.n_clusters) == (0, 0, 0)
    with pytest.raises(ValueError, match="at least one"):
        merge([])
    with pytest.raises(ValueError, match="quorum"):
        merge([A], quorum=1.5)


@pytest.fixture(scope="module")
def pool() -> tuple[Dataset, list[Annotations]]:
    reference = generate_dataset(150, seed=11)
    noise = NoiseModel(jitter=0.08, swap_probability=0.05, false_positives_per_image=0.3)
    labels = generate_pool(reference, [noise] * 3, seed=12)
    return reference, [labels[labels.annotator_id == j] for j in (1, 2, 3)]


def _mean_iou_with(reference: Annotations, labels: Annotations) -> float:
    return float(match(reference, labels, iou_threshold=0.5, swaps=False).iou.mean())


def test_merged_boxes_are_closer_to_the_reference_than_any_single_annotator(
    pool: tuple[Dataset, list[Annotations]],
) -> None:
    reference, sets = pool
    ref = reference.annotations
    merged = merge(sets, iou_threshold=0.5, quorum=0.5).annotations
    single = [_mean_iou_with(ref, s) for s in sets]
    consensus = _mean_iou_with(ref, merged)
    assert consensus > max(single) + 0.01, (consensus, single)


def test_a_stricter_quorum_merges_fewer_objects(pool: tuple[Dataset, list[Annotations]]) -> None:
    _, sets = pool
    loose = merge(sets, iou_threshold=0.5, quorum=0.5)
    strict = merge(sets, iou_threshold=0.5, quorum=1.0)
    assert loose.n_clusters == strict.n_clusters
    assert len(strict.annotations) < len(loose.annotations)
    assert strict.adjudication.attributes["cluster_id"].values.size > len(loose.adjudication)


def _write_inputs(tmp_path: Path) -> tuple[Dataset, list[Path]]:
    reference = generate_dataset(40, seed=5)
    labels = generate_pool(reference, [NoiseModel(jitter=0.05)] * 3, seed=6)
    paths = []
    for j in (1, 2, 3):
        path = tmp_path / f"annotator{j}.json"
        write_coco(reference.replace(annotations=labels[labels.annotator_id == j]), path)
        paths.append(path)
    return reference, paths


def test_cli_merge_writes_merged_coco_and_adjudication_and_prints_the_summary(
    tmp_path: Path,
) -> None:
    reference, paths = _write_inputs(tmp_path)
    out, adjudicate = tmp_path / "merged.json", tmp_path / "adjudicate.json"
    args = ["merge", *map(str, paths), "--out", str(out), "--iou-threshold", "0.5"]
    result = runner.invoke(app, [*args, "--adjudication", str(adjudicate), "--json"])
    assert result.exit_code == 0, result.stdout
    summary = json.loads(result.stdout)
    expected = merge([read(p).annotations for p in paths], iou_threshold=0.5, quorum=0.5).to_dict()
    assert summary == expected
    assert list(summary) == [
        "annotators", "clusters", "merged", "adjudication", "quorum", "iou_threshold",
        "mean_score",
    ]  # fmt: skip
    merged = read(out)
    assert len(merged.annotations) == summary["merged"] > 0
    np.testing.assert_allclose(
        np.sort(merged.annotations.score), np.sort(merge(
            [read(p).annotations for p in paths], iou_threshold=0.5
        ).annotations.score), rtol=1e-9,
    )  # fmt: skip
    assert merged.images.id.tolist() == reference.images.id.tolist()
    written = json.loads(adjudicate.read_text())
    clusters = {a["attributes"]["cluster_id"] for a in written["annotations"]}
    assert len(clusters) == summary["adjudication"] > 0
    # the outputs exist now: a second run refuses without --overwrite
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 2
    assert "overwrite" in json.loads(again.stdout)["error"]
    assert runner.invoke(app, [*args, "--overwrite", "--json"]).exit_code == 0


def test_cli_merge_rejects_inputs_with_other_images(tmp_path: Path) -> None:
    _, paths = _write_inputs(tmp_path)
    stranger = generate_dataset(3, seed=99)
    renamed = stranger.replace(
        images=stranger.images.replace(file_name=np.array(["x.jpg", "y.jpg", "z.jpg"], object))
    )
    write_coco(renamed, tmp_path / "stranger.json")
    result = runner.invoke(
        app,
        ["merge", str(paths[0]), str(tmp_path / "stranger.json"), "--out",
         str(tmp_path / "merged.json"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "stranger.json" in json.loads(result.stdout)["error"]
    assert not (tmp_path / "merged.json").exists()


def test_masks_merge_by_pixel_majority_as_pycocotools_decodes_them() -> None:
    mask_util = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(3)
    height, width = 23, 17

    def blob(x: int, y: int) -> np.ndarray:
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[y : y + 10, x : x + 8] = rng.random((10, 8)) < 0.8
        mask[y + 2 : y + 8, x + 2 : x + 6] = 1  # a solid core keeps the IoUs high
        return mask

    def masks(arrays: list[np.ndarray]) -> Annotations:
        counts = [
            rle_from_string(mask_util.encode(np.asfortranarray(a))["counts"].decode())
            for a in arrays
        ]
        rle = Ragged.from_rows(counts, dtype=np.int64)
        bbox = rle_bbox(rle, np.array([[height, width]] * len(arrays)))
        return Annotations.create(
            image_id=[1] * len(arrays), class_id=[1] * len(arrays), bbox=bbox,
            kind=[Kind.MASK] * len(arrays), rle_counts=rle,
            rle_size=np.array([[height, width]] * len(arrays)),
        )  # fmt: skip

    a = [blob(1, 1), blob(9, 12)]
    b = [blob(1, 2), blob(9, 13)]
    c = [blob(2, 1)]  # only three-member votes for the first object, two for the second
    result = merge([masks(a), masks(b), masks(c)], iou_threshold=0.3, quorum=0.5)
    merged = result.annotations
    assert merged.kind.tolist() == [Kind.MASK, Kind.MASK]
    assert merged.attributes["members"].values.tolist() == [3, 2]
    expected = [
        (a[0].astype(int) + b[0] + c[0]) >= 2,  # 2 of 3
        (a[1].astype(int) + b[1]) >= 2,  # 2 of 2: the intersection
    ]
    for row, want in enumerate(expected):
        counts = merged.rle_counts.values[
            merged.rle_counts.offsets[row] : merged.rle_counts.offsets[row + 1]
        ]
        rle = {"size": [height, width], "counts": rle_to_string(counts).encode()}
        np.testing.assert_array_equal(mask_util.decode(rle).astype(bool), want)
        assert counts.sum() == height * width
    np.testing.assert_array_equal(
        merged.bbox, rle_bbox(merged.rle_counts, merged.rle_size)
    )  # the box follows the voted mask


def test_polygons_merge_by_majority_region_not_median_box() -> None:
    def triangle(x: float) -> Annotations:
        points = np.array([[x, 0], [x + 10, 0], [x + 10, 10]], dtype=np.float64)
        return Annotations.create(
            image_id=[1], class_id=[1], bbox=[[x, 0, x + 10, 10]], kind=[Kind.POLYGON],
            rings=Ragged(points, np.array([0, 3])), ring_offsets=[0, 1],
        )  # fmt: skip

    import shapely

    merged = merge([triangle(0), triangle(1), triangle(3)], iou_threshold=0.5).annotations
    # the region at least two of the three triangles cover, not their median box
    a, b, c = (shapely.Polygon([[x, 0], [x + 10, 0], [x + 10, 10]]) for x in (0, 1, 3))
    assert merged.kind.tolist() == [Kind.POLYGON]
    assert merged.area[0] == pytest.approx(shapely.union_all([a & b, a & c, b & c]).area)


def _polygon(image: int, points: list[list[float]]) -> Annotations:
    from labelgate.core.ragged import Ragged

    xy = np.array(points, dtype=np.float64)
    return Annotations.create(
        image_id=[image],
        class_id=[1],
        kind=[Kind.POLYGON],
        bbox=[[*xy.min(axis=0), *xy.max(axis=0)]],
        rings=Ragged(xy, np.array([0, len(xy)])),
        ring_offsets=[0, 1],
    )


def test_polygons_merge_to_the_region_most_annotators_cover() -> None:
    import shapely

    rng = np.random.default_rng(3)
    sets: list[list[Annotations]] = [[], [], []]
    oracle = []
    for image in range(1, 21):
        shapes = []
        for k in range(3):
            x, y = rng.uniform(0, 4, size=2)
            w, h = rng.uniform(18, 22, size=2)
            # a quadrilateral with one jittered corner: not a box, so polygon IoU matters
            dx = rng.uniform(-3, 3)
            points = [[x, y], [x + w + dx, y], [x + w, y + h], [x, y + h]]
            sets[k].append(_polygon(image, points).replace(id=np.array([image])))
            shapes.append(shapely.Polygon(points))
        a, b, c = shapes
        oracle.append(shapely.union_all([a & b, a & c, b & c]).area)
    result = merge([Annotations.concat(s) for s in sets], iou_threshold=0.3, quorum=0.5)
    merged = result.annotations
    assert (merged.kind == Kind.POLYGON).all() and len(merged) == 20
    order = np.argsort(merged.image_id)
    # the area column is computed from the rings, independently of the vote
    np.testing.assert_allclose(merged.area[order], oracle, rtol=1e-9)


def test_two_polygons_merge_to_their_intersection_and_disjoint_ones_fall_back_to_a_box() -> None:
    a = _polygon(1, [[0, 0], [10, 0], [10, 10], [0, 10]])
    b = _polygon(1, [[2, 0], [12, 0], [12, 10], [2, 10]])
    merged = merge([a, b], iou_threshold=0.5, quorum=0.5).annotations
    assert merged.kind.tolist() == [Kind.POLYGON]
    assert merged.bbox.tolist() == [[2, 0, 10, 10]]
    assert merged.area.tolist() == [80.0]
    # triangles on either side of a diagonal share no area: no majority region
    left = _polygon(1, [[0, 0], [10, 0], [0, 10]])
    right = _polygon(1, [[10, 10], [10, 0], [0, 10]])
    fallback = merge([left, right], iou_threshold=0.5, quorum=0.5).annotations
    assert fallback.kind.tolist() == [Kind.BOX]
