"""COCO bbox evaluation on 20,000 images / ~400,000 boxes: labelgate beside pycocotools and
faster-coco-eval.

Run:  python benchmarks/bench_eval.py [--images 20000] [--repeat 3] [--pycocotools-repeat 1]
      python benchmarks/bench_eval.py --memory [--images 100000]

The ground truth is labelgate's generator; the detections are a perturbed copy of it with
model scores (misses, jitter, class swaps, duplicates, false positives). Both are written to
COCO files that every implementation reads, and all three run in this process on the same
data. Timed: COCOeval's ``evaluate() + accumulate() + summarize()`` (files already loaded)
against ``labelgate.core.evaluate.evaluate`` on the already read data sets; the median of
``--repeat`` runs (pycocotools ``--pycocotools-repeat`` times, it is slow). The 12 stats
must be identical to 1e-9, or the benchmark fails.

``--memory`` measures labelgate's peak memory instead (default 100,000 images): the data
sets, read from the COCO files as above, are pickled and evaluated once in a child process,
which reports its peak RSS (``getrusage``) after loading the data and after evaluating, and
the peak of ``evaluate``'s own allocations (``tracemalloc``, which sees numpy's). The goal
is a peak RSS below 1.5 GB, data included.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.evaluate import evaluate
from labelgate.core.generate import NoiseModel, generate_dataset, perturb
from labelgate.formats.coco import read_coco, write_coco


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=None, help="20,000; 100,000 with --memory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pycocotools-repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pycocotools", action="store_true")
    parser.add_argument(
        "--memory", action="store_true", help="measure labelgate's peak memory, not times"
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child()
    if args.images is None:
        args.images = 100_000 if args.memory else 20_000
    # Linux carries a process's peak RSS over fork and exec: start the child while this
    # process is still small, or its peak would be ours
    child = start_memory_child() if args.memory else None

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
        if child is not None:
            del truth, predicted
            return measure_memory(child, gt, dt, Path(tmp))
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


MEMORY_GOAL_MIB = 1500 * 1000**2 / 2**20  # 1.5 GB


def start_memory_child() -> subprocess.Popen[str]:
    """The process that will evaluate; it waits for the data's path on stdin."""
    command = [sys.executable, __file__, "--memory-child"]
    pipe = subprocess.PIPE
    return subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe, text=True)


def measure_memory(child: subprocess.Popen[str], gt: Any, dt: Any, folder: Path) -> int:
    """Evaluate once in the child process on the pickled data; print its peak memory."""
    data = folder / "data.pickle"
    with data.open("wb") as file:
        pickle.dump((gt, dt), file, protocol=pickle.HIGHEST_PROTOCOL)
    del gt, dt
    out, err = child.communicate(f"{data}\n")
    if child.returncode != 0:
        print(err, file=sys.stderr)
        return 1
    report = json.loads(out)
    # the only child this process waited for: its high-water mark, seen from outside
    peak = _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(f"labelgate evaluate, in a child process ({report['seconds']:.2f} s):")
    print(f"  peak RSS after loading the data:  {report['loaded_mib']:7.0f} MiB")
    print(f"  peak RSS after evaluating:        {peak:7.0f} MiB")
    print(f"  evaluate's own allocations peak:  {report['traced_mib']:7.0f} MiB (tracemalloc)")
    print(f"\nstats: {np.round(report['stats'], 4).tolist()}")
    print(f"peak RSS {peak:.0f} MiB = {peak * 2**20 / 1e9:.2f} GB (goal < 1.5 GB, data included)")
    return 0 if peak <= MEMORY_GOAL_MIB else 1


def memory_child() -> int:
    """The child of ``--memory``: load, evaluate once, report as JSON on stdout."""
    data = Path(sys.stdin.readline().strip())
    with data.open("rb") as file:
        gt, dt = pickle.load(file)
    gc.collect()
    loaded = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    started = time.perf_counter()
    stats = evaluate(gt, dt).stats
    seconds = time.perf_counter() - started
    # a second run under tracemalloc, after the RSS peak is recorded: evaluate's own peak
    gc.collect()
    tracemalloc.start()
    evaluate(gt, dt)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    report = {"loaded_mib": loaded, "seconds": seconds, "traced_mib": traced}
    print(json.dumps({**report, "stats": stats.tolist()}))
    return 0


def _mib(maxrss: int) -> float:
    """``ru_maxrss`` in MiB: kilobytes on Linux, bytes on macOS."""
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


if __name__ == "__main__":
    raise SystemExit(main())
