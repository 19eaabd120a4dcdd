"""The program facade: every rule of the gated workflow, for scripts, the CLI and the API.

One :class:`Program` is one project in one database. Each public method is one transaction
and appends its audit event inside it, so a crash leaves either the whole change with its
event or neither. Permission rules live here and nowhere else:

- an annotator sees and saves only tasks assigned to them; a blind double task never
  reveals the other annotator's labels, and gold/honeypot tasks look like any other task
  (their reference answers belong to a reference task nobody is assigned to see);
- no production task before the annotator passed the gold set of the batch's spec version
  (re-qualification only when the taxonomy changed since the version they passed);
- a reviewer never reviews their own labels; only managers/admins create batches and
  advance stages.

Gates (defaults from the seeds, every number from the spec's ``[gates]``):

==========  ======================  =================================================
stage       gate                    value vs threshold
==========  ======================  =================================================
spec        ``edge_case_rules``     rules in the locked spec >= ``min_edge_case_rules``
pilot       ``qualified_annotators`` annotators who passed the gold set >= 2 (1 single)
production  ``submitted``           submitted fraction of this cycle's tasks == 1
prelabel    ``unreviewed_prelabels`` model-proposed objects still unreviewed == 0
review      ``review_accuracy``     accepted / judged objects >= ``review_accuracy``
qa          ``qa_defect_rate``      upper confidence bound of the defect rate
                                    <= ``defect_limit`` (never the point estimate)
delivery    ``accepted``            fraction of items with an accepted final revision
==========  ======================  =================================================
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from labelgate.core._typing import IntArray
from labelgate.core.annotations import Annotations, Source
from labelgate.core.compare import compare
from labelgate.core.dataset import Dataset
from labelgate.core.images import Images
from labelgate.core.merge import merge
from labelgate.core.pairs import box_iou_matrix
from labelgate.core.sampling import upper_bound, zero_acceptance_sample_size
from labelgate.errors import (
    ConflictError,
    GateFailed,
    NotFound,
    NotVisible,
    PermissionDenied,
    StoreError,
    WorkflowError,
)
from labelgate.spec import ProgramSpec, parse_spec
from labelgate.store.annotations import load_annotations
from labelgate.store.db import Database, Direct
from labelgate.store.models import (
    AdjudicationRow,
    BatchItemRow,
    BatchRow,
    DefectRow,
    GateResultRow,
    GoldItemRow,
    ImageRow,
    ProjectRow,
    QualificationRow,
    ReviewDecisionRow,
    RevisionRow,
    SpecVersionRow,
    TaskRow,
    UserRow,
    WorkLogRow,
    utcnow,
)
from labelgate.store.repository import (
    SavedRevision,
    TaskHead,
    add_images,
    add_tasks,
    image_table,
    import_revisions,
    save_revision,
)
from labelgate.workflow.audit import append_event, digest
from labelgate.workflow.prelabel import record_decisions, unreviewed_prelabels
from labelgate.workflow.queries import latest_gate_result
from labelgate.workflow.stages import NEXT, REWORK_TARGET, GateResult, Stage, check_transition

__all__ = [
    "ADJUDICATION_REASONS",
    "DEFECT_TYPES",
    "ROLES",
    "Program",
    "QualificationResult",
    "TaskView",
]

ROLES = ("admin", "manager", "annotator", "reviewer", "adjudicator", "auditor")
#: Defect taxonomy (issue: defect analytics); a rejection names one of these.
DEFECT_TYPES = (
    "missing",
    "extra",
    "wrong_class",
    "loose_geometry",
    "tight_geometry",
    "attribute_error",
    "duplicate",
    "invalid_geometry",
    "keypoint_error",
)
SEVERITIES = ("minor", "major", "critical")
#: Why an adjudicator settled a dispute as they did (with or beside a free-text reason).
ADJUDICATION_REASONS = (
    "tighter_fit",
    "correct_class",
    "object_present",
    "object_absent",
    "duplicate",
    "guideline_rule",
    "other",
)
MAX_REASON_CHARS = 2000
#: two annotators' disputed boxes overlapping at least this much are one object's versions
RIVAL_IOU = 0.1
SYSTEM_USER = "labelgate"  # author of reference answers, consensus and rework seeds
PRODUCTION_PURPOSES = ("production", "gold", "honeypot", "rework")
WORK_PURPOSES = ("production", "rework")  # the tasks whose labels become deliverables
MANAGERS = frozenset({"admin", "manager"})

# The save path's statements, built once on the tables (Core, not ORM objects): a save is
# the hot request, and building statements and ORM objects cost more CPU than running them.
_USERS: Any = UserRow.__table__
_TASKS: Any = TaskRow.__table__
_SAVER = select(_USERS.c.id, _USERS.c.active).where(_USERS.c.name == bindparam("name"))
# the saver and their task in one statement, the task row locked (PostgreSQL; SQLite's
# BEGIN IMMEDIATE runs one writer at a time) with the head and version the store's
# compare-and-set needs: no row when the user or the task is missing. It and the save's
# writes below run through Direct: SQLAlchemy's execute cost more than SQLite's work
_SAVED_TASK = Direct(
    select(
        _TASKS.c.id,
        _TASKS.c.project_id,
        _TASKS.c.assignee_id,
        _TASKS.c.status,
        _TASKS.c.image_id,
        _TASKS.c.purpose,
        _TASKS.c.batch_id,
        _TASKS.c.cycle,
        _TASKS.c.head_revision_id,
        _TASKS.c.version,
        _USERS.c.id.label("user_id"),
        _USERS.c.active.label("user_active"),
    )
    .select_from(_TASKS.join(_USERS, _USERS.c.name == bindparam("name")))
    .where(_TASKS.c.id == bindparam("task_id"))
    .with_for_update(of=_TASKS)
)
_START_TASK = Direct(
    update(_TASKS).where(_TASKS.c.id == bindparam("task_id")).values(status="in_progress")
)
_WORK_LOG: Any = WorkLogRow.__table__
_INSERT_WORK = Direct(insert(_WORK_LOG))


class _WorkTask(Protocol):
    """What a work-log entry takes from its task (a ``TaskRow``, or a row of its columns)."""

    @property
    def id(self) -> int: ...
    @property
    def batch_id(self) -> int | None: ...
    @property
    def cycle(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TaskView:
    """What an annotator may know about a task: never its purpose or anyone else's work."""

    task_id: int
    image_id: int  # the image's id in the imported file
    file_name: str
    width: int
    height: int
    batch: str | None
    status: str
    head_revision_id: int | None


@dataclass(frozen=True, slots=True)
class QualificationResult:
    """An annotator's pilot result on the gold set."""

    user: str
    score: float
    threshold: float
    passed: bool
    gold_images: int
    cells: dict[str, float]  # per class / scene type F1 that was gated
    failed_cells: list[str]


def _f1(entry: dict[str, Any]) -> float:
    value = entry.get("f1")
    return float(value) if value is not None else 0.0


