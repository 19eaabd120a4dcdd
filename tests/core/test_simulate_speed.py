"""Simulated annotators' speed (log-normal time per object) and attribute errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import NoiseModel, generate_dataset
from labelgate.core.images import Images
from labelgate.core.simulate import (
    COHORT_SECONDS_PER_OBJECT,
    SPEED_FLOOR,
    AnnotatorProfile,
    find_defects,
    simulate_labels,
    work_seconds,
)
from labelgate.core.taxonomy import ClassInfo, PrecisionTier, Taxonomy
from labelgate.errors import ValidationError

EXACT = NoiseModel(
    miss_base=0.0,
    miss_small_extra=0.0,
    jitter=0.0,
    bias=0.0,
    swap_probability=0.0,
    duplicate_probability=0.0,
    false_positives_per_image=0.0,
)


def test_time_per_object_is_log_normal_around_the_median() -> None:
    rng = np.random.default_rng(0)
    times = work_seconds(np.ones(20_000, dtype=np.int64), 8.0, rng, sigma=0.5)
    # one object per task: the draws themselves, against scipy's log-normal
    assert stats.kstest(times, stats.lognorm(s=0.5, scale=8.0).cdf).pvalue > 0.001
    # the mean is median * exp(sigma^2 / 2) = 8 * e^0.125 = 9.0652
    mean = 8.0 * math.exp(0.125)
    sd = 8.0 * math.sqrt(math.exp(0.25) * (math.exp(0.25) - 1.0))
    assert mean == pytest.approx(9.0652, abs=1e-4)
    assert abs(times.mean() - mean) < 4 * sd / math.sqrt(len(times))


def test_a_task_takes_the_sum_of_its_objects() -> None:
    rng = np.random.default_rng(1)
    counts = np.array([0, 1, 5, 40])
    assert work_seconds(counts, 6.0, rng, sigma=0.0).tolist() == [0.0, 6.0, 30.0, 240.0]
    many = work_seconds(np.full(5_000, 12), 6.0, rng, sigma=0.4)
    per_task_mean = 12 * 6.0 * math.exp(0.08)
    per_task_sd = math.sqrt(12) * 6.0 * math.sqrt(math.exp(0.16) * (math.exp(0.16) - 1.0))
    assert abs(many.mean() - per_task_mean) < 4 * per_task_sd / math.sqrt(5_000)
    with pytest.raises(ValidationError, match="object counts >= 0"):
        work_seconds(np.array([1, -1]), 6.0, rng)


def test_cohorts_differ_in_speed_and_experience_makes_them_faster() -> None:
    crowd, managed, expert = (AnnotatorProfile(c, c) for c in ("crowd", "managed", "expert"))
    assert crowd.seconds_after(0) < managed.seconds_after(0) < expert.seconds_after(0)
    assert managed.seconds_after(0) == COHORT_SECONDS_PER_OBJECT["managed"] == 8.0
    # learning rate 0.1: after 5 batches 8 * (0.6 + 0.4 e^-0.5) = 6.9408 s
    assert managed.seconds_after(5) == pytest.approx(8 * (0.6 + 0.4 * math.exp(-0.5)))
    assert managed.seconds_after(10_000) == pytest.approx(8 * SPEED_FLOOR)
    own = AnnotatorProfile("x", "crowd", seconds_per_object=3.0, learning_rate=0.0)
    assert own.seconds_after(7) == 3.0
    # the crowd is sloppier with attributes, and learning lowers the error rate too
    assert crowd.attribute_error_after(0) > managed.attribute_error_after(0)
    assert managed.attribute_error_after(3) == pytest.approx(
        managed.attribute_error_after(0) * math.exp(-0.3)
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seconds_per_object": -1.0}, "seconds_per_object"),
        ({"attribute_error_rate": 1.5}, "attribute_error_rate"),
        ({"speed_sigma": float("nan")}, "speed_sigma"),
        ({"cohort": "freelance"}, "cohort"),
    ],
)
def test_bad_profiles_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        AnnotatorProfile("x", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_attribute_errors_flip_flags_at_the_stated_rate() -> None:
    truth = generate_dataset(400, seed=7)
    rate = 0.08
    profile = AnnotatorProfile("a", noise=EXACT, attribute_error_rate=rate, learning_rate=0.0)
    labels = simulate_labels(truth, profile, seed=3)
    assert len(labels) == len(truth.annotations)
    # no noise on boxes: label row i is truth row i (same image order, same boxes)
    np.testing.assert_allclose(labels.bbox, truth.annotations.bbox, rtol=0, atol=1e-9)
    flipped_o = labels.occluded != truth.annotations.occluded
    flipped_t = labels.truncated != truth.annotations.truncated
    n = len(labels)
    for flipped in (flipped_o, flipped_t):
        assert abs(flipped.mean() - rate) < 4 * math.sqrt(rate * (1 - rate) / n)
    found = find_defects(truth, labels)
    # every object with a wrong flag, and only those, is an attribute error
    expected = np.where(flipped_o | flipped_t, "attribute_error", "")
    assert found.label_defect.tolist() == expected.tolist()
    assert found.flagged_labels.sum() == (flipped_o | flipped_t).sum()
    assert not find_defects(truth, labels, attributes=False).label_defect.astype(bool).any()
    # a rate of 0 changes nothing; the boxes do not depend on the rate
    clean = simulate_labels(
        truth, AnnotatorProfile("b", noise=EXACT, attribute_error_rate=0.0), seed=3
    )
    np.testing.assert_array_equal(clean.occluded, truth.annotations.occluded)
    np.testing.assert_array_equal(clean.bbox, labels.bbox)


def test_an_attribute_error_needs_a_right_box_first() -> None:
    taxonomy = Taxonomy((ClassInfo(1, "car", tier=PrecisionTier.STANDARD),))
    images = Images.create(id=[1], file_name=["a.jpg"], width=[200], height=[200])
    truth = Dataset(
        Annotations.create(
            image_id=[1, 1], class_id=[1, 1], bbox=[[0, 0, 10, 10], [50, 50, 70, 70]],
            occluded=[True, False],
        ),
        images,
        taxonomy,
    )  # fmt: skip
    labels = Annotations.create(
        image_id=[1, 1],
        class_id=[1, 1],
        bbox=[[0, 0, 10, 10], [48, 48, 74, 74]],  # the second is loose (IoU 0.59 < 0.7)
        occluded=[False, True],  # both flags wrong
        truncated=[False, True],
    )
    # the loose box stays loose_geometry: one defect per object, geometry first
    assert find_defects(truth, labels).label_defect.tolist() == [
        "attribute_error",
        "loose_geometry",
    ]
    assert find_defects(truth, labels, catch_rate=0.0).flagged_labels.sum() == 0
