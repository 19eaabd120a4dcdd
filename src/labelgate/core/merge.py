"""Consensus merge of several annotators' labels of the same images.

:func:`merge` groups the objects of ``k`` annotators into *clusters* holding at most one
object per annotator, labels each cluster by vote, merges its geometry by median and scores
it by how much its members agree. Clusters drawn by too few annotators (below ``quorum``)
go to an adjudication list instead of the result.

Algorithm
---------
Clusters grow by a running consensus, one annotator at a time, in the order of ``sets``:

1. Every object of annotator 0 seeds a cluster.
2. For annotator ``j = 1 .. k - 1``, the clusters' current consensus boxes (coordinate-wise
   median of their members so far) are matched to annotator ``j``'s boxes with
   :func:`~labelgate.core.matching.match`: one-to-one per image, maximum total IoU over
   pairs with IoU >= threshold. Matching is *class-agnostic* (every class id is set to 0),
   so objects that annotators put in different classes still land in one cluster and the
   class is decided by vote. A matched object joins its cluster; an unmatched one seeds a
   new cluster.

One-to-one matching guarantees at most one object per annotator in a cluster. The result is
deterministic: the same inputs in the same order give the same clusters. It depends on the
order of ``sets`` only where matching is ambiguous (a box that fits two clusters equally).
Tags (objects without geometry) are not clustered and do not appear in the result.

Per cluster, with ``members`` the number of annotators that drew it:

- **label**: the class with most votes; ties go to the smallest class id.
- **quorum**: reached when ``members >= quorum * k``.
- **box**: coordinate-wise median of the members' boxes.
- **keypoints**: when every member is a keypoint object, the per-keypoint median of x and
  y over the members whose visibility is > 0; the merged visibility is the largest
  visibility among them (0 where no member labelled the keypoint).
- **masks**: when every member is an RLE mask of one size, a pixel is in the merged mask
  when *more than half* of the members cover it (with two members: their intersection);
  the box is then the voted mask's extent. Computed on run boundaries, never on pixels.
- **polygons**: when every member is a polygon, the merged polygon is the region that
  *more than half* of the members cover (the same rule as masks, on exact geometry rather
  than pixels: the union over every majority subset of the members' intersection; with two
  members, their intersection), its parts' outer rings (holes are dropped: COCO polygons
  have none); the box is its extent. A cluster whose majority region is empty, and one
  that mixes kinds or mask sizes, falls back to the merged box (kind BOX).
- **score** ``= label_agreement * shape_agreement``, with ``label_agreement = winning votes
  / members`` and ``shape_agreement`` the mean *box* IoU over all pairs of members (also
  for masks and keypoints). A
  single-member cluster has shape agreement 1.0, but with two or more annotators it never
  reaches a quorum above ``1 / k``.
- **flags** ``occluded`` and ``truncated``: the value most members give, over every
  member; a tie goes to False, so a flag is set when *more than half* of the members set
  it (the masks' rule; with two members, when both do).
- **attributes** (``attributes``, e.g. a traffic light's ``light_state``): voted among the
  members of the winning class that carry the attribute (another class's attributes do not
  apply to it): the most common value, ties to the smallest (False before True, the
  smaller number, the string first in code-point order); float attributes take the median
  instead. A merged object carries an attribute when one of those members does. Input
  attributes named like the result's own (``cluster_id``, ``members``) are not carried.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import shapely

from labelgate.core._typing import BoolArray, FloatArray, IntArray
from labelgate.core.annotations import Annotations, AttributeColumn, Kind, Source
from labelgate.core.iou import polygon_geometry
from labelgate.core.masks import rle_bbox
from labelgate.core.matching import match
from labelgate.core.pairs import box_iou_pairs
from labelgate.core.ragged import Ragged
from labelgate.core.taxonomy import Taxonomy

__all__ = ["DEFAULT_IOU_THRESHOLD", "MergeResult", "merge"]

DEFAULT_IOU_THRESHOLD = 0.5
_QUORUM_TOLERANCE = 1e-9  # 2/3 * 3 must count as 2 annotators, not 2.0000000000000004
#: Attributes every merged object gets from the merge itself (never carried from inputs).
_OWN_ATTRIBUTES = ("cluster_id", "members")


@dataclass(frozen=True, slots=True, eq=False)
class MergeResult:
    """The consensus of several annotators.

    Attributes
    ----------
    annotations : Annotations
        One object per cluster that reached quorum: source MERGED, annotator_id -1, ids
        ``1..m``, ``score`` the agreement, ``occluded`` / ``truncated`` and the inputs'
        attributes by vote, attributes ``cluster_id`` and ``members``.
    adjudication : Annotations
        The member objects of every cluster below quorum, ids ``1..a``, with attributes
        ``cluster_id``, ``annotator_index`` (position of their set in ``sets``) and
        ``original_id``.
    n_annotators, n_clusters : int
        Number of input sets, and of clusters (merged plus below quorum).
    quorum : float
    iou_threshold : float or None
        The one threshold used, or None for per-class thresholds from the taxonomy.
    """

    annotations: Annotations
    adjudication: Annotations
    n_annotators: int
    n_clusters: int
    quorum: float
    iou_threshold: float | None

    @property
    def n_adjudication_clusters(self) -> int:
        """Clusters below quorum."""
        return self.n_clusters - len(self.annotations)

    def mean_score(self) -> float | None:
        """Mean agreement score of the merged objects; None when there are none."""
        return float(self.annotations.score.mean()) if len(self.annotations) else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary: counts, quorum, threshold and mean score."""
        return {
            "annotators": self.n_annotators,
            "clusters": self.n_clusters,
            "merged": len(self.annotations),
            "adjudication": self.n_adjudication_clusters,
            "quorum": self.quorum,
            "iou_threshold": self.iou_threshold,
            "mean_score": self.mean_score(),
        }


