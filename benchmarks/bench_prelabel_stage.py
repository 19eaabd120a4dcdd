"""The pre-labeling stage through the real workflow: store, submit, measure.

Run:  python benchmarks/bench_prelabel_stage.py [--images 1000] [--db URL]

A program on generated driving scenes (``labelgate.core.generate``, single annotation,
``[prelabel] control_rate = 0.2``) gets a simulated model's proposals
(``labelgate.core.simulate.simulate_predictions``, calibrated scores) through
``labelgate.ml.prelabel_batch``; a scripted annotator then turns every task into the truth
and submits it: a proposal that matches a true object (same class, IoU >= the class
threshold) keeps its key, unchanged when its IoU is >= 0.95 (accept) and moved onto the
true box otherwise (adjust); the other proposals are deleted (reject); missed true objects
are drawn. Its time follows a stated model, which is the benchmark's assumption, not a
measurement: 10 s per drawn object, 4 s per adjusted, 1.5 s per accepted and 1 s per
rejected proposal. ``prelabel_metrics`` must recover the saving that model implies
(computed here independently from the same counts) inside its interval.

Timed: storing (images/s, chunks of 256), submit with decision recording (ms per task),
and the metrics report (s). SQLite in a temporary folder unless ``--db`` names another.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.core.matching import match
from labelgate.core.simulate import simulate_predictions
from labelgate.ml.prelabel import prelabel_batch
from labelgate.store.db import Database, upgrade
from labelgate.workflow.prelabel import prelabel_metrics
from labelgate.workflow.program import Program

REPO = Path(__file__).resolve().parents[1]
MANAGER = "maria"
SECONDS = {"draw": 10.0, "adjust": 4.0, "accept": 1.5, "reject": 1.0}


class Proposals:
    """A predictor over precomputed proposals (the simulated model ran once)."""

    def __init__(self, predictions: Annotations) -> None:
        self.predictions = predictions

    def predict(self, images: Images, pixels: Any = None, *, root: Path | None = None) -> Any:
        return self.predictions[np.isin(self.predictions.image_id, images.id)]


def _spec() -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 0.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'qualify_per = ["class"]\n\n'
    )
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text + "\n[prelabel]\nthreshold = 0.3\ncontrol_rate = 0.2\nseed = 1\n"


def _final(truth: Annotations, shown: Annotations, taxonomy: Any) -> tuple[Annotations, float]:
    """The scripted annotator's labels for one task and the seconds the time model gives."""
    if len(shown) == 0:
        return truth.replace(id=np.arange(1, len(truth) + 1)), SECONDS["draw"] * len(truth)
    found = match(truth, shown, taxonomy=taxonomy, swaps=False)
    keys = np.full(len(truth), -1, dtype=np.int64)
    keys[found.ref_rows] = shown.id[found.other_rows]
    bbox = truth.bbox.copy()
    keep = found.iou >= 0.95
    bbox[found.ref_rows[keep]] = shown.bbox[found.other_rows[keep]]
    drawn = keys < 0
    keys[drawn] = shown.id.max() + 1 + np.arange(drawn.sum())
    seconds = (
        SECONDS["draw"] * drawn.sum()
        + SECONDS["accept"] * keep.sum()
        + SECONDS["adjust"] * (~keep).sum()
        + SECONDS["reject"] * (len(shown) - len(found.ref_rows))
    )
    return truth.replace(id=keys, bbox=bbox), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    db = Database(args.db or f"sqlite:///{folder / 'bench.db'}")
    upgrade(db)
    prog = Program.create(db, _spec())
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    gold = generate_dataset(5, seed=1)
    gold_ids = np.arange(10**6, 10**6 + 5)
    gold = Dataset(
        gold.annotations.replace(
            image_id=gold_ids[gold.images.index_of(gold.annotations.image_id)], attributes={}
        ),
        gold.images.replace(
            id=gold_ids, file_name=np.array([f"g{i}.jpg" for i in gold_ids], object)
        ),
        gold.taxonomy,
    )
    prog.import_gold(gold, actor=MANAGER)
    truth = generate_dataset(args.images, seed=2)
    truth = Dataset(truth.annotations.replace(attributes={}), truth.images, truth.taxonomy)
    prog.import_images(truth.images, actor=MANAGER)
    prog.qualify("ana", gold.annotations, actor=MANAGER)
    prog.create_batch("b1", truth.images.id.tolist(), actor=MANAGER)
    for _ in range(2):
        prog.advance("b1", actor=MANAGER)
    prog.assign("b1", actor=MANAGER)
    predictions = simulate_predictions(truth, seed=3)

    started = time.perf_counter()
    run = prelabel_batch(prog, "b1", Proposals(predictions), model="sim", actor=MANAGER,
                         batch_size=256)  # fmt: skip
    store_s = time.perf_counter() - started
    print(
        f"store: {run.images:,} images, {run.stored['objects']:,} proposals in "
        f"{store_s:.2f} s = {run.images / store_s:,.0f} images/s ({run.chunks} chunks); "
        f"control {run.plan.control_tasks} tasks"
    )

    taxonomy = truth.taxonomy
    modelled = {"prelabelled": [], "control": []}
    submit_s = 0.0
    for view in prog.my_tasks("ana"):
        shown = prog.task_labels("ana", view.task_id)
        mine = truth.annotations[truth.annotations.image_id == view.image_id]
        final, seconds = _final(mine, shown, taxonomy)
        group = "prelabelled" if view.head_revision_id is not None else "control"
        modelled[group].append(seconds)
        prog.save("ana", view.task_id, final, base_revision_id=view.head_revision_id,
                  work_seconds=seconds)  # fmt: skip
        t0 = time.perf_counter()
        prog.submit("ana", view.task_id)
        submit_s += time.perf_counter() - t0
    tasks = sum(len(v) for v in modelled.values())
    print(f"submit with decision recording: {1000 * submit_s / tasks:.1f} ms per task")

    prelabel_metrics(prog, "b1", actor=MANAGER)  # warm: imports scipy.stats on first use
    started = time.perf_counter()
    report = prelabel_metrics(prog, "b1", actor=MANAGER)
    metrics_s = time.perf_counter() - started
    expected = 1 - np.mean(modelled["prelabelled"]) / np.mean(modelled["control"])
    saved = report["time"]["time_saved_fraction"]
    print(
        f"metrics in {metrics_s:.2f} s: {report['proposals']:,} proposals, acceptance "
        f"{report['acceptance_rate']:.3f}, adjust {report['adjust_rate']:.3f}, reject "
        f"{report['reject_rate']:.3f}, adjusted IoU median "
        f"{report['adjustment_iou']['median']:.3f} (p10 {report['adjustment_iou']['p10']:.3f})"
        f"; precision {report['precision']:.3f}, recall {report['recall']:.3f}"
    )
    print(
        f"time saved {saved['estimate']:.3f} [{saved['ci_low']:.3f}, {saved['ci_high']:.3f}] "
        f"(time model's own figure {expected:.3f}); "
        f"{report['time']['prelabelled']['seconds_per_task']:.1f} vs "
        f"{report['time']['control']['seconds_per_task']:.1f} s per task"
    )
    assert abs(saved["estimate"] - expected) < 1e-6
    db.dispose()


if __name__ == "__main__":
    main()
