"""Request and response bodies of the API (pydantic 2; requests forbid unknown fields).

Every string a client sends is bounded and free of NUL characters (PostgreSQL cannot store
NUL in text, and no name needs one); every number is bounded to what the store holds, so
a request either fits the database or is a 422, never a 500.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StringConstraints,
    model_validator,
)

from labelgate.workflow.program import ADJUDICATION_REASONS, DEFECT_TYPES, MAX_REASON_CHARS

__all__ = [
    "MAX_ID",
    "AdjudicationDecision",
    "BatchCreate",
    "BatchRef",
    "Coordinate",
    "DefectIn",
    "ErrorOut",
    "JobOut",
    "LabelObject",
    "LabelsOut",
    "LabelsSave",
    "LoginIn",
    "LoginOut",
    "MeOut",
    "Name",
    "Page",
    "PasswordChange",
    "QaInspection",
    "Responses",
    "ReviewDecision",
    "ReviewIn",
    "SavedOut",
    "SeedIn",
    "SubmittedOut",
    "TaskOut",
]

T = TypeVar("T")

#: OpenAPI ``responses=`` of a route: status -> description and body model
Responses = dict[int | str, dict[str, Any]]

#: the largest id a path or body may name (PostgreSQL INTEGER)
MAX_ID = 2**31 - 1
MAX_KEY = 2**53  # object ids and track ids: exact in a JavaScript number

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00]+$")]
Comment = Annotated[str, StringConstraints(max_length=5000, pattern=r"^[^\x00]*$")]
Coordinate = Annotated[FiniteFloat, Field(ge=-1e7, le=1e7)]
#: Active seconds a client measured since its previous save or decision on the task (the
#: editor counts time with pointer or keyboard input, not idle gaps); priced in the work log.
WorkSeconds = Annotated[
    FiniteFloat | None,
    Field(
        ge=0.0,
        le=86_400.0,
        description="Active seconds spent since the previous save (idle gaps not counted); "
        "the work log prices the program from them.",
    ),
]
DefectType = Literal[DEFECT_TYPES]  # type: ignore[valid-type]  # a tuple of literals
ReasonCode = Literal[ADJUDICATION_REASONS]  # type: ignore[valid-type]
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_REASON_CHARS, pattern=r"^[^\x00]*$")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every refusal: what went wrong, the error's class and, for conflicts, the winner."""

    detail: str
    type: str
    current_revision_id: int | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list; ``total`` counts the whole list."""

    items: list[T]
    total: int
    limit: int
    offset: int


class LoginIn(_Request):
    """``POST /api/auth/login``."""

    name: Name
    password: Secret


class MeOut(BaseModel):
    """The caller."""

    id: int
    name: str
    roles: list[str]


class LoginOut(BaseModel):
    """A new session: the bearer token (also set as an HttpOnly cookie) and its CSRF pair."""

    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: dt.datetime
    csrf_token: str
    user: MeOut


class PasswordChange(_Request):
    """``PUT /api/me/password``: the current password proves it is the user."""

    current_password: Secret
    new_password: Secret


class TaskOut(BaseModel):
    """A task in the caller's queue: never its purpose, never anyone else's work."""

    task_id: int
    project: str
    image_id: int
    file_name: str
    width: int
    height: int
    batch: str | None
    status: str
    head_revision_id: int | None


class MaskRle(_Request):
    """An uncompressed COCO RLE mask: ``size`` ``[height, width]`` and column-major ``counts``.

    Runs alternate background, foreground, ... starting with background, and add up to
    ``height x width`` (the container checks it and names the object).
    """

    size: Annotated[
        list[Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=2, max_length=2)
    ]
    counts: Annotated[
        list[Annotated[int, Field(ge=0, le=MAX_ID)]], Field(min_length=1, max_length=4_000_000)
    ]


class LabelObject(_Request):
    """One object of a task's labels.

    ``kind`` says which geometry field is used: ``box`` (``bbox``), ``polygon``
    (``polygon``: rings of ``[x, y]`` points; ``bbox`` is derived when omitted),
    ``keypoints`` (``keypoints``: ``[x, y, visibility]`` rows), ``mask`` (``mask``: an
    uncompressed COCO RLE; ``bbox`` is derived when omitted), ``tag`` (whole image, no
    geometry). Coordinates are pixels, ``bbox`` is ``[x1, y1, x2, y2]``. What
    ``GET /api/tasks/{id}`` returns can be sent back unchanged.
    """

    id: int = Field(ge=1, le=MAX_KEY)
    class_id: int = Field(ge=0, le=MAX_ID)
    kind: Literal["box", "polygon", "keypoints", "mask", "tag"] = "box"
    bbox: Annotated[list[Coordinate], Field(min_length=4, max_length=4)] | None = None
    polygon: (
        Annotated[
            list[
                Annotated[
                    list[Annotated[list[Coordinate], Field(min_length=2, max_length=2)]],
                    Field(min_length=3, max_length=100_000),
                ]
            ],
            Field(min_length=1, max_length=100),
        ]
        | None
    ) = None
    keypoints: (
        Annotated[
            list[Annotated[list[Coordinate], Field(min_length=3, max_length=3)]],
            Field(min_length=1, max_length=1000),
        ]
        | None
    ) = None
    mask: MaskRle | None = None
    occluded: bool = False
    truncated: bool = False
    track_id: int | None = Field(default=None, ge=0, le=MAX_KEY)
    z_order: int = Field(default=0, ge=-MAX_ID, le=MAX_ID)
    score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    source: Literal["human", "prelabel", "merged"] = "human"
    attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]+$")],
        bool | int | float | Annotated[str, StringConstraints(max_length=1000)] | None,
    ] = Field(default_factory=dict, max_length=100)


class LabelsOut(BaseModel):
    """A task's labels at one revision."""

    task_id: int
    image_id: int
    status: str | None = None
    revision_id: int | None
    objects: list[dict[str, Any]]