def _boxes_only(image_id: IntArray, bbox: FloatArray) -> Annotations:
    """Class-agnostic box view for matching: every object becomes a class-0 box."""
    n = len(image_id)
    # boxes of checked inputs, or medians of them: the row checks would find nothing
    return Annotations.create(
        image_id=image_id,
        class_id=np.zeros(n, dtype=np.int64),
        bbox=bbox,
        kind=np.full(n, Kind.BOX, dtype=np.uint8),
        area=np.zeros(n),  # unused: skips computing areas
        check=False,
    )._seal()


def _median_boxes(member_rows: IntArray, bbox: FloatArray) -> FloatArray:
    """(c, 4) coordinate-wise median over the members (``member_rows`` (c, k), -1 absent).

    What ``np.nanmedian(boxes, axis=1)`` gives, without its masked-array path and without
    a million tiny sorts: per coordinate, the k member slots are k contiguous rows, put in
    order by a sorting network of element-wise minimum/maximum (absent members are +inf,
    so they sort last), and the median is the mean of the two middle values (one value
    twice when the count is odd).
    """
    c, k = member_rows.shape
    present = member_rows >= 0
    rows = [np.where(present[:, j], member_rows[:, j], 0) for j in range(k)]
    count = present.sum(axis=1)
    column = np.arange(c)
    low = (count - 1) // 2 * c + column  # flat positions of the two middle slots
    high = count // 2 * c + column
    out = np.empty((c, 4))
    slots = np.empty((k, c))
    for x in range(4):  # per coordinate: 1-d gathers, not a (k, c, 4) fancy gather
        coordinate = np.ascontiguousarray(bbox[:, x])
        for j in range(k):
            np.copyto(slots[j], coordinate.take(rows[j]))
            slots[j][~present[:, j]] = np.inf
        for step in range(k):  # odd-even transposition network: k rounds over the k slots
            for j in range(step % 2, k - 1, 2):
                smaller = np.minimum(slots[j], slots[j + 1])
                np.maximum(slots[j], slots[j + 1], out=slots[j + 1])
                slots[j] = smaller
        flat = slots.ravel()
        median = flat.take(low)
        median += flat.take(high)
        median /= 2.0
        out[:, x] = median
    return out


