"""Agreement statistics against independent oracles and Krippendorff's published example."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labelgate.core.agreement import (
    bootstrap_ci,
    bootstrap_cis,
    categorical_agreement,
    category_counts,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    krippendorff_alpha_batch,
    paired_labels,
    percent_agreement,
    percent_agreement_batch,
)
from labelgate.errors import ValidationError

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers
# (rows A..D) x 12 units, "." = missing.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)
# Wikipedia, "Fleiss' kappa", worked example: 10 subjects x 5 categories, 14 raters each.
WIKIPEDIA_FLEISS = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def long_table(reliability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(annotators, items) matrix with NaN for missing -> item, annotator, label codes."""
    annotator, item = np.nonzero(~np.isnan(reliability))
    return item, annotator, reliability[annotator, item].astype(np.int64)


def counts_of(reliability: np.ndarray, n_categories: int | None = None):
    item, _, label = long_table(reliability)
    return category_counts(item, label, n_categories=n_categories)


# --- Krippendorff 2011 worked example -----------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)],
)
def test_alpha_reproduces_krippendorff_2011_worked_example(level, published):
    counts = counts_of(KRIPPENDORFF_2011)  # codes 0..5; code 0 is never used
    alpha = krippendorff_alpha(counts, level=level, values=np.arange(6.0))
    assert round(alpha, 3) == published
    oracle = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert alpha == pytest.approx(oracle, abs=1e-12)


def test_alpha_nominal_of_the_worked_example_is_the_papers_fraction():
    # the paper's coincidence table: n_c = 9, 13, 10, 5, 3 (n = 40 pairable values; unit 12 has
    # one rating), diagonal sum 32; alpha = 1 - (n - 1) (n - sum o_cc) / (n^2 - sum n_c^2)
    counts = counts_of(KRIPPENDORFF_2011)
    n, n_c = 40, np.array([9, 13, 10, 5, 3])
    expected = 1 - (n - 1) * (n - 32) / (n**2 - (n_c**2).sum())
    assert krippendorff_alpha(counts) == pytest.approx(expected, abs=1e-12)


def test_alpha_ratio_equals_krippendorff_package():
    counts = counts_of(KRIPPENDORFF_2011)
    oracle = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement="ratio")
    assert krippendorff_alpha(counts, level="ratio", values=np.arange(6.0)) == pytest.approx(
        oracle, abs=1e-12
    )


def test_ordinal_alpha_ignores_unused_categories_and_spacing():
    # rank metric: only the order of categories and their frequencies matter
    counts = counts_of(KRIPPENDORFF_2011)
    stretched = np.array([0.0, 1, 2, 30, 400, 5000])
    assert krippendorff_alpha(counts, level="ordinal", values=stretched) == pytest.approx(
        krippendorff_alpha(counts, level="ordinal"), abs=1e-12
    )


def test_ordinal_alpha_is_unchanged_when_the_order_is_reversed():
    counts = counts_of(KRIPPENDORFF_2011)
    reversed_values = -np.arange(6.0)
    assert krippendorff_alpha(counts, level="ordinal", values=reversed_values) == pytest.approx(
        krippendorff_alpha(counts, level="ordinal"), abs=1e-12
    )


def test_ordinal_alpha_follows_the_given_order_of_categories():
    counts = counts_of(KRIPPENDORFF_2011)
    shuffled = np.array([0.0, 1, 4, 2, 3, 5])  # category 2 ranked after 3 and 4
    reordered = krippendorff_alpha(counts, level="ordinal", values=shuffled)
    # the oracle sees the same ranks when each value is replaced by its rank
    ranks = np.argsort(np.argsort(shuffled))
    relabelled = np.where(np.isnan(KRIPPENDORFF_2011), np.nan, 0.0)
    present = ~np.isnan(KRIPPENDORFF_2011)
    relabelled[present] = ranks[KRIPPENDORFF_2011[present].astype(int)]
    oracle = krippendorff.alpha(reliability_data=relabelled, level_of_measurement="ordinal")
    assert reordered == pytest.approx(oracle, abs=1e-12)
    assert round(reordered, 3) != 0.815


# --- Fleiss ------------------------------------------------------------------------------


def test_fleiss_reproduces_wikipedia_and_statsmodels():
    kappa, reason = fleiss_kappa(WIKIPEDIA_FLEISS)
    assert reason is None
    assert round(kappa, 4) == 0.2099
    assert kappa == pytest.approx(sm_fleiss_kappa(WIKIPEDIA_FLEISS), abs=1e-12)


