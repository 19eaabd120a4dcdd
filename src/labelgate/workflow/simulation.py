"""Run a whole program with simulated people through the real workflow service.

Nothing here bypasses :class:`~labelgate.workflow.program.Program`: simulated annotators
take their tasks from their own queues and save through ``Program.save``; simulated
reviewers, adjudicators and QA inspectors decide through the same calls a person makes in
the web UI. What they draw or flag comes from :mod:`labelgate.core.simulate`, against the
generated ground truth. Every save, review, QA inspection and adjudication carries the time
it took (``work_seconds``: a log-normal time per object at the person's speed,
:func:`labelgate.core.simulate.work_seconds`), so the work log prices the program as a real
one's would. ``labelgate demo`` is this simulation plus a report.

With ``SimulationConfig.prelabel`` a simulated, calibrated model
(:func:`labelgate.core.simulate.simulate_predictions`) pre-labels each batch right after
``assign`` through :func:`labelgate.workflow.prelabel.store_prelabels`, outside the spec's
control group; annotators read the proposals from their tasks and accept, adjust or
reject each (:func:`labelgate.core.simulate.review_proposals`), so the decisions, the time
saved and the active-learning replay come from the program's own data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core.annotations import Annotations
from labelgate.core.dataset import Dataset
from labelgate.core.generate import SceneConfig, generate_dataset
from labelgate.core.images import Images
from labelgate.core.matching import match
from labelgate.core.pairs import box_iou_matrix
from labelgate.core.simulate import (
    PRELABEL_ACCEPT_IOU,
    SPEED_SIGMA,
    AnnotatorProfile,
    PrelabelModel,
    find_defects,
    prelabel_work_seconds,
    review_proposals,
    simulate_labels,
    simulate_predictions,
    work_seconds,
)
from labelgate.formats.render import measure_occlusion, render_scenes, snap_to_pixels
from labelgate.store.db import Database
from labelgate.workflow.prelabel import prelabel_plan, store_prelabels
from labelgate.workflow.program import Program, TaskView
from labelgate.workflow.stages import Stage

__all__ = ["SimulationConfig", "SimulationResult", "run_simulation"]

MANAGER = "manager"
REVIEWER = "rita"
INSPECTOR = "quinn"
ADJUDICATOR = "adam"
#: The simulated pre-label model's name: its proposals are authored by ``model:simulated``.
PRELABEL_MODEL = "simulated"

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate.

    Parameters
    ----------
    images
        Production images, split evenly into ``batches``.
    batches
        Number of batches, run one after the other (annotators learn between them).
    gold_images, honeypot_images
        Size of the pilot gold set and of the honeypot pool.
    pilot_attempts, training_per_attempt
        An annotator who fails the pilot trains and retakes it, up to ``pilot_attempts``
        times; each round of training counts as ``training_per_attempt`` batches of
        experience.
    annotators
        The simulated annotators; every one takes the pilot.
    reviewer_catch_rate, inspector_catch_rate
        Probability that review / QA notices a real defect.
    review_seconds_per_object, qa_seconds_per_object
        Median seconds a reviewer / QA inspector spends on one object of a task (log-normal,
        sigma ``speed_sigma``); checking a box is quicker than drawing it.
    adjudicate_seconds
        Median seconds an adjudicator spends on one disputed object.
    speed_sigma
        Log-normal sigma of the reviewers', inspectors' and adjudicator's times.
    rework_care
        Rework is careful work on flagged items: it is drawn with the noise of an annotator
        ``rework_care`` batches more experienced (about 5 % of first-pass noise at the
        default learning rate).
    max_advances
        Safety stop for a batch that keeps waiting.
    seed
        Everything random derives from it.
    image_root
        ``None`` (default): images are registered by name only. A folder: every image
        (gold, honeypot and production) is rendered there as a real file
        (:func:`labelgate.formats.render.render_scenes`; refused when the folder is not
        empty) and registered with its sha256 and size; the truth boxes are then snapped
        to the pixel grid, so they are exactly the extents of the drawn shapes, and the
        truth holds only what the images show
        (:func:`labelgate.formats.render.measure_occlusion`): wholly hidden objects are
        dropped and ``occluded`` is measured on the pixels (more than 5 % hidden).
        :attr:`SimulationResult.truth` keeps the measured ``visibility`` attribute; the
        gold, honeypots and the answers the simulated people work from do not (nobody
        labels it, and the spec does not define it).
    prelabel
        ``None`` (default): no pre-labels. A model: after ``assign`` it proposes labels
        for the batch's open tasks (the spec's ``[prelabel]`` threshold and control
        group apply), and annotators review them (:func:`review_proposals`; time per
        decision :data:`~labelgate.core.simulate.PRELABEL_TIME_FRACTION` of drawing).
        Rework tasks start from earlier labels and get none.
    prelabel_accept_iou
        A proposal of the annotator's own class overlapping their own box at least this
        much is accepted as it is; others they adjust or reject.
    """

    images: int = 200
    batches: int = 2
    gold_images: int = 30
    honeypot_images: int = 20
    annotators: tuple[AnnotatorProfile, ...] = (
        AnnotatorProfile("eve", "expert", seconds_per_object=9.0),
        AnnotatorProfile("farid", "managed", seconds_per_object=7.0),
        AnnotatorProfile("gus", "managed", seconds_per_object=6.0),
        # learns slowly: keeps failing the pilot, so never gets production work
        AnnotatorProfile("ana", "crowd", seconds_per_object=4.0, learning_rate=0.02),
    )
    pilot_attempts: int = 3
    training_per_attempt: int = 5
    reviewer_catch_rate: float = 0.95
    rework_care: int = 30
    inspector_catch_rate: float = 1.0
    review_seconds_per_object: float = 2.5
    qa_seconds_per_object: float = 3.0
    adjudicate_seconds: float = 20.0
    speed_sigma: float = SPEED_SIGMA
    max_advances: int = 40
    seed: int = 0
    scenes: SceneConfig = field(default_factory=SceneConfig)
    image_root: Path | None = None
    prelabel: PrelabelModel | None = None
    prelabel_accept_iou: float = PRELABEL_ACCEPT_IOU


