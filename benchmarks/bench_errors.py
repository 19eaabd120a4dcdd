"""Label-error detection on generated labels with injected errors; OpenCV pre-label throughput.

Run:  python benchmarks/bench_errors.py [--images 10000] [--repeat 3] [--seeds 0 1 2]
                                       [--prelabel-images 40] [--no-peer]

Data: :func:`labelgate.ml.synthetic.labels_with_errors` draws a reference with
``labelgate.core.generate`` (~20 boxes per image) and derives the labels with ``perturb``:
missing, swapped and duplicated objects, plus shifted boxes (each kind at 0.05 % of the
objects, so about 4 % of the images hold an error). The predictions are a model-like
``perturb(..., as_predictions=True)`` of the reference: jitter, small objects missed, 2 %
confusions and duplicates, 0.3 false positives per image, Beta scores times IoU.

Measured, per seed: the recall of injected errors within the top 5 % of ranked images (an
error counts as found when its image ranks there), by error kind, and the runtime of the
ranking (median of ``--repeat``; labelgate's candidate pairs, similarities, matching and
pooling, from ``Annotations`` in memory). The peer, when installed in the same
environment, is cleanlab's object-detection ``get_label_quality_scores`` (the image score
``find_label_issues`` thresholds; ranked ascending), given the same data as its per-image
lists; it is AGPL-3 and never a labelgate dependency, so the benchmark skips it with a
message when it is absent. Its list conversion is not timed.

Pre-labeling: the OpenCV frontal-face cascade that ships inside opencv-python-headless on
scikit-image's astronaut photograph (or a drawn image without scikit-image), images/s with
``cv2.setNumThreads(2)``.

The machine is shared: wall times vary between runs; the CPU column is process time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from _timing import timed  # benchmarks/ is on sys.path when run as a script
from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.ml.errors import ErrorReport, find_label_errors, injected_recall
from labelgate.ml.synthetic import labels_with_errors, model_predictions

KINDS = ("missing", "swapped", "shifted", "duplicated")


def to_cleanlab(labels: Dataset, pred: Annotations) -> tuple[list[dict[str, Any]], list[Any]]:
    """Per-image lists in cleanlab's object-detection layout (class ids as 0..K-1)."""
    ids = labels.images.id
    classes = labels.taxonomy.ids
    k = len(classes)
    ann = labels.annotations
    lab_pos = np.searchsorted(classes, ann.class_id)
    pred_pos = np.searchsorted(classes, pred.class_id)
    lab_img = np.searchsorted(ids, ann.image_id)
    pred_img = np.searchsorted(ids, pred.image_id)
    lab_split = np.searchsorted(lab_img, np.arange(len(ids) + 1))
    order = np.lexsort((pred_pos, pred_img))
    pred_rows = np.concatenate([pred.bbox[order], pred.score[order, None]], axis=1)
    key = pred_img[order] * k + pred_pos[order]
    pred_split = np.searchsorted(key, np.arange(len(ids) * k + 1))
    labels_out, preds_out = [], []
    for i in range(len(ids)):  # the peer's input is a Python list per image
        lo, hi = lab_split[i], lab_split[i + 1]
        labels_out.append({"bboxes": ann.bbox[lo:hi], "labels": lab_pos[lo:hi]})
        per_class = np.empty(k, dtype=object)
        for c in range(k):
            per_class[c] = pred_rows[pred_split[i * k + c] : pred_split[i * k + c + 1]]
        preds_out.append(per_class)
    return labels_out, preds_out


def recall_of(ranked_images: np.ndarray, error_image: np.ndarray, top: float = 0.05) -> float:
    k = max(1, round(top * len(ranked_images)))
    return float(np.isin(error_image, ranked_images[:k]).mean())