def test_percent_agreement_is_fleiss_p_bar_of_the_wikipedia_table():
    # Wikipedia: P-bar = 0.378
    assert round(percent_agreement(WIKIPEDIA_FLEISS), 3) == 0.378


def test_fleiss_is_none_with_a_reason_when_ratings_per_item_differ():
    kappa, reason = fleiss_kappa(counts_of(KRIPPENDORFF_2011))
    assert kappa is None
    assert reason == "needs the same number of ratings per item; items have 1 to 4"


def test_fleiss_needs_two_ratings_per_item():
    assert fleiss_kappa(np.array([[1, 0], [0, 1]])) == (
        None,
        "needs at least two ratings per item",
    )


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_equals_statsmodels_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(7, rng.dirichlet(np.ones(4)), size=50)
    kappa, _ = fleiss_kappa(counts)
    assert kappa == pytest.approx(sm_fleiss_kappa(counts), abs=1e-12)


# --- Cohen -------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohen_equals_scikit_learn(weights, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, size=200)
    b = np.where(rng.random(200) < 0.6, a, rng.integers(0, 5, size=200))
    expected = cohen_kappa_score(a, b, weights=weights)
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(expected, abs=1e-12)


def test_cohen_with_unused_category_codes_equals_scikit_learn_given_those_labels():
    a = np.array([0, 0, 3, 3, 1])
    b = np.array([0, 3, 3, 3, 0])
    expected = cohen_kappa_score(a, b, labels=[0, 1, 2, 3], weights="linear")
    assert cohen_kappa(a, b, weights="linear", n_categories=4) == pytest.approx(expected)


def test_paired_labels_keep_only_items_both_rated():
    item, annotator, label = long_table(KRIPPENDORFF_2011)
    a, b = paired_labels(item, annotator, label, 0, 2)  # observers A and C share units 2..9
    assert a.tolist() == [2, 3, 3, 2, 1, 4, 1, 2]
    assert b.tolist() == [3, 3, 3, 2, 3, 4, 2, 2]


def test_cohen_is_nan_when_both_use_one_category():
    assert np.isnan(cohen_kappa(np.array([1, 1]), np.array([1, 1])))


# --- percent agreement and degenerate input -------------------------------------------


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        pytest.param([[2, 0], [0, 2]], 1.0, id="all agree"),
        pytest.param([[1, 1], [1, 1]], 0.0, id="all pairs disagree"),
        pytest.param([[2, 1]], 1 / 3, id="three raters, one pair of three agrees"),
        pytest.param([[1, 0], [1, 1]], 0.0, id="single rating ignored"),
        pytest.param([[1, 0]], NAN, id="no item with two ratings"),
    ],
)
def test_percent_agreement_edge_cases(counts, expected):
    assert percent_agreement(np.array(counts)) == pytest.approx(expected, nan_ok=True)


def test_alpha_is_nan_without_variation():
    assert np.isnan(krippendorff_alpha(np.array([[2, 0], [3, 0]])))


def test_interval_alpha_needs_category_values():
    with pytest.raises(ValidationError, match="numeric value"):
        krippendorff_alpha(np.array([[2, 0], [0, 2]]), level="interval")


def test_unknown_level_is_rejected():
    with pytest.raises(ValidationError, match="level"):
        krippendorff_alpha(np.array([[2, 0]]), level="cardinal")  # type: ignore[arg-type]


def test_duplicate_rating_of_one_item_by_one_annotator_is_rejected():
    with pytest.raises(ValidationError, match="rated item 7 twice") as info:
        categorical_agreement(np.array([7, 7, 7]), np.array([1, 2, 1]), np.array([0, 1, 1]))
    assert info.value.row == 2


# --- one-shot result -----------------------------------------------------------------------


def test_categorical_agreement_of_two_annotators_matches_the_oracles():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, size=300)
    b = np.where(rng.random(300) < 0.7, a, rng.integers(0, 3, size=300))
    item = np.concatenate([np.arange(300), np.arange(300)])
    annotator = np.repeat([0, 1], 300)
    result = categorical_agreement(item, annotator, np.concatenate([a, b]), n_resamples=200)
    assert result.cohen_kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    reliability = np.vstack([a, b]).astype(float)
    assert result.krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"),
        abs=1e-12,
    )
    table = np.zeros((300, 3))
    np.add.at(table, (np.arange(300), a), 1)
    np.add.at(table, (np.arange(300), b), 1)
    assert result.fleiss_kappa == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)
    assert result.percent_agreement == pytest.approx(np.mean(a == b))
    document = result.to_dict()
    assert set(document["ci"]) == {
        "percent_agreement",
        "krippendorff_alpha",
        "cohen_kappa",
        "fleiss_kappa",
    }
    for name, (low, high) in document["ci"].items():
        assert low <= document[name] <= high
    json.dumps(document)  # plain JSON types only


