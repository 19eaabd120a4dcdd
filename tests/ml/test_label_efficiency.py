"""Label efficiency curves: several strategies and seeds, simulated or on a program's data."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.annotations import Annotations
from labelgate.core.generate import generate_dataset
from labelgate.errors import ValidationError
from labelgate.ml.select import (
    label_efficiency,
    model_errors_per_image,
    simulate_active_learning,
    simulate_label_efficiency,
)
from labelgate.ml.synthetic import model_predictions


def test_simulated_curves_equal_the_single_strategy_loop_for_every_seed() -> None:
    strategies = ("uncertainty", "diversity", "hybrid")
    curves = simulate_label_efficiency(
        300, strategies=strategies, seeds=(0, 4), rounds=3, budget=15
    )
    assert curves.source == "simulated"
    assert curves.images_labeled.tolist() == [15, 30, 45]
    for j, seed in enumerate((0, 4)):
        for i, strategy in enumerate(strategies):
            one = simulate_active_learning(300, rounds=3, budget=15, strategy=strategy, seed=seed)
            assert np.array_equal(curves.found[i, j], one.errors_found)
            assert np.array_equal(curves.random_found[j], one.random_errors_found)


def test_the_json_has_bands_over_seeds_and_the_gain_over_random() -> None:
    curves = simulate_label_efficiency(300, strategies=("uncertainty",), seeds=(0, 1, 2), rounds=2)
    doc = curves.to_dict()
    row = doc["strategies"][0]
    per_seed = curves.found[0]
    assert row["mean"] == pytest.approx(per_seed.mean(axis=0).tolist(), abs=1e-6)
    assert row["low"] == pytest.approx(per_seed.min(axis=0).tolist(), abs=1e-6)
    assert row["high"] == pytest.approx(per_seed.max(axis=0).tolist(), abs=1e-6)
    assert row["low"][-1] <= row["mean"][-1] <= row["high"][-1]
    random_last = curves.random_found.mean(axis=0)[-1]
    assert row["gain"] == pytest.approx(per_seed.mean(axis=0)[-1] / random_last, abs=1e-3)
    assert row["gain"] > 1.5  # uncertainty finds the model's errors faster than random
    assert doc["total_errors"] == curves.total_errors.tolist()


def test_model_errors_count_misses_swaps_and_false_positives() -> None:
    ref = Annotations.create(
        image_id=[1, 1, 2, 3, 3],
        class_id=[1, 2, 1, 1, 1],
        bbox=[[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10], [0, 0, 10, 10], [40, 40, 60, 60]],
    )
    pred = Annotations.create(
        image_id=[1, 2, 2, 3, 3, 3],
        class_id=[1, 2, 1, 1, 1, 1],
        score=[0.9, 0.8, 0.9, 0.95, 0.9, 0.3],
        bbox=[
            [0, 0, 10, 10],  # image 1: a hit; the class-2 object is missed
            [0, 0, 10, 10],  # image 2: the object predicted as class 2 (a swap) ...
            [50, 50, 70, 70],  # ... and a false positive
            [0, 0, 10, 10],  # image 3: a hit
            [0, 1, 10, 10],  # a duplicate of it: a false positive
            [40, 40, 60, 60],  # below the score threshold: the object counts as missed
        ],
    )
    pool = np.array([1, 2, 3, 4])
    assert model_errors_per_image(ref, pred, pool).tolist() == [1, 2, 2, 0]
    assert model_errors_per_image(ref, pred, pool, score_threshold=0.2).tolist() == [1, 2, 1, 0]


def test_perfect_predictions_have_no_errors_and_removed_objects_are_all_missed() -> None:
    truth = generate_dataset(50, seed=3).annotations
    perfect = truth.replace(score=np.ones(len(truth)))
    pool = np.unique(truth.image_id)
    assert model_errors_per_image(truth, perfect, pool).sum() == 0
    dropped = np.arange(0, len(truth), 7)
    kept = perfect[np.setdiff1d(np.arange(len(truth)), dropped)]
    errors = model_errors_per_image(truth, kept, pool)
    expected = np.bincount(np.searchsorted(pool, truth.image_id[dropped]), minlength=len(pool))
    assert errors.tolist() == expected.tolist()


def test_replayed_on_program_data_strategies_beat_random() -> None:
    truth = generate_dataset(400, seed=7)
    pred = model_predictions(truth, seed=8).annotations
    curves = label_efficiency(truth.annotations, pred, rounds=4, seeds=(0, 1, 2))
    assert curves.source == "program"
    assert curves.found.shape == (5, 1, 4)
    assert curves.images_labeled.tolist() == [50, 100, 150, 200]
    # random selection finds errors in proportion to the images labelled
    share = curves.images_labeled / 400
    assert curves.random_found.mean(axis=0) == pytest.approx(share, abs=0.08)
    doc = curves.to_dict()
    gains = {row["strategy"]: row["gain"] for row in doc["strategies"]}
    assert gains["uncertainty"] > 1.2
    with pytest.raises(ValidationError, match="expected strategies"):
        label_efficiency(truth.annotations, pred, strategies=("random",))