def _cluster(
    parts: list[Annotations],
    offsets: IntArray,
    bbox: FloatArray,
    iou_threshold: float | None,
    taxonomy: Taxonomy | None,
    class_id: IntArray,
) -> IntArray:
    """(c, k) rows into the concatenated live objects, -1 where an annotator is absent."""
    k = len(parts)
    image_id = np.concatenate([p.image_id for p in parts])
    first = np.arange(offsets[0], offsets[1], dtype=np.int64)
    members = np.full((len(first), k), -1, dtype=np.int64)
    members[:, 0] = first
    seed_rows = first.copy()  # the row that seeded each cluster: its class sets the threshold
    cluster_image = image_id[first]
    for j in range(1, k):  # a loop over the handful of annotators, not over objects
        rows_j = np.arange(offsets[j], offsets[j + 1], dtype=np.int64)
        # only annotators 0..j-1 have joined so far: later columns are all absent
        consensus = _boxes_only(cluster_image, _median_boxes(members[:, :j], bbox))
        candidates = _boxes_only(image_id[rows_j], bbox[rows_j])
        if taxonomy is not None:
            # per-class threshold of the cluster's seed; NaN (unknown class) never matches
            thresholds = taxonomy.thresholds(class_id[seed_rows])
            matching = match(consensus, candidates, iou_threshold=thresholds, swaps=False)
        else:
            assert iou_threshold is not None  # merge() fills the default
            matching = match(consensus, candidates, iou_threshold=iou_threshold, swaps=False)
        members[matching.ref_rows, j] = rows_j[matching.other_rows]
        lone = np.ones(len(rows_j), dtype=bool)
        lone[matching.other_rows] = False
        new = np.full((int(lone.sum()), k), -1, dtype=np.int64)
        new[:, j] = rows_j[lone]
        members = np.concatenate([members, new])
        seed_rows = np.concatenate([seed_rows, rows_j[lone]])
        cluster_image = np.concatenate([cluster_image, image_id[rows_j[lone]]])
    # a stable order: by image, then by the first member's position in the inputs
    first_member = np.where(members >= 0, members, np.iinfo(np.int64).max).min(axis=1)
    order = np.lexsort((first_member, cluster_image))
    ordered: IntArray = members[order]
    return ordered


def _take_parts(parts: Sequence[Annotations], offsets: IntArray, rows: IntArray) -> Annotations:
    """``Annotations.concat(parts).take(rows)``, concatenating only the rows taken."""
    part = np.searchsorted(offsets, rows, side="right") - 1
    order = np.argsort(part, kind="stable")  # grouped by part, in the order of rows
    taken = Annotations.concat(
        [p.take(rows[order][part[order] == j] - offsets[j]) for j, p in enumerate(parts)]
    )
    back = np.empty(len(rows), dtype=np.int64)
    back[order] = np.arange(len(rows))
    return taken.take(back)


def _vote(member_class: IntArray, present: BoolArray) -> tuple[IntArray, IntArray]:
    """Winning class and its votes per cluster; ties go to the smallest class id."""
    voted = member_class[present]
    if len(voted) and voted.min() >= 0 and voted.max() < 1 << 20:
        # small class ids: a table instead of np.unique's sort of every vote
        seen = np.zeros(int(voted.max()) + 1, dtype=bool)
        seen[voted] = True
        classes = np.flatnonzero(seen)
        dense = (np.cumsum(seen) - 1).take(voted)
    else:
        classes, dense = np.unique(voted, return_inverse=True)
    counts = np.zeros((len(member_class), max(len(classes), 1)), dtype=np.int64)
    cluster = np.nonzero(present)[0]
    np.add.at(counts, (cluster, dense.ravel()), 1)
    winner = counts.argmax(axis=1)  # first maximum: the smallest class id (classes sorted)
    votes = counts[np.arange(len(counts)), winner]
    label = classes[winner] if len(classes) else np.zeros(len(counts), dtype=np.int64)
    return label.astype(np.int64), votes.astype(np.int64)


