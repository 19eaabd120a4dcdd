"""Compare, geometric agreement and consensus merge on 100,000 images / ~2 million boxes.

Run:  python benchmarks/bench_compare.py [--images 100000] [--repeat 3] [--peer-images 5000]

Data: labelgate's generator (reference, ~20 boxes per image) and perturbed copies of it
(default noise: jitter, misses, duplicates, false positives, class swaps): one for
``compare``, three annotators for agreement and merge. Each is called as the CLI calls it:

- ``compare(reference, other)``: per-class tier thresholds, class swaps on;
- ``geometry_agreement(3 sets, taxonomy, image_ids=...)``: 3 annotator pairs, with the
  default 1,000 image-bootstrap resamples of the headline figures;
- ``merge(3 sets, taxonomy=...)``: clusters grown annotator by annotator, per-class thresholds.

Times are the median of ``--repeat`` runs in this process. The peer, for compare's matching
only, is what a careful script does: per (image, class), scipy's ``linear_sum_assignment``
on the IoU matrix with sub-threshold entries set to 0. It is timed on the first
``--peer-images`` images and its time scaled by object count to the whole data set (marked
"extrapolated"); labelgate's ``match`` must agree with it there on the match count and IoU
sum, or the benchmark fails. The CPU column is the median process time of the same runs:
on a shared machine, wall time also counts the time other processes held the cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.annotations import Annotations
from labelgate.core.compare import compare
from labelgate.core.generate import NoiseModel, generate_dataset, generate_pool, perturb
from labelgate.core.geometry_agreement import geometry_agreement
from labelgate.core.matching import match
from labelgate.core.merge import merge
from labelgate.core.pairs import box_iou_matrix
from labelgate.core.taxonomy import Taxonomy


def hungarian_loop(ref: Annotations, other: Annotations, taxonomy: Taxonomy) -> tuple[int, float]:
    """Per (image, class) linear_sum_assignment at the class threshold; (count, IoU sum)."""
    count, total = 0, 0.0
    key_ref = np.stack([ref.image_id, ref.class_id], axis=1)
    key_other = np.stack([other.image_id, other.class_id], axis=1)
    groups_other: dict[tuple[int, int], np.ndarray] = {}
    order = np.lexsort((key_other[:, 1], key_other[:, 0]))
    keys, starts = np.unique(key_other[order], axis=0, return_index=True)
    for key, rows in zip(map(tuple, keys.tolist()), np.split(order, starts[1:])):
        groups_other[key] = rows
    order = np.lexsort((key_ref[:, 1], key_ref[:, 0]))
    keys, starts = np.unique(key_ref[order], axis=0, return_index=True)
    thresholds = taxonomy.thresholds(keys[:, 1]).tolist()
    for key, rows_a, threshold in zip(
        map(tuple, keys.tolist()), np.split(order, starts[1:]), thresholds
    ):
        rows_b = groups_other.get(key)
        if rows_b is None or threshold != threshold:  # no other rows, or a class with no tier
            continue
        iou = box_iou_matrix(ref.bbox[rows_a], other.bbox[rows_b])
        iou[iou < threshold] = 0.0
        r, c = linear_sum_assignment(iou, maximize=True)
        values = iou[r, c]
        values = values[values > 0]
        count += len(values)
        total += float(values.sum())
    return count, total


def with_cpu(function: Callable[[], Any], sink: list[float]) -> Callable[[], Any]:
    """``function``, also appending its process (CPU) time to ``sink`` on every call."""

    def run() -> Any:
        started = time.process_time()
        out = function()
        sink.append(time.process_time() - started)
        return out

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer-images", type=int, default=5_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = generate_dataset(args.images, seed=args.seed)
    other = perturb(dataset, NoiseModel(), seed=args.seed + 1).annotations
    pool = generate_pool(dataset, [NoiseModel()] * 3, seed=args.seed + 2)
    sets = [pool[pool.annotator_id == j] for j in (1, 2, 3)]
    ref, taxonomy = dataset.annotations, dataset.taxonomy
    n_pool = sum(len(s) for s in sets)
    print(
        f"{args.images:,} images, {len(taxonomy)} classes; compare: {len(ref):,} + "
        f"{len(other):,} boxes; agreement and merge: 3 annotators, {n_pool:,} boxes"
    )

    # the peer on a subset, and labelgate's matching on the same subset: totals must agree
    first = np.sort(np.unique(ref.image_id))[: args.peer_images]
    sub_ref = ref[np.isin(ref.image_id, first)]
    sub_other = other[np.isin(other.image_id, first)]
    cpu: dict[str, list[float]] = {name: [] for name in ("peer", "compare", "agreement", "merge")}
    peer_times, (peer_count, peer_total) = timed(
        with_cpu(lambda: hungarian_loop(sub_ref, sub_other, taxonomy), cpu["peer"]),
        args.repeat,
    )
    check = match(sub_ref, sub_other, taxonomy=taxonomy, swaps=False)
    ours_count, ours_total = len(check.ref_rows), float(check.iou.sum())
    if ours_count != peer_count or abs(ours_total - peer_total) > 1e-9 * max(1.0, peer_total):
        print(
            f"MISMATCH on {len(first):,} images: labelgate {ours_count} / {ours_total!r}, "
            f"scipy {peer_count} / {peer_total!r}"
        )
        return 1
    print(
        f"matching totals agree on the first {len(first):,} images: {ours_count:,} matches, "
        f"IoU sum {ours_total:.6f}"
    )
    scale = (len(ref) + len(other)) / (len(sub_ref) + len(sub_other))

    compare_times, _ = timed(with_cpu(lambda: compare(dataset, other), cpu["compare"]), args.repeat)
    agreement_times, _ = timed(
        with_cpu(
            lambda: geometry_agreement(
                sets, taxonomy, image_ids=dataset.images.id, n_resamples=args.bootstrap
            ),
            cpu["agreement"],
        ),
        args.repeat,
    )
    merge_times, _ = timed(
        with_cpu(lambda: merge(sets, taxonomy=taxonomy), cpu["merge"]), args.repeat
    )

    rows = [
        (
            "scipy Hungarian loop, compare's matching (extrapolated)",
            [t * scale for t in peer_times],
            [t * scale for t in cpu["peer"]],
            len(ref) + len(other),
        ),
        ("labelgate compare", compare_times, cpu["compare"], len(ref) + len(other)),
        (
            f"labelgate agreement (bootstrap {args.bootstrap})",
            agreement_times,
            cpu["agreement"],
            n_pool,
        ),
        ("labelgate merge", merge_times, cpu["merge"], n_pool),
    ]
    width = max(len(row[0]) for row in rows) + 2
    print(
        f"{'impl':<{width}}{'median s':>9}  {'min..max':>16}  {'objects/s':>12}"
        f"  {'cpu s':>8}  {'objects/cpu s':>13}"
    )
    for name, times, cpu_times, objects in rows:
        median, median_cpu = statistics.median(times), statistics.median(cpu_times)
        print(
            f"{name:<{width}}{median:9.3f}  {min(times):7.3f}..{max(times):7.3f}  "
            f"{objects / median:12,.0f}  {median_cpu:8.3f}  {objects / median_cpu:13,.0f}"
        )
    peer_median = statistics.median(peer_times) * scale
    print(
        f"compare (all figures, swaps on) vs the peer's matching alone: "
        f"{peer_median / statistics.median(compare_times):.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