@dataclass(slots=True)
class SimulationResult:
    """What happened: every gate evaluation, qualification and the truth for comparison."""

    program: Program
    truth: Dataset
    batches: list[int]
    gates: list[dict[str, Any]]
    qualifications: dict[str, dict[str, Any]]
    profiles: dict[str, AnnotatorProfile]


def _split(truth: Dataset, config: SimulationConfig) -> tuple[Dataset, Dataset, Dataset]:
    """Gold, honeypot and production parts of one generated data set (by image order)."""
    ids = truth.images.id
    g, h = config.gold_images, config.honeypot_images
    parts = (ids[:g], ids[g : g + h], ids[g + h :])
    return tuple(_subset(truth, part) for part in parts)  # type: ignore[return-value]


def _subset(truth: Dataset, image_ids: np.ndarray[Any, Any]) -> Dataset:
    images = truth.images[np.isin(truth.images.id, image_ids)]
    labels = truth.annotations[np.isin(truth.annotations.image_id, image_ids)]
    return Dataset(labels.replace(attributes={}), images, truth.taxonomy)


def run_simulation(
    db: Database,
    spec_text: str,
    config: SimulationConfig = SimulationConfig(),
    *,
    progress: Progress | None = None,
) -> SimulationResult:
    """Create a program from ``spec_text`` and run every batch to delivery (or a block).

    The spec's classes must be the generator's (``examples/spec.toml`` is written for it).
    """
    report = progress or (lambda _stage, _done, _total: None)
    rng = np.random.default_rng(config.seed)
    total = config.images + config.gold_images + config.honeypot_images
    truth = generate_dataset(total, config=config.scenes, seed=config.seed)
    if config.image_root is not None:
        # the truth is what the files show, to the pixel: nothing wholly hidden, and an
        # object is occluded when the pixels say so
        truth = measure_occlusion(snap_to_pixels(truth))
    gold, honeypots, work = _split(truth, config)
    profiles = {p.name: p for p in config.annotators}

    prog = Program.create(db, spec_text)
    prog.add_user(MANAGER, ["manager"], actor="labelgate")
    prog.add_user(REVIEWER, ["reviewer"], actor=MANAGER)
    prog.add_user(INSPECTOR, ["reviewer"], actor=MANAGER)
    prog.add_user(ADJUDICATOR, ["adjudicator"], actor=MANAGER)
    for profile in config.annotators:
        prog.add_user(profile.name, ["annotator"], cohort=profile.cohort, actor=MANAGER)
    if config.image_root is not None:
        render_scenes(truth, config.image_root, seed=config.seed)
        prog.import_images(truth.images, actor=MANAGER, root=config.image_root)
    prog.import_gold(gold, actor=MANAGER)
    prog.import_gold(honeypots, purpose="honeypot", actor=MANAGER)
    if config.image_root is None:
        prog.import_images(work.images, actor=MANAGER)

    qualifications: dict[str, dict[str, Any]] = {}
    for i, profile in enumerate(config.annotators):
        # who fails the pilot trains and retakes it (training counts as experience)
        attempts = []
        for attempt in range(config.pilot_attempts):
            labels = simulate_labels(
                gold,
                profile,
                seed=int(rng.integers(1 << 31)),
                batches_done=attempt * config.training_per_attempt,
            )
            result = prog.qualify(profile.name, labels, actor=MANAGER)
            attempts.append(round(result.score, 4))
            if result.passed:
                break
        qualifications[profile.name] = {
            "score": result.score,
            "passed": result.passed,
            "attempts": attempts,
            "failed_cells": result.failed_cells,
            "cohort": profile.cohort,
        }
        report("pilot", i + 1, len(config.annotators))

    # what each task really shows: gold and honeypot items are mixed into production too
    answers = {"gold": gold, "honeypot": honeypots, "work": work}
    batch_ids: list[int] = []
    gates: list[dict[str, Any]] = []
    splits = np.array_split(work.images.id, config.batches)
    for number, image_ids in enumerate(splits, start=1):
        batch = prog.create_batch(f"batch-{number}", image_ids.tolist(), actor=MANAGER)
        batch_ids.append(batch)
        runner = _BatchRunner(prog, batch, answers, profiles, config, rng, number - 1)
        gates.extend(runner.run(report))
    return SimulationResult(prog, truth, batch_ids, gates, qualifications, profiles)


