"""Tier calibration: the tightest IoU tier humans actually reach on each class, and its price.

A precision tier is a promise that two careful people draw the same object to within an IoU
threshold. The seed warns that some promises cannot be kept: "Amorphous objects like smoke,
liquid spills, or crowds do not have well-defined physical edges. Demanding 0.9 IoU for
these classes creates false precision and inter-annotator disagreement without model
benefit." Calibration measures the promise before anyone signs it:

1. two annotators label the same images; :func:`inter_annotator_ious` pairs their objects
   one-to-one per (image, class) at a low *identity* threshold (:data:`MATCH_IOU`): low
   enough that a loosely drawn box still pairs with its object, so the IoU distribution is
   not cut off at the threshold under test;
2. :func:`calibrate` groups the pairs per class (and per class x scene type) and reports the
   IoU distribution (median, p10, p90, mean), the share of pairs reaching each candidate
   threshold, the *achievable IoU* (the highest threshold that at least ``target_share`` of
   the pairs reach), the tightest tier whose range holds it, whether the configured
   threshold and the SLA's median IoU can be met, and the cost multiple of moving the class
   from its threshold to the recommended one (:func:`labelgate.core.cost.multiplier`).

Definitions, per group of ``n`` pairs with IoU ``x_1 >= x_2 >= ... >= x_n``:

- ``share(t) = #{x_i >= t} / n``;
- ``achievable_iou = x_k`` with ``k = ceil(target_share * n)``: the largest ``t`` with
  ``share(t) >= target_share``;
- recommended tier: the tightest tier whose lower bound is at most ``achievable_iou``
  (:data:`~labelgate.core.taxonomy.TIER_RANGES`: loose 0.5-0.65, standard 0.65-0.75, tight
  0.75-0.9); recommended threshold: ``achievable_iou`` rounded down to ``step``, clipped to
  that tier's range. Below 0.5 no tier is reachable: the class needs a clearer guideline,
  not a threshold (``recommended_tier`` is None);
- ``threshold_met``: the share of pairs reaching their configured threshold is at least
  ``target_share``; ``sla_met``: the median IoU is at least the SLA's ``iou_threshold``
  (the spec's SLA is a floor on the median); ``false_precision`` when either fails.

Groups with fewer than ``min_pairs`` pairs get their figures but no verdict (None): a share
measured on a handful of pairs cannot tell 0.85 from 0.95.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from labelgate.core._typing import FloatArray, IntArray, ObjectArray
from labelgate.core.annotations import Annotations, Kind
from labelgate.core.compare import _group_quantiles  # median, p10, p90 per group, one sort
from labelgate.core.cost import multiplier
from labelgate.core.images import Images
from labelgate.core.matching import PairIoU, match
from labelgate.core.taxonomy import TIER_RANGES, PrecisionTier, Taxonomy

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_MIN_PAIRS",
    "DEFAULT_TARGET_SHARE",
    "MATCH_IOU",
    "Calibration",
    "MatchedIoUs",
    "calibrate",
    "inter_annotator_ious",
    "pool_ious",
]

#: IoU at which two annotators' objects count as the same object. Low on purpose: at the
#: threshold under test, every pair below it would be dropped and the share reaching it
#: would always look like 100 %. 0.1 still keeps apart neighbours that merely touch.
MATCH_IOU = 0.1

#: Share of human pairs that must reach a threshold for it to count as achievable: nine in
#: ten. A threshold that one pair in five misses rejects good work at every review.
DEFAULT_TARGET_SHARE = 0.9

#: Fewest pairs for a verdict. With 30 pairs a share of 0.9 has a 95 % Clopper-Pearson
#: interval of about 0.73-0.98: enough to tell a class that reaches a tier from one that
#: misses it by a tier, not to split hairs.
DEFAULT_MIN_PAIRS = 30

#: Thresholds whose share is reported: the tier ranges in steps of 0.05, 0.5 to 0.9.
DEFAULT_CANDIDATES: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)

_TIERS = (PrecisionTier.LOOSE, PrecisionTier.STANDARD, PrecisionTier.TIGHT)
_EPS = 1e-9


@dataclass(frozen=True, slots=True, eq=False)
class MatchedIoUs:
    """Same-object pairs of two annotators: one row per pair.

    Attributes
    ----------
    image_id, class_id : (k,) int64
        Image and class of each pair (the first set's object).
    iou : (k,) float64
        IoU of the pair.
    annotator_a, annotator_b : (k,) int64
        Annotator ids of the two objects (-1 when not recorded).
    """

    image_id: IntArray
    class_id: IntArray
    iou: FloatArray
    annotator_a: IntArray
    annotator_b: IntArray

    def __len__(self) -> int:
        return len(self.iou)

    def scene_type(self, images: Images) -> ObjectArray:
        """(k,) scene type of each pair's image ("" for images not in ``images``)."""
        rows = images.index_of(self.image_id)
        table = np.append(images.scene_type, "").astype(object)
        out: ObjectArray = table[np.where(rows >= 0, rows, len(images))]
        return out

    @staticmethod
    def concat(parts: Sequence[MatchedIoUs]) -> MatchedIoUs:
        """Stack several pair lists (e.g. every annotator pair of a pool)."""
        if not parts:
            empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
            return MatchedIoUs(empty_i, empty_i, empty_f, empty_i, empty_i)
        return MatchedIoUs(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("image_id", "class_id", "iou", "annotator_a", "annotator_b")
            )
        )


