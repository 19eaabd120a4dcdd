from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, Source
from labelgate.core.dataset import Dataset
from labelgate.core.generate import (
    DEFAULT_CLASSES,
    REFERENCE_ANNOTATOR_ID,
    DensityBucket,
    NoiseModel,
    SceneConfig,
    SceneType,
    default_confusable,
    generate_dataset,
    generate_pool,
    perturb,
)
from labelgate.errors import ValidationError


@pytest.fixture(scope="module")
def large() -> Dataset:
    """20,000 images with the default config (~400,000 boxes), drawn once."""
    return generate_dataset(20_000, seed=7)


@pytest.fixture(scope="module")
def medium() -> Dataset:
    """3,000 images (~60,000 boxes): enough for the noise statistics."""
    return generate_dataset(3_000, seed=11)


def _array_fields(ann: Annotations) -> dict[str, np.ndarray]:
    return {
        f.name: getattr(ann, f.name)
        for f in fields(ann)
        if isinstance(getattr(ann, f.name), np.ndarray)
    }


def _objects_per_image(ds: Dataset) -> np.ndarray:
    row = ds.images.index_of(ds.annotations.image_id)
    return np.bincount(row, minlength=len(ds.images))


def _binomial_ok(hits: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(hits - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_identical_arrays_and_another_seed_differs() -> None:
    a, b, c = (generate_dataset(300, seed=s) for s in (5, 5, 6))
    for name, value in _array_fields(a.annotations).items():
        np.testing.assert_array_equal(value, getattr(b.annotations, name), err_msg=name)
    for name in ("width", "height", "scene_type", "tags", "file_name"):
        np.testing.assert_array_equal(getattr(a.images, name), getattr(b.images, name))
    assert len(a.annotations) != len(c.annotations) or not np.array_equal(
        a.annotations.bbox, c.annotations.bbox
    )


def test_perturb_and_pool_are_deterministic_per_seed(medium: Dataset) -> None:
    small = medium.select_images(medium.images.id <= 300)
    noise = NoiseModel(swap_probability=0.1)
    p1 = perturb(small, noise, seed=3, as_predictions=True)
    p2 = perturb(small, noise, seed=3, as_predictions=True)
    p3 = perturb(small, noise, seed=4, as_predictions=True)
    np.testing.assert_array_equal(p1.annotations.bbox, p2.annotations.bbox)
    np.testing.assert_array_equal(p1.annotations.score, p2.annotations.score)
    np.testing.assert_array_equal(p1.matched_ref, p2.matched_ref)
    np.testing.assert_array_equal(p1.swapped, p2.swapped)
    assert not np.array_equal(p1.missed, p3.missed)
    pool_a = generate_pool(small, [NoiseModel(), NoiseModel(bias=0.1)], seed=9)
    pool_b = generate_pool(small, [NoiseModel(), NoiseModel(bias=0.1)], seed=9)
    np.testing.assert_array_equal(pool_a.bbox, pool_b.bbox)


# --- the reference data set ----------------------------------------------------------------


def test_twenty_thousand_images_hold_four_hundred_thousand_boxes(large: Dataset) -> None:
    n = len(large.annotations)
    assert len(large.images) == 20_000
    assert 380_000 <= n <= 420_000
    # and the config's own expectation, within 1 % (the sd of the total is ~0.4 %)
    assert abs(n / 20_000 - SceneConfig().mean_objects_per_image) < 0.01 * n / 20_000


def test_images_are_numbered_and_named_in_order(large: Dataset) -> None:
    images = large.images
    np.testing.assert_array_equal(images.id, np.arange(1, 20_001))
    assert images.file_name[0] == "000001.jpg"
    assert images.file_name[-1] == "020000.jpg"
    assert set(images.scene_type.tolist()) == {"highway", "suburban", "urban"}
    assert set(zip(images.width.tolist(), images.height.tolist())) == {
        (640, 480),
        (1280, 720),
        (1920, 1080),
    }
    ann = large.annotations
    np.testing.assert_array_equal(ann.id, np.arange(1, len(ann) + 1))
    assert (np.diff(ann.image_id) >= 0).all()
    assert (ann.annotator_id == REFERENCE_ANNOTATOR_ID).all()
    assert (ann.source == Source.HUMAN).all() and np.isnan(ann.score).all()


def test_class_frequencies_follow_zipf_ranks(large: Dataset) -> None:
    counts = np.bincount(large.annotations.class_id, minlength=13)[1:]
    rank = np.arange(1, 13)
    slope = np.polyfit(np.log(rank), np.log(counts), 1)[0]
    assert -1.1 < slope < -0.9
    assert (np.diff(counts[:6]) < 0).all()
    expected = SceneConfig().class_probabilities
    np.testing.assert_allclose(counts / counts.sum(), expected, rtol=0.1)


def test_zipf_exponent_steepens_the_class_curve() -> None:
    ds = generate_dataset(3_000, seed=1, config=SceneConfig(zipf_exponent=2.0))
    counts = np.bincount(ds.annotations.class_id, minlength=13)[1:6]
    slope = np.polyfit(np.log(np.arange(1, 6)), np.log(counts), 1)[0]
    assert -2.2 < slope < -1.8


def test_boxes_lie_inside_their_images_and_truncation_marks_clipping(large: Dataset) -> None:
    ann = large.annotations
    row = large.images.index_of(ann.image_id)
    width = large.images.width[row]
    height = large.images.height[row]
    x1, y1, x2, y2 = ann.bbox.T
    assert (x1 >= 0).all() and (y1 >= 0).all()
    assert (x2 <= width).all() and (y2 <= height).all()
    assert (x2 - x1 > 0).all() and (y2 - y1 > 0).all()
    touches = (x1 == 0) | (y1 == 0) | (x2 == width) | (y2 == height)
    np.testing.assert_array_equal(ann.truncated, touches)
    assert 0.02 < ann.truncated.mean() < 0.3
    assert not large.outside_image().any()


def test_each_scene_type_has_its_own_density_mix(large: Dataset) -> None:
    counts = _objects_per_image(large)
    bucket = np.searchsorted([3, 10], counts, side="left")  # 1-3 | 4-10 | 11+
    tags = np.array([t[0] for t in large.images.tags.tolist()])
    np.testing.assert_array_equal(tags, np.array(["sparse", "medium", "crowded"])[bucket])
    assert counts.min() >= 1
    for scene in SceneConfig().scene_types:
        in_scene = large.images.scene_type == scene.name
        n = int(in_scene.sum())
        assert _binomial_ok(n, len(counts), scene.probability)
        for b, p in enumerate(scene.density_mix):
            assert _binomial_ok(int((bucket[in_scene] == b).sum()), n, p), (scene.name, b)
    crowded = counts[bucket == 2]
    # "11-30, some > 30": the configured overflow share, within binomial tolerance
    assert _binomial_ok(int((crowded > 30).sum()), len(crowded), 0.28)


def test_crowded_images_cluster_same_class_objects(large: Dataset) -> None:
    ann = large.annotations
    counts = _objects_per_image(large)
    crowded_ids = large.images.id[counts > 10]

    def same_class_pair_share(mask: np.ndarray) -> float:
        g = ann[mask].group_by_image_class()
        per_image = ann[mask].group_by_image()
        same = (g.sizes * (g.sizes - 1)).sum()
        return float(same / (per_image.sizes * (per_image.sizes - 1)).sum())

    independent = float((SceneConfig().class_probabilities ** 2).sum())
    assert same_class_pair_share(np.isin(ann.image_id, crowded_ids)) > independent + 0.05
    flat = generate_dataset(2_000, seed=3, config=SceneConfig(cluster_fraction=0.0))
    flat_ann = flat.annotations
    g = flat_ann.group_by_image_class()
    per_image = flat_ann.group_by_image()
    flat_share = (g.sizes * (g.sizes - 1)).sum() / (per_image.sizes * (per_image.sizes - 1)).sum()
    assert abs(flat_share - independent) < 0.02


def test_occlusion_is_more_common_in_crowded_images(large: Dataset) -> None:
    counts = _objects_per_image(large)
    row = large.images.index_of(large.annotations.image_id)
    crowded = counts[row] > 10
    occluded = large.annotations.occluded
    # clusters take half of the crowded objects, occluded with 0.4 instead of 0.1
    assert abs(occluded[crowded].mean() - 0.25) < 0.01
    assert abs(occluded[~crowded].mean() - 0.10) < 0.01


def test_sizes_are_mostly_small_and_shapes_follow_the_class(large: Dataset) -> None:
    ann = large.annotations
    assert 0.15 < (ann.area < 32 * 32).mean() < 0.5  # COCO "small"
    whole = ~ann.truncated
    w = ann.bbox[:, 2] - ann.bbox[:, 0]
    h = ann.bbox[:, 3] - ann.bbox[:, 1]
    names = SceneConfig().taxonomy().names
    for name in ("car", "person", "traffic light", "bus"):
        class_id = names.index(name) + 1
        aspect = np.median((w / h)[whole & (ann.class_id == class_id)])
        assert aspect == pytest.approx(DEFAULT_CLASSES[class_id - 1].aspect_ratio, rel=0.1)
    car = names.index("car") + 1
    sign = names.index("traffic sign") + 1
    assert np.median(ann.area[ann.class_id == car]) > 4 * np.median(ann.area[ann.class_id == sign])


def test_taxonomy_carries_tiers_and_thresholds(large: Dataset) -> None:
    t = large.taxonomy
    assert t.by_name("smoke").threshold == 0.5
    assert t.by_name("person").threshold == 0.75
    assert t.by_name("traffic sign").threshold == 0.85


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: SceneConfig(image_size_probabilities=(0.5, 0.5)), "image_size_probabilities"),
        (lambda: SceneConfig(image_size_probabilities=(0.5, 0.5, 0.5)), "image_size_probabilities"),
        (lambda: SceneConfig(scene_types=(SceneType("x", 1.0, (1.0,)),)), "scene_types"),
        (lambda: DensityBucket("bad", 5, 2), "densities"),
        (lambda: NoiseModel(swap_probability=1.5), "swap_probability"),
        (lambda: NoiseModel(jitter=-0.1), "jitter"),
        (lambda: generate_dataset(-1), "n_images"),
    ],
    ids=[
        "probabilities-per-size",
        "not-summing-to-1",
        "mix-length",
        "bucket-bounds",
        "swap-probability",
        "negative-jitter",
        "negative-images",
    ],
)
def test_bad_parameters_name_the_field(make: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make()  # type: ignore[operator]
    assert info.value.field == field


def test_zero_images_give_an_empty_dataset() -> None:
    ds = generate_dataset(0)
    assert len(ds.images) == 0 and len(ds.annotations) == 0
    p = perturb(ds, NoiseModel())
    assert len(p.annotations) == 0 and len(p.missed) == 0


# --- noisy copies --------------------------------------------------------------------------


def test_small_objects_are_missed_more_often(medium: Dataset) -> None:
    side = np.sqrt(medium.annotations.area)
    tercile = np.searchsorted(np.quantile(side, [1 / 3, 2 / 3]), side)
    p = perturb(medium, NoiseModel(), seed=2)
    rates = np.array([p.missed[tercile == t].mean() for t in range(3)])
    assert rates[0] > rates[1] + 0.02 and rates[1] > rates[2] + 0.005
    flat = perturb(medium, NoiseModel(miss_base=0.05, miss_small_extra=0.0), seed=2)
    flat_rates = np.array([flat.missed[tercile == t].mean() for t in range(3)])
    assert np.ptp(flat_rates) < 0.01


def test_bookkeeping_accounts_for_every_reference_and_output_row(medium: Dataset) -> None:
    noise = NoiseModel(duplicate_probability=0.05, false_positives_per_image=0.5)
    p = perturb(medium, noise, seed=5, first_id=100)
    m = len(p.annotations)
    for arr in (p.matched_ref, p.swapped, p.duplicate):
        assert arr.shape == (m,)
    np.testing.assert_array_equal(p.annotations.id, np.arange(100, 100 + m))
    primary = p.matched_ref[~p.duplicate & ~p.false_positive]
    np.testing.assert_array_equal(np.sort(primary), np.flatnonzero(~p.missed))
    assert not p.missed[p.matched_ref[p.duplicate]].any()
    derived = ~p.false_positive
    np.testing.assert_array_equal(
        p.annotations.image_id[derived], medium.annotations.image_id[p.matched_ref[derived]]
    )
    assert _binomial_ok(int(p.duplicate.sum()), int((~p.missed).sum()), 0.05)
    n_fp = int(p.false_positive.sum())
    assert abs(n_fp - 0.5 * 3_000) < 4 * np.sqrt(0.5 * 3_000)
    assert not medium.replace(annotations=p.annotations).outside_image().any()


def test_bias_shows_in_the_mean_log_width_ratio(medium: Dataset) -> None:
    ref = medium.annotations

    def mean_log_ratio(bias: float) -> float:
        p = perturb(medium, NoiseModel(bias=bias), seed=2)
        pair = ~p.false_positive & ~p.duplicate
        out = p.annotations.bbox[pair]
        src = ref.bbox[p.matched_ref[pair]]
        return float(np.log((out[:, 2] - out[:, 0]) / (src[:, 2] - src[:, 0])).mean())

    assert mean_log_ratio(0.15) == pytest.approx(0.15, abs=0.02)
    assert mean_log_ratio(-0.15) == pytest.approx(-0.15, abs=0.02)
    assert abs(mean_log_ratio(0.0)) < 0.01


def test_swap_rate_matches_the_configured_probability(medium: Dataset) -> None:
    confusable = default_confusable(medium.taxonomy)
    p = perturb(medium, NoiseModel(swap_probability=0.1), seed=8)
    primary = ~p.false_positive & ~p.duplicate
    assert _binomial_ok(int(p.swapped[primary].sum()), int(primary.sum()), 0.1)
    ref_class = medium.annotations.class_id[p.matched_ref[primary]]
    out_class = p.annotations.class_id[primary]
    partner = np.array([confusable[c] for c in ref_class.tolist()])
    swapped = p.swapped[primary]
    np.testing.assert_array_equal(out_class[swapped], partner[swapped])
    np.testing.assert_array_equal(out_class[~swapped], ref_class[~swapped])


def test_a_custom_confusable_map_limits_swaps_to_its_classes(medium: Dataset) -> None:
    p = perturb(medium, NoiseModel(swap_probability=0.5, confusable={1: 5}), seed=8)
    ref_class = medium.annotations.class_id[np.maximum(p.matched_ref, 0)]
    assert (ref_class[p.swapped] == 1).all()
    assert (p.annotations.class_id[p.swapped] == 5).all()
    primary_car = ~p.false_positive & ~p.duplicate & (ref_class == 1)
    assert _binomial_ok(int(p.swapped[primary_car].sum()), int(primary_car.sum()), 0.5)


def test_default_confusable_pairs_similar_classes() -> None:
    taxonomy = SceneConfig().taxonomy()
    c = default_confusable(taxonomy)
    by_name = {taxonomy.by_id(k).name: taxonomy.by_id(v).name for k, v in c.items()}
    assert by_name["car"] == "truck" and by_name["truck"] == "car"
    assert by_name["person"] == "stroller" and by_name["stroller"] == "person"
    assert by_name["traffic sign"] == "traffic light"
    assert by_name["bicycle"] == "motorcycle"
    assert by_name["bus"] == "truck"
    assert all(k != v for k, v in c.items())


def test_prediction_scores_rank_true_objects_above_false_positives(medium: Dataset) -> None:
    p = perturb(medium, NoiseModel(), seed=3, as_predictions=True, annotator_id=42)
    ann = p.annotations
    assert (ann.source == Source.PRELABEL).all() and (ann.annotator_id == 42).all()
    assert ((ann.score >= 0) & (ann.score <= 1)).all()
    true = ~p.false_positive & ~p.duplicate & ~p.swapped
    assert ann.score[p.false_positive].mean() < ann.score[true].mean() - 0.3
    assert ann.score[p.duplicate].mean() < ann.score[true].mean() - 0.3
    assert ann.score[p.swapped].mean() < ann.score[true].mean() - 0.1


def test_human_labels_have_no_score(medium: Dataset) -> None:
    p = perturb(medium, NoiseModel(), seed=3, annotator_id=3)
    ann = p.annotations
    assert np.isnan(ann.score).all()
    assert (ann.source == Source.HUMAN).all() and (ann.annotator_id == 3).all()


def test_pool_numbers_annotators_and_keeps_their_streams(medium: Dataset) -> None:
    small = medium.select_images(medium.images.id <= 500)
    one = generate_pool(small, [NoiseModel()], seed=4)
    three = generate_pool(
        small, [NoiseModel(), NoiseModel(bias=0.2), NoiseModel(jitter=0.1)], seed=4
    )
    assert np.unique(three.annotator_id).tolist() == [1, 2, 3]
    np.testing.assert_array_equal(three.id, np.arange(1, len(three) + 1))
    first = three[three.annotator_id == 1]
    np.testing.assert_array_equal(first.bbox, one.bbox)
    assert not np.array_equal(
        three[three.annotator_id == 2].class_id[:50], first.class_id[:50]
    ) or not np.array_equal(three[three.annotator_id == 2].bbox[:50], first.bbox[:50])
