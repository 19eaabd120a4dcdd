"""Pre-labeling a batch with real predictors, on SQLite and PostgreSQL.

OpenCV's frontal-face cascade runs over drawn faces and blank images on disk, in chunks
with progress; a run that dies half-way is resumed and predicts only what was left; a
finished batch predicts nothing. Then the CLI with a COCO results file: proposals stored,
the metrics report, and bad input refused with exit 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from labelgate.cli.app import app
from labelgate.core.annotations import Source
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.errors import WorkflowError
from labelgate.ml.predictors import CascadePredictor, draw_face
from labelgate.ml.prelabel import prelabel_batch
from labelgate.store.db import Database
from labelgate.workflow.prelabel import prelabel_metrics, prelabel_plan
from labelgate.workflow.program import Program

REPO = Path(__file__).resolve().parents[2]
MANAGER = "maria"
FACE = "haarcascade_frontalface_default.xml"
PERSON = 2
runner = CliRunner()


def _spec(control_rate: float) -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 0.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'qualify_per = ["class"]\n\n'
    )
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text + f"\n[prelabel]\nthreshold = 0.0\ncontrol_rate = {control_rate}\n"


def _program(db: Database, folder: Path, control_rate: float = 0.0) -> tuple[Program, Images]:
    """One annotator (ana), six images on disk: faces at odd ids, blank at even ones."""
    prog = Program.create(db, _spec(control_rate))
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    gold = generate_dataset(3, seed=4)
    ids = np.arange(1000, 1003)
    gold = Dataset(
        gold.annotations.replace(
            image_id=ids[gold.images.index_of(gold.annotations.image_id)], attributes={}
        ),
        gold.images.replace(id=ids, file_name=np.array([f"g{i}.jpg" for i in ids], object)),
        gold.taxonomy,
    )
    prog.import_gold(gold, actor=MANAGER)
    for i in range(1, 7):
        pixels = draw_face(256) if i % 2 else np.full((256, 256, 3), 60, np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), pixels)
    images = Images.create(
        id=list(range(1, 7)),
        file_name=[f"img{i}.png" for i in range(1, 7)],
        width=[256] * 6,
        height=[256] * 6,
    )
    prog.import_images(images, actor=MANAGER, root=folder)
    assert prog.qualify("ana", gold.annotations, actor=MANAGER).passed
    batch = prog.create_batch("b1", list(range(1, 7)), actor=MANAGER)
    for _ in range(2):
        assert prog.advance(batch, actor=MANAGER).passed
    assert prog.assign(batch, actor=MANAGER) == {"production": 6}
    return prog, images


class Flaky:
    """A predictor that dies on its n-th call (a crash half-way through a run)."""

    def __init__(self, inner: CascadePredictor, die_on: int | None) -> None:
        self.inner, self.die_on, self.calls, self.seen = inner, die_on, 0, []

    def predict(self, images: Images, pixels: Any = None, *, root: Path | None = None) -> Any:
        self.calls += 1
        if self.calls == self.die_on:
            raise RuntimeError("worker lost")
        self.seen.extend(images.id.tolist())
        return self.inner.predict(images, pixels, root=root)


def test_cascade_over_a_batch_resumes_after_a_crash(db: Database, tmp_path: Path) -> None:
    prog, images = _program(db, tmp_path)
    cascade = CascadePredictor({PERSON: FACE})
    flaky = Flaky(cascade, die_on=3)
    with pytest.raises(RuntimeError, match="worker lost"):
        prelabel_batch(prog, "b1", flaky, model="faces", actor=MANAGER, root=tmp_path,
                       batch_size=2)  # fmt: skip
    # two chunks (4 images) were stored before the crash
    assert flaky.seen == [1, 2, 3, 4]
    assert prelabel_plan(prog, "b1", actor=MANAGER).images.id.tolist() == [5, 6]

    resumed = Flaky(cascade, die_on=None)
    ticks: list[tuple[int, int]] = []
    run = prelabel_batch(
        prog,
        "b1",
        resumed,
        model="faces",
        actor=MANAGER,
        root=tmp_path,
        batch_size=1,
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert resumed.seen == [5, 6] and ticks == [(1, 2), (2, 2)]
    assert (run.images, run.chunks, run.stored["tasks"]) == (2, 2, 2)
    again = prelabel_batch(prog, "b1", resumed, model="faces", actor=MANAGER, root=tmp_path)
    assert (again.images, again.chunks, again.stored["tasks"]) == (0, 0, 0)
    assert resumed.seen == [5, 6]  # nothing predicted twice

    # what ana sees is what the cascade finds, image by image, one call per image
    reference = cascade.predict(images, root=tmp_path)
    for view in prog.my_tasks("ana"):
        shown = prog.task_labels("ana", view.task_id)
        expected = reference[reference.image_id == view.image_id]
        assert len(shown) == len(expected)
        assert (len(shown) > 0) == (view.image_id % 2 == 1)  # faces found, blanks empty
        assert np.allclose(np.sort(shown.bbox, axis=0), np.sort(expected.bbox, axis=0))
        assert np.allclose(np.sort(shown.score), np.sort(expected.score))
        assert (shown.source == Source.PRELABEL).all() and (shown.class_id == PERSON).all()


def run_cli(*args: str) -> tuple[int, Any]:
    result = runner.invoke(app, list(args), env={"LABELGATE_USER": ""})
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.stdout


def test_cli_stores_a_results_file_and_reports(db: Database, tmp_path: Path) -> None:
    prog, _ = _program(db, tmp_path)
    results = tmp_path / "pred.json"
    results.write_text(
        json.dumps(
            [
                {"image_id": 1, "category_id": PERSON, "bbox": [60, 40, 130, 170], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.2},
                {"image_id": 3, "category_id": PERSON, "bbox": [60, 40, 130, 170], "score": 0.8},
            ]
        )
    )
    base = ("--db", db.url, "--as", MANAGER, "--batch", "b1", "--json")
    code, document = run_cli("prelabel", *base, "--predictions", str(results), "--threshold",
                             "0.5", "--batch-size", "4")  # fmt: skip
    assert code == 0, document
    assert document["model"] == "pred" and document["images"] == 6
    assert document["chunks"] == 2
    assert document["stored"] == {
        "tasks": 6,
        "objects": 2,
        "below_threshold": 1,
        "skipped": 0,
        "outside": 0,
    }
    assert document["plan"]["pending_tasks"] == 6 and document["plan"]["control_tasks"] == 0
    code, again = run_cli("prelabel", *base, "--predictions", str(results))
    assert (code, again["images"], again["stored"]["tasks"]) == (0, 0, 0)

    # ana accepts the face on image 1, rejects the one on image 3, labels the rest
    for view in prog.my_tasks("ana"):
        labels = prog.task_labels("ana", view.task_id)
        if view.image_id == 3:
            labels = labels[:0]
        labels = labels.replace(source=np.zeros(len(labels), dtype=np.uint8))
        prog.save("ana", view.task_id, labels, base_revision_id=view.head_revision_id,
                  work_seconds=10.0 * view.image_id)  # fmt: skip
        prog.submit("ana", view.task_id)
    code, report = run_cli("prelabel", *base, "--metrics")
    assert code == 0, report
    assert report["project"] == prog.name
    assert report["decisions"] == {"accept": 1, "adjust": 0, "reject": 1}
    assert report["acceptance_rate"] == 0.5 and report["precision"] == 0.5
    assert report["recall"] == 1.0
    expected = prelabel_metrics(prog, "b1", actor=MANAGER)
    assert {k: v for k, v in report.items() if k != "project"} == json.loads(json.dumps(expected))
    # no control group: time saved is not measurable, and says so
    assert report["time"]["control"]["tasks"] == 0
    assert report["time"]["time_saved_fraction"] is None

    # refusals and bad input: exit 2 with a JSON error
    code, error = run_cli("prelabel", *base, "--predictions", str(results), "--cascade", FACE)
    assert code == 2 and "name one model" in error["error"]
    code, error = run_cli("prelabel", *base, "--cascade", FACE)
    assert code == 2 and "--class" in error["error"]
    code, error = run_cli(
        "prelabel", "--db", db.url, "--as", "ana", "--batch", "b1", "--json", "--metrics"
    )
    assert code == 2 and error["type"] == "PermissionDenied"
    code, error = run_cli("prelabel", *base, "--metrics", "--against", "final")
    assert code == 2 and "against" in error["error"]
    code, delivered = run_cli("prelabel", *base, "--metrics", "--against", "delivered")
    assert (code, delivered["against"], delivered["compared"]) == (0, "delivered", 0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 99, "category_id": 2, "bbox": [0, 0, 1, 1],
                                "score": 0.9}]))  # fmt: skip
    code, error = run_cli("prelabel", *base, "--predictions", str(bad))
    assert code == 2 and "99" in error["error"]


def test_unlabelled_empty_prelabel_can_be_submitted_as_is(db: Database, tmp_path: Path) -> None:
    """A task whose model found nothing holds an empty pre-label revision: nothing to review."""
    prog, _ = _program(db, tmp_path)
    run = prelabel_batch(prog, "b1", CascadePredictor({PERSON: FACE}), model="faces",
                         actor=MANAGER, root=tmp_path)  # fmt: skip
    assert run.stored["tasks"] == 6
    blank = next(v for v in prog.my_tasks("ana") if v.image_id == 2)
    assert blank.head_revision_id is not None and len(prog.task_labels("ana", blank.task_id)) == 0
    prog.submit("ana", blank.task_id)
    face = next(v for v in prog.my_tasks("ana") if v.image_id == 1)
    with pytest.raises(WorkflowError, match="1 pre-label"):
        prog.submit("ana", face.task_id)