def _plurality(values: np.ndarray, eligible: BoolArray) -> tuple[np.ndarray, BoolArray]:
    """Per row of (c, k) ``values``, the value most ``eligible`` slots hold; ties: smallest.

    Returns the winning values (c,) and whether a row had any eligible slot (elsewhere
    the value is the placeholder of the first slot). Values are ranked by ``np.unique``
    (sorted), then each slot counts the eligible slots of its row that share its rank:
    k x k vectorized comparisons over the rows, k being the handful of annotators.
    """
    c, k = values.shape
    if not eligible.any():
        return values[:, 0] if k else np.zeros(c, dtype=values.dtype), np.zeros(c, dtype=bool)
    _, rank = np.unique(values[eligible], return_inverse=True)
    code = np.full((c, k), -1, dtype=np.int64)
    code[eligible] = rank.ravel()
    count = np.zeros((c, k), dtype=np.int64)
    for j in range(k):  # a loop over the annotator slots, not over objects
        count[:, j] = ((code == code[:, j : j + 1]) & eligible).sum(axis=1)
    # most votes first, then the smallest value; slots without a vote never win
    width = int(code.max()) + 2
    key = np.where(eligible, count * width - code, -1)
    winner = key.argmax(axis=1)
    out = np.take_along_axis(values, winner[:, None], axis=1)[:, 0]
    has: BoolArray = np.any(eligible, axis=1)
    return out, has


def _voted_flags(flag: BoolArray, present: BoolArray) -> BoolArray:
    """(c,) a boolean column by majority of the members: set when more than half set it."""
    set_by = (flag & present).sum(axis=1)
    out: BoolArray = 2 * set_by > present.sum(axis=1)
    return out


def _attribute_column(parts: Sequence[Annotations], name: str) -> AttributeColumn:
    """One attribute over the concatenated parts (absent in parts that lack it)."""
    cols = [p.attributes.get(name) for p in parts]
    kinds = {c.values.dtype.kind for c in cols if c is not None}
    if len(kinds) > 1:  # mixed types: the strings Annotations.concat would make of them
        return AttributeColumn.from_list(
            [v for p, c in zip(parts, cols) for v in (c.to_list() if c else [None] * len(p))]
        )
    dtype = next(c.values.dtype for c in cols if c is not None)
    filler = {"b": False, "i": 0, "f": np.nan, "O": ""}[dtype.kind]
    return AttributeColumn(
        np.concatenate(
            [c.values if c else np.full(len(p), filler, dtype=dtype) for p, c in zip(parts, cols)]
        ),
        np.concatenate(
            [c.present if c else np.zeros(len(p), dtype=bool) for p, c in zip(parts, cols)]
        ),
    )


def _voted_attributes(
    parts: Sequence[Annotations],
    members: IntArray,
    member_class: IntArray,
    label: IntArray,
    keep: IntArray,
) -> dict[str, AttributeColumn]:
    """The kept clusters' attributes, voted among the members of the winning class."""
    out: dict[str, AttributeColumn] = {}
    names = sorted({name for p in parts for name in p.attributes} - set(_OWN_ATTRIBUTES))
    if not names:
        return out
    chosen = members[keep]
    safe = np.where(chosen >= 0, chosen, 0)
    voter = (chosen >= 0) & (member_class[keep] == label[keep, None])
    for name in names:
        column = _attribute_column(parts, name)
        values = column.values[safe]  # (m, k)
        eligible = voter & column.present[safe]
        if column.values.dtype.kind == "f":
            with warnings.catch_warnings():
                # a cluster without a value is expected: its all-NaN median is absent
                warnings.simplefilter("ignore", RuntimeWarning)
                voted = np.nanmedian(np.where(eligible, values, np.nan), axis=1)
            has = eligible.any(axis=1)
            voted = np.where(has, voted, np.nan)
        else:
            voted, has = _plurality(values, eligible)
        out[name] = AttributeColumn(np.asarray(voted, dtype=column.values.dtype), has)
    return out


def _shape_agreement(members: IntArray, bbox: FloatArray) -> FloatArray:
    """(c,) mean box IoU over all pairs of members; 1.0 for a single member."""
    total = np.zeros(len(members))
    pairs = np.zeros(len(members))
    k = members.shape[1]
    for a in range(k):  # k (k - 1) / 2 vectorized passes over the clusters
        for b in range(a + 1, k):
            both = (members[:, a] >= 0) & (members[:, b] >= 0)
            rows = np.flatnonzero(both)
            total[rows] += box_iou_pairs(
                np.take(bbox, members[rows, a], axis=0), np.take(bbox, members[rows, b], axis=0)
            )
            pairs[rows] += 1
    out: FloatArray = np.divide(total, pairs, out=np.ones_like(total), where=pairs > 0)
    return out


