"""Active learning: which images to label next, from a model's predictions on the pool.

Strategies (``strategy=``):

- ``uncertainty``: least confidence, ``1 - s`` per detection, where ``s`` is its score
  (the model's belief that the box holds its class rather than background);
- ``margin``: ``1 - |s - s2|``, ``s2`` the stronger alternative: the best score of another
  class predicted over the same object (IoU >= 0.5), or background ``1 - s``;
- ``entropy``: the entropy of ``(s, s2_class, 1 - s - s2_class)`` (clipped at 0), the
  detection's own class, its best competing class and background, in units of ``log 3``
  so it lies in [0, 1];
- ``diversity``: k-center greedy (Sener & Savarese, "Active Learning for Convolutional
  Neural Networks: A Core-Set Approach", ICLR 2018) over image embeddings: each pick is
  the image farthest from everything chosen (or already labelled) so far;
- ``hybrid``: k-center greedy among the ``hybrid_pool`` x budget most uncertain images.

Per-image aggregates of the per-detection uncertainty (``aggregate=``): ``max`` (default:
the image's most doubtful object; not biased towards crowded images), ``mean`` (how
doubtful the model is on the image overall), ``sum`` (expected corrections per image: it
favours crowded images, whose labels also cost more). Detections below ``min_score``
(default 0.05) are ignored as background; an image with none scores 0.

Without embeddings, diversity runs on a histogram of the image's predicted classes
(score-weighted, L2-normalized): images with different contents are far apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.pairs import box_pairs_overlapping
from labelgate.errors import ValidationError

__all__ = [
    "STRATEGIES",
    "ActiveLearningCurve",
    "EfficiencyCurves",
    "class_histogram",
    "detection_uncertainty",
    "image_uncertainty",
    "k_center_greedy",
    "label_efficiency",
    "model_errors_per_image",
    "select",
    "simulate_active_learning",
    "simulate_label_efficiency",
]

Strategy = Literal["uncertainty", "margin", "entropy", "diversity", "hybrid"]
Aggregate = Literal["max", "mean", "sum"]
STRATEGIES: tuple[str, ...] = ("uncertainty", "margin", "entropy", "diversity", "hybrid")


def detection_uncertainty(
    predictions: Annotations, strategy: str = "uncertainty", *, competitor_iou: float = 0.5
) -> FloatArray:
    """Per-detection uncertainty in [0, 1] (see the module docstring): (m,) -> (m,).

    Examples
    --------
    >>> pred = Annotations.create(image_id=[1, 1, 2], class_id=[1, 2, 1],
    ...                           score=[0.6, 0.4, 0.9], bbox=[[0, 0, 10, 10]] * 3)
    >>> detection_uncertainty(pred, "uncertainty").round(2).tolist()
    [0.4, 0.6, 0.1]
    >>> detection_uncertainty(pred, "margin").round(2).tolist()
    [0.8, 0.8, 0.2]
    """
    score = np.clip(np.nan_to_num(predictions.score, nan=0.0), 0.0, 1.0)
    if strategy in ("uncertainty", "diversity", "hybrid"):
        return 1.0 - score
    if strategy not in ("margin", "entropy"):
        raise ValidationError(f"expected one of {STRATEGIES}, got {strategy!r}", field="strategy")
    # the best other-class score over the same object
    rival = np.zeros(len(predictions))
    a, b, iou = box_pairs_overlapping(
        predictions.image_id, predictions.bbox, predictions.image_id, predictions.bbox
    )
    keep = (iou >= competitor_iou) & (predictions.class_id[a] != predictions.class_id[b])
    np.maximum.at(rival, a[keep], score[b[keep]])
    if strategy == "margin":
        second = np.maximum(rival, 1.0 - score)
        return np.clip(1.0 - np.abs(score - second), 0.0, 1.0)
    rival = np.minimum(rival, 1.0 - score)
    probabilities = np.stack([score, rival, np.clip(1.0 - score - rival, 0.0, 1.0)], axis=1)
    total = probabilities.sum(axis=1, keepdims=True)
    probabilities = np.divide(probabilities, total, out=np.zeros_like(probabilities),
                              where=total > 0)  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probabilities > 0, -probabilities * np.log(probabilities), 0.0)
    out: FloatArray = terms.sum(axis=1) / np.log(3.0)
    return out


def image_uncertainty(
    predictions: Annotations,
    image_ids: IntArray | None = None,
    *,
    strategy: str = "uncertainty",
    aggregate: str = "max",
    min_score: float = 0.05,
) -> tuple[IntArray, FloatArray]:
    """Per-image uncertainty: ``(image_ids, scores)``, each image once, ids ascending.

    Parameters
    ----------
    predictions
        Scored detections on the pool.
    image_ids
        The pool; default every image with a prediction. Images without detections score 0.
    strategy
        ``uncertainty``, ``margin`` or ``entropy`` (diversity and hybrid rank by
        ``uncertainty``).
    aggregate
        ``max``, ``mean`` or ``sum`` over the image's detections.
    min_score
        Detections below this score are background; default 0.05.

    Examples
    --------
    >>> pred = Annotations.create(image_id=[1, 1, 2], class_id=[1, 1, 1],
    ...                           score=[0.9, 0.5, 0.8], bbox=[[0, 0, 10, 10]] * 3)
    >>> ids, s = image_uncertainty(pred, np.array([1, 2, 3]), aggregate="sum")
    >>> ids.tolist(), s.round(2).tolist()
    ([1, 2, 3], [0.6, 0.2, 0.0])
    """
    if aggregate not in ("max", "mean", "sum"):
        raise ValidationError(f"expected max, mean or sum, got {aggregate!r}", field="aggregate")
    pool = np.unique(predictions.image_id if image_ids is None else np.asarray(image_ids))
    pool = pool.astype(np.int64)
    live = np.flatnonzero(np.nan_to_num(predictions.score, nan=0.0) >= min_score)
    values = detection_uncertainty(predictions, strategy)[live]
    image = predictions.image_id[live]
    inside = np.isin(image, pool)
    values, image = values[inside], image[inside]
    group = np.searchsorted(pool, image)
    out = np.zeros(len(pool))
    if aggregate == "max":
        np.maximum.at(out, group, values)
    else:
        out = np.bincount(group, weights=values, minlength=len(pool)).astype(np.float64)
        if aggregate == "mean":
            count = np.bincount(group, minlength=len(pool))
            out = np.divide(out, count, out=np.zeros(len(pool)), where=count > 0)
    return pool, out


def class_histogram(predictions: Annotations, image_ids: IntArray) -> FloatArray:
    """(k, c) score-weighted counts of each predicted class per image, rows L2-normalized.

    Examples
    --------
    >>> pred = Annotations.create(image_id=[1, 2, 2], class_id=[1, 1, 2],
    ...                           score=[1.0, 1.0, 1.0], bbox=[[0, 0, 1, 1]] * 3)
    >>> class_histogram(pred, np.array([1, 2])).round(3).tolist()
    [[1.0, 0.0], [0.707, 0.707]]
    """
    image_ids = np.asarray(image_ids, dtype=np.int64)
    classes, column = np.unique(predictions.class_id, return_inverse=True)
    row = np.searchsorted(image_ids, predictions.image_id)
    row = np.clip(row, 0, max(len(image_ids) - 1, 0))
    inside = (image_ids[row] == predictions.image_id) if len(image_ids) else row < 0
    out = np.zeros((len(image_ids), len(classes)))
    weight = np.nan_to_num(predictions.score, nan=1.0)
    np.add.at(out, (row[inside], column.ravel()[inside]), weight[inside])
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    result: FloatArray = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    return result


def k_center_greedy(
    embeddings: FloatArray, budget: int, *, labeled: IntArray | None = None
) -> IntArray:
    """Pick ``budget`` rows, each the farthest (Euclidean) from all rows picked or labelled.

    Sener & Savarese (ICLR 2018): a 2-approximation of the k-center problem. One (n,)
    array of distances to the nearest centre is kept and lowered with each pick, so every
    step is one vectorized distance computation, O(n d). Without labelled rows the first
    pick is the row farthest from the mean. Ties: the lowest row.

    Parameters
    ----------
    embeddings
        (n, d) one row per candidate.
    budget
        Rows to pick (at most n minus the labelled rows).
    labeled
        Rows already labelled (centres from the start, never picked); default none.

    Returns
    -------
    IntArray
        (budget,) picked rows in pick order.

    Examples
    --------
    >>> x = np.array([[0.0, 0], [1, 0], [10, 0], [11, 0], [5, 5]])
    >>> k_center_greedy(x, 3).tolist()
    [3, 0, 4]
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValidationError(
            f"expected (n, d) embeddings, got shape {x.shape}", field="embeddings"
        )
    n = len(x)
    taken = np.zeros(n, dtype=bool)
    nearest = np.full(n, np.inf)
    if labeled is not None and len(labeled):
        labeled = np.asarray(labeled, dtype=np.int64)
        taken[labeled] = True
        for block in range(0, len(labeled), 256):  # bounded (256, n) distance blocks
            centres = x[labeled[block : block + 256]]
            d = np.sqrt(((x[None, :, :] - centres[:, None, :]) ** 2).sum(axis=2)).min(axis=0)
            np.minimum(nearest, d, out=nearest)
    budget = min(budget, int((~taken).sum()))
    picks = np.empty(budget, dtype=np.int64)
    for step in range(budget):  # each step is one O(n d) vectorized update
        if step == 0 and not taken.any():  # no centre yet: the mean stands in, once
            gap = np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))
        else:
            gap = np.where(taken, -np.inf, nearest)
        pick = int(np.argmax(gap))
        picks[step] = pick
        taken[pick] = True
        np.minimum(nearest, np.sqrt(((x - x[pick]) ** 2).sum(axis=1)), out=nearest)
    return picks


