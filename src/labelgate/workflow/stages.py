"""The seven stages of a batch and the result of evaluating a gate.

A batch moves ``spec -> pilot -> production -> prelabel -> review -> qa -> delivery`` and
ends ``delivered``. Only :meth:`labelgate.workflow.program.Program.advance` moves it: it
evaluates the current stage's gate from measured data and records the gate's inputs, value,
threshold and verdict. A failed quality gate (review, QA) sends the defective items back as
rework and the batch back to ``production``; any other move is illegal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from labelgate.errors import WorkflowError

__all__ = ["NEXT", "REWORK_TARGET", "GateResult", "Stage", "check_transition"]


class Stage(enum.StrEnum):
    """A stage of the pipeline (ARCHITECTURE.md, after the seed's 7-stage pipeline)."""

    SPEC = "spec"
    PILOT = "pilot"
    PRODUCTION = "production"
    PRELABEL = "prelabel"
    REVIEW = "review"
    QA = "qa"
    DELIVERY = "delivery"
    DELIVERED = "delivered"


#: The stage a passed gate leads to.
NEXT: dict[Stage, Stage] = {
    Stage.SPEC: Stage.PILOT,
    Stage.PILOT: Stage.PRODUCTION,
    Stage.PRODUCTION: Stage.PRELABEL,
    Stage.PRELABEL: Stage.REVIEW,
    Stage.REVIEW: Stage.QA,
    Stage.QA: Stage.DELIVERY,
    Stage.DELIVERY: Stage.DELIVERED,
}

#: Where a failed quality gate sends the batch: rework is production work.
REWORK_TARGET = Stage.PRODUCTION


def check_transition(current: Stage, target: Stage) -> None:
    """Raise :class:`WorkflowError` unless ``current -> target`` is a legal move.

    Examples
    --------
    >>> check_transition(Stage.REVIEW, Stage.QA)
    >>> check_transition(Stage.QA, Stage.PRODUCTION)  # rework
    >>> check_transition(Stage.SPEC, Stage.QA)
    Traceback (most recent call last):
    ...
    labelgate.errors.WorkflowError: illegal transition spec -> qa: spec leads only to pilot
    """
    if NEXT.get(current) == target:
        return
    if target == REWORK_TARGET and current in (Stage.REVIEW, Stage.QA):
        return
    allowed = NEXT.get(current)
    if allowed is None:
        raise WorkflowError(f"illegal transition {current} -> {target}: {current} is final")
    raise WorkflowError(
        f"illegal transition {current} -> {target}: {current} leads only to {allowed}"
        + (
            f" (or back to {REWORK_TARGET} for rework)"
            if current in (Stage.REVIEW, Stage.QA)
            else ""
        )
    )


@dataclass(frozen=True, slots=True)
class GateResult:
    """One evaluation of a stage's gate.

    Attributes
    ----------
    stage, gate
        The stage and the gate's name (``qa_defect_rate``, ...).
    value, threshold
        The measured number and the number it had to clear (None where the gate is a
        completeness check without a threshold).
    passed
        The verdict. A failed gate is a result, not an exception.
    inputs
        What the value was computed from (counts, per-class figures), as recorded.
    outcome
        What happened: ``advanced``, ``rework`` (items sent back), ``waiting`` (work still
        open, nothing sent back), ``blocked`` (rework cycles exhausted).
    """

    stage: Stage
    gate: str
    value: float | None
    threshold: float | None
    passed: bool
    inputs: dict[str, Any] = field(default_factory=dict)
    outcome: str = "advanced"
    cycle: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (report.json's ``stages`` entries use these keys)."""
        return {
            "name": str(self.stage),
            "gate": self.gate,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "outcome": self.outcome,
            "cycle": self.cycle,
            "inputs": self.inputs,
        }
