"""Consensus merge carries occluded / truncated and class attributes by vote."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from labelgate.core.annotations import Annotations, AttributeColumn
from labelgate.core.generate import generate_dataset
from labelgate.core.merge import merge

BOX = [[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 70.0, 60.0]]


def _set(
    class_id: list[int],
    occluded: list[bool],
    truncated: list[bool],
    attributes: dict[str, list[Any]] | None = None,
) -> Annotations:
    n = len(class_id)
    return Annotations.create(
        image_id=[1] * n,
        class_id=class_id,
        bbox=BOX[:n],
        occluded=occluded,
        truncated=truncated,
        attributes={k: AttributeColumn.from_list(v) for k, v in (attributes or {}).items()},
    )


def test_flags_follow_the_majority_of_three_members() -> None:
    a = _set([1, 1], [True, False], [True, True])
    b = _set([1, 1], [True, True], [False, True])
    c = _set([1, 1], [False, True], [False, False])
    merged = merge([a, b, c], iou_threshold=0.5).annotations
    # object 1: occluded 2 of 3 -> True, truncated 1 of 3 -> False
    # object 2: occluded 2 of 3 -> True, truncated 2 of 3 -> True
    assert merged.occluded.tolist() == [True, True]
    assert merged.truncated.tolist() == [False, True]


def test_a_tie_of_two_members_leaves_the_flag_unset() -> None:
    a = _set([1, 1], [True, True], [False, True])
    b = _set([1, 1], [False, True], [True, True])
    merged = merge([a, b], iou_threshold=0.5, quorum=1.0).annotations
    assert merged.occluded.tolist() == [False, True]  # 1-1 tie -> False; 2-0 -> True
    assert merged.truncated.tolist() == [False, True]


def test_flags_count_only_the_members_present() -> None:
    # object 2 drawn by a and b only: their two votes decide, c's absence is no vote
    a = _set([1, 1], [False, True], [False, False])
    b = _set([1, 1], [False, True], [False, False])
    c = _set([1], [True], [True])
    merged = merge([a, b, c], iou_threshold=0.5, quorum=0.5).annotations
    assert merged.attributes["members"].values.tolist() == [3, 2]
    assert merged.occluded.tolist() == [False, True]
    assert merged.truncated.tolist() == [False, False]


def test_class_attributes_are_voted_among_the_winning_class_only() -> None:
    light, car = 4, 1
    # object 1: two traffic lights (red, red) and a car that says green: red, car left out
    # object 2: two lights disagree (green, amber) and a car says amber: the car is not a
    # voter, so green and amber tie and the smaller string (amber) wins
    a = _set([light, light], [False] * 2, [False] * 2, {"light_state": ["red", "green"]})
    b = _set([light, light], [False] * 2, [False] * 2, {"light_state": ["red", "amber"]})
    c = _set([car, car], [False] * 2, [False] * 2, {"light_state": ["green", "amber"]})
    merged = merge([a, b, c], iou_threshold=0.5).annotations
    assert merged.class_id.tolist() == [light, light]
    assert merged.attributes["light_state"].to_list() == ["red", "amber"]


def test_an_attribute_no_winning_member_carries_stays_absent() -> None:
    # object 1: only the losing class carries `note`; object 2: one winner carries it
    a = _set([2, 2], [False] * 2, [False] * 2, {"note": [None, "x"]})
    b = _set([2, 2], [False] * 2, [False] * 2)
    c = _set([3, 3], [False] * 2, [False] * 2, {"note": ["y", "y"]})
    merged = merge([a, b, c], iou_threshold=0.5).annotations
    assert merged.class_id.tolist() == [2, 2]
    assert merged.attributes["note"].to_list() == [None, "x"]


def test_float_attributes_take_the_median_and_bools_the_majority() -> None:
    a = _set([1, 1], [False] * 2, [False] * 2, {"visibility": [0.2, 0.4], "night": [True, True]})
    b = _set([1, 1], [False] * 2, [False] * 2, {"visibility": [0.9, 0.6], "night": [True, False]})
    c = _set([1], [False], [False], {"visibility": [0.5], "night": [False]})
    merged = merge([a, b, c], iou_threshold=0.5, quorum=0.5).annotations
    np.testing.assert_allclose(merged.attributes["visibility"].values, [0.5, 0.5])
    assert merged.attributes["night"].to_list() == [True, False]  # 2-1; then a 1-1 tie


def test_the_merges_own_attributes_are_never_carried_over() -> None:
    a = _set([1], [False], [False], {"members": [99], "cluster_id": [7]})
    b = _set([1], [False], [False], {"members": [99], "cluster_id": [7]})
    merged = merge([a, b], iou_threshold=0.5).annotations
    assert merged.attributes["members"].values.tolist() == [2]
    assert merged.attributes["cluster_id"].values.tolist() == [1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_votes_agree_with_a_counter_per_object(seed: int) -> None:
    """Copies of generated truth (same boxes: each cluster is one truth object) with random
    flags, classes and a string attribute; every vote checked against collections.Counter."""
    truth = generate_dataset(25, seed=seed).annotations.replace(attributes={})
    rng = np.random.default_rng(seed)
    k, n = 3, len(truth)
    states = np.array(["amber", "green", "off", "red"], dtype=object)
    sets, flags, classes, values, present = [], [], [], [], []
    for _ in range(k):
        occluded = rng.random(n) < 0.5
        truncated = rng.random(n) < 0.3
        class_id = np.where(rng.random(n) < 0.2, truth.class_id % 12 + 1, truth.class_id)
        value = states[rng.integers(0, 4, n)]
        has = rng.random(n) < 0.8
        sets.append(
            truth.replace(
                class_id=class_id,
                occluded=occluded,
                truncated=truncated,
                attributes={"state": AttributeColumn(value, has)},
            )
        )
        flags.append((occluded, truncated))
        classes.append(class_id)
        values.append(value)
        present.append(has)
    merged = merge(sets, iou_threshold=0.5, quorum=1.0).annotations
    assert len(merged) == n
    # clusters come out by image, then by the first member's row: truth order
    order = np.lexsort((np.arange(n), truth.image_id))
    np.testing.assert_array_equal(merged.bbox, truth.bbox[order])
    for out, row in enumerate(order.tolist()):
        for f, column in ((0, merged.occluded), (1, merged.truncated)):
            votes = sum(bool(flags[j][f][row]) for j in range(k))
            assert bool(column[out]) == (votes > k / 2)
        votes_class = Counter(int(classes[j][row]) for j in range(k))
        top = max(votes_class.values())
        label = min(c for c, v in votes_class.items() if v == top)
        assert int(merged.class_id[out]) == label
        voters = Counter(
            str(values[j][row]) for j in range(k) if present[j][row] and classes[j][row] == label
        )
        got = merged.attributes["state"].value(out)
        if not voters:
            assert got is None
        else:
            best = max(voters.values())
            assert got == min(v for v, c in voters.items() if c == best)