def select(
    predictions: Annotations,
    budget: int,
    strategy: str = "uncertainty",
    embeddings: FloatArray | None = None,
    *,
    image_ids: IntArray | None = None,
    labeled: Sequence[int] | IntArray | None = None,
    aggregate: str = "max",
    hybrid_pool: float = 3.0,
    min_score: float = 0.05,
) -> IntArray:
    """Image ids to label next: ``budget`` of them, most valuable first.

    Parameters
    ----------
    predictions
        The model's scored detections on the unlabelled pool.
    budget
        Images to pick (fewer when the pool is smaller).
    strategy
        ``uncertainty``, ``margin``, ``entropy``, ``diversity`` or ``hybrid`` (module
        docstring).
    embeddings
        (k, d) one row per pool image in ``image_ids`` order (ascending ids); default the
        class histogram of :func:`class_histogram`.
    image_ids
        The pool, ascending; default every image with a prediction.
    labeled
        Image ids already labelled: never picked; diversity keeps away from them.
    aggregate
        ``max``, ``mean`` or ``sum`` (module docstring).
    hybrid_pool
        Hybrid: k-center greedy among the ``hybrid_pool * budget`` most uncertain images.
    min_score
        Detections below it are background.

    Returns
    -------
    IntArray
        (b,) image ids; ties by ascending id.

    Raises
    ------
    ValidationError
        Unknown strategy or aggregate, negative budget, embeddings of the wrong shape.

    Examples
    --------
    >>> pred = Annotations.create(image_id=[1, 2, 3], class_id=[1, 1, 2],
    ...                           score=[0.9, 0.5, 0.6], bbox=[[0, 0, 10, 10]] * 3)
    >>> select(pred, 2).tolist()
    [2, 3]
    >>> select(pred, 2, "diversity").tolist()
    [3, 1]
    """
    if strategy not in STRATEGIES:
        raise ValidationError(f"expected one of {STRATEGIES}, got {strategy!r}", field="strategy")
    if budget < 0:
        raise ValidationError(f"expected budget >= 0, got {budget}", field="budget")
    pool, score = image_uncertainty(
        predictions, image_ids, strategy=strategy, aggregate=aggregate, min_score=min_score
    )
    done = np.isin(pool, np.asarray(labeled if labeled is not None else [], dtype=np.int64))
    if strategy in ("uncertainty", "margin", "entropy"):
        order = np.lexsort((pool, -score))
        order = order[~done[order]]
        return pool[order[:budget]]
    if embeddings is None:
        x = class_histogram(predictions, pool)
    else:
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(pool):
            raise ValidationError(
                f"expected ({len(pool)}, d) embeddings, one row per pool image, got "
                f"shape {x.shape}",
                field="embeddings",
            )
    labeled_rows = np.flatnonzero(done)
    if strategy == "diversity":
        return pool[k_center_greedy(x, budget, labeled=labeled_rows)]
    # hybrid: the most uncertain candidates, spread out by k-center greedy
    order = np.lexsort((pool, -score))
    order = order[~done[order]]
    candidates = np.sort(order[: max(budget, int(np.ceil(hybrid_pool * budget)))])
    rows = np.concatenate([labeled_rows, candidates])
    picked = k_center_greedy(x[rows], budget, labeled=np.arange(len(labeled_rows)))
    chosen: IntArray = pool[rows[picked]]
    return chosen