class Program:
    """One annotation program (project) in one database.

    Parameters
    ----------
    db
        The program database (migrated).
    project
        Project name; ``None`` opens the only project in the database.
    clock
        Time source (tests inject one); UTC-aware datetimes.
    """

    def __init__(
        self,
        db: Database,
        project: str | None = None,
        *,
        clock: Callable[[], Any] = utcnow,
    ) -> None:
        self.db = db
        self.clock = clock
        with db.session() as s:
            query = select(ProjectRow)
            if project is not None:
                query = query.where(ProjectRow.name == project)
            rows = s.execute(query).scalars().all()
        if not rows:
            raise StoreError(
                f"no project {project!r} in {db!r}" if project else f"no project in {db!r}"
            )
        if len(rows) > 1:
            names = ", ".join(r.name for r in rows)
            raise StoreError(f"{len(rows)} projects in {db!r} ({names}): name one")
        self.project_id = rows[0].id
        self.name = rows[0].name

    # --- creation and spec ----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        db: Database,
        spec_text: str,
        *,
        actor: str = SYSTEM_USER,
        source: str = "spec.toml",
        clock: Callable[[], Any] = utcnow,
    ) -> Program:
        """Create a project from a spec (version 1, locked) with its pools' annotators."""
        spec = parse_spec(spec_text, source=source)
        with db.session() as s:
            if s.execute(select(ProjectRow).where(ProjectRow.name == spec.project.name)).first():
                raise WorkflowError(f"project {spec.project.name!r} already exists")
            project = ProjectRow(
                name=spec.project.name, description=spec.project.description, created_at=clock()
            )
            s.add(project)
            s.flush()
            version = _add_spec_row(s, project.id, 1, spec, spec_text, actor, clock())
            _ensure_user(s, SYSTEM_USER, ["admin"], None)
            for pool in spec.pools:
                for name in pool.annotators:
                    _ensure_user(s, name, ["annotator"], pool.cohort)
            append_event(
                s,
                actor=actor,
                action="project.create",
                entity_type="project",
                entity_id=project.id,
                after={"name": project.name, "spec_digest": spec.digest()},
                details={"spec_version": version.version},
            )
        return cls(db, spec.project.name, clock=clock)

    def spec(self, version: int | None = None) -> ProgramSpec:
        """The spec of a version (default: the newest)."""
        with self.db.session() as s:
            row = self._spec_row(s, version)
            return parse_spec(row.toml, source=f"spec v{row.version}")

    def _spec_row(self, s: Session, version: int | None = None) -> SpecVersionRow:
        query = select(SpecVersionRow).where(SpecVersionRow.project_id == self.project_id)
        if version is not None:
            query = query.where(SpecVersionRow.version == version)
        row = s.execute(query.order_by(SpecVersionRow.version.desc()).limit(1)).scalar()
        if row is None:
            raise StoreError(f"project {self.name!r} has no spec version {version}")
        return row

    def update_spec(self, spec_text: str, *, actor: str, source: str = "spec.toml") -> int:
        """Add a spec version (locked versions never change); returns its number.

        The same spec (equal canonical digest) is not a new version. A changed taxonomy
        makes every annotator qualify again for batches under the new version.
        """
        spec = parse_spec(spec_text, source=source)
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            current = self._spec_row(s)
            if current.digest == spec.digest():
                return current.version
            row = _add_spec_row(
                s, self.project_id, current.version + 1, spec, spec_text, actor, self.clock()
            )
            for pool in spec.pools:
                for name in pool.annotators:
                    _ensure_user(s, name, ["annotator"], pool.cohort)
            append_event(
                s,
                actor=actor,
                action="spec.version",
                entity_type="spec_version",
                entity_id=row.id,
                before={"digest": current.digest},
                after={"digest": row.digest, "taxonomy_digest": row.taxonomy_digest},
                details={
                    "version": row.version,
                    "requalify": row.taxonomy_digest != current.taxonomy_digest,
                },
            )
            return row.version

    # --- people -----------------------------------------------------------------------------

    def add_user(
        self, name: str, roles: Sequence[str], *, cohort: str | None = None, actor: str
    ) -> int:
        """Create a user (or add roles to an existing one); returns the user id."""
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise WorkflowError(f"unknown role(s) {bad}; roles are {', '.join(ROLES)}")
        with self.db.session() as s:
            if actor != SYSTEM_USER:
                self._require_role(s, actor, MANAGERS)
            user_id = _ensure_user(s, name, list(roles), cohort)
            append_event(
                s,
                actor=actor,
                action="user.add",
                entity_type="user",
                entity_id=user_id,
                after={"name": name, "roles": sorted(roles), "cohort": cohort},
            )
            return user_id

    def _user(self, s: Session, name: str) -> UserRow:
        user = s.execute(select(UserRow).where(UserRow.name == name)).scalar()
        if user is None or not user.active:
            raise PermissionDenied(f"unknown or inactive user {name!r}")
        return user

    def _require_role(self, s: Session, name: str, roles: Iterable[str]) -> UserRow:
        user = self._user(s, name)
        wanted = set(roles)
        if not wanted & set(user.roles):
            raise PermissionDenied(
                f"{name!r} has roles {sorted(user.roles)}; this needs one of {sorted(wanted)}"
            )
        return user

    # --- images and gold ---------------------------------------------------------------

    def import_images(self, images: Images, *, actor: str, root: Path | None = None) -> IntArray:
        """Register images (one transaction); returns their store ids.

        With ``root``, every file must exist under it: its URI, size and sha256 are
        recorded (so a swapped or edited image is detectable later). Hashing happens
        before the transaction opens, so a missing file leaves the database untouched.

        Raises
        ------
        WorkflowError
            A file is missing under ``root`` (named), or a file name is already imported.
        """
        uris: list[str] | None = None
        digests: list[str | None] | None = None
        sizes: list[int | None] | None = None
        if root is not None:
            uris, digests, sizes = [], [], []
            for name in images.file_name.tolist():
                path = root / name
                if not path.is_file():
                    raise WorkflowError(f"{path}: image file not found (from file_name {name!r})")
                file_digest, size = _sha256_file(path)
                uris.append(str(path.resolve()))
                digests.append(file_digest)
                sizes.append(size)
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            try:
                ids = add_images(
                    s, self.project_id, images, uris=uris, sha256=digests, size_bytes=sizes
                )
            except StoreError as exc:
                raise WorkflowError(str(exc)) from exc
            append_event(
                s,
                actor=actor,
                action="images.import",
                entity_type="project",
                entity_id=self.project_id,
                after={"images": len(ids), "file_names": images.file_name.tolist()},
                details={"sha256_of_digests": digest(digests)} if digests else None,
            )
            return ids

    def import_gold(self, reference: Dataset, *, purpose: str = "gold", actor: str) -> int:
        """Store reference answers for gold (pilot) or honeypot (production) images.

        Images not yet registered are registered. The answers live in reference tasks
        assigned to the system user: no annotator can reach them through any call here.
        Returns the number of gold items added.
        """
        if purpose not in ("gold", "honeypot"):
            raise WorkflowError(f"gold purpose must be 'gold' or 'honeypot', got {purpose!r}")
        spec = self.spec()
        unknown = sorted(
            set(np.unique(reference.annotations.class_id).tolist())
            - set(spec.taxonomy().ids.tolist())
        )
        if unknown:
            raise WorkflowError(
                f"{purpose} answers use class id(s) {unknown} that spec {spec.project.name!r} "
                f"does not define (classes: {', '.join(f'{c.id} {c.name}' for c in spec.classes)})"
            )
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            store_ids = self._store_ids(s, reference.images, register=True)
            system = _ensure_user(s, SYSTEM_USER, ["admin"], None)
            tasks = add_tasks(
                s,
                project_id=self.project_id,
                image_id=store_ids,
                assignee_id=np.full(len(store_ids), system),
                purpose="reference",
            )
            position = reference.images.index_of(reference.annotations.image_id)
            labels = reference.annotations.replace(image_id=store_ids[position])
            revisions = import_revisions(
                s, tasks, np.full(len(tasks), system), labels, position, source=Source.HUMAN
            )
            s.execute(
                insert(GoldItemRow),
                [
                    {
                        "project_id": self.project_id,
                        "image_id": image,
                        "revision_id": revision,
                        "purpose": purpose,
                    }
                    for image, revision in zip(store_ids.tolist(), revisions.tolist())
                ],
            )
            s.execute(
                update(TaskRow)
                .where(TaskRow.id.in_(tasks.tolist()))
                .values(status="accepted", submitted_at=self.clock())
            )
            append_event(
                s,
                actor=actor,
                action=f"{purpose}.import",
                entity_type="project",
                entity_id=self.project_id,
                after={"images": len(store_ids), "objects": len(labels)},
            )
            return len(store_ids)

    def _store_ids(self, s: Session, images: Images, *, register: bool = False) -> IntArray:
        """Store ids of images named by file name; optionally register the missing ones."""
        names = images.file_name.tolist()
        rows = s.execute(
            select(ImageRow.file_name, ImageRow.id).where(
                ImageRow.project_id == self.project_id, ImageRow.file_name.in_(names)
            )
        ).all()
        known = dict(rows)
        missing = np.array([n not in known for n in names], dtype=bool)
        if missing.any():
            if not register:
                raise WorkflowError(f"image {names[int(np.argmax(missing))]!r} is not imported")
            new = add_images(s, self.project_id, images[np.flatnonzero(missing)])
            known.update(zip([names[i] for i in np.flatnonzero(missing)], new.tolist()))
        return np.array([known[n] for n in names], dtype=np.int64)

    def images(self) -> tuple[IntArray, Images]:
        """Every image of the project: (store ids, ``Images`` with external ids)."""
        with self.db.session() as s:
            return image_table(s, self.project_id)

    # --- pilot qualification -------------------------------------------------------------

    def qualify(self, user: str, labels: Annotations, *, actor: str) -> QualificationResult:
        """Score an annotator's labels of the gold set against the reference answers.

        ``labels`` use the images' external ids (as in the annotator's exported file).
        The score is F1 at each class's spec IoU threshold (a match needs the same class
        and IoU >= the tier threshold); it must reach ``gates.pilot_agreement`` overall and
        in every class / scene type named by ``assignment.qualify_per`` that has at least
        ``MIN_CELL_SUPPORT`` reference objects. The labels are kept as pilot revisions.
        """
        spec = self.spec()
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            annotator = self._user(s, user)
            spec_row = self._spec_row(s)
            gold = s.execute(
                select(GoldItemRow.image_id, GoldItemRow.revision_id).where(
                    GoldItemRow.project_id == self.project_id, GoldItemRow.purpose == "gold"
                )
            ).all()
            if not gold:
                raise WorkflowError("no gold set imported: `import_gold` first")
            gold_images = np.array([g.image_id for g in gold], dtype=np.int64)
            reference = load_annotations(s, [g.revision_id for g in gold], ids="row")
            store_ids, images = image_table(s, self.project_id)
            position = np.searchsorted(store_ids, gold_images)
            gold_table = images[position]
            # annotator's labels: external ids -> store ids, only gold images count
            external_to_store = dict(zip(images.id.tolist(), store_ids.tolist()))
            mapped = np.array(
                [external_to_store.get(i, -1) for i in labels.image_id.tolist()], dtype=np.int64
            )
            on_gold = np.isin(mapped, gold_images)
            theirs = labels[on_gold].replace(image_id=mapped[on_gold])
            tasks = add_tasks(
                s,
                project_id=self.project_id,
                image_id=gold_images,
                assignee_id=np.full(len(gold_images), annotator.id),
                purpose="pilot",
            )
            order = np.argsort(gold_images)
            task_of = order[np.searchsorted(gold_images[order], theirs.image_id)]
            import_revisions(s, tasks, np.full(len(tasks), annotator.id), theirs, task_of)
            result = _qualification(
                spec, reference, _with_ids(gold_table, gold_images), theirs, user
            )
            s.add(
                QualificationRow(
                    user_id=annotator.id,
                    spec_version_id=spec_row.id,
                    taxonomy_digest=spec_row.taxonomy_digest,
                    gold_images=len(gold_images),
                    score=result.score,
                    threshold=result.threshold,
                    passed=result.passed,
                    details={"cells": result.cells, "failed": result.failed_cells},
                    created_at=self.clock(),
                )
            )
            append_event(
                s,
                actor=actor,
                action="annotator.qualify",
                entity_type="user",
                entity_id=annotator.id,
                after={"score": result.score, "passed": result.passed},
                details={"spec_version": spec_row.version, "failed": result.failed_cells},
            )
            return result

    def _qualified(self, s: Session, batch: BatchRow) -> dict[int, str]:
        """Annotators qualified for a batch: passed a gold set under the same taxonomy."""
        spec_row = s.get(SpecVersionRow, batch.spec_version_id)
        assert spec_row is not None  # foreign key
        # this project's gold sets only: another program with the same taxonomy had other
        # gold images and another guideline
        in_project = QualificationRow.spec_version_id.in_(
            select(SpecVersionRow.id).where(SpecVersionRow.project_id == self.project_id)
        )
        rows = s.execute(
            select(UserRow.id, UserRow.name)
            .join(QualificationRow, QualificationRow.user_id == UserRow.id)
            .where(
                QualificationRow.taxonomy_digest == spec_row.taxonomy_digest,
                QualificationRow.passed.is_(True),
                UserRow.active.is_(True),
                in_project,
            )
            .distinct()
        ).all()
        # a later failed attempt under the same taxonomy withdraws the qualification
        latest = dict(
            s.execute(
                select(QualificationRow.user_id, QualificationRow.passed)
                .where(QualificationRow.taxonomy_digest == spec_row.taxonomy_digest, in_project)
                .order_by(QualificationRow.id)
            ).all()
        )
        return {r.id: r.name for r in rows if latest.get(r.id)}

    # --- batches ---------------------------------------------------------------------------

    def create_batch(self, name: str, image_ids: Sequence[int] | None = None, *, actor: str) -> int:
        """Create a batch at stage ``spec`` under the newest spec version.

        ``image_ids`` are external image ids; default: every image not yet in a batch and
        not a gold/honeypot image.
        """
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            taken_name = s.execute(
                select(BatchRow.id).where(
                    BatchRow.project_id == self.project_id, BatchRow.name == name
                )
            ).first()
            if taken_name is not None:
                raise WorkflowError(f"project {self.name!r} already has a batch named {name!r}")
            store_ids, images = image_table(s, self.project_id)
            if image_ids is None:
                taken = set(s.execute(select(BatchItemRow.image_id)).scalars())
                taken |= set(
                    s.execute(
                        select(GoldItemRow.image_id).where(
                            GoldItemRow.project_id == self.project_id
                        )
                    ).scalars()
                )
                chosen = np.array([i for i in store_ids.tolist() if i not in taken])
            else:
                position = images.index_of(np.asarray(image_ids, dtype=np.int64))
                if (position < 0).any():
                    bad = np.asarray(image_ids)[position < 0][0]
                    raise WorkflowError(f"image id {bad} is not in project {self.name!r}")
                chosen = store_ids[position]
            if len(chosen) == 0:
                raise WorkflowError("a batch needs at least one image")
            spec_row = self._spec_row(s)
            batch = BatchRow(
                project_id=self.project_id,
                spec_version_id=spec_row.id,
                name=name,
                stage=Stage.SPEC.value,
                state="open",
                created_at=self.clock(),
                updated_at=self.clock(),
            )
            s.add(batch)
            s.flush()
            s.execute(
                insert(BatchItemRow),
                [
                    {"batch_id": batch.id, "image_id": i, "state": "pending"}
                    for i in chosen.tolist()
                ],
            )
            append_event(
                s,
                actor=actor,
                action="batch.create",
                entity_type="batch",
                entity_id=batch.id,
                after={"name": name, "images": len(chosen), "spec_version": spec_row.version},
            )
            return batch.id

    def _batch(self, s: Session, batch: int | str) -> BatchRow:
        query = select(BatchRow).where(BatchRow.project_id == self.project_id)
        query = query.where(
            BatchRow.id == batch if isinstance(batch, int) else BatchRow.name == batch
        )
        row = s.execute(query).scalar()
        if row is None:
            raise NotFound(f"no batch {batch!r} in project {self.name!r}")
        return row

    def batch_status(self, batch: int | str) -> dict[str, Any]:
        """Stage, state, cycle, item states and the gate history of a batch."""
        with self.db.session() as s:
            row = self._batch(s, batch)
            items = dict(
                s.execute(
                    select(BatchItemRow.state, func.count())
                    .where(BatchItemRow.batch_id == row.id)
                    .group_by(BatchItemRow.state)
                ).all()
            )
            gates = s.execute(
                select(GateResultRow)
                .where(GateResultRow.batch_id == row.id)
                .order_by(GateResultRow.id)
            ).scalars()
            return {
                "batch": row.name,
                "id": row.id,
                "stage": row.stage,
                "state": row.state,
                "rework_cycle": row.rework_cycle,
                "items": items,
                "gates": [
                    {
                        "name": g.stage,
                        "gate": g.gate,
                        "cycle": g.cycle,
                        "value": g.value,
                        "threshold": g.threshold,
                        "passed": g.passed,
                        "outcome": g.inputs.get("outcome"),
                    }
                    for g in gates
                ],
            }

    # --- assignment -------------------------------------------------------------------------

    def assign(self, batch: int | str, *, actor: str, seed: int = 0) -> dict[str, int]:
        """Create the production tasks of a batch (stage ``production``, cycle 0).

        Every item goes to one qualified annotator; a ``double_annotation_rate`` share to
        two different ones (blind: neither can read the other's task). Gold and honeypot
        images are mixed in at ``gold_rate`` / ``honeypot_rate`` per annotator, as ordinary
        looking tasks. Returns task counts by purpose.
        """
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            row = self._batch(s, batch)
            if row.stage != Stage.PRODUCTION.value:
                raise WorkflowError(
                    f"batch {row.name!r} is at stage {row.stage}: tasks are assigned in production"
                )
            if s.execute(select(TaskRow.id).where(TaskRow.batch_id == row.id).limit(1)).first():
                raise WorkflowError(f"batch {row.name!r} is already assigned")
            spec = parse_spec(s.get(SpecVersionRow, row.spec_version_id).toml)  # type: ignore[union-attr]
            qualified = self._qualified(s, row)
            need = 2 if spec.assignment.double_annotation_rate > 0 else 1
            if len(qualified) < need:
                raise WorkflowError(
                    f"batch {row.name!r} needs {need} qualified annotators, "
                    f"has {len(qualified)}: run the pilot (qualify) first"
                )
            annotators = np.array(sorted(qualified), dtype=np.int64)
            items = np.array(
                s.execute(
                    select(BatchItemRow.image_id)
                    .where(BatchItemRow.batch_id == row.id)
                    .order_by(BatchItemRow.image_id)
                )
                .scalars()
                .all(),
                dtype=np.int64,
            )
            rng = np.random.default_rng(seed)
            n = len(items)
            double = rng.random(n) < spec.assignment.double_annotation_rate
            # round-robin over a shuffled order balances load; the second annotator is the
            # next one in the ring, so never the first
            k = len(annotators)
            start = rng.permutation(n) % k
            first = annotators[start]
            second = annotators[(start[double] + 1 + rng.integers(0, k - 1, double.sum())) % k]
            image_id = np.concatenate([items, items[double]])
            assignee = np.concatenate([first, second])
            purpose = ["production"] * len(image_id)
            counts = {"production": len(image_id)}
            for kind, rate in (
                ("gold", spec.assignment.gold_rate),
                ("honeypot", spec.assignment.honeypot_rate),
            ):
                pool = np.array(
                    s.execute(
                        select(GoldItemRow.image_id).where(
                            GoldItemRow.project_id == self.project_id,
                            GoldItemRow.purpose == kind,
                        )
                    )
                    .scalars()
                    .all(),
                    dtype=np.int64,
                )
                if rate <= 0 or len(pool) == 0:
                    continue
                per_annotator = np.bincount(np.searchsorted(annotators, assignee), minlength=k)
                # nobody sees the same hidden item twice: a recognised honeypot measures
                # memory, not care
                seen: dict[int, set[int]] = {}
                for person, image in s.execute(
                    select(TaskRow.assignee_id, TaskRow.image_id).where(
                        TaskRow.project_id == self.project_id,
                        TaskRow.purpose.in_(("gold", "honeypot")),
                    )
                ).all():
                    seen.setdefault(person, set()).add(image)
                extra_images, extra_people = [], []
                for j, annotator in enumerate(annotators.tolist()):
                    fresh = pool[~np.isin(pool, list(seen.get(annotator, ())))]
                    m = min(len(fresh), math.ceil(rate * per_annotator[j]))
                    extra_images.append(rng.choice(fresh, size=m, replace=False))
                    extra_people.append(np.full(m, annotator))
                image_id = np.concatenate([image_id, *extra_images])
                assignee = np.concatenate([assignee, *extra_people])
                added = sum(len(e) for e in extra_images)
                purpose += [kind] * added
                counts[kind] = added
            # shuffle so queue order does not give honeypots away
            order = rng.permutation(len(image_id))
            add_tasks(
                s,
                project_id=self.project_id,
                batch_id=row.id,
                image_id=image_id[order],
                assignee_id=assignee[order],
                purpose=[purpose[i] for i in order.tolist()],
            )
            s.execute(
                update(BatchItemRow).where(BatchItemRow.batch_id == row.id).values(state="labeling")
            )
            append_event(
                s,
                actor=actor,
                action="batch.assign",
                entity_type="batch",
                entity_id=row.id,
                after=counts,
                details={"annotators": sorted(qualified.values()), "seed": seed},
            )
            return counts

    # --- annotator's view -----------------------------------------------------------------

    def my_tasks(self, user: str, *, status: str | None = None) -> list[TaskView]:
        """The caller's own task queue (never anyone else's, never the task's purpose)."""
        with self.db.session() as s:
            me = self._user(s, user)
            query = (
                select(
                    TaskRow.id,
                    ImageRow.external_id,
                    ImageRow.file_name,
                    ImageRow.width,
                    ImageRow.height,
                    BatchRow.name,
                    TaskRow.status,
                    TaskRow.head_revision_id,
                )
                .join(ImageRow, ImageRow.id == TaskRow.image_id)
                .outerjoin(BatchRow, BatchRow.id == TaskRow.batch_id)
                .where(
                    TaskRow.assignee_id == me.id,
                    TaskRow.project_id == self.project_id,
                    TaskRow.purpose.in_(PRODUCTION_PURPOSES),
                )
                .order_by(TaskRow.id)
            )
            if status is not None:
                query = query.where(TaskRow.status == status)
            return [TaskView(*r) for r in s.execute(query).all()]

    def _own_task(
        self, s: Session, user: str, task_id: int, *, lock: bool = False
    ) -> tuple[UserRow, TaskRow]:
        me = self._user(s, user)
        # writers lock the row: a save checking "still open" must not race a submit
        task = s.get(TaskRow, task_id, with_for_update=lock)
        if task is None or task.project_id != self.project_id:
            raise NotVisible(f"no task {task_id} for {user!r}")
        if task.assignee_id != me.id:
            # the same answer as for a missing task: a blind annotator learns nothing
            raise NotVisible(f"no task {task_id} for {user!r}")
        return me, task

    def task_labels(self, user: str, task_id: int) -> Annotations:
        """The head labels of a task, for its assignee only (external image ids)."""
        with self.db.session() as s:
            _, task = self._own_task(s, user, task_id)
            if task.head_revision_id is None:
                return Annotations.empty()
            return self._external(s, load_annotations(s, [task.head_revision_id]))

    def _external(self, s: Session, labels: Annotations) -> Annotations:
        store_ids, images = image_table(s, self.project_id)
        return labels.replace(image_id=images.id[np.searchsorted(store_ids, labels.image_id)])

    def save(
        self,
        user: str,
        task_id: int,
        labels: Annotations,
        *,
        base_revision_id: int | None,
        request_id: str | None = None,
        work_seconds: float | None = None,
    ) -> SavedRevision:
        """Save the task's full object list as a new revision (optimistic locking).

        ``work_seconds`` is the active time spent since the previous save (the editor's
        measure); it goes to the work log that prices the program from measured time.

        Raises
        ------
        ConflictError
            ``base_revision_id`` is stale: someone saved in between; nothing is written.
        PermissionDenied
            Not the caller's task, or the task is already submitted.
        """
        with self.db.session() as s:
            # what _own_task checks, with the same answers, read with one cached Core
            # statement that also locks the task (the store then does not read it again)
            task = _SAVED_TASK.run(s, {"name": user, "task_id": task_id}).first()
            if task is None or not task.user_active:
                me = s.connection().execute(_SAVER, {"name": user}).first()
                if me is None or not me.active:
                    raise PermissionDenied(f"unknown or inactive user {user!r}")
                raise NotVisible(f"no task {task_id} for {user!r}")
            if task.project_id != self.project_id or task.assignee_id != task.user_id:
                # the same answer for a missing task and another person's
                raise NotVisible(f"no task {task_id} for {user!r}")
            if task.status not in ("assigned", "in_progress"):
                raise PermissionDenied(f"task {task_id} is {task.status}: it can't be edited")
            try:
                # the store writes the task's image as every object's image (and the
                # revision's author is the annotator): no second, re-validated container
                saved = save_revision(
                    s,
                    task_id=task_id,
                    base_revision_id=base_revision_id,
                    author_id=task.user_id,
                    labels=labels,
                    request_id=request_id,
                    image_id=task.image_id,
                    locked=TaskHead(task.head_revision_id, task.version),
                )
            except ConflictError as exc:
                # the store names the winner; the client's side of the collision is ours
                exc.task_id, exc.base_revision_id = task_id, base_revision_id
                raise
            if not saved.replayed:
                if task.status != "in_progress":
                    _START_TASK.run(s, {"task_id": task_id})
                activity = "rework" if task.purpose == "rework" else "annotate"
                self._log_work(s, task.user_id, task, activity, work_seconds, len(labels))
                append_event(
                    s,
                    actor=user,
                    action="annotation.save",
                    entity_type="task",
                    entity_id=task_id,
                    before={"revision": base_revision_id},
                    after={"revision": saved.revision_id, "objects": len(labels)},
                )
            return saved

    def _log_work(
        self,
        s: Session,
        user_id: int,
        task: _WorkTask | None,
        activity: str,
        seconds: float | None,
        objects: int,
        *,
        batch_id: int | None = None,
        cycle: int | None = None,
    ) -> None:
        """Append one work-log entry (nothing when the caller measured no time)."""
        if seconds is None:
            return
        if not math.isfinite(seconds) or seconds < 0 or seconds > 86_400:
            raise WorkflowError(
                f"work_seconds must be a finite number of seconds in [0, 86400], got {seconds!r}"
            )
        # a Core insert (the statement built once): no ORM object to flush
        _INSERT_WORK.run(
            s,
            {
                "project_id": self.project_id,
                "batch_id": task.batch_id if task is not None else batch_id,
                "task_id": task.id if task is not None else None,
                "user_id": user_id,
                "activity": activity,
                "cycle": task.cycle if task is not None else (cycle or 0),
                "seconds": float(seconds),
                "objects": int(objects),
                "created_at": self.clock(),
            },
        )

    def submit(self, user: str, task_id: int) -> None:
        """Hand a task in: it leaves the annotator's editable queue.

        A pre-labelled task records what became of each model proposal (accept, adjust or
        reject: :func:`~labelgate.workflow.prelabel.record_decisions`); a head that still
        holds an unreviewed proposal (``source=PRELABEL``) is refused.
        """
        with self.db.session() as s:
            _, task = self._own_task(s, user, task_id, lock=True)
            if task.status not in ("assigned", "in_progress"):
                raise WorkflowError(f"task {task_id} is already {task.status}")
            record_decisions(s, task, now=self.clock())
            task.status = "submitted"
            task.submitted_at = self.clock()
            append_event(
                s,
                actor=user,
                action="task.submit",
                entity_type="task",
                entity_id=task_id,
                after={"revision": task.head_revision_id},
            )

    # --- review -----------------------------------------------------------------------------

    def review_queue(self, reviewer: str, batch: int | str) -> list[int]:
        """Tasks of the batch's current cycle that need a reviewer, none of them the caller's.

        Single-annotated items need a reviewer; dual ones are settled by consensus.
        """
        with self.db.session() as s:
            me = self._require_role(s, reviewer, {"reviewer", *MANAGERS})
            row = self._batch(s, batch)
            tasks = self._work_tasks(s, row)
            reviewed = set(
                s.execute(
                    select(ReviewDecisionRow.revision_id).where(
                        ReviewDecisionRow.task_id.in_([t.id for t in tasks])
                    )
                ).scalars()
            )
            per_item: dict[int, list[TaskRow]] = {}
            for t in tasks:
                per_item.setdefault(t.image_id, []).append(t)
            return [
                group[0].id
                for group in per_item.values()
                if len(group) == 1
                and group[0].assignee_id != me.id
                and group[0].head_revision_id not in reviewed
                and group[0].status == "submitted"
            ]

    def task_image(self, user: str, task_id: int) -> int:
        """The external image id of a task, for its assignee or a reviewer / manager.

        Annotators never learn anything about other people's tasks.
        """
        with self.db.session() as s:
            me = self._user(s, user)
            task = s.get(TaskRow, task_id)
            if task is None or task.project_id != self.project_id:
                raise NotVisible(f"no task {task_id} for {user!r}")
            allowed = task.assignee_id == me.id or bool(
                {"reviewer", "adjudicator", "auditor", *MANAGERS} & set(me.roles)
            )
            if not allowed:
                raise NotVisible(f"no task {task_id} for {user!r}")
            image = s.get(ImageRow, task.image_id)
            assert image is not None  # foreign key
            return image.external_id

    def review_twin(self, reviewer: str, task_id: int) -> tuple[int | None, int, int]:
        """The other task of a blind double item, and the image's width and height.

        For a reviewer or manager. The twin shares batch, image, cycle and purpose; its id is
        None for a single-annotated item; whether the caller may read the twin's labels is
        still decided by :meth:`review_labels`.
        """
        with self.db.session() as s:
            self._require_role(s, reviewer, {"reviewer", "adjudicator", *MANAGERS})
            task = s.get(TaskRow, task_id)
            if task is None or task.project_id != self.project_id:
                raise NotVisible(f"no task {task_id}")
            image = s.get(ImageRow, task.image_id)
            assert image is not None  # foreign key
            twin = s.execute(
                select(TaskRow.id)
                .where(
                    TaskRow.batch_id == task.batch_id,
                    TaskRow.image_id == task.image_id,
                    TaskRow.cycle == task.cycle,
                    TaskRow.purpose == task.purpose,
                    TaskRow.id != task.id,
                )
                .order_by(TaskRow.id)
                .limit(1)
            ).scalar()
            return twin, image.width, image.height

    def review_labels(self, reviewer: str, task_id: int) -> Annotations:
        """A submitted task's labels for a reviewer who did not make them."""
        with self.db.session() as s:
            me = self._require_role(s, reviewer, {"reviewer", *MANAGERS})
            task = s.get(TaskRow, task_id)
            if task is None or task.project_id != self.project_id:
                raise NotVisible(f"no task {task_id}")
            if task.assignee_id == me.id:
                raise PermissionDenied(f"{reviewer!r} made task {task_id}: no self-review")
            if task.purpose not in WORK_PURPOSES or task.status != "submitted":
                raise PermissionDenied(f"task {task_id} is not awaiting review")
            assert task.head_revision_id is not None
            return self._external(s, load_annotations(s, [task.head_revision_id]))

    def review(
        self,
        reviewer: str,
        task_id: int,
        decisions: Sequence[tuple[int, str, str | None]],
        *,
        severity: str = "major",
        comment: str = "",
        work_seconds: float | None = None,
    ) -> dict[str, int]:
        """Record per-object verdicts on a task's head revision.

        ``decisions``: (object key = ``Annotations.id``, ``accept`` | ``reject``, defect
        type or None). An object key of -1 with a ``missing`` defect records an object the
        annotator did not draw. Objects not named are accepted.
        """
        with self.db.session() as s:
            me = self._require_role(s, reviewer, {"reviewer", *MANAGERS})
            task = s.get(TaskRow, task_id)
            if task is None or task.project_id != self.project_id:
                raise NotVisible(f"no task {task_id}")
            if task.assignee_id == me.id:
                raise PermissionDenied(f"{reviewer!r} made task {task_id}: no self-review")
            if task.purpose not in WORK_PURPOSES or task.status != "submitted":
                raise WorkflowError(f"task {task_id} is not awaiting review ({task.status})")
            assert task.head_revision_id is not None
            already = s.execute(
                select(ReviewDecisionRow.id)
                .where(ReviewDecisionRow.revision_id == task.head_revision_id)
                .limit(1)
            ).first()
            if already is not None:
                raise WorkflowError(
                    f"task {task_id} revision {task.head_revision_id} is already reviewed"
                )
            head = load_annotations(s, [task.head_revision_id])
            known = set(head.id.tolist())
            verdict_of: dict[int, tuple[str, str | None]] = {}
            missing = 0  # each (-1, reject, missing) is one object the annotator did not draw
            for key, verdict, defect in decisions:
                if verdict not in ("accept", "reject"):
                    raise WorkflowError(f"verdict must be accept or reject, got {verdict!r}")
                if verdict == "reject" and defect not in DEFECT_TYPES:
                    raise WorkflowError(
                        f"a rejection names a defect type ({', '.join(DEFECT_TYPES)}), "
                        f"got {defect!r}"
                    )
                if key == -1:
                    if verdict != "reject" or defect != "missing":
                        raise WorkflowError("object key -1 only records a missing object")
                    missing += 1
                    continue
                if key not in known:
                    raise WorkflowError(f"task {task_id} has no object {key}")
                verdict_of[key] = (verdict, defect)
            if severity not in SEVERITIES:
                raise WorkflowError(f"severity must be one of {SEVERITIES}, got {severity!r}")
            rows = []
            for key in sorted(known) + [-1] * missing:
                verdict, defect = verdict_of.get(key, ("reject", "missing"))
                if key != -1:
                    verdict, defect = verdict_of.get(key, ("accept", None))
                rows.append(
                    {
                        "task_id": task.id,
                        "revision_id": task.head_revision_id,
                        "object_key": None if key == -1 else key,
                        "reviewer_id": me.id,
                        "verdict": verdict,
                        "defect_type": defect,
                        "severity": severity if verdict == "reject" else None,
                        "comment": comment,
                        "created_at": self.clock(),
                    }
                )
            if rows:
                s.execute(insert(ReviewDecisionRow), rows)
            rejected = [r for r in rows if r["verdict"] == "reject"]
            batch = s.get(BatchRow, task.batch_id) if task.batch_id else None
            if rejected:
                s.execute(
                    insert(DefectRow),
                    [
                        {
                            "project_id": self.project_id,
                            "batch_id": task.batch_id,
                            "image_id": task.image_id,
                            "revision_id": task.head_revision_id,
                            "object_key": r["object_key"],
                            "annotator_id": task.assignee_id,
                            "type": r["defect_type"],
                            "severity": severity,
                            "found_by": "review",
                            "reporter_id": me.id,
                            "cycle": batch.rework_cycle if batch else 0,
                            "resolved": False,
                            "created_at": self.clock(),
                        }
                        for r in rejected
                    ],
                )
            self._log_work(s, me.id, task, "review", work_seconds, len(known))
            append_event(
                s,
                actor=reviewer,
                action="task.review",
                entity_type="task",
                entity_id=task.id,
                after={"accepted": len(rows) - len(rejected), "rejected": len(rejected)},
                details={"revision": task.head_revision_id},
            )
            return {"accepted": len(rows) - len(rejected), "rejected": len(rejected)}

    def adjudications(self, batch: int | str, *, actor: str) -> list[dict[str, Any]]:
        """Open disagreements of a batch (adjudicators, managers)."""
        with self.db.session() as s:
            self._require_role(s, actor, {"adjudicator", *MANAGERS})
            row = self._batch(s, batch)
            store_ids, images = image_table(s, self.project_id)
            return [
                {
                    "id": a.id,
                    "image_id": int(images.id[np.searchsorted(store_ids, a.image_id)]),
                    "reason": a.reason,
                    "payload": a.payload,
                }
                for a in s.execute(
                    select(AdjudicationRow)
                    .where(AdjudicationRow.batch_id == row.id, AdjudicationRow.status == "open")
                    .order_by(AdjudicationRow.id)
                ).scalars()
            ]

    def adjudication_case(self, adjudication_id: int, *, actor: str) -> dict[str, Any]:
        """One dispute as the adjudication page shows it: version A beside version B.

        The two annotators of a blind double item are *A* (the lower task id) and *B*;
        their names stay hidden. ``versions["a"]`` / ``["b"]`` hold the open disputed
        objects each of them drew here (the case itself and, when the other annotator drew
        an overlapping object that also missed the consensus, that rival: see
        :meth:`_dispute`); an empty version means that annotator drew nothing there.

        Returns
        -------
        dict
            ``id``, ``batch_id``, ``batch``, ``image_id`` (external), ``width``,
            ``height``, ``task_a``, ``task_b`` (task ids, for the image), ``status``,
            ``reason`` (why it was disputed), ``decision`` (once decided), ``group`` (the
            adjudication ids one A/B choice decides), ``versions`` (``a``/``b``: lists of
            ``{"adjudication_id", "class_id", "bbox"}``), ``iou`` (box IoU of the two
            versions; None when one is empty), ``tier`` (the class's IoU threshold) and
            ``context`` (the item's agreed final objects: ``class_id``, ``bbox``).
        """
        with self.db.session() as s:
            self._require_role(s, actor, {"adjudicator", *MANAGERS})
            row, batch = self._adjudication_row(s, adjudication_id)
            slots, group = self._dispute(s, row)
            image = s.get(ImageRow, row.image_id)
            assert image is not None  # foreign key
            item = s.get(BatchItemRow, (row.batch_id, row.image_id))
            final = (
                load_annotations(s, [item.final_revision_id])
                if item is not None and item.final_revision_id is not None
                else Annotations.empty()
            )
            versions: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
            for member in group:
                slot = "a" if member.payload.get("drawn_by") == slots[0][1] else "b"
                versions[slot].append(
                    {
                        "adjudication_id": member.id,
                        "class_id": int(member.payload["class_id"]),
                        "bbox": [float(v) for v in member.payload["bbox"]],
                    }
                )
            iou = None
            if versions["a"] and versions["b"]:
                boxes = [np.array([v[0]["bbox"]], dtype=np.float64) for v in versions.values()]
                iou = round(float(box_iou_matrix(boxes[0], boxes[1])[0, 0]), 4)
            spec = parse_spec(self._spec_row(s).toml)
            tiers = {c.id: c.iou_threshold for c in spec.classes}
            return {
                "id": row.id,
                "batch_id": batch.id,
                "batch": batch.name,
                "image_id": image.external_id,
                "width": image.width,
                "height": image.height,
                "task_a": slots[0][0],
                "task_b": slots[1][0],
                "status": row.status,
                "reason": row.reason,
                "decision": row.decision,
                "group": [member.id for member in group],
                "versions": versions,
                "iou": iou,
                "tier": tiers.get(int(row.payload["class_id"])),
                "context": [
                    {"class_id": int(c), "bbox": [float(v) for v in b]}
                    for c, b in zip(final.class_id.tolist(), final.bbox)
                    if np.isfinite(b).all()
                ],
            }

    def _adjudication_row(
        self, s: Session, adjudication_id: int
    ) -> tuple[AdjudicationRow, BatchRow]:
        row = s.get(AdjudicationRow, adjudication_id)
        batch = s.get(BatchRow, row.batch_id) if row is not None else None
        if row is None or batch is None or batch.project_id != self.project_id:
            raise NotFound(f"no open adjudication {adjudication_id}")
        return row, batch

    def _dispute(
        self, s: Session, row: AdjudicationRow
    ) -> tuple[
        tuple[tuple[int | None, int | None], tuple[int | None, int | None]], list[AdjudicationRow]
    ]:
        """The item's two annotator slots and the adjudications one A/B choice decides.

        Slots: ``((task A, annotator A), (task B, annotator B))``, A being the item's work
        task of the dispute's cycle with the lower id (without two such tasks: A drew the
        object, B missed it). The group is the case itself plus its *rival*: the open
        adjudication of the same item and cycle drawn by the other annotator whose box is
        the case's best match and whose best match is the case (IoU >= ``RIVAL_IOU``): two
        versions of one object that missed the consensus tier, not two different objects.
        """
        cycle = int(row.payload.get("cycle", 0))
        tasks = s.execute(
            select(TaskRow.id, TaskRow.assignee_id)
            .where(
                TaskRow.batch_id == row.batch_id,
                TaskRow.image_id == row.image_id,
                TaskRow.cycle == cycle,
                TaskRow.purpose.in_(WORK_PURPOSES),
            )
            .order_by(TaskRow.id)
        ).all()
        slots: tuple[tuple[int | None, int | None], tuple[int | None, int | None]]
        if len(tasks) >= 2 and {tasks[0][1], tasks[1][1]} >= {row.payload.get("drawn_by")}:
            slots = ((tasks[0][0], tasks[0][1]), (tasks[1][0], tasks[1][1]))
        else:
            slots = ((None, row.payload.get("drawn_by")), (None, row.payload.get("missed_by")))
        if row.status != "open":
            decided = (row.decision or {}).get("group", [row.id])
            group = [
                r
                for r in s.execute(
                    select(AdjudicationRow)
                    .where(AdjudicationRow.id.in_(decided))
                    .order_by(AdjudicationRow.id)
                ).scalars()
            ]
            return slots, group or [row]
        others = [
            r
            for r in s.execute(
                select(AdjudicationRow)
                .where(
                    AdjudicationRow.batch_id == row.batch_id,
                    AdjudicationRow.image_id == row.image_id,
                    AdjudicationRow.status == "open",
                    AdjudicationRow.id != row.id,
                )
                .order_by(AdjudicationRow.id)
            ).scalars()
            if int(r.payload.get("cycle", 0)) == cycle
        ]
        mine = row.payload.get("drawn_by")
        same = [row, *(r for r in others if r.payload.get("drawn_by") == mine)]
        rivals = [r for r in others if r.payload.get("drawn_by") != mine]
        if not rivals:
            return slots, [row]
        iou = box_iou_matrix(
            np.array([r.payload["bbox"] for r in same], dtype=np.float64),
            np.array([r.payload["bbox"] for r in rivals], dtype=np.float64),
        )
        best = int(np.argmax(iou[0]))
        if iou[0, best] < RIVAL_IOU or int(np.argmax(iou[:, best])) != 0:
            return slots, [row]
        return slots, sorted([row, rivals[best]], key=lambda r: r.id)

    def adjudicate(
        self,
        adjudication_id: int,
        *,
        keep: bool | None = None,
        choice: str | None = None,
        reason: str | None = None,
        reason_code: str | None = None,
        actor: str,
        work_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Decide a disagreement, with the reason; the decision and reason are audited.

        Either ``keep`` (keep this one disputed object in the item's final labels, or drop
        it) or ``choice`` (``"a"`` or ``"b"``: take that annotator's version of the
        disputed object; see :meth:`adjudication_case`). A choice decides the whole group:
        the chosen annotator's objects are kept, the other's dropped, so choosing the
        annotator who drew nothing drops the lone object. The annotator who was wrong gets
        the defect: a kept object was *missing* for the other one, a dropped one an
        *extra* of the one who drew it.

        ``reason`` (free text) and ``reason_code`` (one of ``ADJUDICATION_REASONS``): a
        choice needs at least one of them (the API and the pages ask it of every
        decision); only the older keep/drop callers (the CLI) may still omit it.

        Returns
        -------
        dict
            ``resolved`` (adjudication ids), ``kept`` and ``dropped`` (their subsets).
        """
        if (keep is None) == (choice is None):
            raise WorkflowError("adjudicate: give either keep= or choice=, not both or neither")
        if choice is not None and choice not in ("a", "b"):
            raise WorkflowError(f"adjudicate: choice must be 'a' or 'b', got {choice!r}")
        reason = reason.strip() or None if reason is not None else None
        if reason is not None and len(reason) > MAX_REASON_CHARS:
            raise WorkflowError(f"adjudicate: reason is over {MAX_REASON_CHARS} characters")
        if reason_code is not None and reason_code not in ADJUDICATION_REASONS:
            raise WorkflowError(
                f"adjudicate: unknown reason_code {reason_code!r}; expected one of "
                + ", ".join(ADJUDICATION_REASONS)
            )
        if choice is not None and reason is None and reason_code is None:
            raise WorkflowError("adjudicate: a choice between versions needs a reason")
        with self.db.session() as s:
            me = self._require_role(s, actor, {"adjudicator", *MANAGERS})
            row, batch = self._adjudication_row(s, adjudication_id)
            if row.status != "open":  # decided already: the state refuses a second verdict
                raise WorkflowError(f"no open adjudication {adjudication_id}")
            item = s.get(BatchItemRow, (row.batch_id, row.image_id))
            assert item is not None and item.final_revision_id is not None
            if choice is None:
                group = [row]
                keeps = {row.id: bool(keep)}
            else:
                slots, group = self._dispute(s, row)
                chosen = slots[0 if choice == "a" else 1][1]
                keeps = {m.id: m.payload.get("drawn_by") == chosen for m in group}
            kept = [m for m in group if keeps[m.id]]
            if kept:
                final = load_annotations(s, [item.final_revision_id])
                first = int(final.id.max(initial=0)) + 1
                added = Annotations.create(
                    id=list(range(first, first + len(kept))),
                    image_id=[row.image_id] * len(kept),
                    class_id=[m.payload["class_id"] for m in kept],
                    bbox=[m.payload["bbox"] for m in kept],
                    source=[Source.MERGED] * len(kept),
                )
                task_id = s.execute(
                    select(RevisionRow.task_id).where(RevisionRow.id == item.final_revision_id)
                ).scalar_one()
                system = _ensure_user(s, SYSTEM_USER, ["admin"], None)
                saved = save_revision(
                    s,
                    task_id=task_id,
                    base_revision_id=item.final_revision_id,
                    author_id=system,
                    labels=Annotations.concat(
                        [final.replace(annotator_id=np.full(len(final), -1)), added]
                    ),
                    source=Source.MERGED,
                )
                item.final_revision_id = saved.revision_id
            s.execute(
                insert(DefectRow),
                [
                    {
                        "project_id": self.project_id,
                        "batch_id": m.batch_id,
                        "image_id": m.image_id,
                        "revision_id": None,
                        "object_key": None,
                        "annotator_id": who,
                        "type": kind,
                        "severity": "major",
                        "found_by": "adjudication",
                        "reporter_id": me.id,
                        "cycle": int(m.payload.get("cycle", batch.rework_cycle)),
                        "resolved": False,
                        "created_at": self.clock(),
                    }
                    for m, who, kind in _adjudication_defects(group, keeps)
                ],
            )
            self._log_work(
                s,
                me.id,
                None,
                "adjudicate",
                work_seconds,
                len(group),
                batch_id=batch.id,
                cycle=batch.rework_cycle,
            )
            ids = [m.id for m in group]
            for m in group:
                decision = {
                    "keep": keeps[m.id],
                    "choice": choice,
                    "reason": reason,
                    "reason_code": reason_code,
                    "group": ids,
                }
                m.status = "resolved"
                m.decision = decision
                m.adjudicator_id = me.id
                m.resolved_at = self.clock()
                append_event(
                    s,
                    actor=actor,
                    action="adjudication.decide",
                    entity_type="adjudication",
                    entity_id=m.id,
                    after=decision,
                    details={**decision, "batch": batch.id},
                )
            return {
                "resolved": ids,
                "kept": [m.id for m in kept],
                "dropped": [m.id for m in group if not keeps[m.id]],
            }

    # --- QA sampling ------------------------------------------------------------------------

    def qa_queue(self, inspector: str, batch: int | str) -> list[int]:
        """QA tasks of the current cycle assigned to the caller and not yet submitted."""
        with self.db.session() as s:
            me = self._require_role(s, inspector, {"reviewer", *MANAGERS})
            row = self._batch(s, batch)
            return list(
                s.execute(
                    select(TaskRow.id)
                    .where(
                        TaskRow.batch_id == row.id,
                        TaskRow.purpose == "qa",
                        TaskRow.cycle == row.rework_cycle,
                        TaskRow.assignee_id == me.id,
                        TaskRow.status == "assigned",
                    )
                    .order_by(TaskRow.id)
                ).scalars()
            )

    def qa_labels(self, inspector: str, task_id: int) -> Annotations:
        """The final labels of a sampled item, for its QA inspector."""
        with self.db.session() as s:
            me = self._user(s, inspector)
            task = s.get(TaskRow, task_id)
            if task is None or task.purpose != "qa" or task.assignee_id != me.id:
                raise NotVisible(f"no QA task {task_id} for {inspector!r}")
            item = s.get(BatchItemRow, (task.batch_id, task.image_id))
            assert item is not None and item.final_revision_id is not None
            return self._external(s, load_annotations(s, [item.final_revision_id]))

    def qa_inspect(
        self,
        inspector: str,
        task_id: int,
        defects: Sequence[tuple[int, str]],
        *,
        work_seconds: float | None = None,
    ) -> None:
        """Record a sampled item's defects ((object key or -1, defect type)); [] = clean."""
        with self.db.session() as s:
            me = self._user(s, inspector)
            task = s.get(TaskRow, task_id)
            if task is None or task.purpose != "qa" or task.assignee_id != me.id:
                raise NotVisible(f"no QA task {task_id} for {inspector!r}")
            if task.status != "assigned":
                raise WorkflowError(f"QA task {task_id} is already {task.status}")
            batch = s.get(BatchRow, task.batch_id)
            assert batch is not None
            item = s.get(BatchItemRow, (task.batch_id, task.image_id))
            assert item is not None
            for _, defect in defects:
                if defect not in DEFECT_TYPES:
                    raise WorkflowError(f"unknown defect type {defect!r}")
            annotator = s.execute(
                select(RevisionRow.author_id).where(RevisionRow.id == item.final_revision_id)
            ).scalar()
            if defects:
                s.execute(
                    insert(DefectRow),
                    [
                        {
                            "project_id": self.project_id,
                            "batch_id": task.batch_id,
                            "image_id": task.image_id,
                            "revision_id": item.final_revision_id,
                            "object_key": None if key == -1 else key,
                            "annotator_id": annotator,
                            "type": defect,
                            "severity": "major",
                            "found_by": "qa",
                            "reporter_id": me.id,
                            "cycle": batch.rework_cycle,
                            "resolved": False,
                            "created_at": self.clock(),
                        }
                        for key, defect in defects
                    ],
                )
            self._log_work(s, me.id, task, "qa", work_seconds, len(defects))
            task.status = "submitted"
            task.submitted_at = self.clock()
            append_event(
                s,
                actor=inspector,
                action="qa.inspect",
                entity_type="task",
                entity_id=task.id,
                after={"defects": len(defects)},
            )

    # --- the stage machine ---------------------------------------------------------------

    def advance(self, batch: int | str, *, actor: str, seed: int = 0) -> GateResult:
        """Evaluate the batch's current gate and move it on, send rework, or wait.

        Every evaluation is recorded (gate inputs, value, threshold, verdict) with an audit
        event, in the same transaction as the move it causes.

        Raises
        ------
        GateFailed
            The batch is blocked (rework cycles exhausted): a manager must intervene.
        WorkflowError
            The batch is already delivered.
        """
        with self.db.session() as s:
            self._require_role(s, actor, MANAGERS)
            row = self._batch(s, batch)
            stage = Stage(row.stage)
            if stage == Stage.DELIVERED:
                raise WorkflowError(f"batch {row.name!r} is delivered: nothing to advance")
            if row.state == "blocked":
                raise GateFailed(
                    f"batch {row.name!r} is blocked after {row.rework_cycle} rework cycles"
                )
            spec_row = s.get(SpecVersionRow, row.spec_version_id)
            assert spec_row is not None
            spec = parse_spec(spec_row.toml)
            evaluate = {
                Stage.SPEC: self._gate_spec,
                Stage.PILOT: self._gate_pilot,
                Stage.PRODUCTION: self._gate_production,
                Stage.PRELABEL: self._gate_prelabel,
                Stage.REVIEW: self._gate_review,
                Stage.QA: self._gate_qa,
                Stage.DELIVERY: self._gate_delivery,
            }[stage]
            result = evaluate(s, row, spec, spec_row)
            target: Stage | None = None
            if result.outcome == "rework":
                if row.rework_cycle >= spec.gates.max_rework_cycles:
                    result = replace(result, outcome="blocked")
                    row.state = "blocked"
                else:
                    target = REWORK_TARGET
            elif result.passed:
                target = NEXT[stage]
            result = replace(result, cycle=row.rework_cycle)
            s.add(
                GateResultRow(
                    batch_id=row.id,
                    stage=stage.value,
                    gate=result.gate,
                    cycle=row.rework_cycle,
                    value=result.value,
                    threshold=result.threshold,
                    passed=result.passed,
                    inputs={**result.inputs, "outcome": result.outcome},
                    created_at=self.clock(),
                )
            )
            before = {"stage": row.stage, "cycle": row.rework_cycle}
            if target is not None:
                check_transition(stage, target)
                if result.outcome == "rework":
                    self._send_rework(s, row, spec, result)
                    row.rework_cycle += 1
                self._enter(s, row, target, spec, seed)
                row.stage = target.value
                if target == Stage.DELIVERED:
                    row.state = "delivered"
            row.updated_at = self.clock()
            row.version += 1
            append_event(
                s,
                actor=actor,
                action="batch.advance",
                entity_type="batch",
                entity_id=row.id,
                before=before,
                after={"stage": row.stage, "cycle": row.rework_cycle},
                details={
                    "gate": result.gate,
                    "value": result.value,
                    "threshold": result.threshold,
                    "passed": result.passed,
                    "outcome": result.outcome,
                },
            )
            return result

    # gates ---------------------------------------------------------------------------------

    def _gate_spec(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        rules = len(spec.edge_cases)
        need = spec.gates.min_edge_case_rules
        passed = spec_row.locked and rules >= need
        return GateResult(
            Stage.SPEC,
            "edge_case_rules",
            float(rules),
            float(need),
            passed,
            {
                "spec_version": spec_row.version,
                "locked": spec_row.locked,
                "digest": spec_row.digest,
            },
            "advanced" if passed else "waiting",
        )

    def _gate_pilot(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        qualified = self._qualified(s, row)
        need = 2 if spec.assignment.double_annotation_rate > 0 else 1
        failed = (
            s.execute(
                select(UserRow.name)
                .join(QualificationRow, QualificationRow.user_id == UserRow.id)
                .where(
                    QualificationRow.taxonomy_digest == spec_row.taxonomy_digest,
                    QualificationRow.passed.is_(False),
                )
                .distinct()
            )
            .scalars()
            .all()
        )
        passed = len(qualified) >= need
        return GateResult(
            Stage.PILOT,
            "qualified_annotators",
            float(len(qualified)),
            float(need),
            passed,
            {
                "qualified": sorted(qualified.values()),
                "failed": sorted(set(failed) - set(qualified.values())),
                "pilot_agreement": spec.gates.pilot_agreement,
            },
            "advanced" if passed else "waiting",
        )

    def _cycle_tasks(
        self, s: Session, row: BatchRow, purposes: Sequence[str] = PRODUCTION_PURPOSES
    ) -> list[TaskRow]:
        """The batch's tasks of the current cycle with these purposes."""
        return list(
            s.execute(
                select(TaskRow).where(
                    TaskRow.batch_id == row.id,
                    TaskRow.cycle == row.rework_cycle,
                    TaskRow.purpose.in_(purposes),
                )
            ).scalars()
        )

    def _gate_production(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        tasks = self._cycle_tasks(s, row)
        if not tasks:
            return GateResult(
                Stage.PRODUCTION,
                "submitted",
                0.0,
                1.0,
                False,
                {"tasks": 0, "hint": "assign the batch first"},
                "waiting",
            )
        submitted = sum(t.status == "submitted" for t in tasks)
        value = submitted / len(tasks)
        inputs: dict[str, Any] = {"tasks": len(tasks), "submitted": submitted}
        inputs["honeypots"] = self._honeypot_scores(s, row, spec, tasks)
        return GateResult(
            Stage.PRODUCTION,
            "submitted",
            value,
            1.0,
            value >= 1.0,
            inputs,
            "advanced" if value >= 1.0 else "waiting",
        )

    def _honeypot_scores(
        self, s: Session, row: BatchRow, spec: ProgramSpec, tasks: list[TaskRow]
    ) -> dict[str, float]:
        """F1 of each annotator's honeypot/gold tasks against the reference answers."""
        hidden = [t for t in tasks if t.purpose in ("gold", "honeypot") and t.head_revision_id]
        if not hidden:
            return {}
        answers = dict(
            s.execute(
                select(GoldItemRow.image_id, GoldItemRow.revision_id).where(
                    GoldItemRow.project_id == self.project_id
                )
            ).all()
        )
        names = dict(s.execute(select(UserRow.id, UserRow.name)).all())
        reference = load_annotations(s, sorted({answers[t.image_id] for t in hidden}), ids="row")
        theirs = load_annotations(
            s, [t.head_revision_id for t in hidden if t.head_revision_id], ids="row"
        )
        store_ids, images = image_table(s, self.project_id)
        out: dict[str, float] = {}
        for annotator in sorted({t.assignee_id for t in hidden}):
            mine = theirs[theirs.annotator_id == annotator]
            seen = np.unique([t.image_id for t in hidden if t.assignee_id == annotator])
            ref = reference[np.isin(reference.image_id, seen)]
            table = _with_ids(images[np.searchsorted(store_ids, seen)], seen)
            result = compare(Dataset(ref, table, spec.taxonomy()), mine, swaps=False)
            out[names[annotator]] = _f1(result.overall)
        return out

    def _gate_prelabel(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        heads = [t.head_revision_id for t in self._work_tasks(s, row) if t.head_revision_id]
        # model-proposed objects in the heads that nobody accepted, adjusted or rejected
        # (submit refuses them; the gate also catches labels that arrived another way)
        pending = unreviewed_prelabels(s, heads)
        return GateResult(
            Stage.PRELABEL,
            "unreviewed_prelabels",
            float(pending),
            0.0,
            pending == 0,
            {"revisions": len(heads)},
            "advanced" if pending == 0 else "waiting",
        )

    def _work_tasks(self, s: Session, row: BatchRow) -> list[TaskRow]:
        """The production/rework tasks of the current cycle (the labels under review)."""
        return self._cycle_tasks(s, row, WORK_PURPOSES)

    def _gate_review(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        tasks = self._work_tasks(s, row)
        per_item: dict[int, list[TaskRow]] = {}
        for t in tasks:
            per_item.setdefault(t.image_id, []).append(t)
        single = {image: group[0] for image, group in per_item.items() if len(group) == 1}
        heads = [t.head_revision_id for t in single.values()]
        decisions = s.execute(
            select(ReviewDecisionRow.revision_id, ReviewDecisionRow.verdict).where(
                ReviewDecisionRow.revision_id.in_(heads)
            )
        ).all()
        reviewed = {d.revision_id for d in decisions}
        unreviewed = [t.id for t in single.values() if t.head_revision_id not in reviewed]
        accepted = sum(d.verdict == "accept" for d in decisions)
        judged = len(decisions)
        # dual items: the consensus computed on entering review
        entered = latest_gate_result(s, row.id, row.rework_cycle, gate="consensus")
        consensus = entered.inputs if entered is not None else None
        agreed = int(consensus.get("merged", 0)) if consensus else 0
        disputed = int(consensus.get("disputed", 0)) if consensus else 0
        open_adjudications = int(
            s.execute(
                select(func.count())
                .select_from(AdjudicationRow)
                .where(AdjudicationRow.batch_id == row.id, AdjudicationRow.status == "open")
            ).scalar_one()
        )
        total = judged + agreed + disputed
        value = (accepted + agreed) / total if total else None
        inputs = {
            "reviewed_objects": judged,
            "accepted_objects": accepted,
            "consensus_agreed": agreed,
            "consensus_disputed": disputed,
            "unreviewed_tasks": len(unreviewed),
            "open_adjudications": open_adjudications,
        }
        threshold = spec.gates.review_accuracy
        if unreviewed or open_adjudications:
            return GateResult(
                Stage.REVIEW, "review_accuracy", value, threshold, False, inputs, "waiting"
            )
        passed = value is None or value >= threshold
        # a passed gate still never delivers a rejected object: those items go back for a
        # targeted fix (outcome rework) while the others are accepted
        rejected_revisions = {d.revision_id for d in decisions if d.verdict == "reject"}
        rejected = {i for i, t in single.items() if t.head_revision_id in rejected_revisions}
        inputs["rejected_items"] = len(rejected)
        # the items review accepted are final either way: a failed gate sends back the
        # rejected ones (or, by policy, the whole batch, whose finals rework clears again);
        # an accepted item left without a final revision would reach QA with no labels
        self._accept_single(s, row, {i: t for i, t in single.items() if i not in rejected})
        outcome = "rework" if (not passed or rejected) else "advanced"
        return GateResult(
            Stage.REVIEW, "review_accuracy", value, threshold, passed, inputs, outcome
        )

    def _accept_single(self, s: Session, row: BatchRow, single: dict[int, TaskRow]) -> None:
        """Single-annotated items: the reviewed head becomes the item's final revision."""
        for image, task in single.items():
            s.execute(
                update(BatchItemRow)
                .where(BatchItemRow.batch_id == row.id, BatchItemRow.image_id == image)
                .values(final_revision_id=task.head_revision_id, state="reviewed")
            )

    def _gate_qa(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        tasks = list(
            s.execute(
                select(TaskRow).where(
                    TaskRow.batch_id == row.id,
                    TaskRow.purpose == "qa",
                    TaskRow.cycle == row.rework_cycle,
                )
            ).scalars()
        )
        lot = int(
            s.execute(
                select(func.count())
                .select_from(BatchItemRow)
                .where(BatchItemRow.batch_id == row.id)
            ).scalar_one()
        )
        done = [t for t in tasks if t.status == "submitted"]
        defects = s.execute(
            select(DefectRow.image_id, DefectRow.type).where(
                DefectRow.batch_id == row.id,
                DefectRow.found_by == "qa",
                DefectRow.cycle == row.rework_cycle,
            )
        ).all()
        gates = spec.gates
        inputs: dict[str, Any] = {
            "unit": gates.qa_unit,
            "lot_images": lot,
            "sampled_images": len(done),
            "planned_images": len(tasks),
            "defective_images": len({d.image_id for d in defects}),
            "confidence": gates.confidence,
        }
        if len(done) < len(tasks) or not done:
            return GateResult(
                Stage.QA, "qa_defect_rate", None, gates.defect_limit, False, inputs, "waiting"
            )
        if gates.qa_unit == "image":
            n, d = len(done), inputs["defective_images"]
            bound = upper_bound(d, n, gates.confidence, lot_size=lot)
            inputs["bound"] = "hypergeometric"
        else:
            # objects inspected: every final object of the sampled images, plus the objects
            # the inspectors found missing (they should have been there)
            finals = s.execute(
                select(func.coalesce(func.sum(RevisionRow.object_count), 0))
                .join(BatchItemRow, BatchItemRow.final_revision_id == RevisionRow.id)
                .where(
                    BatchItemRow.batch_id == row.id,
                    BatchItemRow.image_id.in_([t.image_id for t in done]),
                )
            ).scalar_one()
            missing = sum(d.type == "missing" for d in defects)
            n, d = int(finals) + missing, len(defects)
            bound = upper_bound(d, n, gates.confidence) if n else 1.0
            # images are sampled, objects counted: defects that cluster in an image make
            # this bound optimistic; qa_unit = "image" is the exact alternative
            inputs["bound"] = "clopper-pearson"
        inputs |= {"sampled": n, "defects": d, "defect_rate": d / n if n else None}
        passed = bound <= gates.defect_limit
        inputs["decision"] = "release" if passed else "block"
        return GateResult(
            Stage.QA,
            "qa_defect_rate",
            bound,
            gates.defect_limit,
            passed,
            inputs,
            "advanced" if passed else "rework",
        )

    def _gate_delivery(
        self, s: Session, row: BatchRow, spec: ProgramSpec, spec_row: SpecVersionRow
    ) -> GateResult:
        states = dict(
            s.execute(
                select(BatchItemRow.state, func.count())
                .where(BatchItemRow.batch_id == row.id)
                .group_by(BatchItemRow.state)
            ).all()
        )
        total = sum(states.values())
        accepted = states.get("accepted", 0)
        value = accepted / total if total else 0.0
        return GateResult(
            Stage.DELIVERY,
            "accepted",
            value,
            1.0,
            value >= 1.0,
            {"items": states},
            "advanced" if value >= 1.0 else "waiting",
        )

    # stage entry and rework ------------------------------------------------------------------

    def _enter(
        self, s: Session, row: BatchRow, target: Stage, spec: ProgramSpec, seed: int
    ) -> None:
        if target == Stage.REVIEW:
            self._consensus(s, row, spec)
        elif target == Stage.QA:
            self._draw_qa_sample(s, row, spec, seed)
        elif target == Stage.DELIVERY:
            s.execute(
                update(BatchItemRow)
                .where(BatchItemRow.batch_id == row.id, BatchItemRow.final_revision_id.is_not(None))
                .values(state="accepted")
            )

    def _consensus(self, s: Session, row: BatchRow, spec: ProgramSpec) -> None:
        """Merge every dual-annotated item of this cycle; disagreements go to adjudication."""
        tasks = self._work_tasks(s, row)
        per_item: dict[int, list[TaskRow]] = {}
        for t in tasks:
            per_item.setdefault(t.image_id, []).append(t)
        dual = {image: group for image, group in per_item.items() if len(group) >= 2}
        merged_count = disputed = 0
        if dual:
            groups = [dual[image] for image in sorted(dual)]
            # one label set per annotator slot: the first and the second task of each item
            slot_a = load_annotations(
                s, [g[0].head_revision_id for g in groups if g[0].head_revision_id], ids="row"
            )
            slot_b = load_annotations(
                s, [g[1].head_revision_id for g in groups if g[1].head_revision_id], ids="row"
            )
            result = merge([slot_a, slot_b], taxonomy=spec.taxonomy(), quorum=1.0)
            merged = result.annotations
            system = _ensure_user(s, SYSTEM_USER, ["admin"], None)
            images = np.array(sorted(dual), dtype=np.int64)
            consensus_tasks = add_tasks(
                s,
                project_id=self.project_id,
                batch_id=row.id,
                image_id=images,
                assignee_id=np.full(len(images), system),
                purpose="consensus",
                cycle=row.rework_cycle,
            )
            position = np.searchsorted(images, merged.image_id)
            # the spec's attributes were voted by the merge; its bookkeeping columns
            # (cluster_id, members) describe the merge, not the object, and stay out
            declared = {a.name for a in spec.taxonomy().attributes}
            merged = merged.replace(
                id=np.arange(1, len(merged) + 1),
                attributes={k: v for k, v in merged.attributes.items() if k in declared},
                annotator_id=np.full(len(merged), -1),
            )
            revisions = import_revisions(
                s,
                consensus_tasks,
                np.full(len(images), system),
                merged,
                position,
                source=Source.MERGED,
            )
            s.execute(
                update(TaskRow)
                .where(TaskRow.id.in_(consensus_tasks.tolist()))
                .values(status="submitted")
            )
            for image, revision in zip(images.tolist(), revisions.tolist()):
                s.execute(
                    update(BatchItemRow)
                    .where(BatchItemRow.batch_id == row.id, BatchItemRow.image_id == image)
                    .values(final_revision_id=revision, state="reviewed")
                )
            adj = result.adjudication
            if len(adj):
                cluster = adj.attributes["cluster_id"].values
                _, first_rows = np.unique(cluster, return_index=True)
                slot = adj.attributes["annotator_index"].values
                slot_people = {
                    image: (g[0].assignee_id, g[1].assignee_id) for image, g in dual.items()
                }
                s.execute(
                    insert(AdjudicationRow),
                    [
                        {
                            "batch_id": row.id,
                            "image_id": int(adj.image_id[i]),
                            "reason": "below_quorum",
                            "payload": {
                                "class_id": int(adj.class_id[i]),
                                "bbox": [float(v) for v in adj.bbox[i]],
                                "cycle": row.rework_cycle,
                                # who drew it and who did not: the adjudicator's verdict
                                # turns into a defect of one of them
                                "drawn_by": slot_people[int(adj.image_id[i])][int(slot[i])],
                                "missed_by": slot_people[int(adj.image_id[i])][1 - int(slot[i])],
                            },
                            "status": "open",
                            "created_at": self.clock(),
                        }
                        for i in first_rows.tolist()
                    ],
                )
            merged_count = len(result.annotations)
            disputed = result.n_adjudication_clusters
        s.add(
            GateResultRow(
                batch_id=row.id,
                stage=Stage.REVIEW.value,
                gate="consensus",
                cycle=row.rework_cycle,
                value=merged_count / (merged_count + disputed) if merged_count + disputed else None,
                threshold=None,
                passed=True,
                inputs={"items": len(dual), "merged": merged_count, "disputed": disputed},
                created_at=self.clock(),
            )
        )

    def _draw_qa_sample(self, s: Session, row: BatchRow, spec: ProgramSpec, seed: int) -> None:
        """Draw this cycle's QA sample of images.

        ``qa_unit = "image"``: ``max(rate x lot, zero-acceptance n)`` images, at most the lot.
        ``"object"``: images in random order until they hold ``max(rate x objects,
        zero-acceptance n)`` objects (and at least ``rate x lot`` images), at most the lot.
        """
        rows = s.execute(
            select(BatchItemRow.image_id, func.coalesce(RevisionRow.object_count, 0))
            .outerjoin(RevisionRow, RevisionRow.id == BatchItemRow.final_revision_id)
            .where(BatchItemRow.batch_id == row.id)
            .order_by(BatchItemRow.image_id)
        ).all()
        items = np.array([r[0] for r in rows], dtype=np.int64)
        objects = np.array([r[1] for r in rows], dtype=np.int64)
        lot = len(items)
        gates = spec.gates
        rng = np.random.default_rng([seed, row.id, row.rework_cycle])
        order = rng.permutation(lot)
        min_images = math.ceil(gates.qa_sample_rate * lot)
        if gates.qa_unit == "image":
            n = max(
                min_images,
                zero_acceptance_sample_size(gates.defect_limit, gates.confidence, lot_size=lot),
            )
        else:
            target = max(
                math.ceil(gates.qa_sample_rate * objects.sum()),
                zero_acceptance_sample_size(gates.defect_limit, gates.confidence),
            )
            reached = np.flatnonzero(np.cumsum(objects[order]) >= target)
            n = max(min_images, int(reached[0]) + 1 if len(reached) else lot)
        n = min(n, lot)
        sample = np.sort(items[order[:n]])
        # inspectors: every active reviewer, round robin
        reviewer_ids = [
            u.id for u in s.execute(select(UserRow)).scalars() if "reviewer" in u.roles and u.active
        ]
        if not reviewer_ids:
            raise WorkflowError("QA sampling needs at least one user with the reviewer role")
        assignee = np.array(reviewer_ids, dtype=np.int64)[np.arange(n) % len(reviewer_ids)]
        add_tasks(
            s,
            project_id=self.project_id,
            batch_id=row.id,
            image_id=sample,
            assignee_id=assignee,
            purpose="qa",
            cycle=row.rework_cycle,
        )

    def _send_rework(
        self, s: Session, row: BatchRow, spec: ProgramSpec, result: GateResult
    ) -> None:
        """Rework tasks for exactly the defective items (or all, by policy), next cycle."""
        cycle = row.rework_cycle
        if result.stage == Stage.QA:
            found_by = ["qa"]
        elif result.passed:  # accuracy met: only the rejected items need fixing
            found_by = ["review"]
        else:  # accuracy missed: disputes count against the batch too
            found_by = ["review", "adjudication"]
        defective = set(
            s.execute(
                select(DefectRow.image_id).where(
                    DefectRow.batch_id == row.id,
                    DefectRow.cycle == cycle,
                    DefectRow.found_by.in_(found_by),
                )
            ).scalars()
        )
        if result.stage == Stage.REVIEW:
            defective |= set(
                s.execute(
                    select(AdjudicationRow.image_id).where(
                        AdjudicationRow.batch_id == row.id, AdjudicationRow.status == "open"
                    )
                ).scalars()
            )
        items = {
            r.image_id: r
            for r in s.execute(
                select(BatchItemRow).where(BatchItemRow.batch_id == row.id)
            ).scalars()
        }
        batch_policy = spec.gates.rework_policy == "batch" and not result.passed
        chosen = sorted(items) if batch_policy else sorted(defective)
        if not chosen:
            # the gate failed but no item carries a defect of its own: the batch goes back
            chosen = sorted(items)
        qualified = sorted(self._qualified(s, row))
        # the original annotator of each item: the author of its latest work task
        original: dict[int, int] = {}
        previous_task: dict[int, int] = {}
        for t in s.execute(
            select(TaskRow)
            .where(TaskRow.batch_id == row.id, TaskRow.purpose.in_(WORK_PURPOSES))
            .order_by(TaskRow.id)
        ).scalars():
            original[t.image_id] = t.assignee_id
            previous_task[t.image_id] = t.id
        assignees = []
        for image in chosen:
            person = original.get(image, qualified[0])
            if spec.assignment.rework_to == "other" and len(qualified) > 1:
                others = [q for q in qualified if q != person]
                person = others[image % len(others)]
            assignees.append(person)
        tasks = add_tasks(
            s,
            project_id=self.project_id,
            batch_id=row.id,
            image_id=np.array(chosen, dtype=np.int64),
            assignee_id=np.array(assignees, dtype=np.int64),
            purpose="rework",
            cycle=cycle + 1,
            parent_task_id=[previous_task.get(i) for i in chosen],
        )
        # seed each rework task with the item's current labels: the annotator fixes them
        finals = [items[i].final_revision_id for i in chosen]
        current = load_annotations(s, [f for f in finals if f is not None], ids="row")
        if len(current):
            position = np.searchsorted(np.array(chosen), current.image_id)
            import_revisions(
                s,
                tasks,
                np.array(assignees, dtype=np.int64),
                current.replace(annotator_id=np.array(assignees)[position]),
                position,
            )
        s.execute(
            update(DefectRow)
            .where(DefectRow.batch_id == row.id, DefectRow.cycle == cycle)
            .values(resolved=True)
        )
        s.execute(
            update(BatchItemRow)
            .where(BatchItemRow.batch_id == row.id, BatchItemRow.image_id.in_(chosen))
            .values(state="rework", final_revision_id=None)
        )

    # --- delivery ---------------------------------------------------------------------------

    def export(self, batch: int | str, *, accepted_only: bool = True, actor: str) -> Dataset:
        """The batch's final labels with external image ids and provenance attributes.

        Raises
        ------
        WorkflowError
            ``accepted_only`` and the batch has not passed its gates (not delivered).
        """
        with self.db.session() as s:
            self._require_role(s, actor, {"auditor", *MANAGERS})
            row = self._batch(s, batch)
            if accepted_only and row.stage != Stage.DELIVERED.value:
                raise WorkflowError(
                    f"batch {row.name!r} is at stage {row.stage}: only delivered batches have "
                    "accepted labels"
                )
            items = s.execute(
                select(BatchItemRow.image_id, BatchItemRow.final_revision_id, BatchItemRow.state)
                .where(BatchItemRow.batch_id == row.id)
                .order_by(BatchItemRow.image_id)
            ).all()
            finals = [
                i.final_revision_id
                for i in items
                if i.final_revision_id is not None and (not accepted_only or i.state == "accepted")
            ]
            labels = load_annotations(s, finals, ids="row")
            store_ids, images = image_table(s, self.project_id)
            wanted = np.array([i.image_id for i in items], dtype=np.int64)
            table = images[np.searchsorted(store_ids, wanted)]
            labels = labels.replace(
                image_id=images.id[np.searchsorted(store_ids, labels.image_id)],
                id=np.arange(1, len(labels) + 1),
            )
            spec_row = s.get(SpecVersionRow, row.spec_version_id)
            assert spec_row is not None
            spec = parse_spec(spec_row.toml)
            append_event(
                s,
                actor=actor,
                action="batch.export",
                entity_type="batch",
                entity_id=row.id,
                after={"objects": len(labels), "images": len(table)},
            )
            return Dataset(
                labels,
                table,
                spec.taxonomy(),
                info={
                    "project": self.name,
                    "batch": row.name,
                    "spec_version": spec_row.version,
                    "spec_digest": spec_row.digest,
                    "rework_cycles": row.rework_cycle,
                },
            )


def _adjudication_defects(
    group: list[AdjudicationRow], keeps: dict[int, bool]
) -> list[tuple[AdjudicationRow, Any, str]]:
    """(adjudication, annotator id, defect type) of a decided dispute: who was wrong, how.

    Two versions of one object (one kept, one dropped): the loser's one defect, a wrong
    class, or a box looser / tighter than the chosen one. Otherwise each object: a kept one
    was *missing* for the annotator who did not draw it, a dropped one an *extra* of the
    annotator who did.
    """
    kept = [m for m in group if keeps[m.id]]
    dropped = [m for m in group if not keeps[m.id]]
    if len(kept) == 1 and len(dropped) == 1:
        winner, loser = kept[0].payload, dropped[0].payload
        if int(winner["class_id"]) != int(loser["class_id"]):
            kind = "wrong_class"
        else:
            area = [(b[2] - b[0]) * (b[3] - b[1]) for b in (winner["bbox"], loser["bbox"])]
            kind = "loose_geometry" if area[1] >= area[0] else "tight_geometry"
        return [(dropped[0], loser.get("drawn_by"), kind)]
    return [
        (
            m,
            m.payload.get("missed_by" if keeps[m.id] else "drawn_by"),
            "missing" if keeps[m.id] else "extra",
        )
        for m in group
    ]


def _sha256_file(path: Path) -> tuple[str, int]:
    """sha256 hex and size of a file, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _with_ids(images: Images, ids: IntArray) -> Images:
    """The same images under other ids (store ids instead of the file's ids)."""
    return images.replace(id=np.asarray(ids, dtype=np.int64))


def _add_spec_row(
    s: Session,
    project_id: int,
    version: int,
    spec: ProgramSpec,
    text: str,
    actor: str,
    now: Any,
) -> SpecVersionRow:
    row = SpecVersionRow(
        project_id=project_id,
        version=version,
        toml=text,
        digest=spec.digest(),
        taxonomy_digest=spec.taxonomy_digest(),
        locked=True,
        created_by=actor,
        created_at=now,
    )
    s.add(row)
    s.flush()
    return row


def _ensure_user(s: Session, name: str, roles: list[str], cohort: str | None) -> int:
    user = s.execute(select(UserRow).where(UserRow.name == name)).scalar()
    if user is None:
        user = UserRow(
            name=name,
            display_name=name,
            roles=sorted(set(roles)),
            cohort=cohort,
            active=True,
            created_at=utcnow(),
        )
        s.add(user)
        s.flush()
    else:
        merged = sorted(set(user.roles) | set(roles))
        if merged != list(user.roles):
            user.roles = merged
        if cohort and not user.cohort:
            user.cohort = cohort
    return user.id


MIN_CELL_SUPPORT = 10  # reference objects a class / scene cell needs to be gated on its own


def _qualification(
    spec: ProgramSpec, reference: Annotations, images: Images, theirs: Annotations, user: str
) -> QualificationResult:
    result = compare(Dataset(reference, images, spec.taxonomy()), theirs, swaps=False)
    threshold = spec.gates.pilot_agreement
    score = _f1(result.overall)
    cells: dict[str, float] = {}
    if "class" in spec.assignment.qualify_per:
        for entry in result.per_class:
            if entry["ref_count"] >= MIN_CELL_SUPPORT:
                cells[f"class:{entry['name']}"] = _f1(entry)
    if "scene_type" in spec.assignment.qualify_per:
        for entry in result.by_scene:
            if entry["ref_count"] >= MIN_CELL_SUPPORT and entry["scene_type"]:
                cells[f"scene:{entry['scene_type']}"] = _f1(entry)
    failed = sorted(name for name, value in cells.items() if value < threshold)
    passed = score >= threshold and not failed
    return QualificationResult(user, score, threshold, passed, len(images), cells, failed)