def test_categorical_agreement_of_the_worked_example_gives_reasons():
    item, annotator, label = long_table(KRIPPENDORFF_2011)
    result = categorical_agreement(
        item, annotator, label, level="ordinal", values=np.arange(6.0), n_resamples=0
    )
    document = result.to_dict()
    assert (document["items"], document["annotators"], document["ratings"]) == (12, 4, 41)
    assert document["cohen_kappa"] is None
    assert document["cohen_kappa_reason"] == "needs exactly two annotators, got 4"
    assert document["fleiss_kappa"] is None
    assert round(document["krippendorff_alpha"], 3) == 0.815
    assert document["ci"] == {}


# --- bootstrap -----------------------------------------------------------------------------


def test_bootstrap_is_reproducible_for_a_seed_and_differs_between_seeds():
    counts = counts_of(KRIPPENDORFF_2011)

    def statistic(w):
        return krippendorff_alpha_batch(counts, w)

    first = bootstrap_ci(statistic, counts.shape[0], n_resamples=300, seed=4)
    again = bootstrap_ci(statistic, counts.shape[0], n_resamples=300, seed=4)
    other = bootstrap_ci(statistic, counts.shape[0], n_resamples=300, seed=5)
    assert first == again
    assert first != other


def test_batched_statistic_equals_the_statistic_of_the_repeated_items():
    counts = counts_of(KRIPPENDORFF_2011)
    weights = np.array([[2, 0, 1, 1, 3, 0, 1, 1, 1, 2, 0, 0]], dtype=float)
    repeated = counts.toarray().repeat(weights[0].astype(int), axis=0)
    for level in ("nominal", "ordinal", "interval"):
        batch = krippendorff_alpha_batch(counts, weights, level=level, values=np.arange(6.0))
        assert batch[0] == pytest.approx(
            krippendorff_alpha(repeated, level=level, values=np.arange(6.0)), abs=1e-12
        )
    assert percent_agreement_batch(counts, weights)[0] == pytest.approx(percent_agreement(repeated))


def test_bootstrap_chunks_give_the_same_interval(monkeypatch):
    import labelgate.core.agreement as module

    counts = counts_of(KRIPPENDORFF_2011)

    def statistic(w):
        return krippendorff_alpha_batch(counts, w, level="ordinal")

    whole = bootstrap_ci(statistic, 12, n_resamples=100, seed=1)
    monkeypatch.setattr(module, "_BLOCK_ELEMENTS", 30)
    assert bootstrap_ci(statistic, 12, n_resamples=100, seed=1) == pytest.approx(whole)


def test_shared_resamples_give_each_statistic_its_own_interval():
    counts = counts_of(KRIPPENDORFF_2011)
    statistics = {
        "percent": lambda w: percent_agreement_batch(counts, w),
        "alpha": lambda w: krippendorff_alpha_batch(counts, w),
    }
    together = bootstrap_cis(statistics, 12, n_resamples=150, seed=9)
    for name, statistic in statistics.items():
        assert together[name] == bootstrap_ci(statistic, 12, n_resamples=150, seed=9)


def test_bootstrap_rejects_a_confidence_outside_0_1():
    with pytest.raises(ValidationError, match="confidence"):
        bootstrap_ci(lambda w: w.sum(axis=1), 3, confidence=1.0)


# --- hypothesis --------------------------------------------------------------------------

ratings_tables = st.integers(2, 6).flatmap(
    lambda n_annotators: st.lists(
        st.lists(st.integers(0, 3) | st.none(), min_size=n_annotators, max_size=n_annotators),
        min_size=2,
        max_size=15,
    )
)


def _from_rows(rows):
    reliability = np.array([[NAN if v is None else v for v in row] for row in rows]).T
    return long_table(reliability)


@settings(max_examples=60, deadline=None)
@given(ratings_tables)
def test_alpha_equals_the_krippendorff_package_with_missing_ratings(rows):
    item, _, label = _from_rows(rows)
    counts = category_counts(item, label, n_categories=4)
    reliability = np.array([[NAN if v is None else v for v in row] for row in rows]).T
    for level in ("nominal", "ordinal", "interval"):
        ours = krippendorff_alpha(counts, level=level, values=np.arange(4.0))
        m = np.asarray(counts.sum(axis=1)).ravel()
        pairable = counts[m >= 2].toarray()
        if pairable.sum() < 2 or np.count_nonzero(pairable.sum(axis=0)) < 2:
            assert np.isnan(ours)  # undefined: no pairable variation
            continue
        oracle = krippendorff.alpha(
            reliability_data=reliability, level_of_measurement=level, value_domain=[0, 1, 2, 3]
        )
        assert ours == pytest.approx(oracle, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=30), st.integers(2, 5))