class _BatchRunner:
    """Plays every person's part for one batch until it is delivered or blocked."""

    def __init__(
        self,
        prog: Program,
        batch: int,
        answers: dict[str, Dataset],
        profiles: dict[str, AnnotatorProfile],
        config: SimulationConfig,
        rng: np.random.Generator,
        batches_done: int,
    ) -> None:
        self.prog = prog
        self.batch = batch
        self.truth = Dataset(
            Annotations.concat([d.annotations for d in answers.values()]).replace(
                id=np.arange(1, 1 + sum(len(d.annotations) for d in answers.values()))
            ),
            Images.concat([d.images for d in answers.values()]),
            answers["work"].taxonomy,
        )
        self.profiles = profiles
        self.config = config
        self.rng = rng
        self.batches_done = batches_done
        self.assigned = False
        # times come from a stream of their own: labels and gates do not depend on them
        self.clock = np.random.default_rng([config.seed, 0x71E, batches_done])
        # so does the model: switching pre-labels on leaves every other draw alone
        self.model_rng = np.random.default_rng([config.seed, 0x9E1, batches_done])

    def _seconds(self, objects: list[int], median: float, sigma: float) -> list[float]:
        times = work_seconds(np.array(objects, dtype=np.int64), median, self.clock, sigma=sigma)
        return [float(v) for v in times]

    def _seed(self) -> int:
        return int(self.rng.integers(1 << 31))

    def _truth_of(self, image_ids: np.ndarray[Any, Any]) -> Dataset:
        return _subset(self.truth, image_ids)

    def run(self, report: Progress) -> list[dict[str, Any]]:
        gates: list[dict[str, Any]] = []
        name = f"batch {self.batch}"
        for _ in range(self.config.max_advances):
            status = self.prog.batch_status(self.batch)
            stage = Stage(status["stage"])
            if stage == Stage.DELIVERED or status["state"] == "blocked":
                break
            cycle = status["rework_cycle"]
            if stage == Stage.PRODUCTION:
                if not self.assigned:
                    self.prog.assign(self.batch, actor=MANAGER, seed=self._seed())
                    self.assigned = True
                    if self.config.prelabel is not None:
                        self._prelabel(self.config.prelabel)
                self._annotate(rework=cycle > 0)
            elif stage == Stage.REVIEW:
                self._adjudicate()
                self._review()
            elif stage == Stage.QA:
                self._inspect()
            result = self.prog.advance(self.batch, actor=MANAGER, seed=self._seed())
            gates.append({"batch": self.batch, **result.to_dict()})
            if stage == Stage.PILOT and not result.passed:
                break  # nobody left to qualify: a manager must recruit
            if result.outcome == "waiting" and gates[-2:-1] == [gates[-1]]:
                break  # nothing the simulated people can do moves it: stop, don't spin
            report(f"{name}: {result.stage} {'passed' if result.passed else result.outcome}", 1, 1)
        return gates

    # the model ------------------------------------------------------------------------

    def _prelabel(self, model: PrelabelModel) -> None:
        """Propose labels for every pending task, as a manager running the model would."""
        images = prelabel_plan(self.prog, self.batch, actor=MANAGER).images.id
        if not len(images):
            return  # everything in the control group
        proposals = simulate_predictions(
            self._truth_of(images), model, seed=int(self.model_rng.integers(1 << 31))
        )
        store_prelabels(
            self.prog, self.batch, proposals, model=PRELABEL_MODEL, actor=MANAGER, images=images
        )

    # people ---------------------------------------------------------------------------

    def _annotate(self, *, rework: bool) -> None:
        for name, profile in self.profiles.items():
            tasks = self.prog.my_tasks(name, status="assigned")
            if not tasks:
                continue
            images = np.array([t.image_id for t in tasks], dtype=np.int64)
            # rework is careful work on the flagged items: far less noise than a first pass
            experience = self.batches_done + (self.config.rework_care if rework else 0)
            labels = simulate_labels(
                self._truth_of(images), profile, seed=self._seed(), batches_done=experience
            )
            speed = profile.seconds_after(self.batches_done)
            # a first-pass task that already holds a revision holds the model's proposals
            shown = [t for t in tasks if t.head_revision_id is not None and not rework]
            review_times: dict[int, float] = {}
            if shown:
                labels, review_times = self._review_proposals(
                    name, shown, labels, speed, profile.speed_sigma
                )
            groups = labels.group_by("image_id")
            starts = dict(zip(groups.keys.tolist(), groups.offsets[:-1].tolist()))
            stops = dict(zip(groups.keys.tolist(), groups.offsets[1:].tolist()))
            spans = [(starts.get(t.image_id, 0), stops.get(t.image_id, 0)) for t in tasks]
            if rework:
                seconds = self._rework_seconds(name, tasks, labels, speed, profile.speed_sigma)
            else:
                scratch = self._seconds(
                    [stop - start for start, stop in spans], speed, profile.speed_sigma
                )
                seconds = [review_times.get(t.task_id, drawn) for t, drawn in zip(tasks, scratch)]
            for task, (start, stop), spent in zip(tasks, spans, seconds):
                self.prog.save(
                    name,
                    task.task_id,
                    labels.take(groups.order[start:stop]),
                    base_revision_id=task.head_revision_id,
                    work_seconds=spent,
                )
                self.prog.submit(name, task.task_id)

    def _review_proposals(
        self,
        name: str,
        shown: list[TaskView],
        labels: Annotations,
        speed: float,
        sigma: float,
    ) -> tuple[Annotations, dict[int, float]]:
        """The annotator's labels after reviewing the proposals of ``shown``, and the times.

        The labels of the other tasks stay as drawn; on the tasks with proposals they are
        what :func:`review_proposals` makes of them (kept proposals keep their keys), every
        object source human. Each of those tasks takes the time of its decisions and drawn
        objects (:func:`prelabel_work_seconds`).
        """
        proposals = Annotations.concat([self.prog.task_labels(name, t.task_id) for t in shown])
        images = np.array(sorted({t.image_id for t in shown}), dtype=np.int64)
        on_shown = np.isin(labels.image_id, images)
        review = review_proposals(
            proposals, labels[on_shown], accept_iou=self.config.prelabel_accept_iou
        )
        counts = review.counts(proposals, images)
        position = np.searchsorted(images, [t.image_id for t in shown])
        times = prelabel_work_seconds(
            {kind: count[position] for kind, count in counts.items()},
            speed,
            self.clock,
            sigma=sigma,
        )
        # one container holds every task's labels: keys of the other tasks' objects go
        # above the reviewed ones (keys only need to be unique within a task)
        rest = labels[~on_shown]
        first_free = int(review.labels.id.max()) + 1 if len(review.labels) else 1
        rest = rest.replace(id=first_free + np.arange(len(rest), dtype=np.int64))
        merged = Annotations.concat([rest, review.labels])
        return merged, {t.task_id: float(v) for t, v in zip(shown, times)}

    def _rework_seconds(
        self,
        name: str,
        tasks: list[TaskView],
        labels: Annotations,
        speed: float,
        sigma: float,
    ) -> list[float]:
        """Time of each rework task: checking what it was handed, drawing what it adds.

        A rework task arrives seeded with the item's current labels: the annotator checks
        each of them (at the review speed) and draws the objects the seed lacks or had
        wrong (at their own speed): their new labels that match no seeded label of the
        same class at the class threshold.
        """
        seeded = Annotations.concat([self.prog.task_labels(name, t.task_id) for t in tasks])
        images = np.array(sorted({t.image_id for t in tasks}), dtype=np.int64)
        fresh = ~match(seeded, labels, taxonomy=self.truth.taxonomy).other_matched()
        drawn = np.bincount(np.searchsorted(images, labels.image_id[fresh]), minlength=len(images))
        checked = np.bincount(np.searchsorted(images, seeded.image_id), minlength=len(images))
        position = np.searchsorted(images, [t.image_id for t in tasks])
        draw = self._seconds(drawn[position].tolist(), speed, sigma)
        check = self._seconds(
            checked[position].tolist(), self.config.review_seconds_per_object, sigma
        )
        return [a + b for a, b in zip(draw, check)]

    def _review(self) -> None:
        for task_id in self.prog.review_queue(REVIEWER, self.batch):
            labels = self.prog.review_labels(REVIEWER, task_id)
            image = self.prog.task_image(REVIEWER, task_id)
            found = find_defects(
                self._truth_of(np.array([image])),
                labels,
                catch_rate=self.config.reviewer_catch_rate,
                seed=self._seed(),
            )
            decisions: list[tuple[int, str, str | None]] = [
                (int(key), "reject", str(kind))
                for key, kind in zip(
                    labels.id[found.flagged_labels], found.label_defect[found.flagged_labels]
                )
            ]
            decisions += [(-1, "reject", "missing")] * int(found.flagged_missed.sum())
            (spent,) = self._seconds(
                [len(labels)], self.config.review_seconds_per_object, self.config.speed_sigma
            )
            self.prog.review(REVIEWER, task_id, decisions, work_seconds=spent)

    def _adjudicate(self) -> None:
        for case in self.prog.adjudications(self.batch, actor=ADJUDICATOR):
            payload = case["payload"]
            image = case["image_id"]
            truth = self.truth.annotations[self.truth.annotations.image_id == image]
            same = truth.class_id == payload["class_id"]
            iou = box_iou_matrix(np.array([payload["bbox"]], dtype=np.float64), truth.bbox[same])
            thresholds = self.truth.taxonomy.thresholds(np.array([payload["class_id"]]))
            keep = bool(iou.size and iou.max() >= thresholds[0])
            (spent,) = self._seconds([1], self.config.adjudicate_seconds, self.config.speed_sigma)
            self.prog.adjudicate(case["id"], keep=keep, actor=ADJUDICATOR, work_seconds=spent)

    def _inspect(self) -> None:
        # the sample is spread over every reviewer: each inspects their share
        for inspector, task_id in [
            (who, task)
            for who in (INSPECTOR, REVIEWER)
            for task in self.prog.qa_queue(who, self.batch)
        ]:
            labels = self.prog.qa_labels(inspector, task_id)
            image = self.prog.task_image(inspector, task_id)
            # consensus (core.merge) carries occluded / truncated by majority, so QA judges
            # the delivered flags as well as boxes and classes
            found = find_defects(
                self._truth_of(np.array([image])),
                labels,
                catch_rate=self.config.inspector_catch_rate,
                seed=self._seed(),
            )
            defects = [
                (int(key), str(kind))
                for key, kind in zip(
                    labels.id[found.flagged_labels], found.label_defect[found.flagged_labels]
                )
            ]
            defects += [(-1, "missing")] * int(found.flagged_missed.sum())
            (spent,) = self._seconds(
                [len(labels)], self.config.qa_seconds_per_object, self.config.speed_sigma
            )
            self.prog.qa_inspect(inspector, task_id, defects, work_seconds=spent)
