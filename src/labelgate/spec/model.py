"""The pydantic model of a program spec: what every key means, its type and its default.

Defaults come from the seed documents (``docs/spec.md`` cites each one): a 500-image gold
set and 95 % pilot agreement, a 98 % review-accuracy gate, a 10 % QA sample that blocks
release above 2 % defects, and the per-unit prices of the seed's price table.

The models check one key at a time (type, range, allowed words, unknown keys); references
between keys (a class name in an attribute, a scene name in an override, a threshold within
its tier's range) are checked by :mod:`labelgate.spec.checks`, over the raw TOML, so that a
spec with a wrong type in one place still gets its reference problems reported.
"""

from __future__ import annotations

import hashlib
from operator import itemgetter
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labelgate.core._typing import FloatArray, IntArray
from labelgate.core.taxonomy import (
    TIER_RANGES,
    AttributeSpec,
    AttributeType,
    ClassInfo,
    PrecisionTier,
    Taxonomy,
)
from labelgate.spec.checks import cross_check

__all__ = [
    "ANNOTATOR_HOURLY_USD",
    "DEFAULT_POOL_PRICE_MULTIPLES",
    "PRICE_UNITS",
    "REVIEW_HOURLY_USD",
    "SECONDS_PER_BOX",
    "Assignment",
    "AttributeDef",
    "ClassSLA",
    "ClassSpec",
    "EdgeCaseRule",
    "Gates",
    "Pool",
    "Prelabel",
    "Prices",
    "ProgramSpec",
    "ProjectInfo",
]

Kind = Literal["tag", "box", "polygon", "mask", "keypoints"]
Tier = Literal["loose", "standard", "tight"]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1)]
# TOML arrays arrive as lists; the model keeps tuples (immutable), while the items stay strict
# (a "2" is not a 2)
Names = Annotated[tuple[Name, ...], Strict(False)]
SkeletonEdge = Annotated[tuple[StrictInt, StrictInt], Strict(False)]

#: What one unit of each price is (the seed's price table quotes these units).
PRICE_UNITS: dict[str, str] = {
    "tag": "label",
    "box": "box",
    "polygon": "object",
    "mask": "image",
    "keypoints": "object (one skeleton)",
}

#: Seconds a loose box takes at the default hourly rate: labelgate's throughput assumption
#: (the seed gives none), between extreme clicking's ~7 s per box and draw-and-verify
#: interfaces' 30 s and more.
SECONDS_PER_BOX = 10.0
#: Default ``[prices] annotator_hourly_usd``: the mid-range box price (0.10) at
#: :data:`SECONDS_PER_BOX`, i.e. 0.10 x 3600 / 10 = 36 USD an hour.
ANNOTATOR_HOURLY_USD = 0.10 * 3600.0 / SECONDS_PER_BOX
#: Default ``[prices] review_hourly_usd`` (review, QA, adjudication): the annotator rate.
REVIEW_HOURLY_USD = ANNOTATOR_HOURLY_USD
#: ``[prices]`` keys added after the first spec format: left out of the canonical form while
#: at their default, so every digest stored before they existed stays valid (and an omitted
#: key and its default still give one digest).
_LATER_PRICE_KEYS = {
    "annotator_hourly_usd": ANNOTATOR_HOURLY_USD,
    "review_hourly_usd": REVIEW_HOURLY_USD,
}

#: Price multiple of each cohort when a pool does not set one: the seed has managed services
#: charging "2 - 3 times more" per label than crowd platforms (2.5, mid-range); expert
#: (domain-trained) annotators "command higher rates" with no number given: the top of that
#: range, 3.0.
DEFAULT_POOL_PRICE_MULTIPLES: dict[str, float] = {"crowd": 1.0, "managed": 2.5, "expert": 3.0}


