"""A simulated annotator handed pre-label proposals: decisions, keys and the time model."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, Source
from labelgate.core.generate import generate_dataset
from labelgate.core.simulate import (
    PRELABEL_TIME_FRACTION,
    AnnotatorProfile,
    prelabel_work_seconds,
    review_proposals,
    simulate_labels,
    simulate_predictions,
)
from labelgate.errors import ValidationError
from labelgate.workflow.prelabel import DECISIONS, decide


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# image 1: proposal 10 nearly the own box (IoU 10/11 = 0.909: accept), proposal 11 loose
# (IoU 0.8: adjust), proposal 12 of the wrong class on an own object (IoU 1: adjust, class
# changes), proposal 13 on nothing (reject); own object at 200 is drawn. Image 2: proposal 14
# overlaps the own box 0.45 (< 0.5: rejected, the object is drawn anew).
PROPOSALS = Annotations.create(
    id=[10, 11, 12, 13, 14],
    image_id=[1, 1, 1, 1, 2],
    class_id=[1, 1, 2, 3, 1],
    bbox=[
        [0, 0, 10, 11],
        [20, 0, 30, 10],
        [50, 0, 60, 10],
        [100, 100, 110, 110],
        [0, 0, 10, 9],
    ],
    source=[Source.PRELABEL] * 5,
    score=[0.9, 0.8, 0.7, 0.6, 0.5],
)
OWN = Annotations.create(
    image_id=[1, 1, 1, 1, 2],
    class_id=[1, 1, 3, 4, 1],
    bbox=[
        [0, 0, 10, 10],
        [20, 0, 30, 8],
        [50, 0, 60, 10],
        [200, 200, 210, 210],
        [0, 5, 10, 14],
    ],
    occluded=[True, False, True, False, False],
    truncated=[False, True, False, False, True],
)


def test_each_proposal_is_accepted_adjusted_or_rejected_by_hand() -> None:
    assert _iou([0, 0, 10, 11], [0, 0, 10, 10]) == pytest.approx(10 / 11)
    assert _iou([20, 0, 30, 10], [20, 0, 30, 8]) == pytest.approx(0.8)
    assert _iou([0, 0, 10, 9], [0, 5, 10, 14]) == pytest.approx(40 / 140)
    review = review_proposals(PROPOSALS, OWN)
    assert review.decision.tolist() == ["accept", "adjust", "adjust", "reject", "reject"]
    labels = review.labels
    # own rows in order: kept keys 10, 11, 12; drawn ones get 15, 16 (above every key)
    assert labels.id.tolist() == [10, 11, 12, 15, 16]
    assert review.drawn.tolist() == [False, False, False, True, True]
    # accepted: the proposal's box; adjusted and drawn: the annotator's own box and class
    assert labels.bbox.tolist() == [
        [0.0, 0.0, 10.0, 11.0],
        [20.0, 0.0, 30.0, 8.0],
        [50.0, 0.0, 60.0, 10.0],
        [200.0, 200.0, 210.0, 210.0],
        [0.0, 5.0, 10.0, 14.0],
    ]
    assert labels.area[0] == pytest.approx(110.0)
    assert labels.class_id.tolist() == [1, 1, 3, 4, 1]
    # flags are the annotator's own judgement, whatever the proposal said
    assert labels.occluded.tolist() == OWN.occluded.tolist()
    assert labels.truncated.tolist() == OWN.truncated.tolist()
    assert (labels.source == Source.HUMAN).all()


def test_the_workflow_records_the_decisions_the_annotator_made() -> None:
    """workflow.prelabel.decide compares by key (the submit-time record): same verdicts."""
    review = review_proposals(PROPOSALS, OWN)
    for image in (1, 2):
        shown = PROPOSALS[PROPOSALS.image_id == image]
        final = review.labels[review.labels.image_id == image]
        codes, _ = decide(shown, final)
        expected = review.decision[PROPOSALS.image_id == image].tolist()
        assert [DECISIONS[c] for c in codes] == expected


def test_counts_per_image() -> None:
    review = review_proposals(PROPOSALS, OWN)
    counts = review.counts(PROPOSALS, np.array([1, 2, 3]))
    assert {k: v.tolist() for k, v in counts.items()} == {
        "accept": [1, 0, 0],
        "adjust": [2, 0, 0],
        "reject": [1, 1, 0],
        "draw": [1, 1, 0],
    }


@pytest.mark.parametrize(("accept_iou", "first"), [(0.95, "adjust"), (10 / 11 - 1e-9, "accept")])
def test_accept_threshold_is_inclusive(accept_iou: float, first: str) -> None:
    review = review_proposals(PROPOSALS, OWN, accept_iou=accept_iou)
    assert review.decision[0] == first


def test_no_proposals_means_everything_is_drawn_and_no_own_labels_means_all_rejected() -> None:
    none = review_proposals(PROPOSALS[:0], OWN)
    assert none.drawn.all() and none.labels.id.tolist() == [1, 2, 3, 4, 5]
    empty = review_proposals(PROPOSALS, OWN[:0])
    assert empty.decision.tolist() == ["reject"] * 5 and len(empty.labels) == 0


@pytest.mark.parametrize(("accept", "adjust"), [(0.4, 0.5), (1.2, 0.5), (0.9, 0.0)])
def test_bad_thresholds_are_refused(accept: float, adjust: float) -> None:
    with pytest.raises(ValidationError, match="adjust_iou"):
        review_proposals(PROPOSALS, OWN, accept_iou=accept, adjust_iou=adjust)


def test_generated_batch_keys_are_unique_per_image_and_decide_agrees() -> None:
    truth = generate_dataset(60, seed=4)
    proposals = simulate_predictions(truth, seed=5)
    own = simulate_labels(truth, AnnotatorProfile("m", "managed"), seed=6)
    review = review_proposals(proposals, own)
    labels = review.labels
    assert len(labels) == len(own)
    # every proposal either keeps its key in the final labels or is rejected
    kept = np.isin(proposals.id, labels.id)
    assert (kept == (review.decision != "reject")).all()
    codes, iou = decide(proposals, labels)
    assert [DECISIONS[c] for c in codes] == review.decision.tolist()
    # accepted proposals keep their box exactly; adjusted ones moved at least a little
    assert (iou[review.decision == "accept"] == 1.0).all()
    assert (iou[review.decision == "adjust"] >= 0.0).all()
    counts = review.counts(proposals, np.unique(truth.images.id))
    assert sum(int(c.sum()) for k, c in counts.items() if k != "draw") == len(proposals)
    assert int(counts["draw"].sum()) == int(review.drawn.sum())
    # a managed annotator against a middling model: most proposals are worth keeping
    assert (review.decision != "reject").mean() > 0.8


def test_time_model_is_exact_without_noise_and_right_on_average_with_it() -> None:
    counts = {
        "draw": np.array([3, 0, 1]),
        "accept": np.array([2, 5, 0]),
        "adjust": np.array([1, 0, 2]),
        "reject": np.array([0, 1, 4]),
    }
    got = prelabel_work_seconds(counts, 8.0, np.random.default_rng(0), sigma=0.0)
    f = PRELABEL_TIME_FRACTION
    expected = [
        8.0 * (3 + 2 * f["accept"] + 1 * f["adjust"]),
        8.0 * (5 * f["accept"] + 1 * f["reject"]),
        8.0 * (1 + 2 * f["adjust"] + 4 * f["reject"]),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # log-normal: each object has mean median x exp(sigma^2 / 2)
    many = {k: np.full(20_000, 1) for k in counts}
    sigma = 0.5
    times = prelabel_work_seconds(many, 10.0, np.random.default_rng(1), sigma=sigma)
    per_task = 10.0 * (1 + f["accept"] + f["adjust"] + f["reject"]) * np.exp(sigma**2 / 2)
    se = times.std() / np.sqrt(len(times))
    assert abs(times.mean() - per_task) < 4 * se
