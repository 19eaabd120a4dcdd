"""COCO bbox evaluation on 20,000 images / ~400,000 boxes: labelgate beside pycocotools and
faster-coco-eval.

Run:  python benchmarks/bench_eval.py [--images 20000] [--repeat 3] [--pycocotools-repeat 1]

The ground truth is labelgate's generator; the detections are a perturbed copy of it with
model scores (misses, jitter, class swaps, duplicates, false positives). Both are written to
COCO files that every implementation reads, and all three run in this process on the same
data. Timed: COCOeval's ``evaluate() + accumulate() + summarize()`` (files already loaded)
against ``labelgate.core.evaluate.evaluate`` on the already read data sets; the median of
``--repeat`` runs (pycocotools ``--pycocotools-repeat`` times, it is slow). The 12 stats
must be identical to 1e-9, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.evaluate import evaluate
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.formats.coco import read_coco, write_coco


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pycocotools-repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pycocotools", action="store_true")
    args = parser.parse_args()

    import faster_coco_eval
    from faster_coco_eval import COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth = generate_dataset(args.images, seed=args.seed)
    predicted = perturb(truth, NoiseModel(), seed=args.seed + 1, as_predictions=True)
    with tempfile.TemporaryDirectory(prefix="labelgate-bench-") as tmp:
        gt_path, dt_path = Path(tmp) / "gt.json", Path(tmp) / "dt.json"
        write_coco(truth, gt_path)
        write_coco(
            type(truth)(predicted.annotations, truth.images, truth.taxonomy), dt_path, results=True
        )
        gt = read_coco(gt_path)
        dt = read_coco(dt_path, reference=gt).annotations
        print(
            f"data: {len(gt.images):,} images, {len(gt.annotations):,} ground-truth boxes, "
            f"{len(dt):,} detections, {len(gt.taxonomy)} classes (seed {args.seed})\n"
        )
        quiet = contextlib.redirect_stdout(io.StringIO())
        with quiet:
            coco_gt = COCO(str(gt_path))
            coco_dt = coco_gt.loadRes(str(dt_path))
            faster_gt = faster_coco_eval.COCO(str(gt_path))
            faster_dt = faster_gt.loadRes(str(dt_path))

        def run_pycocotools() -> Any:
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator = COCOeval(coco_gt, coco_dt, "bbox")
                evaluator.evaluate()
                evaluator.accumulate()
                evaluator.summarize()
            return np.asarray(evaluator.stats)

        def run_faster() -> Any:
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator = COCOeval_faster(faster_gt, faster_dt, "bbox")
                evaluator.evaluate()
                evaluator.accumulate()
                evaluator.summarize()
            return np.asarray(evaluator.stats[:12])

        def run_labelgate() -> Any:
            return evaluate(gt, dt).stats

        results: dict[str, tuple[list[float], Any]] = {}
        if not args.skip_pycocotools:
            results["pycocotools"] = timed(run_pycocotools, args.pycocotools_repeat)
        results["faster-coco-eval"] = timed(run_faster, args.repeat)
        results["labelgate"] = timed(run_labelgate, args.repeat)

    ours = results["labelgate"][1]
    for name, (_, stats) in results.items():
        if not np.allclose(stats, ours, rtol=0, atol=1e-9):
            print(f"stats differ from {name}:\n{stats}\n{ours}", file=sys.stderr)
            return 1
    base_name = "pycocotools" if "pycocotools" in results else "faster-coco-eval"
    base = statistics.median(results[base_name][0])
    print(f"{'impl':<18}{'median s':>9}  {'min..max':>15}  {'vs ' + base_name:>17}")
    for name, (times, _) in results.items():
        median = statistics.median(times)
        print(
            f"{name:<18}{median:9.3f}  {min(times):6.3f}..{max(times):7.3f}  {base / median:16.1f}x"
        )
    lg = statistics.median(results["labelgate"][0])
    faster = statistics.median(results["faster-coco-eval"][0])
    print(f"\nstats identical (1e-9): {np.round(ours, 4).tolist()}")
    print(f"labelgate vs faster-coco-eval: {faster / lg:.1f}x faster (goal >= 6x)")
    if "pycocotools" in results:
        print(f"labelgate vs pycocotools: {base / lg:.1f}x faster (goal >= 50x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
