"""The labelgate exception tree.

Every error labelgate raises on purpose derives from :class:`LabelgateError`::

    LabelgateError
    ├── ValidationError     a value handed to a core type breaks its contract
    ├── FormatError         a file cannot be read or written in its format
    ├── SpecError           a project spec is invalid
    ├── GateFailed          code tried to advance a batch whose gate is blocked
    ├── ConflictError       a concurrent edit would overwrite someone else's change
    ├── StoreError          the database refused or lost a write
    └── WorkflowError       an illegal transition or a request the workflow refuses
        ├── NotFound           no such task, batch, job... (or none the actor may know of)
        ├── PermissionDenied   the actor may not do or see this (blind, gold, roles)
        └── NotVisible         NotFound *and* PermissionDenied: missing, or someone else's;
                               one answer for both, so a blind annotator learns nothing

Context goes in keyword-only attributes, so callers (the CLI, the API) can render the
file, record and field without parsing the message.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConflictError",
    "FormatError",
    "GateFailed",
    "LabelgateError",
    "NotFound",
    "NotVisible",
    "PermissionDenied",
    "SpecError",
    "StoreError",
    "ValidationError",
    "WorkflowError",
]


class LabelgateError(Exception):
    """Base class of every error labelgate raises on purpose."""


class ValidationError(LabelgateError, ValueError):
    """A value handed to a core type breaks its contract.

    Parameters
    ----------
    message
        What was expected and what came in.
    field
        The field (column) at fault, e.g. ``"bbox"``.
    row
        The offending row (0-based position in the container), when one row is at fault.
    """

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None) -> None:
        self.field = field
        self.row = row
        self.reason = message
        where = field or ""
        if row is not None:
            where = f"{where}[{row}]"
        super().__init__(f"{where}: {message}" if where else message)


class FormatError(LabelgateError):
    """A file cannot be read or written in its format.

    The message reads ``file: record: field: what was expected, what came in``, e.g.
    ``instances.json: annotations[1412] (id=90211): bbox: expected width >= 0, got -3.0``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | str,
        record: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.record = record
        self.field = field
        self.reason = message
        parts = (self.path.name, record, field, message)
        super().__init__(": ".join(str(p) for p in parts if p))


class SpecError(LabelgateError):
    """A project spec is invalid; ``location`` names the key, e.g. ``classes[3].iou_threshold``.

    A spec is checked as a whole, so one error can carry every problem found: ``problems``
    lists ``(location, message)`` pairs (location ``""`` for the file as a whole), and the
    message has one line per problem, each prefixed with the file name and the location::

        spec.toml: 2 problems
        spec.toml: classes[2].iou_threshold: tier tight allows IoU 0.75-0.9, got 0.6
        spec.toml: attributes[0].classes[1]: unknown class 'pedestrain'

    Parameters
    ----------
    message
        What is wrong (used when ``problems`` is not given).
    location
        The TOML path of the key at fault, e.g. ``gates.defect_limit``.
    path
        The spec file; ``None`` for a spec parsed from a string without a name.
    problems
        Every ``(location, message)`` found; default ``[(location or "", message)]``.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        path: Path | str | None = None,
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self.location = location
        self.path = Path(path) if path is not None else None
        self.reason = message
        self.problems: list[tuple[str, str]] = (
            list(problems) if problems else [(location or "", message)]
        )
        name = self.path.name if self.path is not None else ""

        def line(where: str, what: str) -> str:
            return ": ".join(p for p in (name, where, what) if p)

        if problems and len(self.problems) > 1:
            count = f"{len(self.problems)} problems"
            text = "\n".join([line("", count)] + [line(w, m) for w, m in self.problems])
        else:
            where, what = self.problems[0]
            text = line(where, what)
        super().__init__(text)


class GateFailed(LabelgateError):
    """Code tried to advance a batch whose gate is blocked."""


class ConflictError(LabelgateError):
    """A concurrent edit would silently overwrite someone else's change.

    Parameters
    ----------
    message
        What collided, naming the winning revision and its author.
    current_revision_id
        The revision that won (the one a client must reload).
    task_id
        The task whose save lost.
    base_revision_id
        The revision the losing save said it edited (``None``: a first save).
    """

    def __init__(
        self,
        message: str,
        *,
        current_revision_id: int | None = None,
        task_id: int | None = None,
        base_revision_id: int | None = None,
    ) -> None:
        self.current_revision_id = current_revision_id
        self.task_id = task_id
        self.base_revision_id = base_revision_id
        super().__init__(message)


class StoreError(LabelgateError):
    """The database refused or lost a write."""


class WorkflowError(LabelgateError):
    """An illegal stage transition, or a request the workflow refuses (it names why)."""


class PermissionDenied(WorkflowError):
    """The actor may not do or see this.

    Another annotator's blind labels, gold answers, another project's data, or an action
    outside their roles.
    """


class NotFound(WorkflowError):
    """There is no such thing: task, batch, adjudication, job, project (the API's 404).

    A :class:`WorkflowError` because the request is well formed and only names something
    the program does not hold; callers decide "missing" by this class, never by reading
    the message.
    """


class NotVisible(NotFound, PermissionDenied):
    """The thing does not exist, or the caller may not know that it does (one answer).

    Both a :class:`NotFound` (the API answers 404, as for a missing one) and a
    :class:`PermissionDenied` (code that guards access catches it as a refusal).
    """