def inter_annotator_ious(
    a: Annotations,
    b: Annotations,
    *,
    match_iou: float = MATCH_IOU,
    pair_iou: PairIoU | None = None,
) -> MatchedIoUs:
    """Pair two annotators' objects of the same images and return each pair's IoU.

    Objects are matched one-to-one within (image, class), maximising total IoU among pairs
    of IoU >= ``match_iou`` (:func:`labelgate.core.matching.match`, no class swaps); objects
    one annotator left out have no pair and do not count (they are misses, a defect of
    their own, not imprecision). Tags are left out.

    Parameters
    ----------
    a, b
        The two annotators' labels of the same images.
    match_iou
        IoU at which two objects are the same object; default :data:`MATCH_IOU`.
    pair_iou
        IoU of row pairs for polygons, masks or keypoints (:func:`labelgate.core.iou.pair_iou`);
        default box IoU.

    Returns
    -------
    MatchedIoUs

    Examples
    --------
    >>> a = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [20, 20, 30, 30]])
    >>> b = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 10, 12]])
    >>> pairs = inter_annotator_ious(a, b)
    >>> pairs.class_id.tolist(), pairs.iou.round(4).tolist()
    ([1], [0.8333])
    """
    a = a if bool((a.kind != Kind.TAG).all()) else a[a.kind != Kind.TAG]
    b = b if bool((b.kind != Kind.TAG).all()) else b[b.kind != Kind.TAG]
    m = match(a, b, iou_threshold=match_iou, pair_iou=pair_iou, swaps=False)
    return MatchedIoUs(
        image_id=a.image_id.take(m.ref_rows),
        class_id=a.class_id.take(m.ref_rows),
        iou=m.iou,
        annotator_a=a.annotator_id.take(m.ref_rows),
        annotator_b=b.annotator_id.take(m.other_rows),
    )


