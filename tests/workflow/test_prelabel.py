"""Pre-labeling end to end, on SQLite and PostgreSQL, with numbers computed by hand.

Four images, each labelled by ana and bo (blind double). The spec's control draw puts one
image in the control group; a model proposes boxes on the other three (two proposals fall
below their class threshold); ana accepts one proposal, adjusts one (IoU 0.5 by hand),
rejects one and adds one; bo accepts everything; a task whose model found nothing is
labelled from scratch. Decisions, acceptance, precision/recall and time saved are then
checked against hand-computed values and against scipy / statsmodels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select, update

from labelgate.core.annotations import Annotations, Source
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.images import Images
from labelgate.errors import PermissionDenied, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import BatchRow, PrelabelDecisionRow, RevisionRow, TaskRow, UserRow
from labelgate.workflow.audit import verify_chain
from labelgate.workflow.prelabel import (
    control_items,
    prelabel_metrics,
    prelabel_plan,
    store_prelabels,
)
from labelgate.workflow.program import Program
from labelgate.workflow.stages import Stage

REPO = Path(__file__).resolve().parents[2]
MANAGER = "maria"
CAR, PERSON = 1, 2
M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """Reference splitmix64 on Python ints (Steele, Lea & Flood 2014)."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _reference_control(batch_id: int, image_id: int, rate: float, seed: int) -> bool:
    key = _splitmix64(_splitmix64(seed) ^ batch_id)
    return (_splitmix64(key ^ image_id) >> 11) / 2.0**53 < rate


def spec_text(*, control_rate: float = 0.25, seed: int = 0) -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    block = (
        "[assignment]\ndouble_annotation_rate = 1.0\ngold_rate = 0.0\nhoneypot_rate = 0.0\n"
        'qualify_per = ["class"]\n\n'
    )
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    return text + (
        f"\n[prelabel]\nthreshold = 0.5\ncontrol_rate = {control_rate}\nseed = {seed}\n"
        "class_thresholds = { person = 0.7 }\n"
    )


def _boxes(image: int, rows: list[tuple[int, int, list[float], float]]) -> Annotations:
    """(object key, class, box, score) rows on one image."""
    return Annotations.create(
        id=[r[0] for r in rows],
        image_id=[image] * len(rows),
        class_id=[r[1] for r in rows],
        bbox=[r[2] for r in rows],
        score=[r[3] for r in rows],
    )


def _human(labels: Annotations) -> Annotations:
    return labels.replace(
        source=np.zeros(len(labels), dtype=np.uint8), score=np.full(len(labels), np.nan)
    )


@pytest.fixture
def world(db: Database) -> dict[str, object]:
    """A program at stage production: 4 work images assigned to ana and bo (both on each)."""
    prog = Program.create(db, spec_text())
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
        id=[1, 2, 3, 4], file_name=[f"w{i}.jpg" for i in range(1, 5)], width=[200] * 4,
        height=[200] * 4,
    )  # fmt: skip
    prog.import_images(work, actor=MANAGER)
    for name in ("ana", "bo"):
        assert prog.qualify(name, gold.annotations, actor=MANAGER).passed
    batch = prog.create_batch("b1", [1, 2, 3, 4], actor=MANAGER)
    assert prog.advance(batch, actor=MANAGER).passed  # spec
    assert prog.advance(batch, actor=MANAGER).passed  # pilot
    assert prog.assign(batch, actor=MANAGER, seed=5) == {"production": 8}
    store_ids, images = prog.images()
    external = dict(zip(store_ids.tolist(), images.id.tolist()))
    work_store = [s for s in store_ids.tolist() if external[s] <= 4]
    control = [external[s] for s in work_store if _reference_control(batch, s, 0.25, 0)]
    assert len(control) == 1  # seed 0 puts exactly one of the four items in control
    treated = [i for i in (1, 2, 3, 4) if i not in control]
    return {"program": prog, "batch": batch, "control": control[0], "treated": treated}