@dataclass(frozen=True, slots=True, eq=False)
class ActiveLearningCurve:
    """Label efficiency: the share of the model's errors inside the images labelled so far.

    Attributes
    ----------
    strategy : str
    images_labeled : (r,) int64
        Images labelled after each round.
    errors_found : (r,) float64
        Share of all model errors (missed, false, swapped and duplicated objects) that sit
        on the images labelled so far, with ``strategy``.
    random_errors_found : (r,) float64
        The same for random selection (mean over ``random_runs`` draws).
    """

    strategy: str
    images_labeled: IntArray
    errors_found: FloatArray
    random_errors_found: FloatArray

    def to_dict(self) -> dict[str, object]:
        """JSON-ready lists."""
        return {
            "strategy": self.strategy,
            "images_labeled": self.images_labeled.tolist(),
            "errors_found": [round(v, 6) for v in self.errors_found.tolist()],
            "random_errors_found": [round(v, 6) for v in self.random_errors_found.tolist()],
        }


def simulate_active_learning(
    n_images: int = 2000,
    *,
    rounds: int = 10,
    budget: int = 50,
    strategy: str = "uncertainty",
    aggregate: str = "sum",
    seed: int = 0,
    random_runs: int = 5,
    truth: Dataset | None = None,
) -> ActiveLearningCurve:
    """Simulate labelling rounds on generated data: model errors found vs random selection.

    A reference is generated (:func:`~labelgate.core.generate.generate_dataset`) and a
    model's predictions derived from it (:func:`labelgate.ml.synthetic.model_predictions`:
    misses, false positives, swaps, duplicates, with scores). Each round ``select`` picks
    ``budget`` unlabelled images; labelling an image corrects every model error on it. The
    curve is the share of all model errors on the labelled images: what a round of human
    labelling fixes in the pre-labels. Random selection finds errors in proportion to the
    images labelled; a good strategy finds them faster.

    Parameters
    ----------
    n_images
        Pool size; default 2000.
    rounds, budget
        Rounds, and images labelled per round; defaults 10 and 50.
    strategy, aggregate
        As in :func:`select`; aggregate default ``sum`` (errors per image add up).
    seed
        Seed of the data, the model and the random baseline.
    random_runs
        Random selections averaged for the baseline; default 5.
    truth
        Use this reference instead of generating one.

    Examples
    --------
    >>> curve = simulate_active_learning(300, rounds=3, budget=20, seed=1)
    >>> curve.images_labeled.tolist()
    [20, 40, 60]
    >>> bool(curve.errors_found[-1] > curve.random_errors_found[-1])
    True
    """
    from labelgate.core.generate import generate_dataset

    truth = truth if truth is not None else generate_dataset(n_images, seed=seed)
    pred, pool, errors_per_image = _simulated_errors(truth, seed)
    counts, found = _strategy_curve(pred, pool, errors_per_image, rounds, budget, strategy,
                                    aggregate)  # fmt: skip
    random_found = _random_curve(errors_per_image, counts, seed + 2, random_runs)
    return ActiveLearningCurve(
        strategy=strategy,
        images_labeled=counts,
        errors_found=found,
        random_errors_found=random_found,
    )