def _merged_keypoints(members: IntArray, live: Annotations, is_keypoints: BoolArray) -> Ragged:
    """Per-keypoint medians for the clusters in ``is_keypoints``; empty rows elsewhere."""
    c = len(members)
    dense = live.keypoints_dense()  # (n, K, 3)
    width = dense.shape[1]
    rows = np.flatnonzero(is_keypoints)
    if not len(rows) or width == 0:
        return Ragged.empty(c, width=3)
    chosen = members[rows]  # (r, k)
    points = dense[np.where(chosen >= 0, chosen, 0)]  # (r, k, K, 3)
    labelled = (chosen >= 0)[:, :, None] & (points[..., 2] > 0)  # (r, k, K)
    xy = np.where(labelled[..., None], points[..., :2], np.nan)
    with warnings.catch_warnings():
        # a keypoint that no member labelled is expected: its all-NaN median becomes 0, 0, 0
        warnings.simplefilter("ignore", RuntimeWarning)
        median_xy = np.nanmedian(xy, axis=1)  # (r, K, 2)
    visibility = np.where(labelled, points[..., 2], 0.0).max(axis=1)  # (r, K)
    median_xy[visibility == 0] = 0.0
    merged = np.concatenate([median_xy, visibility[..., None]], axis=2)  # (r, K, 3)
    lengths = np.zeros(c, dtype=np.int64)
    lengths[rows] = width
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Ragged(merged.reshape(-1, 3), offsets)


def _voted_masks(members: IntArray, live: Annotations, is_mask: BoolArray) -> Ragged:
    """Pixel-majority RLE of the clusters in ``is_mask``; empty rows elsewhere.

    Works on run boundaries, never on pixels: each member's foreground runs become +1/-1
    events, a cumulative sum over the sorted events of a cluster gives how many members
    cover each stretch, and stretches covered by more than half of the members become the
    merged foreground runs.
    """
    c = len(members)
    clusters = np.flatnonzero(is_mask)
    if not len(clusters):
        return Ragged.empty(c, dtype=np.int64)
    chosen = members[clusters]
    has = chosen >= 0
    rows = chosen[has]
    cluster_of_row = np.repeat(clusters, has.sum(axis=1))
    sub = live.rle_counts.take(rows)
    counts = sub.values.astype(np.int64)
    owner = sub.row_index()
    position = np.arange(len(counts)) - sub.offsets[:-1][owner]
    total = np.cumsum(counts)
    before_row = np.concatenate([[0], total])[sub.offsets[:-1]]
    start = total - counts - before_row[owner]
    on = (position % 2 == 1) & (counts > 0)
    event_cluster = np.concatenate([cluster_of_row[owner[on]]] * 2)
    event_position = np.concatenate([start[on], start[on] + counts[on]])
    event_delta = np.concatenate([np.ones(on.sum(), np.int64), -np.ones(on.sum(), np.int64)])
    order = np.lexsort((event_position, event_cluster))
    event_cluster, event_position = event_cluster[order], event_position[order]
    event_delta = event_delta[order]
    # one stretch per distinct (cluster, position): its coverage holds until the next one
    first = np.ones(len(order), dtype=bool)
    first[1:] = (event_cluster[1:] != event_cluster[:-1]) | (
        event_position[1:] != event_position[:-1]
    )
    starts = np.flatnonzero(first)
    stretch_cluster = event_cluster[starts]
    stretch_position = event_position[starts]
    # every cluster's deltas sum to 0, so one global cumulative sum stays per cluster
    coverage = np.cumsum(np.add.reduceat(event_delta, starts)) if len(starts) else event_delta
    n_members = (members >= 0).sum(axis=1)
    covered = 2 * coverage > n_members[stretch_cluster]
    previous = np.zeros_like(covered)
    previous[1:] = covered[:-1] & (stretch_cluster[1:] == stretch_cluster[:-1])
    following = np.zeros_like(covered)
    following[:-1] = covered[1:] & (stretch_cluster[1:] == stretch_cluster[:-1])
    rise = np.flatnonzero(covered & ~previous)
    fall = np.flatnonzero(covered & ~following) + 1  # a covered stretch ends at the next event
    # counts of a mask = differences of [0, rise, fall, rise, fall, ..., height * width]
    size = live.rle_size[chosen.max(axis=1)]
    pixels = size[:, 0] * size[:, 1]
    point_cluster = np.concatenate(
        [clusters, stretch_cluster[rise], stretch_cluster[fall - 1], clusters]
    )
    point_position = np.concatenate(
        [np.zeros(len(clusters), np.int64), stretch_position[rise], stretch_position[fall], pixels]
    )
    point_order = np.lexsort((point_position, point_cluster))
    point_cluster, point_position = point_cluster[point_order], point_position[point_order]
    # a fall at the last pixel would end the counts with an empty run: drop that point
    repeated = np.zeros(len(point_cluster), dtype=bool)
    repeated[1:] = (point_cluster[1:] == point_cluster[:-1]) & (
        point_position[1:] == point_position[:-1]
    )
    keep = ~repeated | (point_position == 0)  # counts start with a (maybe empty) zero run
    point_cluster, point_position = point_cluster[keep], point_position[keep]
    new_cluster = np.ones(len(point_cluster), dtype=bool)
    new_cluster[1:] = point_cluster[1:] != point_cluster[:-1]
    values = np.diff(point_position)[~new_cluster[1:]]
    lengths = np.zeros(c, dtype=np.int64)
    lengths[clusters] = np.bincount(point_cluster, minlength=c)[clusters] - 1
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Ragged(values.astype(np.int64), offsets)