class _Section(BaseModel):
    """Every spec table: unknown keys are errors, values are never coerced from text."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ProjectInfo(_Section):
    """``[project]``: what the program is."""

    name: Name
    description: str = ""


class ClassSLA(_Section):
    """``classes[].sla``: the per-class service level, gated per class, never as an average.

    Attributes
    ----------
    iou_threshold
        Minimum median IoU of the class's matched objects against the reference; default
        the class's matching threshold (``iou_threshold``). Matching decides which objects
        are the same; this is the precision contract on the distribution.
    agreement
        Inter-annotator agreement target (kappa / alpha for labels, IoU-based agreement for
        geometry); default 0.70, the seed's floor below which a class's guideline is revised.
    max_missing_rate
        Highest share of reference objects of the class left unlabelled; default 0.02, the
        seed's release defect limit (a missed object is a defect).
    """

    iou_threshold: Rate | None = None
    agreement: Rate = 0.70
    max_missing_rate: Rate = 0.02


class ClassSpec(_Section):
    """``[[classes]]``: one class of the taxonomy with its precision tier and SLA."""

    id: Annotated[int, Field(ge=0)]
    name: Name
    supercategory: str = ""
    kind: Kind = "box"
    tier: Tier = "loose"
    iou_threshold: Rate | None = None
    scene_thresholds: dict[str, Rate] = Field(default_factory=dict)
    keypoints: Names = ()
    skeleton: Annotated[tuple[SkeletonEdge, ...], Strict(False)] = ()
    sla: ClassSLA = Field(default_factory=ClassSLA)

    @model_validator(mode="before")
    @classmethod
    def _fill_thresholds(cls, data: Any) -> Any:
        """Fill the tier's default threshold, and the SLA IoU from the class threshold.

        Filling here, not at use, makes an omitted key and its default give one canonical
        form (the same digest).
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        tier = data.get("tier", "loose")
        if data.get("iou_threshold") is None and tier in PrecisionTier._value2member_map_:
            data["iou_threshold"] = TIER_RANGES[PrecisionTier(tier)][2]
        sla = data.get("sla")
        threshold = data.get("iou_threshold")
        if sla is None:
            sla = {}
        if isinstance(sla, dict) and sla.get("iou_threshold") is None and threshold is not None:
            data["sla"] = {**sla, "iou_threshold": threshold}
        return data

    @property
    def threshold(self) -> float:
        """The matching IoU threshold in force (``iou_threshold`` after defaults)."""
        assert self.iou_threshold is not None  # filled by _fill_thresholds
        return self.iou_threshold


class AttributeDef(_Section):
    """``[[attributes]]``: one attribute, e.g. ``occluded`` (bool) or ``vehicle_type``."""

    name: Name
    type: Literal["bool", "int", "float", "text", "select"] = "text"
    values: Names = ()
    classes: Names = ()
    required: bool = False
    default: str = ""
    mutable: bool = False


class EdgeCaseRule(_Section):
    """``[[edge_cases]]``: one written rule for a case annotators get wrong."""

    id: Name
    rule: Name
    classes: Names = ()
    examples: Names = ()


class Gates(_Section):
    """``[gates]``: the number each pipeline stage must clear (seed defaults)."""

    gold_set_size: Annotated[int, Field(ge=1)] = 500
    pilot_agreement: Rate = 0.95
    review_accuracy: Rate = 0.98
    qa_sample_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.10
    defect_limit: Rate = 0.02
    confidence: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95
    min_edge_case_rules: Annotated[int, Field(ge=0)] = 1
    # the seed measures the defect rate as "percentage of boxes rejected during QA review":
    # objects by default; "image" counts an image with any defect as one defective unit
    qa_unit: Literal["object", "image"] = "object"
    rework_policy: Literal["defective", "batch"] = "defective"
    max_rework_cycles: Annotated[int, Field(ge=0)] = 3


class Assignment(_Section):
    """``[assignment]``: who gets which item."""

    double_annotation_rate: Rate = 1.0
    gold_rate: Rate = 0.02
    honeypot_rate: Rate = 0.02
    rework_to: Literal["original", "other"] = "original"
    # the seed sets "annotator qualification criteria per class and per scene type"
    qualify_per: Annotated[tuple[Literal["class", "scene_type"], ...], Strict(False)] = (
        "class",
        "scene_type",
    )