def _simulated_errors(truth: Dataset, seed: int) -> tuple[Annotations, IntArray, IntArray]:
    """A model's predictions on ``truth`` (seed ``seed + 1``), the pool, its errors per image."""
    from labelgate.ml.synthetic import model_predictions

    result = model_predictions(truth, seed=seed + 1)
    pred = result.annotations
    pool = np.sort(truth.images.id)
    wrong = result.false_positive | result.swapped | result.duplicate
    error_image = np.concatenate([truth.annotations.image_id[result.missed], pred.image_id[wrong]])
    errors_per_image = np.bincount(np.searchsorted(pool, error_image), minlength=len(pool))
    return pred, pool, errors_per_image


def _strategy_curve(
    pred: Annotations,
    pool: IntArray,
    errors_per_image: IntArray,
    rounds: int,
    budget: int,
    strategy: str,
    aggregate: str,
) -> tuple[IntArray, FloatArray]:
    """Images labelled after each round and the share of errors on them, one select() a round."""
    total = max(int(errors_per_image.sum()), 1)
    labeled: list[int] = []
    found, counts = [], []
    for _ in range(rounds):  # one select() call per labelling round
        picked = select(pred, budget, strategy, image_ids=pool, labeled=labeled,
                        aggregate=aggregate)  # fmt: skip
        labeled.extend(picked.tolist())
        rows = np.searchsorted(pool, np.asarray(labeled, dtype=np.int64))
        found.append(errors_per_image[rows].sum() / total)
        counts.append(len(labeled))
    return np.asarray(counts, dtype=np.int64), np.asarray(found, dtype=np.float64)


