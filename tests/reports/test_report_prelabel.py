"""The report's ``prelabel`` section per batch, and its table in report.html.

A batch of ten images, half of them drawn into the control group: the model proposes one
box on each other image, ana accepts it and logs a time per task; control tasks are drawn
from scratch with their own times. The seconds saved and its interval are checked against
``scipy.stats.ttest_ind(..., equal_var=False)``; a batch without proposals reads null.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.reports.html import render_html
from labelgate.reports.plots import DPI, WIDTH, render_figures
from labelgate.reports.program_report import build_report
from labelgate.store.db import Database
from labelgate.workflow.prelabel import control_items, prelabel_metrics, store_prelabels
from labelgate.workflow.program import Program

REPO = Path(__file__).resolve().parents[2]
MANAGER = "maria"
CAR = 1
PRELABELLED_SECONDS = [20.0, 26.0, 31.0, 24.0, 35.0, 22.0, 28.0, 30.0, 25.0, 27.0]
CONTROL_SECONDS = [61.0, 55.0, 70.0, 48.0, 66.0, 59.0, 72.0, 52.0, 64.0, 58.0]


def _spec() -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 0.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'qualify_per = ["class"]\n\n'
    )
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text + "\n[prelabel]\nthreshold = 0.5\ncontrol_rate = 0.5\nseed = 3\n"


def _box(image: int, box: list[float], score: float = 0.0, key: int = 1) -> Annotations:
    return Annotations.create(id=[key], image_id=[image], class_id=[CAR], bbox=[box], score=[score])


@dataclass
class Run:
    program: Program
    batch: int
    treated: list[int]
    control: list[int]
    times: dict[str, list[float]]


def _run(db: Database, control_tasks: int | None = None) -> Run:
    """The program, with ana's tasks of b1 submitted (only ``control_tasks`` of control)."""
    prog = Program.create(db, _spec())
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    gold = generate_dataset(5, seed=11)
    ids = np.arange(10_000, 10_005)
    position = gold.images.index_of(gold.annotations.image_id)
    gold = Dataset(
        gold.annotations.replace(image_id=ids[position], attributes={}),
        gold.images.replace(id=ids, file_name=np.array([f"gold/{i}.jpg" for i in ids], object)),
        gold.taxonomy,
    )
    prog.import_gold(gold, actor=MANAGER)
    work = Images.create(
        id=list(range(1, 15)),
        file_name=[f"w{i}.jpg" for i in range(1, 15)],
        width=[200] * 14,
        height=[200] * 14,
    )
    prog.import_images(work, actor=MANAGER)
    assert prog.qualify("ana", gold.annotations, actor=MANAGER).passed
    batch = prog.create_batch("b1", list(range(1, 11)), actor=MANAGER)
    quiet = prog.create_batch("b2", [11, 12, 13, 14], actor=MANAGER)
    for b in (batch, quiet):
        assert prog.advance(b, actor=MANAGER).passed  # spec
        assert prog.advance(b, actor=MANAGER).passed  # pilot
        prog.assign(b, actor=MANAGER, seed=1)
    store_ids, images = prog.images()
    external = dict(zip(store_ids.tolist(), images.id.tolist()))
    work_store = np.array([s for s in store_ids.tolist() if external[s] <= 10], dtype=np.int64)
    in_control = control_items(batch, work_store, 0.5, 3)
    control = sorted(external[s] for s in work_store[in_control].tolist())
    treated = sorted(external[s] for s in work_store[~in_control].tolist())
    assert len(control) >= 2 and len(treated) >= 2  # seed 3 splits the ten items

    proposals = Annotations.concat(
        [_box(i, [10, 10, 60, 60], 0.9, key=k) for k, i in enumerate(treated, 1)]
    )
    store_prelabels(prog, batch, proposals, model="det", actor=MANAGER)
    times = {"treated": [], "control": []}
    for view in prog.my_tasks("ana"):
        if view.image_id > 10:
            continue
        labels = prog.task_labels("ana", view.task_id)
        if view.image_id in treated:
            assert len(labels) == 1
            seconds = PRELABELLED_SECONDS[len(times["treated"])]
            times["treated"].append(seconds)
            labels = labels.replace(source=np.zeros(1, dtype=np.uint8))  # accepted
        else:
            assert len(labels) == 0
            if control_tasks is not None and len(times["control"]) == control_tasks:
                continue
            seconds = CONTROL_SECONDS[len(times["control"])]
            times["control"].append(seconds)
            labels = _box(view.image_id, [12, 12, 70, 64])
        prog.save(
            "ana",
            view.task_id,
            labels,
            base_revision_id=view.head_revision_id,
            work_seconds=seconds,
        )
        prog.submit("ana", view.task_id)
    return Run(prog, batch, treated, control, times)


