from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.annotations import Annotations
from labelgate.ml.select import (
    class_histogram,
    detection_uncertainty,
    image_uncertainty,
    k_center_greedy,
    select,
    simulate_active_learning,
)


def brute_force_k_center(x: np.ndarray, budget: int, labeled: list[int]) -> list[int]:
    """The definition, recomputed from scratch each step: full distance matrix, min, argmax."""
    centres = list(labeled)
    picks: list[int] = []
    for _ in range(budget):
        if centres:
            d = np.sqrt(((x[:, None, :] - x[None, centres, :]) ** 2).sum(axis=2)).min(axis=1)
        else:
            d = np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))
        d[centres] = -np.inf
        pick = int(np.argmax(d))
        picks.append(pick)
        centres.append(pick)
    return picks


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 25),
    d=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    budget=st.integers(0, 10),
    n_labeled=st.integers(0, 3),
)
def test_k_center_greedy_equals_the_brute_force_definition(
    n: int, d: int, seed: int, budget: int, n_labeled: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labeled = rng.choice(n, size=min(n_labeled, n - 1), replace=False).tolist()
    budget = min(budget, n - len(labeled))
    got = k_center_greedy(x, budget, labeled=np.array(labeled, dtype=np.int64))
    assert got.tolist() == brute_force_k_center(x, budget, labeled)


def test_k_center_greedy_spreads_over_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0], [10, 0], [0, 10], [10, 10]])
    x = np.concatenate([c + rng.normal(scale=0.1, size=(20, 2)) for c in centres])
    picks = k_center_greedy(x, 4)
    assert sorted((picks // 20).tolist()) == [0, 1, 2, 3]


def predictions() -> Annotations:
    # image 1: one sure car; image 2: a doubtful car; image 3: car vs person on one object;
    # image 4: many middling detections; image 5: only background-level scores
    return Annotations.create(
        image_id=[1, 2, 3, 3, 4, 4, 4, 5],
        class_id=[1, 1, 1, 2, 1, 1, 1, 1],
        score=[0.95, 0.55, 0.5, 0.45, 0.6, 0.6, 0.6, 0.02],
        bbox=[[0, 0, 10, 10]] * 4 + [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
        + [[0, 0, 10, 10]],
    )  # fmt: skip


def test_uncertainty_ranks_the_least_confident_image_first() -> None:
    ids, scores = image_uncertainty(predictions(), strategy="uncertainty", aggregate="max")
    assert ids.tolist() == [1, 2, 3, 4, 5]
    assert scores.round(2).tolist() == [0.05, 0.45, 0.55, 0.4, 0.0]  # 5: below min_score
    assert select(predictions(), 2, "uncertainty").tolist() == [3, 2]


def test_sum_favours_images_with_many_doubtful_objects() -> None:
    assert select(predictions(), 1, "uncertainty", aggregate="sum").tolist() == [4]
    _, mean = image_uncertainty(predictions(), aggregate="mean")
    assert mean.round(3).tolist() == [0.05, 0.45, 0.525, 0.4, 0.0]


def test_margin_and_entropy_see_two_classes_competing_for_one_object() -> None:
    pred = predictions()
    margin = detection_uncertainty(pred, "margin")
    # image 3: car 0.5 against background 0.5 (stronger than person 0.45): no margin
    assert margin[2] == pytest.approx(1.0)
    assert margin[3] == pytest.approx(1 - (0.55 - 0.45))  # person 0.45 vs background 0.55
    assert margin[0] == pytest.approx(1 - (0.95 - 0.05))
    entropy = detection_uncertainty(pred, "entropy")
    p = np.array([0.5, 0.45, 0.05])
    assert entropy[2] == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    assert select(pred, 1, "margin").tolist() == [3]
    assert select(pred, 1, "entropy").tolist() == [3]


def test_diversity_uses_given_embeddings_and_avoids_labelled_images() -> None:
    pred = predictions()
    embeddings = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [9, 0]])
    # first the image farthest from the mean (5), then the one farthest from it (1)
    assert select(pred, 2, "diversity", embeddings).tolist() == [5, 1]
    # image 4 is already labelled: 3 sits next to it and is never worth a pick
    assert select(pred, 2, "diversity", embeddings, labeled=[4]).tolist() == [1, 5]


def test_hybrid_spreads_the_most_uncertain_images() -> None:
    pred = predictions()
    embeddings = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [5, 5], [9, 0]])
    # pool of 3 most uncertain (max): images 3, 2, 4; k-center among them
    picked = select(pred, 1, "hybrid", embeddings, hybrid_pool=3.0)
    assert picked.tolist()[0] in {2, 3, 4}
    assert select(pred, 2, "hybrid", embeddings, hybrid_pool=1.5).tolist() == [4, 2]


def test_the_default_embedding_is_a_class_histogram() -> None:
    hist = class_histogram(predictions(), np.array([1, 3, 6]))
    assert hist.round(3).tolist() == [[1.0, 0.0], [0.743, 0.669], [0.0, 0.0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "random"}, "expected one of"),
        ({"budget": -1}, "budget >= 0"),
        ({"strategy": "diversity", "embeddings": np.zeros((3, 2))}, r"expected \(5, d\)"),
        ({"aggregate": "median"}, "max, mean or sum"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"budget": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        select(predictions(), **args)  # type: ignore[arg-type]


def test_uncertainty_finds_model_errors_faster_than_random() -> None:
    curve = simulate_active_learning(1500, rounds=4, budget=40, seed=3)
    assert curve.images_labeled.tolist() == [40, 80, 120, 160]
    assert np.all(np.diff(curve.errors_found) > 0)
    # random finds errors in proportion to images labelled; uncertainty at least twice that
    assert curve.random_errors_found[-1] == pytest.approx(160 / 1500, rel=0.35)
    assert np.all(curve.errors_found >= 2 * curve.random_errors_found)
    assert list(curve.to_dict()) == [
        "strategy",
        "images_labeled",
        "errors_found",
        "random_errors_found",
    ]


def test_an_empty_pool_selects_nothing() -> None:
    empty = Annotations.empty()
    for strategy in ("uncertainty", "margin", "entropy", "diversity", "hybrid"):
        assert select(empty, 5, strategy).tolist() == []
    assert k_center_greedy(np.zeros((0, 3)), 4).tolist() == []