class Prices(_Section):
    """``[prices]``: USD per unit (:data:`PRICE_UNITS`) at price multiple 1.0.

    Each default is the middle of the seed's range: tag 0.02-0.05 per label, box 0.05-0.15
    per box, polygon 0.20-0.60 per object, mask 0.80-3.00 per image.

    ``annotator_hourly_usd`` and ``review_hourly_usd`` price measured work time (the work
    log: ``labelgate cost --db``): annotation and rework hours at the first, times the
    annotator's pool (or cohort) price multiple; review, QA and adjudication hours at the
    second. Both default to :data:`ANNOTATOR_HOURLY_USD` (36.0: the mid-range box price at
    :data:`SECONDS_PER_BOX`).
    """

    tag: Annotated[float, Field(ge=0.0)] = 0.035
    box: Annotated[float, Field(ge=0.0)] = 0.10
    polygon: Annotated[float, Field(ge=0.0)] = 0.40
    mask: Annotated[float, Field(ge=0.0)] = 1.90
    # Not in the seed's table. A 17-point COCO person skeleton takes about as many clicks
    # as a 15-20 vertex polygon, plus a visibility flag per point, so it is priced per
    # object like a polygon, at the polygon's mid-range 0.40.
    keypoints: Annotated[float, Field(ge=0.0)] = 0.40
    # Hourly rates price a program from its measured work log (labelgate.workflow.costing).
    # The seed gives no hourly figure; the default is the rate at which the mid-range box
    # price buys a loose box at a stated throughput: 0.10 USD per box x 360 boxes an hour
    # (10 s per box, labelgate's assumption) = 36 USD an hour. A pool's (or a cohort's
    # default) price_multiple applies on top, as it does to the unit prices.
    annotator_hourly_usd: Annotated[float, Field(ge=0.0)] = ANNOTATOR_HOURLY_USD
    # review, QA inspection and adjudication: the same labour at multiple 1.0 (reviewers
    # are staff, not pool members), so measured review time is priced like annotation time
    review_hourly_usd: Annotated[float, Field(ge=0.0)] = REVIEW_HOURLY_USD

    def price(self, kind: str) -> float:
        """USD per unit of an annotation kind; ``KeyError`` for an unknown kind."""
        if kind not in PRICE_UNITS:
            raise KeyError(kind)
        value: float = getattr(self, kind)
        return value