def pool_ious(
    pool: Annotations,
    *,
    match_iou: float = MATCH_IOU,
    pair_iou: PairIoU | None = None,
) -> MatchedIoUs:
    """:func:`inter_annotator_ious` for every pair of annotators of one pool.

    Each pair of ``annotator_id`` values is matched on the images both labelled (an image
    only one of them saw says nothing about their agreement).

    Examples
    --------
    >>> pool = Annotations.create(image_id=[1, 1, 1], class_id=[1, 1, 1],
    ...     bbox=[[0, 0, 10, 10], [0, 0, 10, 12], [0, 0, 12, 12]], annotator_id=[1, 2, 3])
    >>> pairs = pool_ious(pool)
    >>> list(zip(pairs.annotator_a.tolist(), pairs.annotator_b.tolist()))
    [(1, 2), (1, 3), (2, 3)]
    """
    annotators = np.unique(pool.annotator_id).tolist()
    parts = []
    for first, second in itertools.combinations(annotators, 2):  # a handful of annotators
        a = pool[pool.annotator_id == first]
        b = pool[pool.annotator_id == second]
        shared = np.intersect1d(a.image_id, b.image_id)
        a, b = a[np.isin(a.image_id, shared)], b[np.isin(b.image_id, shared)]
        parts.append(inter_annotator_ious(a, b, match_iou=match_iou, pair_iou=pair_iou))
    return MatchedIoUs.concat(parts)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Result of :func:`calibrate`; :meth:`to_dict` is the documented JSON.

    Attributes
    ----------
    per_class
        One row per taxonomy class (``scene_type`` None), taxonomy order.
    per_class_scene
        One row per (class, scene type) holding pairs, when scene types were given.
    """

    target_share: float
    min_pairs: int
    match_iou: float | None
    candidates: tuple[float, ...]
    per_class: list[dict[str, Any]]
    per_class_scene: list[dict[str, Any]] = field(default_factory=list)

    @property
    def false_precision(self) -> list[dict[str, Any]]:
        """Rows (class and class x scene) whose threshold or SLA humans cannot meet."""
        return [r for r in (*self.per_class, *self.per_class_scene) if r["false_precision"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``labelgate calibrate --json``, documented in docs/calibration.md)."""
        return {
            "target_share": self.target_share,
            "min_pairs": self.min_pairs,
            "match_iou": self.match_iou,
            "candidates": list(self.candidates),
            "pairs": sum(r["pairs"] for r in self.per_class),
            "false_precision": [
                {"name": r["name"], "scene_type": r["scene_type"]} for r in self.false_precision
            ],
            "per_class": self.per_class,
            "per_class_scene": self.per_class_scene,
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _tier_of(iou: float) -> PrecisionTier | None:
    """Tightest tier whose lower bound is <= ``iou``; None below the loosest."""
    reachable = [t for t in _TIERS if TIER_RANGES[t][0] <= iou + _EPS]
    return reachable[-1] if reachable else None


def _price(iou_threshold: float) -> float:
    # only the tier factor: the other drivers (objects, attributes, QA) do not change
    return multiplier(iou_threshold=min(max(iou_threshold, 0.0), 1.0))


def _group_stats(
    group: IntArray, iou: FloatArray, threshold: FloatArray, size: int, target_share: float
) -> dict[str, Any]:
    """Counts, quantiles, mean, achievable IoU and the share meeting ``threshold``."""
    counts = np.bincount(group, minlength=size)
    order = np.lexsort((iou, group))  # by group, IoU ascending within it
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    # k-th largest, k = ceil(share * n): at least ``target_share`` of the pairs reach it
    k = np.ceil(target_share * counts - _EPS).astype(np.int64)
    k = np.clip(k, 1, None)
    position = starts + counts - k
    achievable = np.full(size, np.nan)
    has = counts > 0
    achievable[has] = iou[order[position[has]]]
    sums = np.bincount(group, weights=iou, minlength=size)
    mean = np.divide(sums, counts, out=np.full(size, np.nan), where=has)
    meets = np.bincount(group, weights=(iou >= threshold).astype(np.float64), minlength=size)
    return {
        "counts": counts,
        "quantiles": _group_quantiles(group, iou, size),  # median, p10, p90
        "mean": mean,
        "achievable": achievable,
        "meets": meets,
        "threshold": _group_max(group, threshold, size),
    }


def _group_max(group: IntArray, values: FloatArray, size: int) -> FloatArray:
    out = np.full(size, -np.inf)
    np.maximum.at(out, group, np.nan_to_num(values, nan=-np.inf))
    out[~np.isfinite(out)] = np.nan
    return out


def calibrate(
    class_id: npt.ArrayLike,
    iou: npt.ArrayLike,
    taxonomy: Taxonomy,
    *,
    scene_type: npt.ArrayLike | None = None,
    iou_threshold: npt.ArrayLike | None = None,
    sla_iou: Mapping[int, float] | None = None,
    target_share: float = DEFAULT_TARGET_SHARE,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    step: float = 0.05,
    candidates: Sequence[float] = DEFAULT_CANDIDATES,
    match_iou: float | None = MATCH_IOU,
) -> Calibration:
    """Recommend each class's tightest achievable tier from inter-annotator IoU, and price it.

    Parameters
    ----------
    class_id, iou
        (k,) class id and IoU of each same-object pair of two annotators
        (:func:`inter_annotator_ious` or :func:`pool_ious`).
    taxonomy
        The classes reported (taxonomy order), their current tiers and thresholds. Pairs of
        classes outside it are left out.
    scene_type
        (k,) scene type of each pair's image (:meth:`MatchedIoUs.scene_type`); adds a row
        per (class, scene type).
    iou_threshold
        (k,) configured threshold of each pair, e.g. a spec's
        ``thresholds(class_id, scene_type)`` with its scene overrides; default each
        class's taxonomy threshold. A group reports its highest (tightest).
    sla_iou
        Class id -> the SLA's floor on the median IoU (a spec's ``classes[].sla``); classes
        absent are not checked.
    target_share
        Share of pairs that must reach a threshold for it to be achievable, in (0, 1];
        default 0.9.
    min_pairs
        Fewest pairs for a verdict (``threshold_met``, ``sla_met``, the recommendation);
        default 30.
    step
        The recommended threshold is the achievable IoU rounded down to this step; 0.05.
    candidates
        Thresholds whose share is reported in ``share_at``.
    match_iou
        The identity threshold the pairs were matched at, recorded in the result.

    Returns
    -------
    Calibration
        Rows with the keys listed in docs/calibration.md.

    Raises
    ------
    ValueError
        Arrays of different lengths, or a target share or step out of range.

    Examples
    --------
    A class configured tight at 0.85 whose pairs reach 0.72 nine times in ten:

    >>> from labelgate.core.taxonomy import ClassInfo
    >>> taxonomy = Taxonomy((ClassInfo(1, "smoke", tier=PrecisionTier.TIGHT,
    ...                                iou_threshold=0.85),))
    >>> iou = np.repeat([0.6, 0.72, 0.8, 0.9], [3, 7, 15, 15])
    >>> row = calibrate(np.ones(40, dtype=int), iou, taxonomy).per_class[0]
    >>> row["achievable_iou"], row["recommended_tier"], row["recommended_iou_threshold"]
    (0.72, 'standard', 0.7)
    >>> row["share_meeting_threshold"], row["threshold_met"], row["false_precision"]
    (0.375, False, True)
    >>> row["cost"]["change_multiple"]  # 0.7 costs 13 % less than 0.85
    0.867
    """
    class_ids = np.asarray(class_id, dtype=np.int64)
    values = np.asarray(iou, dtype=np.float64)
    if class_ids.shape != values.shape or values.ndim != 1:
        raise ValueError(
            f"calibrate: expected class_id and iou of one shape (k,), got {class_ids.shape} "
            f"and {values.shape}"
        )
    if not 0.0 < target_share <= 1.0:
        raise ValueError(f"calibrate: expected a target share in (0, 1], got {target_share}")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"calibrate: expected a step in (0, 1], got {step}")
    if iou_threshold is None:
        thresholds = taxonomy.thresholds(class_ids)
    else:
        thresholds = np.asarray(iou_threshold, dtype=np.float64)
        if thresholds.shape != values.shape:
            raise ValueError(
                f"calibrate: expected iou_threshold of shape {values.shape}, got {thresholds.shape}"
            )
    position = taxonomy.position(class_ids)
    keep = np.flatnonzero((position >= 0) & np.isfinite(values))
    position, values, thresholds = position[keep], values[keep], thresholds[keep]
    n_classes = len(taxonomy)
    candidates = tuple(float(c) for c in candidates)
    # the candidates and each tier's default threshold, counted in one pass
    grid = sorted({*candidates, *(TIER_RANGES[t][2] for t in _TIERS)})
    shares = _shares(position, values, n_classes, grid)
    stats = _group_stats(position, values, thresholds, n_classes, target_share)
    settings = (target_share, min_pairs, step, sla_iou or {})
    per_class = [
        _row(taxonomy, c, None, stats, shares, candidates, grid, c, settings)
        for c in range(n_classes)
    ]
    per_scene: list[dict[str, Any]] = []
    if scene_type is not None:
        scenes_all = np.asarray(scene_type).astype(str)
        if scenes_all.shape != class_ids.shape:
            raise ValueError(
                f"calibrate: expected scene_type of shape {class_ids.shape}, got {scenes_all.shape}"
            )
        names, scene_code = np.unique(scenes_all[keep], return_inverse=True)
        n_scenes = len(names)
        group = position * n_scenes + scene_code.reshape(-1)
        size = n_classes * n_scenes
        scene_shares = _shares(group, values, size, grid)
        scene_stats = _group_stats(group, values, thresholds, size, target_share)
        for g in np.flatnonzero(scene_stats["counts"]).tolist():  # groups with pairs only
            per_scene.append(
                _row(
                    taxonomy,
                    g // n_scenes,
                    str(names[g % n_scenes]),
                    scene_stats,
                    scene_shares,
                    candidates,
                    grid,
                    g,
                    settings,
                )
            )
    return Calibration(
        target_share=target_share,
        min_pairs=min_pairs,
        match_iou=match_iou,
        candidates=candidates,
        per_class=per_class,
        per_class_scene=per_scene,
    )


