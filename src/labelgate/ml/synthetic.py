"""Generated labels with known, injected errors and model-like predictions: the test bench.

Label-error detection and active learning are measured on data whose errors are known:
:func:`labels_with_errors` draws a reference (the truth) with
:func:`~labelgate.core.generate.generate_dataset`, derives labels from it with
:func:`~labelgate.core.generate.perturb` (missing, swapped and duplicated objects), shifts
a few more boxes, and records which image holds each injected error;
:func:`model_predictions` derives a detector's scored output from the truth, with a
detector's noise (jitter, small-object misses, confusions, false positives).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelgate.core._typing import IntArray, ObjectArray
from labelgate.core.dataset import Dataset
from labelgate.core.generate import NoiseModel, Perturbation, generate_dataset, perturb

__all__ = ["MODEL_NOISE", "InjectedErrors", "labels_with_errors", "model_predictions"]

#: A decent detector: small objects missed, some jitter, rare confusions and duplicates.
MODEL_NOISE = NoiseModel(
    miss_base=0.03,
    miss_small_extra=0.3,
    miss_size_scale_px=12.0,
    jitter=0.05,
    swap_probability=0.02,
    duplicate_probability=0.02,
    false_positives_per_image=0.3,
)


@dataclass(frozen=True, slots=True, eq=False)
class InjectedErrors:
    """Where errors were injected into labels.

    Attributes
    ----------
    truth : Dataset
        The reference the labels derive from.
    labels : Dataset
        The labels under test (truth's images and taxonomy).
    image_id : (e,) int64
        The image of each injected error.
    kind : (e,) object
        ``missing``, ``swapped``, ``shifted`` or ``duplicated``.
    annotation_id : (e,) int64
        The label at fault (-1 for a missing object).
    """

    truth: Dataset
    labels: Dataset
    image_id: IntArray
    kind: ObjectArray
    annotation_id: IntArray


def labels_with_errors(
    n_images: int,
    *,
    error_rate: float = 0.0005,
    shift: float = 0.6,
    seed: int = 0,
) -> InjectedErrors:
    """A generated truth and labels with each error kind injected at ``error_rate`` per object.

    Missing, swapped and duplicated objects come from :func:`perturb` with no jitter and no
    false positives (every other label equals its truth object); then a share
    ``error_rate`` of the remaining labels is shifted by ``shift`` times its width and height
    in a random diagonal direction.

    Parameters
    ----------
    n_images
        Images (~20 objects each).
    error_rate
        Probability per object of each of the four kinds; default 0.0005 (about 4 % of
        images hold an error at 20 objects per image).
    shift
        Shift of a shifted box, in units of its own size; default 0.6.
    seed
        Seed; default 0.

    Examples
    --------
    >>> inj = labels_with_errors(200, error_rate=0.01, seed=1)
    >>> sorted(set(inj.kind.tolist()))
    ['duplicated', 'missing', 'shifted', 'swapped']
    """
    truth = generate_dataset(n_images, seed=seed)
    noise = NoiseModel(
        miss_base=error_rate,
        miss_small_extra=0.0,
        jitter=0.0,
        swap_probability=error_rate,
        duplicate_probability=error_rate,
        duplicate_jitter=0.05,
        false_positives_per_image=0.0,
    )
    # child streams of (seed, 1): never the stream model_predictions uses for the same seed
    p: Perturbation = perturb(truth, noise, seed=np.random.SeedSequence((seed, 1)), annotator_id=1)
    ann = p.annotations
    rng = np.random.default_rng(np.random.SeedSequence((seed, 2)))
    clean = ~p.swapped & ~p.duplicate
    shifted = clean & (rng.random(len(ann)) < error_rate)
    box = ann.bbox.copy()
    size = box[:, 2:] - box[:, :2]
    direction = rng.choice([-1.0, 1.0], size=(len(ann), 2))
    move = np.where(shifted[:, None], direction * size * shift, 0.0)
    box += np.concatenate([move, move], axis=1)
    images = truth.images
    row = images.index_of(ann.image_id)
    limit = np.stack([images.width[row], images.height[row]] * 2, axis=1).astype(np.float64)
    box = np.clip(box, 0.0, limit)
    labels = truth.replace(annotations=ann.replace(bbox=box))
    ref = truth.annotations
    missing = np.flatnonzero(p.missed)
    kinds = [
        (ref.image_id[missing], "missing", np.full(len(missing), -1, dtype=np.int64)),
        (ann.image_id[p.swapped], "swapped", ann.id[p.swapped]),
        (ann.image_id[shifted], "shifted", ann.id[shifted]),
        (ann.image_id[p.duplicate], "duplicated", ann.id[p.duplicate]),
    ]
    kind = np.concatenate([np.full(len(i), k, dtype=object) for i, k, _ in kinds])
    return InjectedErrors(
        truth=truth,
        labels=labels,
        image_id=np.concatenate([i for i, _, _ in kinds]).astype(np.int64),
        kind=kind,
        annotation_id=np.concatenate([a for _, _, a in kinds]).astype(np.int64),
    )


def model_predictions(
    truth: Dataset, *, noise: NoiseModel = MODEL_NOISE, seed: int = 0
) -> Perturbation:
    """A detector's scored predictions on the truth's images (source PRELABEL, annotator 1000).

    Its random stream differs from that of :func:`labels_with_errors` for every pair of
    seeds, so the model's misses are independent of the labels'.

    Examples
    --------
    >>> truth = generate_dataset(20, seed=0)
    >>> pred = model_predictions(truth, seed=1).annotations
    >>> bool(np.isfinite(pred.score).all()), int(pred.source.max())
    (True, 1)
    """
    # the stream (seed, 3): a model never draws the same misses as labels of the same seed
    stream = np.random.SeedSequence((seed, 3))
    return perturb(truth, noise, seed=stream, annotator_id=1000, as_predictions=True)


def error_images(injected: InjectedErrors) -> IntArray:
    """(k,) the distinct images holding at least one injected error."""
    return np.unique(injected.image_id)
