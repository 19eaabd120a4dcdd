"""Simulated people: defects found against the truth, learning, cohort noise."""

from __future__ import annotations

import numpy as np

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.core.simulate import AnnotatorProfile, find_defects, simulate_labels
from labelgate.core.taxonomy import ClassInfo, PrecisionTier, Taxonomy


def _truth() -> Dataset:
    taxonomy = Taxonomy((ClassInfo(1, "car", tier=PrecisionTier.STANDARD), ClassInfo(2, "truck")))
    images = Images.create(id=[1], file_name=["a.jpg"], width=[200], height=[200])
    labels = Annotations.create(
        image_id=[1, 1, 1, 1],
        class_id=[1, 1, 2, 1],
        bbox=[[0, 0, 10, 10], [50, 50, 70, 70], [100, 100, 120, 120], [150, 150, 160, 160]],
    )
    return Dataset(labels, images, taxonomy)


def test_each_kind_of_defect_is_named() -> None:
    truth = _truth()
    labels = Annotations.create(
        image_id=[1, 1, 1, 1, 1],
        class_id=[1, 1, 1, 1, 2],
        bbox=[
            [0, 0, 10, 10],  # exact: correct
            [48, 48, 74, 74],  # IoU 400/676 = 0.59 < 0.7 (standard tier), larger: loose
            [100, 100, 120, 120],  # a truck labelled car: wrong class
            [180, 0, 190, 10],  # nothing there: extra
            [150, 150, 160, 160],  # a car labelled truck: wrong class
        ],
    )
    found = find_defects(truth, labels)
    assert found.label_defect.tolist() == [
        "",
        "loose_geometry",
        "wrong_class",
        "extra",
        "wrong_class",
    ]
    assert found.missed.tolist() == [False, False, False, False]
    assert found.flagged_labels.tolist() == [False, True, True, True, True]
    tight = labels.replace(
        bbox=np.array([[0, 0, 10, 10], [53, 53, 67, 67]] + [[180, 0, 190, 10]] * 3)
    )
    assert find_defects(truth, tight[:2]).label_defect.tolist() == ["", "tight_geometry"]
    # nothing drawn: every truth object missed; a zero catch rate flags none of them
    none = find_defects(truth, Annotations.empty(), catch_rate=0.0)
    assert none.missed.all() and not none.flagged_missed.any()


def test_catch_rate_flags_that_share_of_real_defects() -> None:
    truth = generate_dataset(300, seed=4)
    missed_everything = find_defects(truth, Annotations.empty(), catch_rate=0.6, seed=1)
    share = missed_everything.flagged_missed.mean()
    n = len(truth.annotations)
    assert abs(share - 0.6) < 4 * np.sqrt(0.6 * 0.4 / n)


def test_annotators_learn_and_cohorts_differ() -> None:
    truth = generate_dataset(200, seed=5)
    crowd = AnnotatorProfile("c", "crowd", learning_rate=0.5)
    expert = AnnotatorProfile("e", "expert")

    def missed(profile: AnnotatorProfile, batches_done: int) -> float:
        labels = simulate_labels(truth, profile, seed=2, batches_done=batches_done)
        return float(find_defects(truth, labels).missed.mean())

    assert missed(expert, 0) < missed(crowd, 0)
    assert missed(crowd, 4) < missed(crowd, 0)
