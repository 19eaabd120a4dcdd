"""Label-error detection and COCO evaluation: single process vs sharded over Ray.

Run:  python benchmarks/bench_ray.py [--images 20000] [--cpus 2] [--shards 4] [--repeat 3]

Data: :func:`labelgate.ml.synthetic.labels_with_errors` (~20 boxes per image, injected
errors) and :func:`labelgate.ml.synthetic.model_predictions` (scored detections), as in
bench_errors.py. Measured, median of ``--repeat`` (wall seconds; the first sharded call of
each function, which also ships the code to the workers, is a warm-up and not counted):

- ``find_label_errors`` vs ``find_label_errors_sharded``;
- ``evaluate`` (COCO bbox) vs ``evaluate_sharded``;
- pre-labeling: OpenCV's frontal-face cascade on scikit-image's astronaut photograph
  (``--prelabel-images`` copies), one ``predict`` call with ``cv2.setNumThreads(--cpus)``
  vs ``prelabel_sharded`` with one OpenCV thread per Ray worker.

The sharded timings include putting the inputs into Ray's object store, the tasks, and the
merge on the driver; starting Ray (``ray.init(num_cpus=--cpus)``) is timed once, apart.
Each sharded result is checked to equal the single-process one before it is timed.
The machine may be shared: wall times vary between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import numpy as np

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.evaluate import evaluate
from labelgate.ml.distributed import evaluate_sharded, find_label_errors_sharded
from labelgate.ml.errors import find_label_errors
from labelgate.ml.synthetic import labels_with_errors, model_predictions


def same(a: Any, b: Any) -> bool:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return False
        elif x != y:
            return False
    return True


def cascade_factory() -> Any:
    """A frontal-face cascade predictor on one OpenCV thread (each Ray worker is one CPU)."""
    import cv2

    from labelgate.ml.predictors import CascadePredictor

    cv2.setNumThreads(1)
    return CascadePredictor({1: "haarcascade_frontalface_default.xml"})


def prelabel_case(n_images: int, cpus: int, shards: int) -> Any:
    """(name, single, sharded) for the pre-labeling comparison; None without OpenCV."""
    try:
        import cv2
        from skimage.data import astronaut
    except ImportError as exc:
        print(f"pre-labeling skipped ({exc}): needs the [ml] and [dev] extras")
        return None
    from labelgate.core.images import Images
    from labelgate.ml.distributed import prelabel_sharded
    from labelgate.ml.predictors import CascadePredictor

    images = Images.create(id=np.arange(1, n_images + 1))
    pixels = [astronaut()] * n_images

    def single() -> Any:
        cv2.setNumThreads(cpus)
        return CascadePredictor({1: "haarcascade_frontalface_default.xml"}).predict(images, pixels)

    def sharded() -> Any:
        return prelabel_sharded(cascade_factory, images, pixels, shards=shards)

    return (f"prelabel x{n_images}", single, sharded)


def same_predictions(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("id", "image_id", "class_id", "bbox", "score")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prelabel-images", type=int, default=24)
    args = parser.parse_args()

    import ray

    inj = labels_with_errors(args.images, seed=0)
    labels = inj.labels
    pred = model_predictions(inj.truth, seed=0).annotations
    print(
        f"{args.images:,} images, {len(labels.annotations):,} labels, {len(pred):,} predictions; "
        f"Ray with {args.cpus} CPUs, {args.shards} shards"
    )
    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - started:.1f} s (once per process)")

    cases = [
        (
            "label errors",
            lambda: find_label_errors(labels, pred),
            lambda: find_label_errors_sharded(labels, pred, shards=args.shards),
        ),
        (
            "COCO eval bbox",
            lambda: evaluate(inj.truth, pred),
            lambda: evaluate_sharded(inj.truth, pred, shards=args.shards),
        ),
    ]
    prelabel = prelabel_case(args.prelabel_images, args.cpus, args.shards)
    if prelabel is not None:
        cases.append(prelabel)
    print(f"\n{'task':<16} {'single s':>9} {'ray s':>7} {'speed-up':>9}  equal")
    for name, single, sharded in cases:
        single_times, reference = timed(single, args.repeat)
        result = sharded()  # warm-up: workers import labelgate and receive the functions
        equal = (
            same_predictions(result, reference)
            if name.startswith("prelabel")
            else same(result, reference)
        )
        ray_times, _ = timed(sharded, args.repeat)
        a, b = statistics.median(single_times), statistics.median(ray_times)
        print(f"{name:<16} {a:>9.2f} {b:>7.2f} {a / b:>8.2f}x  {equal}")
    ray.shutdown()


if __name__ == "__main__":
    main()