def test_report_has_each_batchs_prelabel_metrics_and_the_page_shows_them(db: Database) -> None:
    run = _run(db)
    prog, batch, treated, control, times = (
        run.program,
        run.batch,
        run.treated,
        run.control,
        run.times,
    )
    report = build_report(db)
    assert json.loads(json.dumps(report)) == report  # plain JSON all the way down
    entries = {b["name"]: b for b in report["batches"]}
    assert set(entries["b1"]) == {"name", "stage", "state", "rework_cycles", "prelabel"}
    assert entries["b2"]["prelabel"] is None  # never pre-labelled
    section = entries["b1"]["prelabel"]
    assert section == prelabel_metrics(prog, batch, actor=MANAGER)
    assert section["proposals"] == len(treated)
    assert section["decisions"] == {"accept": len(treated), "adjust": 0, "reject": 0}
    time = section["time"]
    assert time["prelabelled"]["tasks"] == len(treated)
    assert time["control"]["tasks"] == len(control)
    a, b = np.array(times["control"]), np.array(times["treated"])
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    saved = time["seconds_saved_per_task"]
    assert saved["estimate"] == pytest.approx(a.mean() - b.mean(), abs=1e-6)
    assert (saved["ci_low"], saved["ci_high"]) == pytest.approx(
        (reference.low, reference.high), abs=1e-6
    )
    assert time["time_saved_fraction"]["estimate"] == pytest.approx(
        1 - b.mean() / a.mean(), abs=1e-6
    )

    figures = render_figures(report)
    assert "prelabel_time" in figures  # drawn only for a program with pre-labels
    image = Image.open(io.BytesIO(figures["prelabel_time"]))
    assert image.format == "PNG" and image.size[0] == round(WIDTH * DPI)
    assert "prelabel_time" not in render_figures({**report, "batches": [entries["b2"]]})
    assert 'id="fig-prelabel_time"' in render_html(report, figures)

    page = render_html(report, {})
    start = page.index("<h2>Pre-labeling")
    section_html = page[start : page.index("<h2>", start + 4)]
    assert "<td>b1</td>" in section_html and "<td>b2</td>" not in section_html
    assert "100.0 %" in section_html  # all accepted
    assert f"{a.mean() - b.mean():,.1f} s [{reference.low:,.1f}, {reference.high:,.1f}] s" in (
        section_html
    )
    assert f"(n={len(treated)})" in section_html and f"(n={len(control)})" in section_html
    empty = render_html({**report, "batches": [entries["b2"]]}, {})
    assert "No batch was pre-labelled." in empty


def test_one_control_task_leaves_time_saved_unmeasured(db: Database) -> None:
    # one control task resamples to itself: a bootstrap interval would ignore the control
    # group's spread, so neither figure is given (two tasks a group, as for Welch)
    run = _run(db, control_tasks=1)
    section = {b["name"]: b for b in build_report(db)["batches"]}["b1"]["prelabel"]
    time = section["time"]
    assert time["control"]["tasks"] == 1 and time["prelabelled"]["tasks"] == len(run.treated)
    assert time["control"]["seconds_per_task"] == CONTROL_SECONDS[0]
    assert time["seconds_saved_per_task"] is None and time["time_saved_fraction"] is None
    page = render_html(build_report(db), {})
    assert page.count("not measurable") == 2