def bench_errors(n_images: int, seeds: list[int], repeat: int, peer: bool) -> None:
    get_label_quality_scores = None
    if not peer:
        print("cleanlab skipped (--no-peer)")
    else:
        try:
            from cleanlab.object_detection.rank import get_label_quality_scores
        except ImportError as exc:
            print(f"cleanlab not run ({exc}): install it in this environment to compare")
    rows: list[tuple[str, int, float, list[float], float, float]] = []
    for seed in seeds:
        inj = labels_with_errors(n_images, seed=seed)
        pred = model_predictions(inj.truth, seed=seed).annotations
        cpu: list[float] = []

        def run(inj: Any = inj, pred: Annotations = pred, cpu: list[float] = cpu) -> ErrorReport:
            started = time.process_time()
            out = find_label_errors(inj.labels, pred)
            cpu.append(time.process_time() - started)
            return out

        times, report = timed(run, repeat)
        by_kind = [recall_of(report.images, inj.image_id[inj.kind == k]) for k in KINDS]
        overall = injected_recall(report, inj.image_id)
        rows.append(
            ("labelgate", seed, overall, by_kind, statistics.median(times), statistics.median(cpu))
        )
        if get_label_quality_scores is not None:
            lab, prd = to_cleanlab(inj.labels, pred)
            started_cpu = time.process_time()
            peer_times, scores = timed(
                lambda lab=lab, prd=prd: get_label_quality_scores(lab, prd, verbose=False), 1
            )
            peer_cpu = time.process_time() - started_cpu
            ranked = inj.labels.images.id[np.argsort(scores, kind="stable")]
            by_kind = [recall_of(ranked, inj.image_id[inj.kind == k]) for k in KINDS]
            rows.append(
                (
                    "cleanlab",
                    seed,
                    recall_of(ranked, inj.image_id),
                    by_kind,
                    peer_times[0],
                    peer_cpu,
                )
            )
        n_err_images = len(np.unique(inj.image_id))
        print(
            f"seed {seed}: {n_images:,} images, {len(inj.labels.annotations):,} labels, "
            f"{len(pred):,} predictions, {len(inj.image_id)} injected errors on "
            f"{n_err_images} images (top 5 % = {round(0.05 * n_images)} images)"
        )
    print()
    print(
        f"{'impl':<10} {'seed':>4} {'recall@5%':>9} "
        + " ".join(f"{k:>10}" for k in KINDS)
        + f" {'wall s':>8} {'cpu s':>7}"
    )
    for name, seed, overall, by_kind, wall, cpu_s in rows:
        print(
            f"{name:<10} {seed:>4} {overall:>9.3f} "
            + " ".join(f"{v:>10.3f}" for v in by_kind)
            + f" {wall:>8.2f} {cpu_s:>7.2f}"
        )
    ours = [r for r in rows if r[0] == "labelgate"]
    theirs = [r for r in rows if r[0] == "cleanlab"]
    mean_ours = statistics.mean(r[2] for r in ours)
    print(f"\nlabelgate mean recall@5% {mean_ours:.3f}, median wall {ours[0][4]:.2f} s (seed 0)")
    if theirs:
        mean_theirs = statistics.mean(r[2] for r in theirs)
        speed = statistics.median(r[4] for r in theirs) / statistics.median(r[4] for r in ours)
        print(f"cleanlab  mean recall@5% {mean_theirs:.3f}; labelgate is {speed:.1f}x faster")


def bench_prelabel(n_images: int, repeat: int) -> None:
    try:
        import cv2
    except ImportError:
        print("\nprelabel: opencv-python-headless not installed (pip install labelgate[ml])")
        return
    from labelgate.core.images import Images
    from labelgate.ml.predictors import CascadePredictor

    try:
        from skimage.data import astronaut

        image = astronaut()
        source = "scikit-image astronaut 512x512"
    except ImportError:
        from labelgate.ml.predictors import draw_face

        image = draw_face(512)
        source = "drawn face 512x512"
    cv2.setNumThreads(2)
    predictor = CascadePredictor({1: "haarcascade_frontalface_default.xml"})
    images = Images.create(id=np.arange(1, n_images + 1))
    arrays = [image] * n_images
    times, out = timed(lambda: predictor.predict(images, arrays), repeat)
    best = statistics.median(times)
    print(
        f"\nprelabel (OpenCV frontal-face cascade, {source}, 2 threads): {n_images} images in "
        f"{best:.2f} s median of {repeat} = {n_images / best:.1f} images/s; "
        f"{len(out)} faces found"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--prelabel-images", type=int, default=40)
    parser.add_argument("--no-peer", action="store_true", help="Skip cleanlab.")
    args = parser.parse_args()
    bench_errors(args.images, args.seeds, args.repeat, not args.no_peer)
    bench_prelabel(args.prelabel_images, args.repeat)


if __name__ == "__main__":
    main()