def _shares(group: IntArray, iou: FloatArray, size: int, grid: list[float]) -> FloatArray:
    """(size, len(grid)) count of pairs reaching each threshold of ``grid``, per group."""
    out = np.zeros((size, len(grid)))
    for column, threshold in enumerate(grid):  # a few thresholds, one bincount each
        out[:, column] = np.bincount(group, weights=(iou >= threshold) * 1.0, minlength=size)
    return out


def _row(
    taxonomy: Taxonomy,
    class_pos: int,
    scene: str | None,
    stats: dict[str, Any],
    shares: FloatArray,
    candidates: tuple[float, ...],
    grid: list[float],
    g: int,
    settings: tuple[float, int, float, Mapping[int, float]],
) -> dict[str, Any]:
    target_share, min_pairs, step, sla_iou = settings
    info = taxonomy.classes[class_pos]
    n = int(stats["counts"][g])
    median, p10, p90 = (float(v) for v in stats["quantiles"][g])
    threshold = float(stats["threshold"][g]) if n else info.threshold
    enough = n >= min_pairs and n > 0
    achievable = float(stats["achievable"][g]) if n else math.nan
    share_meeting = float(stats["meets"][g]) / n if n else math.nan
    sla = sla_iou.get(info.id)
    recommended_tier: PrecisionTier | None = None
    recommended: float | None = None
    if enough:
        recommended_tier = _tier_of(achievable)
        if recommended_tier is not None:
            low, high, _ = TIER_RANGES[recommended_tier]
            stepped = math.floor((achievable + _EPS) / step) * step
            recommended = round(min(max(stepped, low), high), 6)
    threshold_met = bool(share_meeting >= target_share - _EPS) if enough else None
    sla_met = bool(median >= sla - _EPS) if enough and sla is not None else None
    current_price = _price(threshold)
    tiers = []
    for tier in _TIERS:
        default = TIER_RANGES[tier][2]
        reach = shares[g, grid.index(default)] / n if n else math.nan
        tiers.append(
            {
                "tier": tier.value,
                "iou_threshold": default,
                "share": _round(reach),
                "achievable": bool(reach >= target_share - _EPS) if enough else None,
                "cost_multiple": round(_price(default) / current_price, 4),
            }
        )
    return {
        "class_id": info.id,
        "name": info.name,
        "scene_type": scene,
        "pairs": n,
        "iou": {
            "median": _round(median),
            "p10": _round(p10),
            "p90": _round(p90),
            "mean": _round(float(stats["mean"][g])),
        },
        "share_at": [
            {"iou_threshold": c, "share": _round(shares[g, grid.index(c)] / n) if n else None}
            for c in candidates
        ],
        "achievable_iou": _round(achievable),
        "recommended_tier": recommended_tier.value if recommended_tier is not None else None,
        "recommended_iou_threshold": recommended,
        "tier": PrecisionTier(info.tier).value,
        "iou_threshold": _round(threshold),
        "share_meeting_threshold": _round(share_meeting),
        "threshold_met": threshold_met,
        "sla_iou": sla,
        "sla_met": sla_met,
        "false_precision": threshold_met is False or sla_met is False,
        "cost": {
            "current_multiplier": round(current_price, 4),
            "recommended_multiplier": (
                round(_price(recommended), 4) if recommended is not None else None
            ),
            "change_multiple": (
                round(_price(recommended) / current_price, 4) if recommended is not None else None
            ),
        },
        "tiers": tiers,
    }