class LabelsSave(_Request):
    """``PUT /api/tasks/{id}/labels``: the full object list and the revision it edited."""

    base_revision_id: int | None = Field(ge=1, le=MAX_ID)
    objects: list[LabelObject] = Field(max_length=20_000)
    work_seconds: WorkSeconds = None


class SavedOut(BaseModel):
    """A save that landed (or had already landed: ``replayed``)."""

    task_id: int
    revision_id: int
    number: int
    replayed: bool


class SubmittedOut(BaseModel):
    """A task handed in."""

    task_id: int
    status: str


class ReviewDecision(_Request):
    """A verdict on one object; ``object_id`` -1 with ``missing`` records an undrawn one."""

    object_id: int = Field(ge=-1, le=MAX_KEY)
    verdict: Literal["accept", "reject"]
    defect_type: DefectType | None = None


class ReviewIn(_Request):
    """``POST /api/review/{task_id}``: objects not named are accepted."""

    decisions: list[ReviewDecision] = Field(default_factory=list, max_length=20_000)
    severity: Literal["minor", "major", "critical"] = "major"
    comment: Comment = ""
    work_seconds: WorkSeconds = None


class DefectIn(_Request):
    """A defect found by QA on one object (``object_id`` -1: an object that is missing)."""

    object_id: int = Field(ge=-1, le=MAX_KEY)
    defect_type: DefectType


class QaInspection(_Request):
    """``POST /api/qa/{task_id}``: the sampled item's defects; empty means clean."""

    defects: list[DefectIn] = Field(default_factory=list, max_length=20_000)
    work_seconds: WorkSeconds = None


class AdjudicationDecision(_Request):
    """``POST /api/adjudications/{id}``: the verdict on a dispute, always with a reason.

    Either ``choice`` (take annotator A's or B's version of the disputed object; the
    other version is dropped) or ``keep`` (keep or drop this one disputed object); and a
    ``reason`` (free text), a ``reason_code``, or both.
    """

    keep: bool | None = None
    choice: Literal["a", "b"] | None = None
    reason: Reason | None = None
    reason_code: ReasonCode | None = None
    work_seconds: WorkSeconds = None

    @model_validator(mode="after")
    def _one_verdict_with_a_reason(self) -> AdjudicationDecision:
        if (self.keep is None) == (self.choice is None):
            raise ValueError("give either keep or choice (not both)")
        if self.reason_code is None and (self.reason is None or not self.reason.strip()):
            raise ValueError("a decision needs a reason: reason (text) and/or reason_code")
        return self


class BatchCreate(_Request):
    """``POST /api/projects/{p}/batches``: external image ids (default: every free image)."""

    name: Name
    image_ids: list[Annotated[int, Field(ge=-(2**62), le=2**62)]] | None = Field(
        default=None, min_length=1, max_length=1_000_000
    )


class BatchRef(BaseModel):
    """A created batch."""

    id: int
    name: str


class SeedIn(_Request):
    """Advance and assign: the seed of their random draws (recorded in the audit log)."""

    seed: int = Field(default=0, ge=0, le=MAX_ID)


class JobOut(BaseModel):
    """A background job: poll ``GET /api/jobs/{id}`` until ``state`` is done or failed."""

    id: str
    kind: str
    state: Literal["queued", "running", "done", "failed"]
    progress: float
    message: str
    result: Any = None
    error: ErrorOut | None = None
    download: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