class Pool(_Section):
    """``[[pools]]``: a group of annotators of one cohort, paid at one price multiple."""

    name: Name
    cohort: Literal["crowd", "managed", "expert"]
    annotators: Names = ()
    price_multiple: Annotated[float, Field(gt=0.0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_multiple(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("price_multiple") is None:
            cohort = data.get("cohort")
            if isinstance(cohort, str) and cohort in DEFAULT_POOL_PRICE_MULTIPLES:
                data = {**data, "price_multiple": DEFAULT_POOL_PRICE_MULTIPLES[cohort]}
        return data


class Prelabel(_Section):
    """``[prelabel]``: model pre-labels (stage 4) and the control group that measures them.

    Attributes
    ----------
    threshold
        Lowest confidence score a model proposal needs to be stored as a pre-label; default
        0.5 (the editor's "accept all" default as well).
    class_thresholds
        Class name -> threshold for that class instead of ``threshold`` (a model is often
        sure of cars and unsure of bicycles).
    control_rate
        Share of a batch's items that get no pre-labels at all, drawn per item from
        ``seed``: the control group that measured time per task is compared with (time
        saved is a difference against this group, never an assumption); default 0.10.
        0 pre-labels every item and leaves time saved unmeasured.
    seed
        Seed of the per-item control draw; default 0. The draw depends only on the seed,
        the batch and the item, so a resumed run puts every item in the same group.
    """

    threshold: Rate = 0.5
    class_thresholds: dict[str, Rate] = Field(default_factory=dict)
    control_rate: Rate = 0.10
    seed: Annotated[int, Field(ge=0)] = 0


#: ``[prelabel]`` at its defaults: left out of the canonical form (the section came after
#: the first spec format; digests stored before it existed stay valid).
_DEFAULT_PRELABEL = Prelabel().model_dump(mode="json")


# lists whose order carries no meaning: sorted in the canonical form
_SORTED_BY_KEY = {"classes": "id", "attributes": "name", "edge_cases": "id", "pools": "name"}


def _canonical(document: dict[str, Any]) -> dict[str, Any]:
    out = dict(document)
    out["scene_types"] = sorted(out["scene_types"])
    for key, field in _SORTED_BY_KEY.items():
        out[key] = sorted(out[key], key=itemgetter(field))
    for attribute in out["attributes"]:
        attribute["classes"] = sorted(attribute["classes"])
    for rule in out["edge_cases"]:
        rule["classes"] = sorted(rule["classes"])
    for pool in out["pools"]:
        pool["annotators"] = sorted(pool["annotators"])
    out["prices"] = {
        k: v for k, v in out["prices"].items() if _LATER_PRICE_KEYS.get(k, object()) != v
    }
    out["assignment"] = {**out["assignment"]}
    out["assignment"]["qualify_per"] = sorted(out["assignment"]["qualify_per"])
    if out.get("prelabel") == _DEFAULT_PRELABEL:
        del out["prelabel"]
    return out


def _sha256(document: Any) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ProgramSpec(_Section):
    """A validated program spec: taxonomy, SLAs, gates, assignment, prices and pools.

    Build one with :func:`labelgate.spec.load_spec` or :func:`labelgate.spec.parse_spec`,
    which report every problem of a file at once as a :class:`~labelgate.errors.SpecError`.

    Examples
    --------
    >>> spec = ProgramSpec.model_validate({
    ...     "project": {"name": "demo"},
    ...     "scene_types": ["highway", "urban"],
    ...     "classes": [
    ...         {"id": 1, "name": "car", "tier": "standard"},
    ...         {"id": 2, "name": "person", "tier": "tight",
    ...          "scene_thresholds": {"highway": 0.85}},
    ...     ],
    ...     "edge_cases": [{"id": "EC1", "rule": "Label reflections? No."}],
    ... })
    >>> spec.class_by_name("car").iou_threshold, spec.gates.defect_limit
    (0.7, 0.02)
    >>> spec.thresholds(np.array([1, 2, 2]), np.array(["highway", "highway", "urban"])).tolist()
    [0.7, 0.85, 0.75]
    """

    project: ProjectInfo
    scene_types: Names = ()
    classes: Annotated[tuple[ClassSpec, ...], Strict(False), Field(min_length=1)]
    attributes: Annotated[tuple[AttributeDef, ...], Strict(False)] = ()
    edge_cases: Annotated[tuple[EdgeCaseRule, ...], Strict(False)] = ()
    gates: Gates = Field(default_factory=Gates)
    assignment: Assignment = Field(default_factory=Assignment)
    prices: Prices = Field(default_factory=Prices)
    pools: Annotated[tuple[Pool, ...], Strict(False)] = ()
    prelabel: Prelabel = Field(default_factory=Prelabel)

    @field_validator("prelabel")
    @classmethod
    def _prelabel_classes(cls, value: Prelabel, info: ValidationInfo) -> Prelabel:
        """Per-class pre-label thresholds must name classes of this spec."""
        classes = info.data.get("classes")  # absent when the classes failed validation
        if classes:
            names = [c.name for c in classes]
            unknown = sorted(set(value.class_thresholds) - set(names))
            if unknown:
                raise ValueError(
                    f"class_thresholds: no class named {', '.join(map(repr, unknown))} "
                    f"(classes: {', '.join(names)})"
                )
        return value

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> ProgramSpec:
        # parse_spec runs the same checks on the raw TOML itself (so that they run even
        # when a key has the wrong type) and asks to skip them here
        if info.context and info.context.get("skip_cross_check"):
            return self
        problems = cross_check(self.model_dump(mode="python"))
        if problems:
            raise ValueError("; ".join(f"{where}: {what}" for where, what in problems))
        return self

    def __hash__(self) -> int:
        # scene_thresholds is a dict: hash the canonical form instead of the fields
        return hash(self.digest())

    # --- lookups ------------------------------------------------------------------------

    def class_by_name(self, name: str) -> ClassSpec:
        """Return the class with this name; ``KeyError`` when absent."""
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    def class_by_id(self, class_id: int) -> ClassSpec:
        """Return the class with this id; ``KeyError`` when absent."""
        for c in self.classes:
            if c.id == class_id:
                return c
        raise KeyError(class_id)

    def prelabel_thresholds(self, default: float | None = None) -> dict[int, float]:
        """Class id -> the confidence a pre-label of that class needs (``[prelabel]``).

        ``default`` replaces ``[prelabel] threshold`` (a run's ``--threshold``); classes in
        ``class_thresholds`` keep their own value.

        Examples
        --------
        >>> spec = ProgramSpec.model_validate({
        ...     "project": {"name": "p"},
        ...     "classes": [{"id": 1, "name": "car"}, {"id": 2, "name": "bike"}],
        ...     "edge_cases": [{"id": "EC1", "rule": "A parked bike is a bike."}],
        ...     "prelabel": {"class_thresholds": {"bike": 0.8}},
        ... })
        >>> spec.prelabel_thresholds(), spec.prelabel_thresholds(0.3)
        ({1: 0.5, 2: 0.8}, {1: 0.3, 2: 0.8})
        """
        base = self.prelabel.threshold if default is None else float(default)
        return {c.id: float(self.prelabel.class_thresholds.get(c.name, base)) for c in self.classes}

    def price_multiple(self, user: str, cohort: str | None = None) -> float:
        """The price multiple a person is paid at: their pool's, else their cohort's default.

        Someone in no ``[[pools]]`` entry gets :data:`DEFAULT_POOL_PRICE_MULTIPLES` of
        ``cohort`` (1.0 without a cohort, e.g. staff reviewers).

        Examples
        --------
        >>> spec = ProgramSpec.model_validate({
        ...     "project": {"name": "p"}, "classes": [{"id": 1, "name": "car"}],
        ...     "pools": [{"name": "pod", "cohort": "managed", "annotators": ["eve"],
        ...                "price_multiple": 2.2}],
        ...     "edge_cases": [{"id": "EC1", "rule": "Label reflections? No."}],
        ... })
        >>> spec.price_multiple("eve"), spec.price_multiple("gus", "managed")
        (2.2, 2.5)
        >>> spec.price_multiple("rita")
        1.0
        """
        for pool in self.pools:
            if user in pool.annotators and pool.price_multiple is not None:
                return float(pool.price_multiple)
        return DEFAULT_POOL_PRICE_MULTIPLES.get(cohort or "", 1.0)

    def taxonomy(self) -> Taxonomy:
        """The classes and attribute schema as the core :class:`Taxonomy` (file order).

        Attribute ``classes`` become class ids; scene overrides and SLAs stay in the spec
        (see :meth:`thresholds`).
        """
        ids = {c.name: c.id for c in self.classes}
        classes = tuple(
            ClassInfo(
                id=c.id,
                name=c.name,
                supercategory=c.supercategory,
                tier=PrecisionTier(c.tier),
                iou_threshold=c.iou_threshold,
                keypoints=c.keypoints,
                skeleton=c.skeleton,
            )
            for c in self.classes
        )
        attributes = tuple(
            AttributeSpec(
                name=a.name,
                type=AttributeType(a.type),
                values=a.values,
                classes=tuple(ids[name] for name in a.classes),
                required=a.required,
                default=a.default,
                mutable=a.mutable,
            )
            for a in self.attributes
        )
        return Taxonomy(classes, attributes)

    def thresholds(
        self, class_ids: npt.ArrayLike, scene_types: npt.ArrayLike | None = None
    ) -> FloatArray:
        """(n,) the matching IoU threshold of each object, honouring scene overrides.

        Parameters
        ----------
        class_ids
            (n,) class id of each object.
        scene_types
            (n,) scene type name of each object's image (``str`` or object array), or
            ``None`` for no scene overrides. A name the spec does not list gets the class
            threshold.

        Returns
        -------
        FloatArray
            (n,) float64; NaN for class ids the spec does not define.
        """
        ids: IntArray = np.asarray(class_ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"thresholds: expected class_ids of shape (n,), got {ids.shape}")
        scenes = sorted(self.scene_types)
        # (classes + 1 unknown, scenes + 1 unknown) table, then one fancy-index lookup
        table = np.full((len(self.classes) + 1, len(scenes) + 1), np.nan)
        for row, c in enumerate(self.classes):  # classes, not objects: a few dozen at most
            table[row, :] = c.threshold
            for scene, value in c.scene_thresholds.items():
                if scene in scenes:
                    table[row, scenes.index(scene)] = value
        class_row = self.taxonomy().position(ids)
        class_row = np.where(class_row < 0, len(self.classes), class_row)
        if scene_types is None:
            scene_col = np.full(len(ids), len(scenes), dtype=np.int64)
        else:
            names = np.asarray(scene_types).astype(str)
            if names.shape != ids.shape:
                raise ValueError(
                    f"thresholds: expected scene_types of shape {ids.shape}, got {names.shape}"
                )
            # look up the few distinct names, then spread the codes over the objects
            distinct, inverse = np.unique(names, return_inverse=True)
            code = [scenes.index(n) if n in scenes else len(scenes) for n in distinct.tolist()]
            scene_col = np.asarray(code, dtype=np.int64)[inverse.reshape(-1)]
        out: FloatArray = table[class_row, scene_col]
        return out

    # --- identity -----------------------------------------------------------------------

    def canonical_json(self) -> bytes:
        """The spec as JSON with sorted keys and every default filled in.

        Two files that mean the same spec give the same bytes: key order, omitted defaults,
        ``1`` vs ``1.0``, and the order of classes, attributes, edge cases, pools and of
        set-like lists (scene types, attribute and rule classes, pool members,
        ``qualify_per``) do not matter. The order of keypoints, skeleton edges, attribute
        values and example paths does.
        """
        return orjson.dumps(_canonical(self.model_dump(mode="json")), option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """sha256 hex of :meth:`canonical_json`: the version of the whole spec."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def taxonomy_digest(self) -> str:
        """sha256 hex over the canonical classes and attributes only.

        Annotators need re-qualification for a new spec version only when this changes;
        new gates, prices, pools or edge-case wording keep it.
        """
        document = _canonical(self.model_dump(mode="json"))
        return _sha256({"classes": document["classes"], "attributes": document["attributes"]})
