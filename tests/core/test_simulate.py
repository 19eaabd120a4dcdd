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


# --- the pre-label model's calibrated scores ---------------------------------------------

from labelgate.core.annotations import Source  # noqa: E402
from labelgate.core.simulate import (  # noqa: E402
    PrelabelModel,
    calibrated_scores,
    correct_predictions,
    simulate_predictions,
)

#: The stated bound on the expected calibration error (10 equal-width bins) of the
#: calibrated model on ~8,000 predictions: binomial noise alone gives ~0.01.
ECE_BOUND = 0.03


def _reliability(
    correct: np.ndarray, scores: np.ndarray, bins: int = 10
) -> tuple[float, list[tuple[int, float, float]]]:
    """Expected calibration error and, per non-empty bin, (count, mean score, precision)."""
    index = np.minimum((scores * bins).astype(int), bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            mean, precision = float(scores[inside].mean()), float(correct[inside].mean())
            rows.append((int(inside.sum()), mean, precision))
            ece += inside.mean() * abs(precision - mean)
    return ece, rows


def test_prelabel_scores_are_calibrated_against_matching_at_the_class_threshold() -> None:
    from sklearn.calibration import calibration_curve  # test oracle only

    truth = generate_dataset(400, seed=11)
    predictions = simulate_predictions(truth, PrelabelModel(), seed=3)
    assert (predictions.source == Source.PRELABEL).all()
    assert not np.isnan(predictions.score).any()
    # correctness by the library's matching at each class's IoU threshold
    correct = correct_predictions(truth, predictions)
    assert 0.3 < correct.mean() < 0.95  # a model that is right and wrong often
    ece, rows = _reliability(correct, predictions.score)
    assert ece < ECE_BOUND, rows
    for count, mean, precision in rows:
        if count >= 30:  # each bin: within 3.5 binomial standard errors of its mean score
            assert abs(precision - mean) <= 3.5 * np.sqrt(mean * (1 - mean) / count) + 0.01
    # the same curve from scikit-learn's calibration_curve (uniform bins)
    prob_true, prob_pred = calibration_curve(correct, predictions.score, n_bins=10)
    assert np.allclose(prob_true, [p for c, m, p in rows])
    assert np.allclose(prob_pred, [m for c, m, p in rows])
    # and the scores rank: right boxes score higher than wrong ones
    assert predictions.score[correct].mean() > predictions.score[~correct].mean() + 0.1


def test_raw_generator_scores_fail_the_same_calibration_check() -> None:
    truth = generate_dataset(400, seed=11)
    raw = simulate_predictions(truth, PrelabelModel(calibrated=False), seed=3)
    ece, rows = _reliability(correct_predictions(truth, raw), raw.score)
    assert ece > 2 * ECE_BOUND, rows


def test_scores_are_calibrated_within_each_class_and_for_any_concentration() -> None:
    rng = np.random.default_rng(0)
    group = rng.integers(0, 3, size=60_000)
    correct = rng.random(60_000) < np.array([0.2, 0.6, 0.9])[group]
    for concentration in (0.5, 4.0, 40.0):
        scores = calibrated_scores(correct, group, concentration=concentration, seed=1)
        for g in range(3):
            ece, rows = _reliability(correct[group == g], scores[group == g])
            assert ece < 0.03, (concentration, g, rows)
    # all right / all wrong groups score 1 / 0; nothing at all is fine
    edge = calibrated_scores(np.array([True, True, False]), np.array([1, 1, 2]))
    assert edge.tolist() == [1.0, 1.0, 0.0]
    assert calibrated_scores(np.zeros(0, bool), np.zeros(0, np.int64)).shape == (0,)


def test_predictions_are_deterministic_by_seed() -> None:
    truth = generate_dataset(30, seed=2)
    a = simulate_predictions(truth, seed=5)
    b = simulate_predictions(truth, seed=5)
    c = simulate_predictions(truth, seed=6)
    assert np.array_equal(a.bbox, b.bbox) and np.array_equal(a.score, b.score)
    assert len(a) != len(c) or not np.array_equal(a.score, c.score)
