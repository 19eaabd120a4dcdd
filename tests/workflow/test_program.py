"""An end-to-end program on generated data, on SQLite and PostgreSQL.

spec -> pilot (one annotator fails and is kept out of production) -> production with
honeypots and blind double annotation -> dual review with consensus and adjudication -> a QA
gate that blocks -> targeted rework of exactly the defective items -> QA releases ->
delivery of exactly the truth. Gate values are asserted where the data determine them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from labelgate.core.annotations import Annotations, AttributeColumn
from labelgate.core.dataset import Dataset
from labelgate.core.generate import generate_dataset
from labelgate.core.sampling import hypergeometric_upper, zero_acceptance_sample_size
from labelgate.errors import ConflictError, GateFailed, PermissionDenied, WorkflowError
from labelgate.store.db import Database
from labelgate.store.models import TaskRow
from labelgate.workflow.audit import verify_chain
from labelgate.workflow.program import Program
from labelgate.workflow.stages import Stage

REPO = Path(__file__).resolve().parents[2]
MANAGER = "maria"


def _spec_text(**assignment: object) -> str:
    text = (REPO / "examples" / "spec.toml").read_text()
    values = {
        "double_annotation_rate": 0.5,
        "gold_rate": 0.0,
        "honeypot_rate": 0.1,
        "rework_to": '"original"',
        "qualify_per": '["class"]',
    } | assignment
    block = "[assignment]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
    text = re.sub(r"\[assignment\]\n.*?\n\n", block, text, flags=re.S)
    # whole images as QA units: the exact hypergeometric bound the test checks by hand
    return text.replace(
        'rework_policy = "defective"', 'qa_unit = "image"\nrework_policy = "defective"'
    )


def _renamed(data: Dataset, prefix: str, first_id: int) -> Dataset:
    """The same data set under other file names and image ids (gold vs production)."""
    ids = np.arange(first_id, first_id + len(data.images))
    position = data.images.index_of(data.annotations.image_id)
    images = data.images.replace(
        id=ids, file_name=np.array([f"{prefix}/{i}.jpg" for i in ids], dtype=object)
    )
    return Dataset(data.annotations.replace(image_id=ids[position]), images, data.taxonomy)


def _truth_for(data: Dataset, image_id: int) -> Annotations:
    labels = data.annotations[data.annotations.image_id == image_id]
    return labels.replace(attributes={})


@pytest.fixture
def program(db: Database) -> Program:
    prog = Program.create(db, _spec_text())
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    prog.add_user("rita", ["reviewer"], actor=MANAGER)
    prog.add_user("adam", ["adjudicator"], actor=MANAGER)
    return prog


def test_program_end_to_end(program: Program, db: Database) -> None:
    prog = program
    gold = _renamed(generate_dataset(25, seed=11), "gold", 10_000)
    honeypots = _renamed(generate_dataset(10, seed=12), "honeypot", 20_000)
    work = _renamed(generate_dataset(40, seed=13), "work", 1)
    truth = {"gold": gold, "honeypot": honeypots, "work": work}
    assert prog.import_gold(gold, actor=MANAGER) == 25
    assert prog.import_gold(honeypots, purpose="honeypot", actor=MANAGER) == 10
    prog.import_images(work.images, actor=MANAGER)

    # --- pilot: ana and bo copy the gold answers, chen misses half of them
    perfect = gold.annotations.replace(attributes={})
    assert prog.qualify("ana", perfect, actor=MANAGER).passed
    assert prog.qualify("bo", perfect, actor=MANAGER).score == 1.0
    sloppy = perfect[np.arange(len(perfect)) % 2 == 0]
    chen = prog.qualify("chen", sloppy, actor=MANAGER)
    assert not chen.passed
    # F1 with every kept box matched: 2 * kept / (ref + kept)
    kept = len(sloppy)
    assert chen.score == pytest.approx(2 * kept / (len(perfect) + kept))

    batch = prog.create_batch("b1", actor=MANAGER)
    assert prog.advance(batch, actor=MANAGER).passed  # spec: 4 edge-case rules >= 3
    pilot = prog.advance(batch, actor=MANAGER)
    assert (pilot.value, pilot.threshold, pilot.passed) == (2.0, 2.0, True)
    assert pilot.inputs["failed"] == ["chen"] and pilot.inputs["qualified"] == ["ana", "bo"]

    # --- production: blind double annotation with honeypots
    counts = prog.assign(batch, actor=MANAGER, seed=5)
    assert counts["production"] == 40 + int(counts["production"] - 40)
    assert counts["honeypot"] >= 2
    assert prog.my_tasks("chen") == []  # failed the pilot: no production work
    ana_tasks = prog.my_tasks("ana")
    bo_tasks = prog.my_tasks("bo")
    assert not hasattr(ana_tasks[0], "purpose")

    def source_of(image_id: int) -> Dataset:
        if image_id >= 20_000:
            return truth["honeypot"]
        return truth["work"]

    # ana misses the first object of three images that only she labels
    shared = {t.image_id for t in ana_tasks if t.image_id < 20_000} & {t.image_id for t in bo_tasks}
    only_ana = sorted(
        t.image_id for t in ana_tasks if t.image_id < 20_000 and t.image_id not in shared
    )
    sloppy_images = [i for i in only_ana if len(_truth_for(work, i)) >= 2][:3]
    assert len(sloppy_images) == 3

    for user, tasks in (("ana", ana_tasks), ("bo", bo_tasks)):
        for task in tasks:
            labels = _truth_for(source_of(task.image_id), task.image_id)
            if user == "ana" and task.image_id in sloppy_images:
                labels = labels[1:]
            prog.save(user, task.task_id, labels, base_revision_id=None)
            prog.submit(user, task.task_id)

    # blind: bo cannot read ana's labels of a shared image, nor edit a submitted task
    shared_image = sorted(shared)[0]
    ana_shared = next(t for t in ana_tasks if t.image_id == shared_image)
    with pytest.raises(PermissionDenied, match="no task"):
        prog.task_labels("bo", ana_shared.task_id)
    with pytest.raises(PermissionDenied, match="submitted"):
        prog.save("ana", ana_shared.task_id, Annotations.empty(), base_revision_id=None)

    production = prog.advance(batch, actor=MANAGER)
    assert (production.value, production.passed) == (1.0, True)
    assert production.inputs["honeypots"] == {"ana": 1.0, "bo": 1.0}
    assert prog.advance(batch, actor=MANAGER).gate == "unreviewed_prelabels"

    # --- review: consensus on dual items (identical labels: nothing disputed); rita
    # reviews single items and accepts everything she sees (she misses the omissions)
    waiting = prog.advance(batch, actor=MANAGER)
    assert waiting.outcome == "waiting" and waiting.inputs["consensus_disputed"] == 0
    queue = prog.review_queue("rita", batch)
    assert len(queue) == 40 - len(shared)
    for task_id in queue:
        labels = prog.review_labels("rita", task_id)
        prog.review("rita", task_id, [(int(k), "accept", None) for k in labels.id])
    review = prog.advance(batch, actor=MANAGER)
    assert (review.value, review.passed) == (1.0, True)

    # --- QA: a zero-acceptance plan at 2 % / 95 % on a lot of 40 inspects 38 items: with 2
    # left unseen, one hidden defect would have shown up with probability 38/40 = 0.95
    qa_tasks = prog.qa_queue("rita", batch)
    assert len(qa_tasks) == zero_acceptance_sample_size(0.02, 0.95, lot_size=40) == 38

    def inspect(task_ids: list[int]) -> set[int]:
        found = set()
        with db.session() as s:
            images = dict(s.execute(select(TaskRow.id, TaskRow.image_id)).all())
        _, table = prog.images()
        store_ids, _ = prog.images()
        external = dict(zip(store_ids.tolist(), table.id.tolist()))
        for task_id in task_ids:
            final = prog.qa_labels("rita", task_id)
            image = external[images[task_id]]
            missing = len(_truth_for(work, image)) - len(final)
            defects = [(-1, "missing")] * missing
            if defects:
                found.add(image)
            prog.qa_inspect("rita", task_id, defects)
        return found

    found = inspect(qa_tasks)
    assert found == set(sloppy_images)  # this seed's sample holds all three
    qa = prog.advance(batch, actor=MANAGER)
    assert qa.value == pytest.approx(hypergeometric_upper(len(found), 38, 40, 0.95))
    assert qa.value > 0.02
    assert (qa.passed, qa.outcome, qa.inputs["decision"]) == (False, "rework", "block")
    status = prog.batch_status(batch)
    assert (status["stage"], status["rework_cycle"], status["items"]["rework"]) == (
        Stage.PRODUCTION,
        1,
        len(found),
    )

    # --- targeted rework: exactly the defective items, back to ana, seeded with her labels
    rework = prog.my_tasks("ana", status="assigned")
    assert sorted(t.image_id for t in rework) == sorted(found)
    for task in rework:
        current = prog.task_labels("ana", task.task_id)
        assert len(current) == len(_truth_for(work, task.image_id)) - 1
        prog.save(
            "ana",
            task.task_id,
            _truth_for(work, task.image_id),
            base_revision_id=task.head_revision_id,
        )
        prog.submit("ana", task.task_id)
    assert prog.advance(batch, actor=MANAGER).passed  # production, cycle 1
    assert prog.advance(batch, actor=MANAGER).passed  # prelabel
    assert prog.advance(batch, actor=MANAGER).outcome == "waiting"  # rework needs review
    for task_id in prog.review_queue("rita", batch):
        prog.review("rita", task_id, [])
    assert prog.advance(batch, actor=MANAGER).passed
    second_sample = prog.qa_queue("rita", batch)
    assert inspect(second_sample) == set()
    released = prog.advance(batch, actor=MANAGER)
    assert (released.value, released.passed, released.cycle) == (0.0, True, 1)
    delivery = prog.advance(batch, actor=MANAGER)
    assert (delivery.value, delivery.passed) == (1.0, True)
    with pytest.raises(WorkflowError, match="delivered"):
        prog.advance(batch, actor=MANAGER)

    # --- delivery: exactly the truth
    delivered = prog.export(batch, actor=MANAGER)
    order_got = np.lexsort((delivered.annotations.bbox[:, 0], delivered.annotations.image_id))
    order_want = np.lexsort((work.annotations.bbox[:, 0], work.annotations.image_id))
    np.testing.assert_array_equal(
        delivered.annotations.image_id[order_got], work.annotations.image_id[order_want]
    )
    np.testing.assert_allclose(
        delivered.annotations.bbox[order_got], work.annotations.bbox[order_want]
    )
    assert delivered.info["rework_cycles"] == 1
    assert verify_chain(db).ok

    # the report reads the same program back: honeypots were labelled perfectly by both,
    # though the same honeypot image went to both of them
    from labelgate.reports.program_report import build_report

    report = build_report(db)
    people = {a["annotator"]: a for a in report["quality"]["per_annotator"]}
    assert people["ana"]["honeypot_f1"] == people["bo"]["honeypot_f1"] == 1.0
    assert all(c["precision"] == c["recall"] == 1.0 for c in report["quality"]["per_class"])
    assert people["chen"]["qualification"] == {"score": chen.score, "passed": False}
    gates = [(g["name"], g["gate"], g["passed"]) for g in report["stages"]]
    assert gates.count((Stage.QA.value, "qa_defect_rate", False)) == 1
    assert report["defects"]["by_found_by"] == {"qa": 3}


def test_roles_and_self_review_are_enforced(program: Program) -> None:
    prog = program
    with pytest.raises(PermissionDenied, match="needs one of"):
        prog.create_batch("x", actor="ana")
    with pytest.raises(PermissionDenied, match="unknown or inactive user"):
        prog.my_tasks("mallory")
    with pytest.raises(WorkflowError, match="unknown role"):
        prog.add_user("z", ["god"], actor=MANAGER)


def test_illegal_transitions_and_blocked_batches(program: Program) -> None:
    from labelgate.workflow.stages import check_transition

    with pytest.raises(WorkflowError, match="spec leads only to pilot"):
        check_transition(Stage.SPEC, Stage.QA)
    with pytest.raises(WorkflowError, match="delivered is final"):
        check_transition(Stage.DELIVERED, Stage.SPEC)
    prog = program
    work = _renamed(generate_dataset(3, seed=1), "w", 1)
    prog.import_images(work.images, actor=MANAGER)
    batch = prog.create_batch("b", actor=MANAGER)
    prog.advance(batch, actor=MANAGER)
    pilot = prog.advance(batch, actor=MANAGER)  # nobody qualified
    assert (pilot.passed, pilot.outcome, pilot.value) == (False, "waiting", 0.0)
    with pytest.raises(WorkflowError, match="assigned in production"):
        prog.assign(batch, actor=MANAGER)
    assert GateFailed is not None


def test_stale_save_through_the_service_is_a_conflict(program: Program, db: Database) -> None:
    prog = program
    gold = _renamed(generate_dataset(12, seed=2), "gold", 500)
    prog.import_gold(gold, actor=MANAGER)
    for user in ("ana", "bo"):
        prog.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER)
    work = _renamed(generate_dataset(2, seed=3), "w", 1)
    prog.import_images(work.images, actor=MANAGER)
    batch = prog.create_batch("b", actor=MANAGER)
    for _ in range(2):
        prog.advance(batch, actor=MANAGER)
    prog.assign(batch, actor=MANAGER)
    task = prog.my_tasks("ana")[0]
    labels = _truth_for(work, task.image_id)
    first = prog.save("ana", task.task_id, labels, base_revision_id=None, request_id="r1")
    again = prog.save("ana", task.task_id, labels, base_revision_id=None, request_id="r1")
    assert again.replayed and again.revision_id == first.revision_id
    prog.save("ana", task.task_id, labels[:1], base_revision_id=first.revision_id)
    with pytest.raises(ConflictError) as caught:
        prog.save("ana", task.task_id, labels, base_revision_id=first.revision_id)
    assert caught.value.current_revision_id is not None
    assert len(prog.task_labels("ana", task.task_id)) == 1


def test_new_spec_version_requires_requalification_only_when_the_taxonomy_changed(
    program: Program,
) -> None:
    prog = program
    gold = _renamed(generate_dataset(12, seed=2), "gold", 500)
    prog.import_gold(gold, actor=MANAGER)
    for user in ("ana", "bo"):
        assert prog.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER).passed
    work = _renamed(generate_dataset(4, seed=3), "w", 1)
    prog.import_images(work.images, actor=MANAGER)

    def pilot_value(name: str, images: list[int]) -> float | None:
        batch = prog.create_batch(name, images, actor=MANAGER)
        prog.advance(batch, actor=MANAGER)
        return prog.advance(batch, actor=MANAGER).value

    assert pilot_value("v1", [1]) == 2.0
    # the same spec is not a new version; another gate threshold is, with the same taxonomy
    assert prog.update_spec(_spec_text(), actor=MANAGER) == 1
    assert (
        prog.update_spec(
            _spec_text().replace("defect_limit = 0.02", "defect_limit = 0.03"), actor=MANAGER
        )
        == 2
    )
    assert prog.spec().gates.defect_limit == 0.03
    assert prog.spec(1).gates.defect_limit == 0.02  # a locked version never changes
    assert pilot_value("v2", [2]) == 2.0
    # a tighter car threshold changes the taxonomy: nobody is qualified for v3 batches
    tighter = _spec_text().replace(
        'name = "car"\nsupercategory = "vehicle"\ntier = "standard"\niou_threshold = 0.7',
        'name = "car"\nsupercategory = "vehicle"\ntier = "standard"\niou_threshold = 0.75',
    )
    assert tighter != _spec_text()
    assert prog.update_spec(tighter, actor=MANAGER) == 3
    assert pilot_value("v3", [3]) == 0.0
    with pytest.raises(PermissionDenied):
        prog.update_spec(tighter, actor="ana")


def test_images_from_a_folder_record_uri_size_and_sha256(program: Program, tmp_path: Path) -> None:
    import hashlib

    from labelgate.core.images import Images
    from labelgate.store.models import ImageRow

    (tmp_path / "a.jpg").write_bytes(b"first image")
    (tmp_path / "b.jpg").write_bytes(b"second")
    images = Images.create(id=[1, 2], file_name=["a.jpg", "b.jpg"], width=[4, 4], height=[3, 3])
    missing = Images.create(id=[3], file_name=["c.jpg"], width=[4], height=[3])
    with pytest.raises(WorkflowError, match=r"c\.jpg: image file not found"):
        program.import_images(missing, actor=MANAGER, root=tmp_path)
    program.import_images(images, actor=MANAGER, root=tmp_path)
    with program.db.session() as s:
        rows = s.execute(select(ImageRow).order_by(ImageRow.external_id)).scalars().all()
        got = [(r.file_name, r.sha256, r.size_bytes, r.uri) for r in rows]
    assert got == [
        ("a.jpg", hashlib.sha256(b"first image").hexdigest(), 11, str(tmp_path / "a.jpg")),
        ("b.jpg", hashlib.sha256(b"second").hexdigest(), 6, str(tmp_path / "b.jpg")),
    ]
    with pytest.raises(WorkflowError, match="already in project"):
        program.import_images(images, actor=MANAGER, root=tmp_path)


def _to_review(prog: Program, images: int = 6) -> tuple[int, Dataset]:
    """A single-annotation batch, labelled perfectly, waiting at review."""
    gold = _renamed(generate_dataset(12, seed=2), "gold", 500)
    prog.import_gold(gold, actor=MANAGER)
    for user in ("ana", "bo"):
        prog.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER)
    work = _renamed(generate_dataset(images, seed=3), "w", 1)
    prog.import_images(work.images, actor=MANAGER)
    batch = prog.create_batch("b", actor=MANAGER)
    for _ in range(2):
        prog.advance(batch, actor=MANAGER)
    prog.assign(batch, actor=MANAGER)
    for user in ("ana", "bo"):
        for task in prog.my_tasks(user):
            truth = work if task.image_id < 20_000 else gold
            prog.save(user, task.task_id, _truth_for(truth, task.image_id), base_revision_id=None)
            prog.submit(user, task.task_id)
    for _ in range(3):  # production, prelabel, into review
        prog.advance(batch, actor=MANAGER)
    return batch, work


def test_review_rules_one_review_per_revision_and_rejected_objects_are_never_delivered(
    db: Database,
) -> None:
    prog = Program.create(db, _spec_text(double_annotation_rate=0.0, honeypot_rate=0.0))
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    prog.add_user("rita", ["reviewer"], actor=MANAGER)
    batch, _ = _to_review(prog, images=60)
    queue = prog.review_queue("rita", batch)
    assert len(queue) == 60
    first, *rest = queue
    labels = prog.review_labels("rita", first)
    # two objects missing and one extra in the first task, everything else fine
    prog.review(
        "rita",
        first,
        [
            (-1, "reject", "missing"),
            (-1, "reject", "missing"),
            (int(labels.id[0]), "reject", "extra"),
        ],
    )
    with pytest.raises(WorkflowError, match="already reviewed"):
        prog.review("rita", first, [])
    with pytest.raises(WorkflowError, match="only records a missing object"):
        prog.review("rita", rest[0], [(-1, "accept", None)])
    for task_id in rest:
        prog.review("rita", task_id, [])
    review = prog.advance(batch, actor=MANAGER)
    judged = review.inputs["reviewed_objects"]
    # three defects among the judged rows: every object once, plus two missing ones
    assert review.value == pytest.approx((judged - 3) / judged)
    assert review.passed and review.outcome == "rework"
    assert review.inputs["rejected_items"] == 1
    status = prog.batch_status(batch)
    assert (status["stage"], status["items"]) == (Stage.PRODUCTION, {"reviewed": 59, "rework": 1})
    from labelgate.reports.program_report import build_report

    assert build_report(db)["defects"]["by_type"] == {"missing": 2, "extra": 1}


def test_gold_answers_must_use_the_spec_classes(program: Program) -> None:
    gold = _renamed(generate_dataset(3, seed=2), "gold", 500)
    bad = gold.annotations.replace(class_id=np.full(len(gold.annotations), 99))
    from labelgate.core.taxonomy import ClassInfo, Taxonomy

    taxonomy = Taxonomy((*gold.taxonomy.classes, ClassInfo(99, "unicorn")))
    with pytest.raises(WorkflowError, match=r"class id\(s\) \[99\]"):
        program.import_gold(Dataset(bad, gold.images, taxonomy), actor=MANAGER)


def test_batch_names_are_unique_and_qualification_does_not_cross_projects(db: Database) -> None:
    first = Program.create(db, _spec_text())
    first.add_user(MANAGER, ["manager"], actor="labelgate")
    gold = _renamed(generate_dataset(12, seed=2), "gold", 500)
    first.import_gold(gold, actor=MANAGER)
    for user in ("ana", "bo"):
        assert first.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER).passed
    work = _renamed(generate_dataset(2, seed=3), "w", 1)
    first.import_images(work.images, actor=MANAGER)
    first.create_batch("b", [1], actor=MANAGER)
    with pytest.raises(WorkflowError, match="already has a batch named 'b'"):
        first.create_batch("b", [2], actor=MANAGER)

    # a second program with the same taxonomy: ana and bo passed the first one's gold set only
    second = Program.create(db, _spec_text().replace('name = "street-scenes"', 'name = "other"'))
    second.import_images(work.images, actor=MANAGER)
    batch = second.create_batch("b", actor=MANAGER)
    second.advance(batch, actor=MANAGER)
    assert second.advance(batch, actor=MANAGER).value == 0.0


def test_consensus_keeps_the_spec_attributes_both_annotators_gave(db: Database) -> None:
    """A dual item's merged objects carry the voted spec attributes, not the merge's columns."""
    prog = Program.create(db, _spec_text(double_annotation_rate=1.0, honeypot_rate=0.0))
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    prog.add_user("rita", ["reviewer"], actor=MANAGER)  # QA inspector once review passes
    gold = _renamed(generate_dataset(12, seed=2), "gold", 500)
    prog.import_gold(gold, actor=MANAGER)
    for user in ("ana", "bo"):
        prog.qualify(user, gold.annotations.replace(attributes={}), actor=MANAGER)
    work = _renamed(generate_dataset(4, seed=3), "w", 1)
    prog.import_images(work.images, actor=MANAGER)
    batch = prog.create_batch("b", actor=MANAGER)
    for _ in range(2):
        prog.advance(batch, actor=MANAGER)
    prog.assign(batch, actor=MANAGER)
    light = 4  # "traffic light" in the example spec
    states = np.array(["red", "green", "amber"], dtype=object)
    for user in ("ana", "bo"):
        for task in prog.my_tasks(user):
            labels = _truth_for(work, task.image_id)
            is_light = labels.class_id == light
            value = states[np.arange(len(labels)) % 3]
            labels = labels.replace(
                attributes={"light_state": AttributeColumn(value, is_light.copy())}
            )
            prog.save(user, task.task_id, labels, base_revision_id=None)
            prog.submit(user, task.task_id)
    for _ in range(3):  # production, prelabel, review (consensus merges every item)
        prog.advance(batch, actor=MANAGER)
    delivered = prog.export(batch, accepted_only=False, actor=MANAGER).annotations
    assert "cluster_id" not in delivered.attributes and "members" not in delivered.attributes
    expected = work.annotations[work.annotations.class_id == light]
    assert len(expected) > 0
    got = delivered[delivered.class_id == light]
    column = got.attributes["light_state"]
    assert column.present.all()
    # both annotators gave each light the same state, so the vote is that state: compare by
    # box (merged ids are new)
    want = {}
    for image in np.unique(work.annotations.image_id).tolist():
        mine = _truth_for(work, image)
        for k in np.flatnonzero(mine.class_id == light).tolist():
            want[(image, *np.round(mine.bbox[k], 3).tolist())] = states[k % 3]
    have = {
        (int(got.image_id[i]), *np.round(got.bbox[i], 3).tolist()): column.values[i]
        for i in range(len(got))
    }
    assert have == want