def _voted_polygons(members: IntArray, live: Annotations, is_polygon: BoolArray) -> Any:
    """(c,) object array: for polygon clusters, the region covered by most members.

    Clusters are grouped by member count ``n``; for each group, the union over every
    ``n // 2 + 1``-subset of the members' intersection, computed element-wise with
    shapely over the whole group (the loop runs over subsets of at most k annotators,
    never over clusters).
    """
    c = len(members)
    out = np.full(c, None, dtype=object)
    clusters = np.flatnonzero(is_polygon)
    present = members[clusters] >= 0
    counts = present.sum(axis=1)
    for n in np.unique(counts).tolist():
        group = clusters[counts == n]
        rows = members[group]
        # compact each cluster's member rows to the first n columns
        order = np.argsort(rows < 0, axis=1, kind="stable")
        slots = np.take_along_axis(rows, order, axis=1)[:, :n]
        geometry, _ = polygon_geometry(live, slots.reshape(-1))
        geometry = geometry.reshape(len(group), n)
        majority = n // 2 + 1
        region = None
        for subset in combinations(range(n), majority):
            part = geometry[:, subset[0]]
            for j in subset[1:]:
                part = shapely.intersection(part, geometry[:, j])
            region = part if region is None else shapely.union(region, part)
        assert region is not None  # majority >= 1
        out[group] = shapely.make_valid(region)
    return out


def _outer_rings(voted: Any, is_polygon: BoolArray, keep: IntArray) -> tuple[Ragged, IntArray]:
    """Rings (outer boundaries of every polygon part) of the kept clusters, CSR by object."""
    m = len(keep)
    ring_offsets = np.zeros(m + 1, dtype=np.int64)
    rows = np.flatnonzero(is_polygon)
    if not len(rows):
        return Ragged.empty(0, width=2), ring_offsets
    geometry = voted[keep[rows]]
    # keep the areal parts: an intersection can also leave lines and points
    parts, owner = shapely.get_parts(geometry, return_index=True)
    areal = shapely.get_type_id(parts) == 3  # Polygon
    parts, owner = parts[areal], owner[areal]
    exterior = shapely.get_exterior_ring(parts)
    coords, ring = shapely.get_coordinates(exterior, return_index=True)
    # shapely repeats the first point at the end of a ring: COCO polygons do not
    last = np.ones(len(ring), dtype=bool)
    last[:-1] = ring[1:] != ring[:-1]
    coords, ring = coords[~last], ring[~last]
    point_offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(ring, minlength=len(parts)), out=point_offsets[1:])
    per_object = np.zeros(m, dtype=np.int64)
    per_object[rows] = np.bincount(owner, minlength=len(rows))
    np.cumsum(per_object, out=ring_offsets[1:])
    return Ragged(coords.astype(np.float64), point_offsets), ring_offsets