def _task(prog: Program, user: str, image: int) -> tuple[int, int | None]:
    (view,) = [t for t in prog.my_tasks(user) if t.image_id == image]
    return view.task_id, view.head_revision_id


def test_prelabels_decisions_quality_and_time_saved(world: dict[str, object], db: Database) -> None:
    prog = world["program"]
    assert isinstance(prog, Program)
    batch = int(world["batch"])  # type: ignore[call-overload]
    c = int(world["control"])  # type: ignore[call-overload]
    p1, p2, p3 = world["treated"]  # type: ignore[misc]

    # the model: on p1 five proposals, two below their class threshold (person needs 0.7,
    # car 0.5); one on p2; nothing on p3; one on the control item and one on a gold image
    predictions = Annotations.concat(
        [
            _boxes(p1, [
                (1, CAR, [0, 0, 10, 10], 0.9),
                (2, PERSON, [50, 50, 60, 60], 0.6),
                (3, CAR, [20, 0, 30, 10], 0.8),
                (4, CAR, [150, 150, 160, 160], 0.4),
                (5, PERSON, [0, 20, 10, 40], 0.75),
            ]),
            _boxes(p2, [(6, CAR, [10, 10, 50, 50], 0.95)]),
            _boxes(c, [(7, CAR, [5, 5, 25, 25], 0.99)]),
            _boxes(10_000, [(8, CAR, [5, 5, 25, 25], 0.99)]),
        ]
    )  # fmt: skip
    with pytest.raises(PermissionDenied):
        store_prelabels(prog, batch, predictions, model="det", actor="ana")
    plan = prelabel_plan(prog, batch, actor=MANAGER)
    assert sorted(plan.images.id.tolist()) == sorted([p1, p2, p3])
    assert (plan.pending_tasks, plan.control_tasks, plan.control_images) == (6, 2, 1)
    assert plan.thresholds[CAR] == 0.5 and plan.thresholds[PERSON] == 0.7
    stored = store_prelabels(prog, batch, predictions, model="det", actor=MANAGER)
    assert stored.to_dict() == {
        "tasks": 6,
        "objects": 3 * 2 + 1 * 2,
        "below_threshold": 2,
        "skipped": 0,
        "control_tasks": 2,
        "outside": 2,
    }
    # rerun: a no-op
    again = store_prelabels(prog, batch, predictions, model="det", actor=MANAGER)
    assert (again.tasks, again.objects, again.skipped, again.control_tasks) == (0, 0, 6, 2)
    assert prelabel_plan(prog, batch, actor=MANAGER).pending_tasks == 0

    # both tasks of p1 got the same three proposals under keys 1..3; control got nothing
    for user in ("ana", "bo"):
        task, head = _task(prog, user, p1)
        shown = prog.task_labels(user, task)
        assert shown.id.tolist() == [1, 2, 3]
        assert shown.class_id.tolist() == [CAR, CAR, PERSON]
        assert shown.score.tolist() == [0.9, 0.8, 0.75]
        assert (shown.source == Source.PRELABEL).all()
        assert _task(prog, user, c)[1] is None
        assert len(prog.task_labels(user, _task(prog, user, p3)[0])) == 0
    with db.session() as s:
        model = s.execute(select(UserRow).where(UserRow.name == "model:det")).scalar_one()
        assert (model.active, model.roles) == (False, [])
        sources = set(
            s.execute(select(RevisionRow.source).where(RevisionRow.author_id == model.id)).scalars()
        )
        assert sources == {int(Source.PRELABEL)}

    # an untouched pre-label head cannot be submitted
    ana_p1, head = _task(prog, "ana", p1)
    with pytest.raises(WorkflowError, match="3 pre-label"):
        prog.submit("ana", ana_p1)

    # ana: accepts #1, adjusts #2 (10x10 -> 10x20: IoU 100/200), rejects #3, adds #4
    draft = _human(_boxes(p1, [(1, CAR, [0, 0, 10, 10], 0.0)]))
    saved = prog.save("ana", ana_p1, draft, base_revision_id=head, work_seconds=30)
    final = _human(
        _boxes(p1, [
            (1, CAR, [0, 0, 10, 10], 0.0),
            (2, CAR, [20, 0, 30, 20], 0.0),
            (4, CAR, [100, 100, 120, 120], 0.0),
        ])
    )  # fmt: skip
    saved = prog.save("ana", ana_p1, final, base_revision_id=saved.revision_id, work_seconds=10)
    prog.submit("ana", ana_p1)
    # bo: accept all
    bo_p1, head = _task(prog, "bo", p1)
    accepted = _human(prog.task_labels("bo", bo_p1))
    prog.save("bo", bo_p1, accepted, base_revision_id=head, work_seconds=20)
    prog.submit("bo", bo_p1)
    # p2: ana accepts; bo first saves without reviewing (refused at submit), then accepts
    for user, seconds in (("ana", [15.0]), ("bo", [5.0, 20.0])):
        task, head = _task(prog, user, p2)
        labels = prog.task_labels(user, task)
        if len(seconds) == 2:
            head = prog.save(user, task, labels, base_revision_id=head, work_seconds=5).revision_id
            with pytest.raises(WorkflowError, match="1 pre-label"):
                prog.submit(user, task)
        prog.save(user, task, _human(labels), base_revision_id=head, work_seconds=seconds[-1])
        prog.submit(user, task)
    # p3 (model found nothing) and the control item: labelled from scratch
    for user, seconds in (("ana", 60.0), ("bo", 50.0)):
        task, head = _task(prog, user, p3)
        drawn = _human(_boxes(p3, [(1, CAR, [30, 30, 70, 90], 0.0)]))
        prog.save(user, task, drawn, base_revision_id=head, work_seconds=seconds)
        prog.submit(user, task)
    for user, seconds in (("ana", 100.0), ("bo", 80.0)):
        task, head = _task(prog, user, c)
        drawn = _human(_boxes(c, [(1, CAR, [5, 5, 25, 25], 0.0), (2, CAR, [40, 40, 80, 80], 0.0)]))
        prog.save(user, task, drawn, base_revision_id=head, work_seconds=seconds)
        prog.submit(user, task)

    # decision rows, exactly
    with db.session() as s:
        rows = s.execute(
            select(
                PrelabelDecisionRow.task_id,
                PrelabelDecisionRow.object_key,
                PrelabelDecisionRow.class_id,
                PrelabelDecisionRow.score,
                PrelabelDecisionRow.decision,
                PrelabelDecisionRow.iou,
            ).order_by(PrelabelDecisionRow.task_id, PrelabelDecisionRow.object_key)
        ).all()
        users = dict(s.execute(select(UserRow.id, UserRow.name)).all())
        who = {
            r.task_id: users[r.user_id] for r in s.execute(select(PrelabelDecisionRow)).scalars()
        }
        finals = dict(
            s.execute(
                select(PrelabelDecisionRow.task_id, PrelabelDecisionRow.final_revision_id)
            ).all()
        )
        heads = dict(s.execute(select(TaskRow.id, TaskRow.head_revision_id)).all())
    assert who[ana_p1] == "ana" and who[bo_p1] == "bo"
    assert all(finals[t] == heads[t] for t in finals)
    got = {(t, key): (cls, score, d, iou) for t, key, cls, score, d, iou in rows}
    p2_tasks = [_task(prog, u, p2)[0] for u in ("ana", "bo")]
    assert got == {
        (ana_p1, 1): (CAR, 0.9, "accept", 1.0),
        (ana_p1, 2): (CAR, 0.8, "adjust", pytest.approx(0.5)),
        (ana_p1, 3): (PERSON, 0.75, "reject", None),
        (bo_p1, 1): (CAR, 0.9, "accept", 1.0),
        (bo_p1, 2): (CAR, 0.8, "accept", 1.0),
        (bo_p1, 3): (PERSON, 0.75, "accept", 1.0),
        # object keys number one call's proposals: p2's follows p1's three
        (p2_tasks[0], 4): (CAR, 0.95, "accept", 1.0),
        (p2_tasks[1], 4): (CAR, 0.95, "accept", 1.0),
    }

    # the prelabel gate: every proposal was reviewed
    assert prog.advance(batch, actor=MANAGER).passed  # production: all submitted
    gate = prog.advance(batch, actor=MANAGER)
    assert (gate.gate, gate.value, gate.passed) == ("unreviewed_prelabels", 0.0, True)

    with pytest.raises(PermissionDenied):
        prelabel_metrics(prog, batch, actor="ana")
    report = prelabel_metrics(prog, batch, actor=MANAGER, resamples=4000)
    assert report["tasks"] == {
        "prelabelled": 6,
        "prelabelled_submitted": 6,
        "control": 2,
        "other": 0,
    }
    assert report["proposals"] == 8
    assert report["decisions"] == {"accept": 6, "adjust": 1, "reject": 1}
    assert (report["acceptance_rate"], report["adjust_rate"], report["reject_rate"]) == (
        0.75,
        0.125,
        0.125,
    )
    assert report["adjustment_iou"] == {"count": 1, "mean": 0.5, "median": 0.5, "p10": 0.5}
    # proposals vs submitted labels at the class IoU thresholds (car 0.7: the adjusted box
    # at IoU 0.5 does not match): matched 1 + 3 + 1 + 1 of 8 proposals and 10 final objects
    assert report["precision"] == 0.75 and report["recall"] == 0.6
    assert report["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35, abs=1e-6)
    per_class = {e["name"]: e for e in report["per_class"]}
    car, person = per_class["car"], per_class["person"]
    assert (car["proposed"], car["accept"], car["adjust"], car["reject"]) == (6, 5, 1, 0)
    assert (car["matched"], car["final_objects"]) == (5, 9)
    assert car["precision"] == pytest.approx(5 / 6, abs=1e-6)
    assert car["recall"] == pytest.approx(5 / 9, abs=1e-6)
    assert (car["confidence_threshold"], car["iou_threshold"]) == (0.5, 0.7)
    assert (person["proposed"], person["accept"], person["reject"]) == (2, 1, 1)
    assert (person["precision"], person["recall"], person["confidence_threshold"]) == (
        0.5,
        1.0,
        0.7,
    )

    # time: control 100 and 80 s (2 objects each); pre-labelled 40, 20, 15, 25, 60, 50 s
    # over 3 + 3 + 1 + 1 + 1 + 1 objects
    time = report["time"]
    assert time["control"] == {
        "tasks": 2,
        "seconds": 180.0,
        "objects": 4,
        "seconds_per_task": 90.0,
        "seconds_per_object": 45.0,
    }
    assert time["prelabelled"] == {
        "tasks": 6,
        "seconds": 210.0,
        "objects": 10,
        "seconds_per_task": 35.0,
        "seconds_per_object": 21.0,
    }
    control = np.array([100.0, 80.0])
    treated = np.array([40.0, 20.0, 15.0, 25.0, 60.0, 50.0])
    welch = stats.ttest_ind(control, treated, equal_var=False).confidence_interval(0.95)
    saved_s = time["seconds_saved_per_task"]
    assert saved_s["estimate"] == 55.0
    assert (saved_s["ci_low"], saved_s["ci_high"]) == pytest.approx(
        (welch.low, welch.high), abs=1e-6
    )
    fraction = time["time_saved_fraction"]
    assert fraction["estimate"] == pytest.approx(1 - 35 / 90, abs=1e-6)
    reference = stats.bootstrap(
        (control, treated),
        lambda a, b, axis: 1 - b.mean(axis=axis) / a.mean(axis=axis),
        method="percentile",
        n_resamples=20_000,
        vectorized=True,
        rng=np.random.default_rng(1),
    ).confidence_interval
    # two independent Monte Carlo runs: the endpoints agree to sampling error
    assert fraction["ci_low"] == pytest.approx(reference.low, abs=0.02)
    assert fraction["ci_high"] == pytest.approx(reference.high, abs=0.02)
    assert verify_chain(db).ok


def test_prelabel_gate_counts_unreviewed_proposals(world: dict[str, object], db: Database) -> None:
    prog = world["program"]
    assert isinstance(prog, Program)
    batch = int(world["batch"])  # type: ignore[call-overload]
    p1, p2, _ = world["treated"]  # type: ignore[misc]
    proposals = Annotations.concat(
        [
            _boxes(p1, [(1, CAR, [0, 0, 10, 10], 0.9), (2, CAR, [20, 0, 30, 10], 0.8)]),
            _boxes(p2, [(3, CAR, [10, 10, 50, 50], 0.95)]),
        ]
    )
    # cover p1 only: p2 and p3 stay pending (resumable in parts)
    stored = store_prelabels(prog, batch, proposals, images=[p1], model="m", actor=MANAGER)
    assert (stored.tasks, stored.objects, stored.outside) == (2, 4, 1)  # p2: not covered
    assert prelabel_plan(prog, batch, actor=MANAGER).pending_tasks == 4
    # labels that bypassed submit (a direct database edit) reach the prelabel stage: the
    # gate counts every unreviewed proposal in the heads and holds the batch
    with db.session() as s:
        s.execute(update(TaskRow).where(TaskRow.batch_id == batch).values(status="submitted"))
        s.execute(update(BatchRow).where(BatchRow.id == batch).values(stage=Stage.PRELABEL.value))
    gate = prog.advance(batch, actor=MANAGER)
    assert (gate.gate, gate.value, gate.passed, gate.outcome) == (
        "unreviewed_prelabels",
        4.0,
        False,
        "waiting",
    )
    with pytest.raises(WorkflowError, match="stage prelabel"):
        store_prelabels(prog, batch, proposals, model="m", actor=MANAGER)


def test_control_draw_matches_a_reference_splitmix64() -> None:
    ids = np.arange(1, 2001)
    for batch_id, seed, rate in ((1, 0, 0.25), (7, 3, 0.1), (123, 99, 0.5)):
        expected = [_reference_control(batch_id, int(i), rate, seed) for i in ids]
        assert control_items(batch_id, ids, rate, seed).tolist() == expected
    # the share converges on the rate (binomial, n = 200,000: 5 sigma = 0.0034)
    share = control_items(5, np.arange(200_000), 0.1, 0).mean()
    assert abs(share - 0.1) < 0.0034
    assert not control_items(5, ids, 0.0, 0).any() and control_items(5, ids, 1.0, 0).all()


def test_polygon_proposals_round_trip_and_are_judged_by_polygon_iou(
    world: dict[str, object], db: Database
) -> None:
    import shapely

    from labelgate.core.annotations import Kind
    from labelgate.core.ragged import Ragged

    prog = world["program"]
    assert isinstance(prog, Program)
    batch = int(world["batch"])  # type: ignore[call-overload]
    p1 = world["treated"][0]  # type: ignore[index]
    square = np.array([[10.0, 10], [50, 10], [50, 50], [10, 50]])
    moved = np.array([[10.0, 10], [50, 10], [70, 60], [10, 50]])

    def polygon(ring: np.ndarray, score: float = np.nan) -> Annotations:
        return Annotations.create(
            image_id=[p1],
            class_id=[CAR],
            bbox=[np.concatenate([ring.min(axis=0), ring.max(axis=0)])],
            kind=[Kind.POLYGON],
            score=[score],
            rings=Ragged(ring, np.array([0, len(ring)])),
            ring_offsets=np.array([0, 1]),
        )

    stored = store_prelabels(prog, batch, polygon(square, 0.9), images=[p1], model="seg",
                             actor=MANAGER)  # fmt: skip
    assert (stored.tasks, stored.objects) == (2, 2)
    for user, ring in (("ana", moved), ("bo", square)):
        task, head = _task(prog, user, p1)
        shown = prog.task_labels(user, task)
        assert shown.kind.tolist() == [Kind.POLYGON] and shown.score.tolist() == [0.9]
        assert np.array_equal(shown.rings.values, square)
        edited = _human(polygon(ring)).replace(id=shown.id)
        prog.save(user, task, edited, base_revision_id=head, work_seconds=5.0)
        prog.submit(user, task)
    with db.session() as s:
        rows = s.execute(select(PrelabelDecisionRow.decision, PrelabelDecisionRow.iou)).all()
    expected = (
        shapely.Polygon(moved).intersection(shapely.Polygon(square)).area
        / shapely.Polygon(moved).union(shapely.Polygon(square)).area
    )
    got = sorted((d, iou) for d, iou in rows)
    assert got[0] == ("accept", 1.0)
    assert got[1][0] == "adjust" and got[1][1] == pytest.approx(expected, abs=1e-9)


def test_precision_recall_against_the_delivered_labels(
    world: dict[str, object], db: Database
) -> None:
    """Both annotators of each item agree: consensus makes the final labels at review."""
    prog = world["program"]
    assert isinstance(prog, Program)
    batch = int(world["batch"])  # type: ignore[call-overload]
    c = int(world["control"])  # type: ignore[call-overload]
    p1, p2, p3 = world["treated"]  # type: ignore[misc]
    proposals = Annotations.concat(
        [
            _boxes(p1, [
                (1, CAR, [0, 0, 10, 10], 0.9),
                (2, CAR, [20, 0, 30, 10], 0.8),
                (3, PERSON, [0, 20, 10, 40], 0.75),
            ]),
            _boxes(p2, [(4, CAR, [10, 10, 50, 50], 0.95)]),
        ]
    )  # fmt: skip
    assert store_prelabels(prog, batch, proposals, model="det", actor=MANAGER).tasks == 6
    finals = {
        p1: _human(_boxes(p1, [
            (1, CAR, [0, 0, 10, 10], 0.0),
            (2, CAR, [20, 0, 30, 20], 0.0),
            (7, CAR, [100, 100, 120, 120], 0.0),
        ])),
        p2: _human(_boxes(p2, [(4, CAR, [10, 10, 50, 50], 0.0)])),
        p3: _human(_boxes(p3, [(1, CAR, [30, 30, 70, 90], 0.0)])),
        c: _human(_boxes(c, [(1, CAR, [5, 5, 25, 25], 0.0)])),
    }  # fmt: skip
    for user in ("ana", "bo"):
        for image, labels in finals.items():
            task, head = _task(prog, user, image)
            prog.save(user, task, labels, base_revision_id=head, work_seconds=10.0)
            prog.submit(user, task)
    prog.add_user("rita", ["reviewer"], actor=MANAGER)  # QA needs an inspector
    for _ in range(3):  # production, prelabel, review (consensus: nothing disputed)
        assert prog.advance(batch, actor=MANAGER).passed
    assert prog.batch_status(batch)["stage"] == Stage.QA
    report = prelabel_metrics(prog, batch, actor=MANAGER, against="delivered")
    assert (report["against"], report["compared"]) == ("delivered", 3)  # p1, p2, p3
    assert report["decisions"] == {"accept": 4, "adjust": 2, "reject": 2}
    # items: p1 matches 1 of 3 proposals (car 0.7: the adjusted box does not match), p2 1
    # of 1, p3 0 of 0; final objects 3 + 1 + 1
    assert (report["precision"], report["recall"]) == (0.5, 0.4)
    per_class = {e["name"]: e for e in report["per_class"]}
    assert (per_class["car"]["matched"], per_class["car"]["final_objects"]) == (2, 5)
    assert per_class["car"]["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert (per_class["person"]["precision"], per_class["person"]["recall"]) == (0.0, None)
    submitted = prelabel_metrics(prog, batch, actor=MANAGER)
    assert (submitted["compared"], submitted["precision"], submitted["recall"]) == (6, 0.5, 0.4)
    with pytest.raises(WorkflowError, match="against"):
        prelabel_metrics(prog, batch, actor=MANAGER, against="final")