def _random_curve(errors_per_image: IntArray, counts: IntArray, seed: int, runs: int) -> FloatArray:
    """Share of errors on ``counts`` randomly chosen images: the mean of ``runs`` draws."""
    total = max(int(errors_per_image.sum()), 1)
    rng = np.random.default_rng(seed)
    out = np.zeros(len(counts))
    for _ in range(runs):
        order = rng.permutation(len(errors_per_image))
        cumulative = np.cumsum(errors_per_image[order]) / total
        at = np.minimum(np.asarray(counts), len(errors_per_image)) - 1
        out += np.where(at >= 0, cumulative[np.maximum(at, 0)], 0.0)
    result: FloatArray = out / max(runs, 1)
    return result


@dataclass(frozen=True, slots=True, eq=False)
class EfficiencyCurves:
    """Label efficiency of several strategies beside random selection, with spread over seeds.

    Attributes
    ----------
    source : str
        ``"program"`` (a program's predictions against its final labels) or ``"simulated"``
        (generated data and a generated model, :func:`simulate_label_efficiency`).
    strategies : tuple of str
    images_labeled : (r,) int64
        Images labelled after each round.
    found : (k, s, r) float64
        Share of the model's errors on the images labelled so far, per strategy, seed and
        round. On a program's data the strategies are deterministic: s is 1.
    random_found : (s, r) float64
        The same for random selection, per seed (each the mean of several draws).
    seeds : (s,) int64
        Seeds of the data (simulated) or of the random draws (program).
    pool_images : int
    total_errors : (s,) int64
        Model errors in the pool, per seed (one value, repeated, on a program's data).
    """

    source: str
    strategies: tuple[str, ...]
    images_labeled: IntArray
    found: FloatArray
    random_found: FloatArray
    seeds: IntArray
    pool_images: int
    total_errors: IntArray

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: per strategy and for random, the ``mean``, ``low`` and ``high`` curves.

        ``low``/``high`` are the smallest and largest value over the seeds; ``gain`` is the
        strategy's mean share of errors found over random's, at the last round.
        """

        def band(values: FloatArray) -> dict[str, list[float]]:
            return {
                "mean": [round(v, 6) for v in values.mean(axis=0).tolist()],
                "low": [round(v, 6) for v in values.min(axis=0).tolist()],
                "high": [round(v, 6) for v in values.max(axis=0).tolist()],
            }

        random_last = float(self.random_found.mean(axis=0)[-1]) if self.found.size else 0.0
        rows = []
        for name, values in zip(self.strategies, self.found):
            last = float(values.mean(axis=0)[-1]) if values.size else 0.0
            gain = round(last / random_last, 3) if random_last > 0 else None
            rows.append({"strategy": name, **band(values), "gain": gain})
        return {
            "source": self.source,
            "pool_images": self.pool_images,
            "images_labeled": self.images_labeled.tolist(),
            "seeds": self.seeds.tolist(),
            "total_errors": self.total_errors.tolist(),
            "strategies": rows,
            "random": band(self.random_found),
        }


def simulate_label_efficiency(
    n_images: int = 600,
    *,
    strategies: Sequence[str] = STRATEGIES,
    seeds: Sequence[int] = (0, 1, 2),
    rounds: int = 6,
    budget: int = 20,
    aggregate: str = "sum",
    random_runs: int = 5,
) -> EfficiencyCurves:
    """:func:`simulate_active_learning` for several strategies and seeds, on shared data.

    Per seed one data set and one model (as :func:`simulate_active_learning` with that
    seed draws them); every strategy runs its rounds on them, so for each (strategy, seed)
    the curve equals ``simulate_active_learning(n_images, ..., strategy=s, seed=seed)``.

    Examples
    --------
    >>> curves = simulate_label_efficiency(200, strategies=("uncertainty",), seeds=(0, 1),
    ...                                    rounds=2, budget=10)
    >>> curves.found.shape, curves.random_found.shape, curves.images_labeled.tolist()
    ((1, 2, 2), (2, 2), [10, 20])
    """
    from labelgate.core.generate import generate_dataset

    _check_strategies(strategies)
    found = np.zeros((len(strategies), len(seeds), rounds))
    random_found = np.zeros((len(seeds), rounds))
    totals = np.zeros(len(seeds), dtype=np.int64)
    counts = np.zeros(rounds, dtype=np.int64)
    for j, seed in enumerate(seeds):
        pred, pool, errors = _simulated_errors(generate_dataset(n_images, seed=seed), seed)
        for i, strategy in enumerate(strategies):
            counts, found[i, j] = _strategy_curve(
                pred, pool, errors, rounds, budget, strategy, aggregate
            )
        random_found[j] = _random_curve(errors, counts, seed + 2, random_runs)
        totals[j] = int(errors.sum())
    return EfficiencyCurves(
        source="simulated",
        strategies=tuple(strategies),
        images_labeled=counts,
        found=found,
        random_found=random_found,
        seeds=np.asarray(seeds, dtype=np.int64),
        pool_images=n_images,
        total_errors=totals,
    )


def model_errors_per_image(
    reference: Annotations,
    predictions: Annotations,
    pool: IntArray,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> IntArray:
    """Per pool image, the model's errors against reference labels (what labelling fixes).

    The predictions scoring >= ``score_threshold`` are matched one-to-one to the reference
    (:func:`~labelgate.core.matching.match`, IoU >= ``iou_threshold``, class swaps paired):
    each reference object left without a match or swap is a miss, each swap one error, and
    each confident prediction left over a false positive (duplicates included).

    Examples
    --------
    >>> ref = Annotations.create(image_id=[1, 1, 2], class_id=[1, 1, 1],
    ...                          bbox=[[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    >>> pred = Annotations.create(image_id=[1, 2, 2, 3], class_id=[1, 2, 1, 1],
    ...                           score=[0.9, 0.8, 0.7, 0.2],
    ...                           bbox=[[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60],
    ...                                 [0, 0, 5, 5]])
    >>> model_errors_per_image(ref, pred, np.array([1, 2, 3])).tolist()  # miss; swap + FP
    [1, 2, 0]
    """
    from labelgate.core.matching import match

    pool = np.asarray(pool, dtype=np.int64)
    confident = predictions[np.nan_to_num(predictions.score, nan=0.0) >= score_threshold]
    m = match(reference, confident, iou_threshold=iou_threshold)
    error_image = np.concatenate(
        [
            reference.image_id[m.missed()],
            reference.image_id[m.swap_ref_rows],
            confident.image_id[m.extra()],
        ]
    )
    error_image = error_image[np.isin(error_image, pool)]
    out: IntArray = np.bincount(np.searchsorted(pool, error_image), minlength=len(pool))
    return out.astype(np.int64)


def label_efficiency(
    reference: Annotations,
    predictions: Annotations,
    *,
    pool: IntArray | None = None,
    strategies: Sequence[str] = STRATEGIES,
    seeds: Sequence[int] = (0, 1, 2),
    rounds: int = 6,
    budget: int | None = None,
    aggregate: str = "sum",
    random_runs: int = 5,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
) -> EfficiencyCurves:
    """The active-learning loop replayed on real predictions: which images were worth labelling.

    Each strategy picks ``budget`` images a round from the model's ``predictions`` (as
    :func:`select`); labelling an image fixes the model's errors on it, counted against
    the ``reference`` (the final labels) by :func:`model_errors_per_image`. Random
    selection is drawn ``random_runs`` times per seed.

    Parameters
    ----------
    reference, predictions
        Final labels and the model's scored predictions on the pool images.
    pool
        Sorted image ids to select from; default every image with a prediction or label.
    budget
        Images per round; default enough for ``rounds`` rounds to cover half the pool.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = generate_dataset(120, seed=0)
    >>> pred, _, _ = _simulated_errors(truth, 0)
    >>> curves = label_efficiency(truth.annotations, pred, rounds=3, seeds=(0, 1))
    >>> curves.images_labeled.tolist(), curves.found.shape
    ([20, 40, 60], (5, 1, 3))
    """
    _check_strategies(strategies)
    if pool is None:
        pool = np.union1d(reference.image_id, predictions.image_id)
    pool = np.asarray(pool, dtype=np.int64)
    if budget is None:
        budget = max(1, int(np.ceil(len(pool) / (2 * rounds))))
    errors = model_errors_per_image(
        reference, predictions, pool, iou_threshold=iou_threshold, score_threshold=score_threshold
    )
    found = np.zeros((len(strategies), 1, rounds))
    counts = np.zeros(rounds, dtype=np.int64)
    for i, strategy in enumerate(strategies):
        counts, found[i, 0] = _strategy_curve(
            predictions, pool, errors, rounds, budget, strategy, aggregate
        )
    random_found = np.stack([_random_curve(errors, counts, s, random_runs) for s in seeds])
    return EfficiencyCurves(
        source="program",
        strategies=tuple(strategies),
        images_labeled=counts,
        found=found,
        random_found=random_found,
        seeds=np.asarray(seeds, dtype=np.int64),
        pool_images=len(pool),
        total_errors=np.full(len(seeds), int(errors.sum()), dtype=np.int64),
    )


def _check_strategies(strategies: Sequence[str]) -> None:
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ValidationError(
            f"expected strategies among {', '.join(STRATEGIES)}, got {list(strategies)}",
            field="strategies",
        )