def test_perfect_agreement_gives_one_when_labels_vary(labels, n_annotators):
    if len(set(labels)) < 2:
        labels = [*labels[:-1], (labels[-1] + 1) % 5]
    item = np.repeat(np.arange(len(labels)), n_annotators)
    annotator = np.tile(np.arange(n_annotators), len(labels))
    label = np.repeat(labels, n_annotators)
    result = categorical_agreement(item, annotator, label, n_resamples=0)
    assert result.percent_agreement == 1.0
    assert result.krippendorff_alpha == pytest.approx(1.0)
    assert result.fleiss_kappa == pytest.approx(1.0)
    if n_annotators == 2:
        assert result.cohen_kappa == pytest.approx(1.0)
    counts = category_counts(item, label, n_categories=5)
    for level in ("ordinal", "interval"):
        assert krippendorff_alpha(counts, level=level, values=np.arange(5.0)) == pytest.approx(1)


@settings(max_examples=60, deadline=None)
@given(ratings_tables, st.randoms(use_true_random=False))
def test_permuting_annotators_changes_nothing(rows, random):
    item, annotator, label = _from_rows(rows)
    n_annotators = len(rows[0])
    permutation = np.array(random.sample(range(n_annotators), n_annotators))
    if len(item) == 0:
        return
    before = categorical_agreement(item, annotator, label, n_categories=4, n_resamples=0)
    after = categorical_agreement(
        item, permutation[annotator], label, n_categories=4, n_resamples=0
    )
    for key in ("percent_agreement", "krippendorff_alpha", "fleiss_kappa", "cohen_kappa"):
        x, y = getattr(before, key), getattr(after, key)
        assert (x is None and y is None) or x == pytest.approx(y, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.3, 0.95))
def test_bootstrap_ci_contains_the_estimate_on_large_samples(seed, accuracy):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=2000)
    labels = np.where(rng.random((3, 2000)) < accuracy, truth, rng.integers(0, 4, (3, 2000)))
    item = np.tile(np.arange(2000), 3)
    annotator = np.repeat(np.arange(3), 2000)
    result = categorical_agreement(item, annotator, labels.ravel(), n_resamples=200, seed=seed)
    for name in ("percent_agreement", "krippendorff_alpha", "fleiss_kappa"):
        low, high = result.ci[name]
        assert low < getattr(result, name) < high


# --- real data -----------------------------------------------------------------------------


def test_toy_ysda_answers_agree_with_the_krippendorff_package(shared_data: Path):
    path = shared_data / "crowd-kit-fixtures" / "toy_ysda_answers.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    tasks = sorted({r["task"] for r in rows})
    workers = sorted({r["worker"] for r in rows})
    assert (len(rows), len(tasks), len(workers)) == (24, 5, 5)  # SOURCES.md
    reliability = np.full((len(workers), len(tasks)), NAN)
    for r in rows:
        reliability[workers.index(r["worker"]), tasks.index(r["task"])] = r["label"] == "yes"
    item, annotator, label = long_table(reliability)
    result = categorical_agreement(item, annotator, label, n_resamples=0)
    assert result.krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal"),
        abs=1e-12,
    )
    assert result.fleiss_kappa is None  # w3 did not answer t1
    assert result.fleiss_kappa_reason == (
        "needs the same number of ratings per item; items have 4 to 5"
    )


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "imagenet"])
def test_cleanlab_mturk_vote_counts_agree_with_the_oracles(shared_data: Path, name):
    path = shared_data / "cleanlab-label-errors" / "mturk" / f"{name}_mturk.json"
    records = json.loads(path.read_text())
    votes = np.array(
        [[r["mturk"].get(k, 0) for k in ("given", "guessed", "neither", "both")] for r in records]
    )
    assert krippendorff_alpha(votes) == pytest.approx(
        krippendorff.alpha(value_counts=votes, level_of_measurement="nominal"), abs=1e-12
    )
    five = votes[votes.sum(axis=1) == 5]  # five workers per item (MNIST: a few got more)
    kappa, reason = fleiss_kappa(five)
    assert reason is None
    assert kappa == pytest.approx(sm_fleiss_kappa(five), abs=1e-12)
