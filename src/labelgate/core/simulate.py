"""Simulated people for a program: annotators by cohort, reviewers and QA inspectors.

The simulation drives the real workflow (``labelgate.workflow.simulation``); this module only
decides what each simulated person would draw or flag, from the ground truth:

- an **annotator** labels the truth through a :class:`~labelgate.core.generate.NoiseModel`
  (size-dependent misses, signed box bias, jitter, class confusion, duplicates, false
  positives), gets each of an object's attributes (``occluded``, ``truncated``: the ones
  the generator produces) wrong with probability ``attribute_error_rate``, and takes a
  log-normal time per object around ``seconds_per_object`` (:func:`work_seconds`). They
  learn: each batch they finish scales their error rates by ``exp(-learning_rate)`` and
  brings their time per object down towards :data:`SPEED_FLOOR` of the first batch's;
- a **reviewer** or **QA inspector** compares labels with the truth at each class's IoU
  threshold and flags each real defect (missed object, extra box, wrong class, loose or
  tight box, wrong attribute) with probability ``catch_rate``; an inspector with rate 1
  finds them all;
- a **pre-label model** (:class:`PrelabelModel`) proposes boxes through the same noise and
  scores them so that they are *calibrated*: among predictions scored ``s``, a share
  ``s`` is correct (see :func:`calibrated_scores`);
- an annotator handed proposals (:func:`review_proposals`) accepts, adjusts or rejects
  each against what they would draw themselves and draws what is left; handling a
  proposal takes a share of the time of drawing it (:data:`PRELABEL_TIME_FRACTION`,
  :func:`prelabel_work_seconds`).

Cohort defaults follow the seeds: crowd work is cheaper and noisier, managed teams cost 2-3x
and deliver fewer defects, experts more still. Speeds are labelgate's assumption (the seeds
give none): crowd workers are quicker and sloppier, experts slower and careful
(:data:`COHORT_SECONDS_PER_OBJECT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, Source
from labelgate.core.dataset import Dataset
from labelgate.core.generate import NoiseModel, perturb
from labelgate.core.matching import match
from labelgate.errors import ValidationError

#: IoU above which a same-class box below its tier counts as badly drawn, not as missing
#: plus extra.
GEOMETRY_FLOOR_IOU = 0.3

__all__ = [
    "COHORT_ATTRIBUTE_ERROR",
    "COHORT_NOISE",
    "COHORT_SECONDS_PER_OBJECT",
    "PRELABEL_ACCEPT_IOU",
    "PRELABEL_ADJUST_IOU",
    "PRELABEL_NOISE",
    "PRELABEL_TIME_FRACTION",
    "SPEED_FLOOR",
    "SPEED_SIGMA",
    "AnnotatorProfile",
    "Defects",
    "PrelabelModel",
    "ProposalReview",
    "calibrated_scores",
    "correct_predictions",
    "find_defects",
    "prelabel_work_seconds",
    "review_proposals",
    "simulate_labels",
    "simulate_predictions",
    "work_seconds",
]

#: Typical annotators of each cohort (misses, jitter in box units, signed bias, swaps).
COHORT_NOISE: dict[str, NoiseModel] = {
    "crowd": NoiseModel(
        miss_base=0.05,
        miss_small_extra=0.35,
        jitter=0.06,
        bias=0.06,
        swap_probability=0.04,
        duplicate_probability=0.01,
        false_positives_per_image=0.15,
    ),
    "managed": NoiseModel(
        miss_base=0.0075,
        miss_small_extra=0.075,
        jitter=0.015,
        bias=0.01,
        swap_probability=0.005,
        duplicate_probability=0.0015,
        false_positives_per_image=0.025,
    ),
    "expert": NoiseModel(
        miss_base=0.0025,
        miss_small_extra=0.025,
        jitter=0.0075,
        bias=0.0,
        swap_probability=0.0015,
        duplicate_probability=0.0005,
        false_positives_per_image=0.01,
    ),
}


#: Median seconds per object (box plus its attributes) of each cohort's first batch:
#: labelgate's assumption around the 10 s per box behind the spec's default hourly rate
#: (:data:`labelgate.spec.model.SECONDS_PER_BOX`): crowd quicker, experts slower.
COHORT_SECONDS_PER_OBJECT: dict[str, float] = {"crowd": 6.0, "managed": 8.0, "expert": 10.0}

#: Probability that one attribute value of an object is wrong (per attribute, per object).
COHORT_ATTRIBUTE_ERROR: dict[str, float] = {"crowd": 0.03, "managed": 0.004, "expert": 0.0015}

#: Log-normal sigma of the time one object takes: half the objects within about x0.7 to
#: x1.4 of the median; the mean is ``median * exp(SPEED_SIGMA**2 / 2)`` (13 % above it).
SPEED_SIGMA = 0.5

#: Experience brings the time per object down to this share of the first batch's, no lower:
#: ``SPEED_FLOOR + (1 - SPEED_FLOOR) * exp(-learning_rate * batches_done)``.
SPEED_FLOOR = 0.6


@dataclass(frozen=True, slots=True)
class AnnotatorProfile:
    """One simulated annotator.

    Parameters
    ----------
    name
        User name in the program.
    cohort
        ``crowd``, ``managed`` or ``expert``.
    noise
        How their labels depart from the truth; default the cohort's typical noise.
    seconds_per_object
        Median seconds one object takes in the first batch; default the cohort's
        (:data:`COHORT_SECONDS_PER_OBJECT`).
    learning_rate
        Error rates shrink by ``exp(-learning_rate)`` per finished batch, and the time per
        object falls towards :data:`SPEED_FLOOR` of the first batch's; default 0.1.
    attribute_error_rate
        Probability that each attribute value of an object is wrong; default the cohort's
        (:data:`COHORT_ATTRIBUTE_ERROR`).
    speed_sigma
        Log-normal sigma of the time per object (default :data:`SPEED_SIGMA`).
    """

    name: str
    cohort: str = "managed"
    noise: NoiseModel | None = None
    seconds_per_object: float | None = None
    learning_rate: float = 0.1
    attribute_error_rate: float | None = None
    speed_sigma: float = SPEED_SIGMA

    def __post_init__(self) -> None:
        if self.noise is None and self.cohort not in COHORT_NOISE:
            raise ValidationError(
                f"expected a cohort of {', '.join(COHORT_NOISE)} (or a noise model), "
                f"got {self.cohort!r}",
                field="cohort",
            )
        checks = (
            ("seconds_per_object", self.seconds_per_object, 0.0, False),
            ("attribute_error_rate", self.attribute_error_rate, 0.0, True),
            ("speed_sigma", self.speed_sigma, 0.0, False),
        )
        for name, value, low, rate in checks:
            if value is None:
                continue
            if not (np.isfinite(value) and value >= low and (not rate or value <= 1.0)):
                wanted = "a rate in [0, 1]" if rate else "a finite number >= 0"
                raise ValidationError(f"expected {wanted}, got {value}", field=name)

    def seconds_after(self, batches_done: int) -> float:
        """Median seconds per object after ``batches_done`` batches of experience.

        Examples
        --------
        >>> p = AnnotatorProfile("a", "crowd", learning_rate=0.5)
        >>> p.seconds_after(0), round(p.seconds_after(2), 4), round(p.seconds_after(99), 4)
        (6.0, 4.4829, 3.6)
        """
        first = (
            self.seconds_per_object
            if self.seconds_per_object is not None
            else COHORT_SECONDS_PER_OBJECT.get(self.cohort, COHORT_SECONDS_PER_OBJECT["managed"])
        )
        decay = float(np.exp(-self.learning_rate * batches_done))
        return first * (SPEED_FLOOR + (1.0 - SPEED_FLOOR) * decay)

    def attribute_error_after(self, batches_done: int) -> float:
        """Per-attribute error probability after ``batches_done`` batches of experience."""
        first = (
            self.attribute_error_rate
            if self.attribute_error_rate is not None
            else COHORT_ATTRIBUTE_ERROR.get(self.cohort, COHORT_ATTRIBUTE_ERROR["managed"])
        )
        return first * float(np.exp(-self.learning_rate * batches_done))

    def noise_after(self, batches_done: int) -> NoiseModel:
        """The noise model after ``batches_done`` batches of experience.

        Examples
        --------
        >>> p = AnnotatorProfile("a", "crowd", learning_rate=0.5)
        >>> round(p.noise_after(2).miss_base / p.noise_after(0).miss_base, 4)
        0.3679
        """
        base = self.noise if self.noise is not None else COHORT_NOISE[self.cohort]
        factor = float(np.exp(-self.learning_rate * batches_done))
        return replace(
            base,
            miss_base=base.miss_base * factor,
            miss_small_extra=base.miss_small_extra * factor,
            jitter=base.jitter * factor,
            bias=base.bias * factor,
            swap_probability=base.swap_probability * factor,
            duplicate_probability=base.duplicate_probability * factor,
            false_positives_per_image=base.false_positives_per_image * factor,
        )


def simulate_labels(
    truth: Dataset, profile: AnnotatorProfile, *, seed: int, batches_done: int = 0
) -> Annotations:
    """What ``profile`` draws on the images of ``truth`` (human labels, ids from 1).

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = generate_dataset(30, seed=0)
    >>> perfect = AnnotatorProfile("x", noise=NoiseModel(
    ...     miss_base=0, miss_small_extra=0, jitter=0, swap_probability=0,
    ...     duplicate_probability=0, false_positives_per_image=0))
    >>> len(simulate_labels(truth, perfect, seed=1)) == len(truth.annotations)
    True
    """
    result = perturb(truth, profile.noise_after(batches_done), seed=seed)
    labels = result.annotations
    rate = profile.attribute_error_after(batches_done)
    if rate > 0.0 and len(labels):
        # a separate stream: the boxes are the same whatever the attribute error rate
        rng = np.random.default_rng([seed, 0xA77])
        drawn = result.matched_ref >= 0  # background boxes have no true attributes
        flip = (rng.random((2, len(labels))) < rate) & drawn
        labels = labels.replace(
            occluded=labels.occluded ^ flip[0], truncated=labels.truncated ^ flip[1]
        )
    return labels.replace(attributes={})


def work_seconds(
    objects: IntArray,
    seconds_per_object: float,
    rng: np.random.Generator,
    *,
    sigma: float = SPEED_SIGMA,
) -> FloatArray:
    """(t,) seconds each task takes: a log-normal time per object, summed per task.

    Each object takes ``seconds_per_object * exp(sigma * Z)``, ``Z`` standard normal, so a
    task of ``n`` objects takes ``n * seconds_per_object * exp(sigma**2 / 2)`` on average.

    Parameters
    ----------
    objects
        (t,) objects in each task (>= 0).
    seconds_per_object
        Median seconds per object.
    rng
        Random generator.
    sigma
        Log-normal sigma (0: every object takes exactly the median).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> work_seconds(np.array([3, 0, 1]), 8.0, rng, sigma=0.0).tolist()
    [24.0, 0.0, 8.0]
    """
    counts = np.asarray(objects, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValidationError("expected (t,) object counts >= 0", field="objects")
    owner = np.repeat(np.arange(len(counts)), counts)
    times = seconds_per_object * np.exp(sigma * rng.standard_normal(len(owner)))
    out: FloatArray = np.bincount(owner, weights=times, minlength=len(counts)).astype(np.float64)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class Defects:
    """Real defects of a label set against the truth, and which ones a person flagged.

    Attributes
    ----------
    label_defect : (m,) object
        Per label row: ``""`` (correct), ``extra``, ``wrong_class``, ``loose_geometry``,
        ``tight_geometry`` or ``attribute_error``.
    missed : (n,) bool
        Per truth row: not labelled at all.
    flagged_labels : (m,) bool
        Defective label rows the reviewer noticed.
    flagged_missed : (n,) bool
        Missed truth rows the reviewer noticed.
    """

    label_defect: np.ndarray = field(repr=False)
    missed: BoolArray = field(repr=False)
    flagged_labels: BoolArray = field(repr=False)
    flagged_missed: BoolArray = field(repr=False)

    def flagged_images(self, labels: Annotations, truth: Annotations) -> IntArray:
        """Image ids with at least one flagged defect."""
        return np.unique(
            np.concatenate(
                [labels.image_id[self.flagged_labels], truth.image_id[self.flagged_missed]]
            )
        )


def find_defects(
    truth: Dataset,
    labels: Annotations,
    *,
    catch_rate: float = 1.0,
    seed: int = 0,
    attributes: bool = True,
) -> Defects:
    """Compare labels with the truth at each class's threshold; flag with ``catch_rate``.

    A label matched to a same-class truth object at the class threshold is correct; one
    paired with a truth object of another class (a swap) is ``wrong_class``. Leftover labels
    that still overlap a leftover same-class truth object with IoU >= 0.3 are geometry below
    the class tier: ``loose_geometry`` when larger than the truth, ``tight_geometry`` when
    smaller (that truth object counts as labelled). Any other label is ``extra``; any other
    truth object is missed. A label that is right in class and geometry but whose
    ``occluded`` or ``truncated`` flag differs from its truth object's is
    ``attribute_error`` (unless ``attributes`` is False: then only boxes and classes are
    judged).

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = generate_dataset(5, seed=0)
    >>> d = find_defects(truth, truth.annotations[1:])
    >>> int(d.missed.sum()), int(d.flagged_missed.sum())
    (1, 1)
    """
    m = match(truth.annotations, labels, taxonomy=truth.taxonomy)
    n_labels, n_truth = len(labels), len(truth.annotations)
    defect = np.full(n_labels, "extra", dtype=object)
    defect[m.other_rows] = ""
    defect[m.swap_other_rows] = "wrong_class"
    if attributes:
        truth_ann = truth.annotations
        wrong_flag = (labels.occluded[m.other_rows] != truth_ann.occluded[m.ref_rows]) | (
            labels.truncated[m.other_rows] != truth_ann.truncated[m.ref_rows]
        )
        defect[m.other_rows[wrong_flag]] = "attribute_error"
    missed = np.ones(n_truth, dtype=bool)
    missed[m.ref_rows] = False
    missed[m.swap_ref_rows] = False
    # below the tier: leftovers that overlap, matched again at a loose floor
    left_truth = np.flatnonzero(missed)
    left_labels = np.flatnonzero(defect == "extra")
    if len(left_truth) and len(left_labels):
        loose = match(
            truth.annotations[left_truth],
            labels[left_labels],
            iou_threshold=GEOMETRY_FLOOR_IOU,
            swaps=False,
        )
        truth_rows = left_truth[loose.ref_rows]
        label_rows = left_labels[loose.other_rows]
        larger = _area(labels.bbox[label_rows]) > _area(truth.annotations.bbox[truth_rows])
        defect[label_rows] = np.where(larger, "loose_geometry", "tight_geometry")
        missed[truth_rows] = False
    rng = np.random.default_rng(seed)
    flagged_labels = (defect != "") & (rng.random(n_labels) < catch_rate)
    flagged_missed = missed & (rng.random(n_truth) < catch_rate)
    return Defects(defect, missed, flagged_labels, flagged_missed)


def _area(bbox: FloatArray) -> FloatArray:
    width = np.clip(bbox[:, 2] - bbox[:, 0], 0, None)
    height = np.clip(bbox[:, 3] - bbox[:, 1], 0, None)
    out: FloatArray = width * height
    return out


# --- a pre-label model with calibrated scores ----------------------------------------------

#: A detector of middling quality: it misses small objects, places boxes a little less
#: tightly than a managed annotator, swaps confusable classes and proposes some background.
PRELABEL_NOISE = NoiseModel(
    miss_base=0.03,
    miss_small_extra=0.3,
    jitter=0.05,
    bias=0.0,
    swap_probability=0.05,
    duplicate_probability=0.02,
    false_positives_per_image=0.8,
)


@dataclass(frozen=True, slots=True)
class PrelabelModel:
    """A simulated pre-label model: noisy boxes with calibrated confidence scores.

    Parameters
    ----------
    noise
        How its boxes depart from the truth; default :data:`PRELABEL_NOISE`.
    concentration
        ``a + b`` of the Beta distribution the scores spread around (> 0); default 4.
        Smaller spreads the scores towards 0 and 1: the model ranks its correct and wrong
        boxes apart better. Any value gives calibrated scores.
    calibrated
        True (default): scores from :func:`calibrated_scores`. False: the raw scores of
        :func:`~labelgate.core.generate.perturb` (Beta times IoU), which are not
        calibrated: the control case.
    annotator_id
        Written on every prediction; default -1 (a model, not a person).
    """

    noise: NoiseModel = PRELABEL_NOISE
    concentration: float = 4.0
    calibrated: bool = True
    annotator_id: int = -1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.concentration) and self.concentration > 0):
            raise ValidationError(
                f"expected a concentration > 0, got {self.concentration}", field="concentration"
            )


def correct_predictions(truth: Dataset, predictions: Annotations) -> BoolArray:
    """(m,) True where a prediction matches a same-class truth box at the class threshold.

    The one-to-one matching of :func:`~labelgate.core.matching.match` (maximum total IoU,
    independent of scores): a duplicate or a swapped class is wrong.

    Examples
    --------
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = generate_dataset(3, seed=0)
    >>> bool(correct_predictions(truth, truth.annotations).all())
    True
    """
    out: BoolArray = match(truth.annotations, predictions, taxonomy=truth.taxonomy).other_matched()
    return out


def calibrated_scores(
    correct: BoolArray,
    group: IntArray,
    *,
    concentration: float = 4.0,
    seed: int | np.random.Generator = 0,
) -> FloatArray:
    """Scores that are calibrated within every group: P(correct | score s) = s.

    Parameters
    ----------
    correct
        (m,) whether each prediction is right.
    group
        (m,) int, calibrate within each value (the class: calibrated per class, hence
        overall as well).
    concentration
        ``a + b`` of the score spread (see :class:`PrelabelModel`).
    seed
        Seed or generator of the Beta draws.

    Returns
    -------
    FloatArray
        (m,) scores in (0, 1); a group whose predictions are all right (all wrong) scores
        1 (0) throughout, which is calibrated too.

    Notes
    -----
    Correctness comes first, then the score from a Beta conditioned on it. With ``pi`` the
    group's share of correct predictions, ``a = concentration * pi`` and
    ``b = concentration * (1 - pi)``, a correct prediction draws from ``Beta(a + 1, b)`` and
    a wrong one from ``Beta(a, b + 1)``. With ``g`` the ``Beta(a, b)`` density, these are
    ``s g(s) / pi`` and ``(1 - s) g(s) / (1 - pi)``, so by Bayes

        P(correct | s) = pi s g(s) / pi / (s g(s) + (1 - s) g(s)) = s

    exactly, for any ``g``; ``concentration`` only sets how far apart the two score
    distributions lie (how well the scores rank).

    Examples
    --------
    >>> correct = np.arange(20_000) % 4 != 0  # 75 % right
    >>> scores = calibrated_scores(correct, np.zeros(20_000, dtype=np.int64), seed=1)
    >>> high = scores > 0.8
    >>> bool(abs(correct[high].mean() - scores[high].mean()) < 0.02)
    True
    """
    correct = np.asarray(correct, dtype=bool)
    group = np.asarray(group, dtype=np.int64)
    if correct.shape != group.shape:
        raise ValidationError(
            f"expected correct and group of one shape, got {correct.shape} and {group.shape}",
            field="group",
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not len(correct):
        return np.zeros(0, dtype=np.float64)
    keys, inverse = np.unique(group, return_inverse=True)
    share = np.bincount(inverse, weights=correct, minlength=len(keys)) / np.bincount(inverse)
    pi = share[inverse]
    mixed = (pi > 0.0) & (pi < 1.0)
    a = np.where(mixed, concentration * pi, 1.0) + correct
    b = np.where(mixed, concentration * (1.0 - pi), 1.0) + ~correct
    drawn = rng.beta(a, b)
    # Beta draws can land on 0.0 or 1.0 in floating point; keep scores strictly inside
    drawn = np.clip(drawn, 1e-9, 1.0 - 1e-9)
    scores: FloatArray = np.where(mixed, drawn, pi)
    return scores


def simulate_predictions(
    truth: Dataset, model: PrelabelModel = PrelabelModel(), *, seed: int = 0
) -> Annotations:
    """What ``model`` proposes on the images of ``truth``: source PRELABEL, with scores.

    Boxes come from :func:`~labelgate.core.generate.perturb` under ``model.noise``; each is
    then marked right or wrong against the truth (:func:`correct_predictions`) and scored
    by :func:`calibrated_scores` within its class. Ids run from 1.

    Examples
    --------
    >>> from labelgate.core.annotations import Source
    >>> from labelgate.core.generate import generate_dataset
    >>> truth = generate_dataset(40, seed=0)
    >>> predictions = simulate_predictions(truth, seed=1)
    >>> bool((predictions.source == Source.PRELABEL).all())
    True
    >>> right = correct_predictions(truth, predictions)
    >>> bool(predictions.score[right].mean() > predictions.score[~right].mean())
    True
    """
    box_seed, score_seed = np.random.SeedSequence(seed).spawn(2)
    proposed = perturb(
        truth, model.noise, seed=box_seed, annotator_id=model.annotator_id, as_predictions=True
    ).annotations
    if not model.calibrated:
        return proposed
    right = correct_predictions(truth, proposed)
    scores = calibrated_scores(
        right,
        proposed.class_id,
        concentration=model.concentration,
        seed=np.random.default_rng(score_seed),
    )
    return proposed.replace(score=scores)


# --- an annotator handed proposals ----------------------------------------------------------

#: A proposal of the class the annotator would give it, whose box overlaps theirs at least
#: this much (IoU), is accepted as it is: close enough that they would not touch it.
PRELABEL_ACCEPT_IOU = 0.9

#: A proposal overlapping one of the annotator's own objects at least this much (IoU, any
#: class) is adjusted onto it (same object key); below it the proposal is deleted and the
#: object drawn anew.
PRELABEL_ADJUST_IOU = 0.5

#: Seconds of handling one proposal, as a share of the annotator's time to draw one object:
#: verifying an accepted one, moving / re-classing an adjusted one, deleting a rejected one.
#: labelgate's assumption (the seeds give none; the ratios of the stated time model of
#: ``benchmarks/bench_prelabel_stage.py``: 1.5, 4 and 1 s against 10 s per drawn object).
#: A real program measures them: the editor logs the time and ``prelabel_metrics`` compares
#: pre-labelled tasks with the control group.
PRELABEL_TIME_FRACTION: dict[str, float] = {"accept": 0.15, "adjust": 0.4, "reject": 0.1}


@dataclass(frozen=True, slots=True, eq=False)
class ProposalReview:
    """What an annotator made of a set of proposals (:func:`review_proposals`).

    Attributes
    ----------
    labels : Annotations
        The labels they save: their own objects (class, flags), source HUMAN; an object
        that kept a proposal has the proposal's key (``id``), and an accepted one the
        proposal's box too; an object they drew anew has a fresh key above every proposal
        key.
    decision : (m,) object
        Per proposal row: ``accept``, ``adjust`` or ``reject``.
    drawn : (n,) bool
        Per label row: drawn from scratch (no proposal kept for it).
    """

    labels: Annotations = field(repr=False)
    decision: np.ndarray = field(repr=False)
    drawn: BoolArray = field(repr=False)

    def counts(self, proposals: Annotations, image_ids: IntArray) -> dict[str, IntArray]:
        """(t,) accepted, adjusted, rejected proposals and drawn objects per image id.

        ``image_ids`` must hold every image of ``proposals`` and of the labels, sorted
        ascending.
        """
        ids = np.asarray(image_ids, dtype=np.int64)
        place = np.searchsorted(ids, proposals.image_id)
        out = {
            kind: np.bincount(place[self.decision == kind], minlength=len(ids))
            for kind in ("accept", "adjust", "reject")
        }
        out["draw"] = np.bincount(
            np.searchsorted(ids, self.labels.image_id[self.drawn]), minlength=len(ids)
        )
        return out


def review_proposals(
    proposals: Annotations,
    own: Annotations,
    *,
    accept_iou: float = PRELABEL_ACCEPT_IOU,
    adjust_iou: float = PRELABEL_ADJUST_IOU,
) -> ProposalReview:
    """An annotator's pass over pre-label proposals, given what they would draw themselves.

    ``own`` is what the annotator would label on these images without help
    (:func:`simulate_labels`); their judgement of each proposal is a comparison with it.
    Own objects and proposals are paired one-to-one per image (maximum total IoU, same
    class first, then leftovers of other classes: :func:`~labelgate.core.matching.match`
    at ``adjust_iou``):

    - a same-class pair with IoU >= ``accept_iou``: **accept**, the proposal's box is kept
      (with the annotator's own ``occluded`` / ``truncated``, which a pre-label does not
      decide);
    - any other pair: **adjust**, the annotator's own box and class under the proposal's
      key;
    - an unpaired proposal: **reject** (deleted); an unpaired own object: drawn, under a
      new key.

    Examples
    --------
    >>> proposals = Annotations.create(id=[4, 5, 6], image_id=[1] * 3, class_id=[1, 1, 2],
    ...     bbox=[[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], source=[Source.PRELABEL] * 3)
    >>> own = Annotations.create(image_id=[1] * 3, class_id=[1, 2, 1],
    ...     bbox=[[0, 0, 10, 10.5], [21, 0, 31, 10], [80, 80, 90, 90]])
    >>> review = review_proposals(proposals, own)
    >>> review.decision.tolist(), review.labels.id.tolist()
    (['accept', 'adjust', 'reject'], [4, 5, 7])
    >>> review.labels.bbox[0].tolist(), review.labels.class_id.tolist()
    ([0.0, 0.0, 10.0, 10.0], [1, 2, 1])
    """
    if not (0.0 < adjust_iou <= accept_iou <= 1.0):
        raise ValidationError(
            f"expected 0 < adjust_iou <= accept_iou <= 1, got {adjust_iou} and {accept_iou}",
            field="accept_iou",
        )
    paired = match(own, proposals, iou_threshold=adjust_iou, swaps=True)
    own_rows = np.concatenate([paired.ref_rows, paired.swap_ref_rows])
    proposal_rows = np.concatenate([paired.other_rows, paired.swap_other_rows])
    accepted = np.concatenate(
        [paired.iou >= accept_iou, np.zeros(len(paired.swap_ref_rows), dtype=bool)]
    )
    decision = np.full(len(proposals), "reject", dtype=object)
    decision[proposal_rows] = np.where(accepted, "accept", "adjust")
    keys = np.zeros(len(own), dtype=np.int64)
    keys[own_rows] = proposals.id[proposal_rows]
    drawn = np.ones(len(own), dtype=bool)
    drawn[own_rows] = False
    first_free = int(proposals.id.max()) + 1 if len(proposals) else 1
    keys[drawn] = first_free + np.arange(int(drawn.sum()), dtype=np.int64)
    bbox = own.bbox.copy()
    area = own.area.copy()
    kept_as_is_own, kept_as_is = own_rows[accepted], proposal_rows[accepted]
    bbox[kept_as_is_own] = proposals.bbox[kept_as_is]
    area[kept_as_is_own] = proposals.area[kept_as_is]
    labels = own.replace(
        id=keys,
        bbox=bbox,
        area=area,
        source=np.full(len(own), Source.HUMAN, dtype=np.uint8),
    )
    return ProposalReview(labels, decision, drawn)


def prelabel_work_seconds(
    counts: dict[str, IntArray],
    seconds_per_object: float,
    rng: np.random.Generator,
    *,
    sigma: float = SPEED_SIGMA,
    fractions: dict[str, float] | None = None,
) -> FloatArray:
    """(t,) seconds of each pre-labelled task: proposals handled plus objects drawn.

    Every object drawn takes the log-normal time of :func:`work_seconds` at
    ``seconds_per_object``; every accepted, adjusted or rejected proposal the same at
    ``fractions[kind] * seconds_per_object`` (default :data:`PRELABEL_TIME_FRACTION`).

    Parameters
    ----------
    counts
        ``draw``, ``accept``, ``adjust``, ``reject``: (t,) counts per task
        (:meth:`ProposalReview.counts`).
    seconds_per_object
        Median seconds to draw one object.
    rng
        Random generator.
    sigma
        Log-normal sigma.
    fractions
        Share of ``seconds_per_object`` per proposal decision.

    Examples
    --------
    >>> counts = {"draw": np.array([2, 0]), "accept": np.array([4, 1]),
    ...           "adjust": np.array([1, 0]), "reject": np.array([0, 3])}
    >>> prelabel_work_seconds(counts, 10.0, np.random.default_rng(0), sigma=0.0).tolist()
    [30.0, 4.5]
    """
    share = PRELABEL_TIME_FRACTION if fractions is None else fractions
    total = work_seconds(counts["draw"], seconds_per_object, rng, sigma=sigma)
    for kind in ("accept", "adjust", "reject"):
        total = total + work_seconds(
            counts[kind], share[kind] * seconds_per_object, rng, sigma=sigma
        )
    return total
