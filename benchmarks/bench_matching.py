"""Optimal one-to-one matching: labelgate beside a per-(image, class) Hungarian loop.

Run:  python benchmarks/bench_matching.py [--images 20000] [--repeat 3] [--threshold 0.5]

A generated reference data set and a perturbed copy (default noise: jitter, misses,
duplicates, false positives, class swaps). The peer is what a careful script does: group
rows by (image, class) and call scipy's ``linear_sum_assignment`` on each IoU matrix with
sub-threshold entries set to 0. labelgate's ``match`` (swaps off, to compare like with
like) runs on the whole data set at once. Both run in this process on the same data; times
are the median of ``--repeat``; the match counts and IoU sums must agree. The CPU column is
the median process time of the same runs: on a shared machine, wall time also counts the
time other processes held the core.
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
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.core.matching import match
from labelgate.core.pairs import box_iou_matrix


def hungarian_loop(ref: Annotations, other: Annotations, threshold: float) -> tuple[int, float]:
    """Per (image, class) linear_sum_assignment; the groups come from one sort per side."""
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
    for key, rows_a in zip(map(tuple, keys.tolist()), np.split(order, starts[1:])):
        rows_b = groups_other.get(key)
        if rows_b is None:
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
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    dataset = generate_dataset(args.images, seed=1)
    noisy = perturb(dataset, NoiseModel(), seed=2)
    ref, other = dataset.annotations, noisy.annotations
    boxes = len(ref) + len(other)
    print(f"{args.images} images, {len(ref)} + {len(other)} boxes, IoU >= {args.threshold}")

    peer_cpu: list[float] = []
    ours_cpu: list[float] = []
    peer_times, (peer_count, peer_total) = timed(
        with_cpu(lambda: hungarian_loop(ref, other, args.threshold), peer_cpu), args.repeat
    )
    ours_times, result = timed(
        with_cpu(lambda: match(ref, other, iou_threshold=args.threshold, swaps=False), ours_cpu),
        args.repeat,
    )
    ours_count, ours_total = len(result.ref_rows), float(result.iou.sum())
    if ours_count != peer_count or abs(ours_total - peer_total) > 1e-9 * max(1.0, peer_total):
        print(
            f"MISMATCH: labelgate {ours_count} / {ours_total!r}, "
            f"scipy {peer_count} / {peer_total!r}"
        )
        return 1
    print(f"totals agree: {ours_count} matches, IoU sum {ours_total:.6f}")

    base = statistics.median(peer_times)
    print(
        f"{'impl':<20}{'median s':>9}  {'min..max':>16}  {'boxes/s':>12}  vs scipy loop"
        f"  {'cpu s':>7}  {'boxes/cpu s':>12}"
    )
    rows = (("scipy Hungarian", peer_times, peer_cpu), ("labelgate match", ours_times, ours_cpu))
    for name, times, cpu in rows:
        median, median_cpu = statistics.median(times), statistics.median(cpu)
        print(
            f"{name:<20}{median:9.4f}  {min(times):7.4f}..{max(times):7.4f}  "
            f"{boxes / median:12,.0f}  {base / median:8.1f}x     {median_cpu:7.4f}  "
            f"{boxes / median_cpu:12,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