def merge(
    sets: Sequence[Annotations],
    *,
    iou_threshold: float | None = None,
    taxonomy: Taxonomy | None = None,
    quorum: float = 0.5,
) -> MergeResult:
    """Merge several annotators' labels into one consensus set plus an adjudication list.

    Parameters
    ----------
    sets
        One label set per annotator (k >= 1), on the same image ids and class ids.
    iou_threshold
        IoU a box needs with a cluster's consensus box to join it. Default 0.5 when no
        ``taxonomy`` is given.
    taxonomy
        Per-class thresholds instead: a box joins a cluster when its IoU reaches the
        threshold of the class of the cluster's first (seed) object. Not with
        ``iou_threshold``.
    quorum
        Fraction of annotators that must have drawn a cluster for it to be merged, in
        [0, 1]; default 0.5.

    Returns
    -------
    MergeResult

    Raises
    ------
    ValueError
        No sets, a quorum outside [0, 1], or both ``iou_threshold`` and ``taxonomy``.

    Examples
    --------
    >>> a = Annotations.create(image_id=[1, 1], class_id=[1, 1],
    ...                        bbox=[[0, 0, 10, 10], [50, 50, 60, 60]])
    >>> b = Annotations.create(image_id=[1], class_id=[2], bbox=[[0, 0, 10, 12]])
    >>> c = Annotations.create(image_id=[1], class_id=[1], bbox=[[0, 0, 12, 10]])
    >>> result = merge([a, b, c])
    >>> result.annotations.bbox.tolist(), result.annotations.class_id.tolist()
    ([[0.0, 0.0, 10.0, 10.0]], [1])
    >>> round(float(result.annotations.score[0]), 4)  # 2/3 votes x mean IoU (5/6 + 5/6 + 5/7) / 3
    0.5291
    >>> result.adjudication.bbox.tolist()
    [[50.0, 50.0, 60.0, 60.0]]
    """
    if not sets:
        raise ValueError("merge: expected at least one label set, got none")
    if not 0.0 <= quorum <= 1.0:
        raise ValueError(f"merge: expected quorum in [0, 1], got {quorum}")
    if iou_threshold is not None and taxonomy is not None:
        raise ValueError("merge: expected at most one of iou_threshold and taxonomy, got both")
    if taxonomy is None and iou_threshold is None:
        iou_threshold = DEFAULT_IOU_THRESHOLD
    k = len(sets)
    parts = [s if bool((s.kind != Kind.TAG).all()) else s[s.kind != Kind.TAG] for s in sets]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    original_id = np.concatenate([p.id for p in parts])
    # ids of different annotators may collide: renumber, keep the originals for adjudication
    parts = [
        p.replace(id=np.arange(start, stop, dtype=np.int64))
        for p, start, stop in zip(parts, offsets[:-1], offsets[1:])
    ]
    # boxes only (the usual case): concatenate the few columns used here, not every column
    # of every row (Annotations.concat re-validates the whole container)
    geometry = any(
        bool(np.isin(p.kind, (Kind.KEYPOINTS, Kind.MASK, Kind.POLYGON)).any()) for p in parts
    )
    live = Annotations.concat(parts) if geometry else None
    bbox = np.concatenate([p.bbox for p in parts])
    class_id = np.concatenate([p.class_id for p in parts])
    image_id = np.concatenate([p.image_id for p in parts])
    live_kind = np.concatenate([p.kind for p in parts])
    occluded = np.concatenate([p.occluded for p in parts])
    truncated = np.concatenate([p.truncated for p in parts])
    annotator_index = np.repeat(np.arange(k, dtype=np.int64), np.diff(offsets))
    members = _cluster(parts, offsets, bbox, iou_threshold, taxonomy, class_id)
    c = len(members)
    present = members >= 0
    safe = np.where(present, members, 0)
    n_members = present.sum(axis=1)
    member_class = class_id[safe]
    label, votes = _vote(member_class, present)
    shape = _shape_agreement(members, bbox)
    score = votes / np.maximum(n_members, 1) * shape
    reached = n_members >= quorum * k - _QUORUM_TOLERANCE
    cluster_id = np.arange(1, c + 1, dtype=np.int64)

    member_kind = live_kind[safe]
    is_keypoints = ((member_kind == Kind.KEYPOINTS) | ~present).all(axis=1) & reached
    if live is not None:
        keypoints = _merged_keypoints(members, live, is_keypoints)
    else:
        keypoints = Ragged.empty(c, width=3)
    any_member = members.max(axis=1)
    mask_member = member_kind == Kind.MASK
    if live is not None and mask_member.any():
        member_size = np.take(live.rle_size, safe, axis=0)  # (c, k, 2)
        first_size = np.take(live.rle_size, any_member, axis=0)
        same_size = (member_size == first_size[:, None, :]).all(axis=2)
        is_mask = (mask_member & same_size | ~present).all(axis=1) & reached
    else:  # no mask anywhere (every cluster has a member): skip the (c, k, 2) sizes
        is_mask = np.zeros(c, dtype=bool)
    if live is not None:
        masks = _voted_masks(members, live, is_mask)
    else:
        masks = Ragged.empty(c, dtype=np.int64)
    box = _median_boxes(members, bbox)
    polygon_member = member_kind == Kind.POLYGON
    is_polygon = (polygon_member | ~present).all(axis=1) & reached
    if live is not None and is_polygon.any():
        voted = _voted_polygons(members, live, is_polygon)
        # an intersection can be a shared edge or point: no area, no polygon
        is_polygon &= np.nan_to_num(shapely.area(voted)) > 0
        box[is_polygon] = shapely.bounds(voted[is_polygon])
    else:
        voted = np.empty(c, dtype=object)
        is_polygon = np.zeros(c, dtype=bool)
    mask_rows = np.flatnonzero(is_mask)
    if live is not None:
        box[mask_rows] = rle_bbox(masks.take(mask_rows), live.rle_size[any_member[mask_rows]])
    keep = np.flatnonzero(reached)
    m = len(keep)
    kind = np.select(
        [is_keypoints, is_mask, is_polygon], [Kind.KEYPOINTS, Kind.MASK, Kind.POLYGON], Kind.BOX
    )
    kind = kind.astype(np.uint8)
    rings, ring_offsets = _outer_rings(voted, is_polygon[keep], keep)
    carried = _voted_attributes(parts, members, member_class, label, keep)
    rle_size = np.zeros((c, 2), dtype=parts[0].rle_size.dtype if parts else np.int64)
    if live is not None:
        rle_size[mask_rows] = np.take(live.rle_size, any_member[mask_rows], axis=0)
    merged = Annotations.create(
        id=np.arange(1, m + 1, dtype=np.int64),
        image_id=image_id[members[keep, :].max(axis=1)] if m else np.zeros(0, np.int64),
        class_id=label[keep],
        bbox=box[keep],
        kind=kind[keep],
        score=score[keep],
        annotator_id=np.full(m, -1, dtype=np.int64),
        source=np.full(m, Source.MERGED, dtype=np.uint8),
        occluded=_voted_flags(occluded[safe[keep]], present[keep]),
        truncated=_voted_flags(truncated[safe[keep]], present[keep]),
        keypoints=keypoints.take(keep),
        rings=rings,
        ring_offsets=ring_offsets,
        rle_counts=masks.take(keep),
        rle_size=rle_size[keep],
        attributes={
            **carried,
            "cluster_id": AttributeColumn(cluster_id[keep], np.ones(m, dtype=bool)),
            "members": AttributeColumn(n_members[keep].astype(np.int64), np.ones(m, dtype=bool)),
        },
    )

    below = ~reached
    rows = members[below]
    flat_rows = rows[rows >= 0]
    flat_cluster = np.repeat(cluster_id[below], (rows >= 0).sum(axis=1))
    a = len(flat_rows)
    adjudication = (
        live.take(flat_rows) if live is not None else _take_parts(parts, offsets, flat_rows)
    )
    adjudication = adjudication.replace(
        id=np.arange(1, a + 1, dtype=np.int64),
        attributes={
            **adjudication.attributes,
            "cluster_id": AttributeColumn(flat_cluster, np.ones(a, dtype=bool)),
            "annotator_index": AttributeColumn(annotator_index[flat_rows], np.ones(a, dtype=bool)),
            "original_id": AttributeColumn(original_id[flat_rows], np.ones(a, dtype=bool)),
        },
    )
    return MergeResult(
        annotations=merged,
        adjudication=adjudication,
        n_annotators=k,
        n_clusters=c,
        quorum=quorum,
        iou_threshold=iou_threshold,
    )
