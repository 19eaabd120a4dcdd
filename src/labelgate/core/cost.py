"""The rework-inclusive cost model: what a labelling program costs once rework is priced.

The seed ("Image Labeling Services for Enterprises: The Hidden Cost of Quality Rework")
splits a program's cost into four categories that a crowd platform's price per label
collapses into one:

- **direct annotation**: "Price per label × volume";
- **QA and review**: "typically 15–25% of direct annotation cost for crowd-sourced work";
- **rework**: "Re-annotation cost for failed batches, multiplied by the number of rework
  cycles";
- **downstream remediation**: "Engineering, computing, and re-evaluation time spent
  addressing model problems that originate in label quality".

Rework is geometric. With ``N`` units, a defect rate ``d`` (the share QA rejects) and a
rework defect rate ``r`` (the share of corrections QA rejects again), cycle ``k`` re-labels
``N d r^(k-1)`` units: the seed's "200,000 images with a 5% defect rate ... 10,000 images
requiring correction. If the correction round itself has a 5% error rate, you have another
500 images to fix", then 25, 1.25, ... The loop stops before the first cycle with fewer
than one unit, or at a cycle cap; what is still rejected then ships with the batch.

QA does not see every defect: of all defects, a share ``e`` (the escape rate) passes review,
so each QA pass that rejects ``D`` units lets ``D e / (1 - e)`` defects through. Escaped and
still-open defects reach training and cost ``c`` each to remediate downstream.

Closed form (:func:`estimate`), with ``p`` the unit price after the cost-driver
:func:`multiplier`, ``q`` the QA share and ``u_k`` the units of cycle ``k = 1..K``::

    direct     = N p
    qa_review  = q N p
    rework     = p (u_1 + ... + u_K)
    downstream = c (e / (1 - e) (u_1 + ... + u_(K+1)) + u_(K+1))
    hidden_cost_fraction = (total - direct) / direct

The hidden-cost fraction follows the seed's definition: "the total program cost is
typically 30–60% higher than the per-label price implies", i.e. the cost over and above the
quoted labour price, as a fraction of that price. :func:`simulate` draws the same process
(binomial rejects and escapes per cycle, vectorized over runs); its mean is the closed form.
``docs/cost.md`` quotes the seed sentence behind every default.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelgate.core._typing import FloatArray, IntArray
from labelgate.errors import ValidationError

__all__ = [
    "ATTRIBUTE_PREMIUM",
    "CROWD",
    "DEEP_QA_PREMIUM",
    "DEFAULT_ESCAPE_RATE",
    "DEFAULT_QA_SHARE",
    "LOOSE_IOU",
    "MANAGED",
    "REMEDIATION_MULTIPLE",
    "TIGHT_IOU",
    "TIGHT_PREMIUM",
    "WORK_ACTIVITIES",
    "Cohort",
    "CohortComparison",
    "CostBreakdown",
    "CostDrivers",
    "CostInputs",
    "CostQuantiles",
    "CostSimulation",
    "MeasuredCost",
    "MeasuredCycle",
    "ReworkCycle",
    "compare_cohorts",
    "estimate",
    "multiplier",
    "price_measured",
    "rework_cycles",
    "simulate",
]

# --- defaults, each from a seed sentence (docs/cost.md) ------------------------------------

#: QA and review as a share of direct cost. Seed: "QA and review cost: ... typically 15–25%
#: of direct annotation cost for crowd-sourced work" (mid-range).
DEFAULT_QA_SHARE = 0.20

#: Share of all defects that QA misses. Not in the seed, which says only that "Labels that
#: pass QA but contain systematic errors ... only surface during model evaluation": one
#: defect in twenty. With the other defaults it puts the seed's worked example at a hidden
#: cost of 53 %, inside the seed's "30–60% higher than the per-label price implies".
DEFAULT_ESCAPE_RATE = 0.05

#: Downstream cost of one escaped defect, as a multiple of the quoted unit price. Seed: "The
#: annotation error that costs $0.08 to produce can cost orders of magnitude more to diagnose
#: and remediate downstream": two orders of magnitude, the least that "orders" allows.
REMEDIATION_MULTIPLE = 100.0

#: Premium of tight boxes over loose ones. Seed: "Tight boxes (0.85+ IoU) ... adds 30–60% to
#: per-instance time compared to 0.5 IoU work" (mid-range).
TIGHT_PREMIUM = 0.45
#: IoU thresholds the tight premium is quoted between (seed: "0.85+ IoU" vs "0.5 IoU work").
LOOSE_IOU = 0.5
TIGHT_IOU = 0.85

#: Premium per required attribute. Seed: "Adding occlusion level, truncation flag, object
#: state, or tracking ID to each box multiplies annotation time roughly linearly with the
#: number of required attributes"; the slope is not given: 10 % each (one click or key per
#: attribute next to a box's few seconds of drawing).
ATTRIBUTE_PREMIUM = 0.10

#: Premium of deep QA. Seed: "Programs requiring multi-pass review, blind re-annotation for
#: IAA measurement, or adjudication of disputed boxes cost 20–50% more than single-pass
#: work" (mid-range).
DEEP_QA_PREMIUM = 0.35


def _rate(value: float, name: str, *, below_one: bool = False) -> None:
    high_ok = value < 1.0 if below_one else value <= 1.0
    if not (math.isfinite(value) and value >= 0.0 and high_ok):
        interval = "[0, 1)" if below_one else "[0, 1]"
        raise ValidationError(f"expected a rate in {interval}, got {value}", field=name)


def _non_negative(value: float, name: str) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValidationError(f"expected a finite number >= 0, got {value}", field=name)


# --- rework cycles ----------------------------------------------------------------------------


def rework_cycles(
    units: float, defect_rate: float, rework_defect_rate: float, cap: int | None = None
) -> FloatArray:
    """(K,) expected units re-labelled in rework cycles 1..K.

    Cycle ``k`` re-labels ``units * defect_rate * rework_defect_rate**(k - 1)``; the list
    stops before the first cycle below one unit, or after ``cap`` cycles.

    Parameters
    ----------
    units
        Units labelled in the first pass (images, boxes: whatever is priced).
    defect_rate
        Share of first-pass units QA rejects, in [0, 1].
    rework_defect_rate
        Share of re-labelled units QA rejects again, in [0, 1].
    cap
        Most cycles to run; ``None`` for no cap. A rework defect rate of 1 never converges
        and needs a cap.

    Returns
    -------
    FloatArray
        (K,) float64, the units of each cycle.

    Examples
    --------
    The seed's example: 200,000 images at a 5 % defect rate, corrections failing at 5 %:

    >>> rework_cycles(200_000, 0.05, 0.05).tolist()
    [10000.0, 500.0, 25.0, 1.25]
    >>> rework_cycles(200_000, 0.05, 0.05, cap=2).tolist()
    [10000.0, 500.0]
    """
    _non_negative(units, "units")
    _rate(defect_rate, "defect_rate")
    _rate(rework_defect_rate, "rework_defect_rate")
    if cap is not None and cap < 0:
        raise ValidationError(f"expected a cycle cap >= 0, got {cap}", field="cycle_cap")
    first = units * defect_rate
    if cap is None:
        if rework_defect_rate >= 1.0 and first >= 1.0:
            raise ValidationError(
                "a rework defect rate of 1 never converges: give a cycle cap",
                field="rework_defect_rate",
            )
        # the smallest K with first * r**K < 1; a few extra for rounding, trimmed below
        if first < 1.0:
            cap = 0
        elif rework_defect_rate == 0.0:
            cap = 1
        else:
            cap = math.ceil(math.log(first) / -math.log(rework_defect_rate)) + 2
    # repeated products, as the rework itself runs: 200,000 * 0.05 * 0.05 * 0.05 is 25.0,
    # while 200,000 * 0.05 * 0.05**2 is 25.000000000000004
    factors = np.full(max(cap, 1), rework_defect_rate, dtype=np.float64)
    factors[0] = first
    chain: FloatArray = np.asarray(np.cumprod(factors), dtype=np.float64)
    if cap == 0:
        chain = chain[:0]
    below = np.flatnonzero(chain < 1.0)
    return chain[: below[0]] if below.size else chain


# --- cost drivers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostDrivers:
    """The seed's per-instance cost drivers, each as a factor on the quoted unit price.

    Parameters
    ----------
    objects_per_image
        Priced instances per unit (default 1: the unit is the priced instance). Seed:
        "Annotating 40 objects in a dense street scene takes significantly longer per frame
        than annotating 3 vehicles"; the factor is linear.
    iou_threshold
        The IoU the boxes must reach (default 0.5, loose). The premium grows linearly from
        none at :data:`LOOSE_IOU` to :data:`TIGHT_PREMIUM` at :data:`TIGHT_IOU` and above.
    required_attributes
        Required attributes per instance (may be an average); :data:`ATTRIBUTE_PREMIUM` each.
    deep_qa_share
        Share of units with multi-pass review, blind re-annotation or adjudication;
        :data:`DEEP_QA_PREMIUM` on those.
    specialization
        Price multiple of the annotators (crowd 1.0; the seed's managed services charge
        "2 – 3 times more"; domain-trained annotators "command higher rates").
    tight_premium, attribute_premium, deep_qa_premium
        The premiums, overridable.

    Examples
    --------
    >>> drivers = CostDrivers(objects_per_image=3, iou_threshold=0.85, required_attributes=2)
    >>> {k: round(v, 4) for k, v in drivers.factors().items()}
    {'objects_per_image': 3.0, 'tier': 1.45, 'attributes': 1.2, 'qa_depth': 1.0, 'specialization': 1.0}
    >>> round(drivers.multiplier(), 4)
    5.22
    """  # noqa: E501

    objects_per_image: float = 1.0
    iou_threshold: float = LOOSE_IOU
    required_attributes: float = 0.0
    deep_qa_share: float = 0.0
    specialization: float = 1.0
    tight_premium: float = TIGHT_PREMIUM
    attribute_premium: float = ATTRIBUTE_PREMIUM
    deep_qa_premium: float = DEEP_QA_PREMIUM

    def __post_init__(self) -> None:
        for name in (
            "objects_per_image",
            "required_attributes",
            "tight_premium",
            "attribute_premium",
            "deep_qa_premium",
        ):
            _non_negative(getattr(self, name), name)
        _rate(self.iou_threshold, "iou_threshold")
        _rate(self.deep_qa_share, "deep_qa_share")
        if not (math.isfinite(self.specialization) and self.specialization > 0.0):
            raise ValidationError(
                f"expected a price multiple > 0, got {self.specialization}", field="specialization"
            )

    def factors(self) -> dict[str, float]:
        """Each driver's factor; their product is :meth:`multiplier`."""
        tightness = (self.iou_threshold - LOOSE_IOU) / (TIGHT_IOU - LOOSE_IOU)
        return {
            "objects_per_image": float(self.objects_per_image),
            "tier": 1.0 + self.tight_premium * min(max(tightness, 0.0), 1.0),
            "attributes": 1.0 + self.attribute_premium * self.required_attributes,
            "qa_depth": 1.0 + self.deep_qa_premium * self.deep_qa_share,
            "specialization": float(self.specialization),
        }

    def multiplier(self) -> float:
        """The product of :meth:`factors`: quoted unit price -> price per unit labelled."""
        return math.prod(self.factors().values())


def multiplier(
    objects_per_image: float = 1.0,
    iou_threshold: float = LOOSE_IOU,
    required_attributes: float = 0.0,
    deep_qa_share: float = 0.0,
    specialization: float = 1.0,
    *,
    tight_premium: float = TIGHT_PREMIUM,
    attribute_premium: float = ATTRIBUTE_PREMIUM,
    deep_qa_premium: float = DEEP_QA_PREMIUM,
) -> float:
    """Factor on the quoted unit price from the seed's cost drivers (see :class:`CostDrivers`).

    Examples
    --------
    >>> multiplier()
    1.0
    >>> round(multiplier(iou_threshold=0.85), 4)  # tight boxes: +30-60 %, mid-range
    1.45
    >>> round(multiplier(deep_qa_share=1.0, specialization=2.5), 4)
    3.375
    """
    return CostDrivers(
        objects_per_image=objects_per_image,
        iou_threshold=iou_threshold,
        required_attributes=required_attributes,
        deep_qa_share=deep_qa_share,
        specialization=specialization,
        tight_premium=tight_premium,
        attribute_premium=attribute_premium,
        deep_qa_premium=deep_qa_premium,
    ).multiplier()


# --- inputs and the closed form ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostInputs:
    """What a program is, for the cost model.

    Parameters
    ----------
    units
        Units labelled in the first pass (integer >= 0).
    unit_price_usd
        Quoted USD per unit, before the cost drivers.
    defect_rate
        Share of first-pass units QA rejects, in [0, 1].
    rework_defect_rate
        Share of re-labelled units QA rejects again, in [0, 1].
    qa_share
        QA and review cost as a share of direct cost (default 0.20).
    escape_rate
        Share of all defects QA misses, in [0, 1) (default 0.05).
    remediation_usd_per_defect
        Downstream cost of one defect that reaches training; ``None`` (default) for
        :data:`REMEDIATION_MULTIPLE` times ``unit_price_usd``.
    cycle_cap
        Most rework cycles; ``None`` (default) for no cap.
    multiplier
        Factor on ``unit_price_usd`` from the cost drivers (:func:`multiplier`), default 1.

    Raises
    ------
    ValidationError
        A value out of range, or ``defect_rate / (1 - escape_rate) > 1`` (more defects than
        units).
    """

    units: int
    unit_price_usd: float
    defect_rate: float
    rework_defect_rate: float
    qa_share: float = DEFAULT_QA_SHARE
    escape_rate: float = DEFAULT_ESCAPE_RATE
    remediation_usd_per_defect: float | None = None
    cycle_cap: int | None = None
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.units, bool) or int(self.units) != self.units or self.units < 0:
            raise ValidationError(f"expected an integer >= 0, got {self.units}", field="units")
        object.__setattr__(self, "units", int(self.units))
        _non_negative(self.unit_price_usd, "unit_price_usd")
        _rate(self.defect_rate, "defect_rate")
        _rate(self.rework_defect_rate, "rework_defect_rate")
        _non_negative(self.qa_share, "qa_share")
        _rate(self.escape_rate, "escape_rate", below_one=True)
        if self.remediation_usd_per_defect is not None:
            _non_negative(self.remediation_usd_per_defect, "remediation_usd_per_defect")
        _non_negative(self.multiplier, "multiplier")
        if self.cycle_cap is not None and self.cycle_cap < 0:
            raise ValidationError(
                f"expected a cycle cap >= 0, got {self.cycle_cap}", field="cycle_cap"
            )
        for name in ("defect_rate", "rework_defect_rate"):
            total = getattr(self, name) / (1.0 - self.escape_rate)
            if total > 1.0 + 1e-12:
                raise ValidationError(
                    f"{name} {getattr(self, name)} with escape rate {self.escape_rate} means "
                    f"{total:.3f} defects per unit; expected at most 1",
                    field=name,
                )

    @property
    def effective_unit_price_usd(self) -> float:
        """USD per unit labelled: the quoted price times the cost-driver multiplier."""
        return self.unit_price_usd * self.multiplier

    @property
    def remediation_usd(self) -> float:
        """Downstream USD per defect that reaches training (default 100 x quoted price)."""
        if self.remediation_usd_per_defect is not None:
            return self.remediation_usd_per_defect
        return REMEDIATION_MULTIPLE * self.unit_price_usd

    def cycles(self) -> FloatArray:
        """(K,) expected units of each rework cycle (:func:`rework_cycles`)."""
        return rework_cycles(self.units, self.defect_rate, self.rework_defect_rate, self.cycle_cap)


@dataclass(frozen=True, slots=True)
class ReworkCycle:
    """One rework cycle: its number (1-based), the units it re-labels and their cost."""

    cycle: int
    units: float
    usd: float


def _hidden(total: float, direct: float) -> float:
    return (total - direct) / direct if direct > 0 else math.nan


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """Expected cost of a program by category (USD); see the module docstring for formulas.

    Attributes
    ----------
    unit_price_usd
        USD per unit labelled (quoted price x cost-driver multiplier).
    rework_cycles
        Each cycle's units and cost.
    escaped_defects
        Expected defects that reach training: those QA misses, plus those still rejected
        when the cycle cap stops the loop (``open_defects``).
    hidden_cost_fraction
        ``(total - direct) / direct``; NaN when direct cost is 0.
    """

    unit_price_usd: float
    direct_usd: float
    qa_review_usd: float
    rework_usd: float
    downstream_usd: float
    total_usd: float
    hidden_cost_fraction: float
    rework_cycles: tuple[ReworkCycle, ...]
    escaped_defects: float
    open_defects: float
    remediation_usd_per_defect: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (``rework_cycles`` as a list of dicts)."""
        document = asdict(self)
        document["rework_cycles"] = [asdict(c) for c in self.rework_cycles]
        return document


def estimate(inputs: CostInputs) -> CostBreakdown:
    """Closed-form expected cost of a program, by category.

    Parameters
    ----------
    inputs
        The program (:class:`CostInputs`).

    Returns
    -------
    CostBreakdown
        Expected USD per category, the rework cycles, and the hidden-cost fraction.

    Notes
    -----
    With ``u_1..u_K`` the cycle units and ``u_(K+1) = u_K r`` (or ``N d`` when ``K = 0``)
    the units QA rejects after the last cycle, which ship unfixed::

        escaped = e / (1 - e) * (u_1 + ... + u_(K+1)) + u_(K+1)

    Examples
    --------
    The seed's example at its "$0.08" label: 200,000 units, 5 % defects, 5 % rework defects.

    >>> cost = estimate(CostInputs(200_000, 0.08, 0.05, 0.05))
    >>> [(c.cycle, c.units, round(c.usd, 2)) for c in cost.rework_cycles]
    [(1, 10000.0, 800.0), (2, 500.0, 40.0), (3, 25.0, 2.0), (4, 1.25, 0.1)]
    >>> round(cost.direct_usd, 2), round(cost.qa_review_usd, 2), round(cost.rework_usd, 2)
    (16000.0, 3200.0, 842.1)
    >>> round(cost.downstream_usd, 2), round(cost.total_usd, 2)
    (4432.63, 24474.73)
    >>> round(cost.hidden_cost_fraction, 4)
    0.5297
    """
    price = inputs.effective_unit_price_usd
    units = inputs.cycles()
    last = float(units[-1]) if units.size else float(inputs.units)
    rate = inputs.rework_defect_rate if units.size else inputs.defect_rate
    open_defects = last * rate
    rejected = float(units.sum()) + open_defects  # every unit any QA pass rejected
    escape = inputs.escape_rate
    escaped = rejected * escape / (1.0 - escape) + open_defects
    direct = inputs.units * price
    qa_review = inputs.qa_share * direct
    cycle_usd = units * price
    rework = float(cycle_usd.sum())
    downstream = escaped * inputs.remediation_usd
    total = direct + qa_review + rework + downstream
    return CostBreakdown(
        unit_price_usd=price,
        direct_usd=direct,
        qa_review_usd=qa_review,
        rework_usd=rework,
        downstream_usd=downstream,
        total_usd=total,
        hidden_cost_fraction=_hidden(total, direct),
        rework_cycles=tuple(
            ReworkCycle(cycle=k + 1, units=float(u), usd=float(usd))
            for k, (u, usd) in enumerate(zip(units.tolist(), cycle_usd.tolist()))
        ),
        escaped_defects=escaped,
        open_defects=open_defects,
        remediation_usd_per_defect=inputs.remediation_usd,
    )


# --- Monte Carlo ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostQuantiles:
    """P10 / P50 / P90, mean and standard deviation of one quantity over the runs."""

    p10: float
    p50: float
    p90: float
    mean: float
    std: float

    @classmethod
    def of(cls, values: NDArray[np.floating[Any]]) -> CostQuantiles:
        """Summarize (n_runs,) values."""
        p10, p50, p90 = np.percentile(values, [10.0, 50.0, 90.0]).tolist()
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return cls(p10=p10, p50=p50, p90=p90, mean=float(values.mean()), std=std)

    def to_dict(self) -> dict[str, float]:
        """Plain dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CostSimulation:
    """Monte Carlo distribution of a program's cost (see :func:`simulate`)."""

    runs: int
    seed: int | None
    direct_usd: CostQuantiles
    qa_review_usd: CostQuantiles
    rework_usd: CostQuantiles
    downstream_usd: CostQuantiles
    total_usd: CostQuantiles
    hidden_cost_fraction: CostQuantiles
    rework_units: CostQuantiles
    escaped_defects: CostQuantiles

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def _escape_given_clean(rate: float, escape: float) -> float:
    """P(an escaped defect | QA passed the unit): rejects and escapes split one unit."""
    escaped = rate * escape / (1.0 - escape)
    return min(escaped / (1.0 - rate), 1.0) if rate < 1.0 else 0.0


def simulate(inputs: CostInputs, n_runs: int = 10_000, seed: int | None = 0) -> CostSimulation:
    """Monte Carlo cost of a program: binomial rejects and escapes per QA pass.

    Every run labels ``N`` units; each QA pass over ``n`` units rejects
    ``Binomial(n, d)`` of them (``r`` for re-labelled units) and lets
    ``Binomial(n - rejected, d e / (1 - e) / (1 - d))`` defects through. Runs go through the
    same cycles as :func:`estimate` (the closed form's ``K``), so the closed form is the
    exact expectation; rejects left after the last cycle ship unfixed.

    Parameters
    ----------
    inputs
        The program.
    n_runs
        Number of simulated programs (>= 1).
    seed
        Seed of ``numpy.random.default_rng``; ``None`` for fresh entropy.

    Returns
    -------
    CostSimulation
        P10/P50/P90, mean and standard deviation of each category, the total, the
        hidden-cost fraction, rework units and escaped defects.

    Examples
    --------
    >>> inputs = CostInputs(200_000, 0.08, 0.05, 0.05)
    >>> mc = simulate(inputs, n_runs=2_000, seed=1)
    >>> abs(mc.total_usd.mean - estimate(inputs).total_usd) < 4 * mc.total_usd.std / 2_000**0.5
    True
    """
    if n_runs < 1:
        raise ValidationError(f"expected at least 1 run, got {n_runs}", field="n_runs")
    rng = np.random.default_rng(seed)
    cycles = inputs.cycles().size
    d, r, e = inputs.defect_rate, inputs.rework_defect_rate, inputs.escape_rate
    labelled: IntArray = np.full(n_runs, inputs.units, dtype=np.int64)
    rejected: IntArray = rng.binomial(labelled, d)
    escaped: IntArray = rng.binomial(labelled - rejected, _escape_given_clean(d, e))
    reworked: IntArray = np.zeros(n_runs, dtype=np.int64)
    escape_r = _escape_given_clean(r, e)
    for _ in range(cycles):  # a loop over a handful of cycles; every draw is over all runs
        redo = rejected
        reworked = reworked + redo
        rejected = rng.binomial(redo, r)
        escaped = escaped + rng.binomial(redo - rejected, escape_r)
    shipped = (escaped + rejected).astype(np.float64)  # rejects still open ship unfixed
    price = inputs.effective_unit_price_usd
    direct = np.full(n_runs, inputs.units * price)
    qa_review = inputs.qa_share * direct
    rework = reworked * price
    downstream = shipped * inputs.remediation_usd
    total = direct + qa_review + rework + downstream
    hidden: FloatArray = np.full(n_runs, math.nan)
    if inputs.units * price > 0:
        hidden = np.asarray((total - direct) / direct, dtype=np.float64)
    return CostSimulation(
        runs=n_runs,
        seed=seed,
        direct_usd=CostQuantiles.of(direct),
        qa_review_usd=CostQuantiles.of(qa_review),
        rework_usd=CostQuantiles.of(rework),
        downstream_usd=CostQuantiles.of(downstream),
        total_usd=CostQuantiles.of(total),
        hidden_cost_fraction=CostQuantiles.of(hidden),
        rework_units=CostQuantiles.of(reworked.astype(np.float64)),
        escaped_defects=CostQuantiles.of(shipped),
    )


# --- crowd vs managed -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cohort:
    """An annotator cohort: its price multiple, defect rates and QA share.

    Parameters
    ----------
    name
        ``crowd``, ``managed`` or any label.
    price_multiple
        Factor on the quoted unit price.
    defect_rate, rework_defect_rate
        Shares QA rejects on first pass and on rework.
    qa_share
        The buyer's QA and review cost as a share of direct cost.
    """

    name: str
    price_multiple: float
    defect_rate: float
    rework_defect_rate: float
    qa_share: float


#: Seed: "a crowd-only program at moderate quality (95% accuracy)", its correction round at
#: "a 5% error rate", and QA "typically 15–25% of direct annotation cost for crowd-sourced
#: work".
CROWD = Cohort("crowd", 1.0, 0.05, 0.05, DEFAULT_QA_SHARE)
#: Seed: "a managed-service program at higher quality (99.5%+ accuracy)" that "charges more
#: per label, sometimes 2 – 3 times more" (2.5). The seed gives no QA share for managed
#: work: its review and QA sampling are inside the vendor's rate, so the buyer keeps an
#: acceptance audit, priced like the seed's "10% random audit" at 10 % of direct cost.
MANAGED = Cohort("managed", 2.5, 0.005, 0.005, 0.10)


@dataclass(frozen=True, slots=True)
class CohortComparison:
    """Crowd vs managed on one program (see :func:`compare_cohorts`).

    Attributes
    ----------
    cheaper
        Name of the cohort with the lower expected total.
    saving_usd
        How much less the cheaper cohort costs.
    break_even_remediation_usd_per_defect
        Downstream USD per escaped defect at which both totals are equal (``None`` when
        the totals never cross for a cost >= 0); above it the cohort with fewer escaped
        defects is cheaper.
    """

    crowd: CostBreakdown
    managed: CostBreakdown
    crowd_cohort: Cohort
    managed_cohort: Cohort
    cheaper: str
    saving_usd: float
    break_even_remediation_usd_per_defect: float | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "crowd": {**asdict(self.crowd_cohort), **self.crowd.to_dict()},
            "managed": {**asdict(self.managed_cohort), **self.managed.to_dict()},
            "cheaper": self.cheaper,
            "saving_usd": self.saving_usd,
            "break_even_remediation_usd_per_defect": self.break_even_remediation_usd_per_defect,
        }


def _for_cohort(base: CostInputs, cohort: Cohort, remediation: float) -> CostInputs:
    return replace(
        base,
        defect_rate=cohort.defect_rate,
        rework_defect_rate=cohort.rework_defect_rate,
        qa_share=cohort.qa_share,
        multiplier=base.multiplier * cohort.price_multiple,
        remediation_usd_per_defect=remediation,
    )


def compare_cohorts(
    base: CostInputs, crowd: Cohort = CROWD, managed: Cohort = MANAGED
) -> CohortComparison:
    """Expected cost of one program done by a crowd cohort and by a managed one.

    Each cohort brings its price multiple, defect rates and QA share; units, quoted price,
    other cost drivers (``base.multiplier``, which should leave specialization out), escape
    rate, cycle cap and downstream cost per defect come from ``base``. Downstream cost per
    defect is the buyer's engineering and compute: the same for both cohorts.

    Examples
    --------
    >>> result = compare_cohorts(CostInputs(200_000, 0.08, 0.05, 0.05))
    >>> result.cheaper, round(result.crowd.total_usd), round(result.managed.total_usd)
    ('crowd', 24475, 44624)
    >>> round(result.break_even_remediation_usd_per_defect, 2)
    48.21
    """
    remediation = base.remediation_usd
    crowd_inputs = _for_cohort(base, crowd, remediation)
    managed_inputs = _for_cohort(base, managed, remediation)
    crowd_cost, managed_cost = estimate(crowd_inputs), estimate(managed_inputs)
    cheaper = crowd.name if crowd_cost.total_usd <= managed_cost.total_usd else managed.name
    # totals are linear in the cost per defect: total = fixed + escaped * c
    fixed_gap = (managed_cost.total_usd - managed_cost.downstream_usd) - (
        crowd_cost.total_usd - crowd_cost.downstream_usd
    )
    escaped_gap = crowd_cost.escaped_defects - managed_cost.escaped_defects
    break_even: float | None = None
    if escaped_gap != 0.0 and fixed_gap / escaped_gap >= 0.0:
        break_even = fixed_gap / escaped_gap
    return CohortComparison(
        crowd=crowd_cost,
        managed=managed_cost,
        crowd_cohort=crowd,
        managed_cohort=managed,
        cheaper=cheaper,
        saving_usd=abs(crowd_cost.total_usd - managed_cost.total_usd),
        break_even_remediation_usd_per_defect=break_even,
    )


# --- pricing measured work --------------------------------------------------------------------

#: What a work-log entry records: drawing (``annotate``, ``rework``) and checking
#: (``review``, ``qa``, ``adjudicate``).
WORK_ACTIVITIES = ("annotate", "rework", "review", "qa", "adjudicate")
_DRAWING = 2  # the first two activities are priced at the annotator rate


@dataclass(frozen=True, slots=True)
class MeasuredCycle:
    """One rework cycle as it happened: its units (items re-labelled), hours and cost."""

    cycle: int
    units: int
    usd: float
    hours: float


@dataclass(frozen=True, slots=True)
class MeasuredCost:
    """What a program cost from its measured work, in the model's four categories.

    Attributes
    ----------
    direct_usd, direct_hours
        First-pass annotation (``annotate`` at cycle 0).
    qa_review_usd, qa_review_hours
        Review, QA inspection and adjudication of the first pass (cycle 0).
    rework_usd, rework_hours
        Everything at cycles >= 1: the re-labelling and the review, QA and adjudication of
        the corrections; per cycle in ``rework_cycles``.
    downstream_usd
        ``escaped_defects x remediation_usd_per_defect``: nobody measures defects that
        reached training, so this is the model's estimate.
    by_activity
        Per activity: ``entries``, ``hours``, ``usd`` and ``objects``.
    model_total_usd, ratio_to_model, ratio_by_category
        The unit-price model's total, measured total / model total and the same ratio per
        category (``None`` without a model, or where the model's category is 0).
    """

    direct_usd: float
    qa_review_usd: float
    rework_usd: float
    downstream_usd: float
    total_usd: float
    hidden_cost_fraction: float
    direct_hours: float
    qa_review_hours: float
    rework_hours: float
    total_hours: float
    rework_cycles: tuple[MeasuredCycle, ...]
    by_activity: dict[str, dict[str, float]]
    escaped_defects: float
    remediation_usd_per_defect: float
    annotator_hourly_usd: float
    review_hourly_usd: float
    model_total_usd: float | None = None
    ratio_to_model: float | None = None
    ratio_by_category: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN hidden-cost fraction as ``None``)."""
        document = asdict(self)
        document["rework_cycles"] = [asdict(c) for c in self.rework_cycles]
        if not math.isfinite(self.hidden_cost_fraction):
            document["hidden_cost_fraction"] = None
        return document


def _column(values: Any, n: int, name: str, default: float | None = None) -> FloatArray:
    if values is None:
        assert default is not None
        return np.full(n, default, dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValidationError(f"expected shape ({n},), got {array.shape}", field=name)
    return array


def _first_bad(mask: NDArray[np.bool_]) -> int | None:
    bad = np.flatnonzero(mask)
    return int(bad[0]) if bad.size else None


def price_measured(
    activity: Any,
    seconds: Any,
    cycle: Any,
    *,
    annotator_hourly_usd: float,
    review_hourly_usd: float,
    multiple: Any = None,
    task: Any = None,
    batch: Any = None,
    objects: Any = None,
    model: CostBreakdown | None = None,
    escaped_defects: float | None = None,
    remediation_usd_per_defect: float | None = None,
) -> MeasuredCost:
    """Price measured work (one row per work-log entry) in the cost model's categories.

    Each entry costs ``seconds / 3600 x rate x multiple``: the annotator rate for
    ``annotate`` and ``rework``, the review rate for ``review``, ``qa`` and ``adjudicate``.
    Cycle 0 splits into direct annotation and QA/review; every entry of cycle ``k >= 1``
    (re-labelling and the checking of it) is rework cycle ``k``, except a batch's first QA
    pass (given ``batch``): the release audit is QA overhead whichever cycle it comes in;
    only the QA passes after it re-inspect because of rework. Downstream remediation is
    not measurable in the log: it is ``escaped_defects x remediation_usd_per_defect``,
    by default the model's (``model``).

    Parameters
    ----------
    activity
        (n,) str, each one of :data:`WORK_ACTIVITIES`.
    seconds
        (n,) measured active seconds, finite and >= 0.
    cycle
        (n,) int >= 0, the rework cycle the work belongs to; ``rework`` is never cycle 0.
    annotator_hourly_usd, review_hourly_usd
        USD per hour at price multiple 1 (the spec's ``[prices]``).
    multiple
        (n,) price multiple of whoever did the entry (their pool's); default 1.
    task
        (n,) int task of each entry (-1 for none); a rework cycle's ``units`` are its
        distinct re-labelled tasks. Default: every drawing entry is its own unit.
    batch
        (n,) int batch of each entry (-1 for none): with it, each batch's earliest QA cycle
        is QA overhead. Default: QA entries follow their cycle like the others.
    objects
        (n,) objects each entry touched (summed per activity); default 0.
    model
        The unit-price model of the same program (:func:`estimate`): the comparison and,
        unless given, the escaped defects and their downstream price.
    escaped_defects, remediation_usd_per_defect
        Override the model's downstream estimate (0 without a model).

    Returns
    -------
    MeasuredCost
        USD and hours per category, the rework cycles, per-activity totals and the ratio to
        the model.

    Raises
    ------
    ValidationError
        Arrays of different lengths, an unknown activity, a negative or non-finite time,
        multiple or rate, a negative cycle, or rework at cycle 0 (naming the first bad row).

    Examples
    --------
    One image drawn in 90 s by a 2x annotator, reviewed in 30 s, re-drawn in cycle 1 in
    45 s and re-reviewed in 15 s, at 36 USD an hour:

    >>> cost = price_measured(
    ...     ["annotate", "review", "rework", "review"], [90, 30, 45, 15], [0, 0, 1, 1],
    ...     multiple=[2, 1, 2, 1], task=[7, 7, 8, 8],
    ...     annotator_hourly_usd=36, review_hourly_usd=36)
    >>> round(cost.direct_usd, 4), round(cost.qa_review_usd, 4), round(cost.rework_usd, 4)
    (1.8, 0.3, 1.05)
    >>> [(c.cycle, c.units, round(c.usd, 4), round(c.hours, 4)) for c in cost.rework_cycles]
    [(1, 1, 1.05, 0.0167)]
    """
    kinds = np.asarray(activity, dtype=object).reshape(-1)
    n = len(kinds)
    secs = _column(seconds, n, "seconds")
    cycles_f = _column(cycle, n, "cycle")
    mult = _column(multiple, n, "multiple", 1.0)
    tasks = _column(task, n, "task", -1.0).astype(np.int64)
    batches = _column(batch, n, "batch", -1.0).astype(np.int64)
    touched = _column(objects, n, "objects", 0.0)
    _non_negative(annotator_hourly_usd, "annotator_hourly_usd")
    _non_negative(review_hourly_usd, "review_hourly_usd")
    code = np.full(n, -1, dtype=np.int64)
    for k, name in enumerate(WORK_ACTIVITIES):  # five words, not rows
        code[kinds == name] = k
    checks = (
        (code < 0, "activity", f"expected one of {', '.join(WORK_ACTIVITIES)}"),
        (~np.isfinite(secs) | (secs < 0), "seconds", "expected finite seconds >= 0"),
        (
            ~np.isfinite(cycles_f) | (cycles_f < 0) | (cycles_f != np.round(cycles_f)),
            "cycle",
            "expected an integer cycle >= 0",
        ),
        (~np.isfinite(mult) | (mult <= 0), "multiple", "expected a price multiple > 0"),
        (
            (code == WORK_ACTIVITIES.index("rework")) & (cycles_f == 0),
            "cycle",
            "rework belongs to a rework cycle >= 1",
        ),
    )
    shown = {"activity": kinds, "seconds": secs, "cycle": cycles_f, "multiple": mult}
    for bad, name, message in checks:
        row = _first_bad(bad)
        if row is not None:
            value = shown[name][row]
            got = value if isinstance(value, str) else float(value)
            raise ValidationError(f"{message}, got {got!r}", field=name, row=row)
    cyc = cycles_f.astype(np.int64)
    drawing = (code >= 0) & (code < _DRAWING)
    rate = np.where(drawing, annotator_hourly_usd, review_hourly_usd) * mult
    hours = secs / 3600.0
    usd = hours * rate
    # category: 0 direct, 1 QA/review, 2 rework
    category = np.where(cyc > 0, 2, np.where(drawing, 0, 1))
    qa = np.flatnonzero(code == WORK_ACTIVITIES.index("qa"))
    if batch is not None and qa.size:
        # each batch's first QA pass is its release audit: overhead, not rework
        keys, inverse = np.unique(batches[qa], return_inverse=True)
        first = np.full(len(keys), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inverse, cyc[qa])
        category[qa[cyc[qa] == first[inverse]]] = 1
    usd_by = np.bincount(category, weights=usd, minlength=3)
    hours_by = np.bincount(category, weights=hours, minlength=3)

    # rework cycles: cost and hours per cycle, distinct re-labelled tasks as units
    top = int(cyc.max(initial=0))
    in_rework = category == 2
    cycle_usd = np.bincount(cyc[in_rework], weights=usd[in_rework], minlength=top + 1)
    cycle_hours = np.bincount(cyc[in_rework], weights=hours[in_rework], minlength=top + 1)
    redrawn = drawing & (cyc > 0)
    units: IntArray = np.bincount(cyc[redrawn], minlength=top + 1)
    if task is not None:
        # an entry without a task (-1) is a unit of its own: give it a unique negative key
        keys = np.where(tasks[redrawn] >= 0, tasks[redrawn], -1 - np.arange(int(redrawn.sum())))
        pairs = np.unique(np.stack([cyc[redrawn], keys], axis=1), axis=0)
        units = np.bincount(pairs[:, 0], minlength=top + 1)
    present = np.unique(cyc[in_rework])
    rework = tuple(
        MeasuredCycle(
            cycle=int(k),
            units=int(units[k]),
            usd=float(cycle_usd[k]),
            hours=float(cycle_hours[k]),
        )
        for k in present.tolist()
    )

    per_activity = {
        name: {
            "entries": float(c),
            "hours": float(h),
            "usd": float(u),
            "objects": float(o),
        }
        for name, c, h, u, o in zip(
            WORK_ACTIVITIES,
            np.bincount(code, minlength=len(WORK_ACTIVITIES)).tolist(),
            np.bincount(code, weights=hours, minlength=len(WORK_ACTIVITIES)).tolist(),
            np.bincount(code, weights=usd, minlength=len(WORK_ACTIVITIES)).tolist(),
            np.bincount(code, weights=touched, minlength=len(WORK_ACTIVITIES)).tolist(),
        )
    }

    if escaped_defects is None:
        escaped_defects = model.escaped_defects if model is not None else 0.0
    if remediation_usd_per_defect is None:
        remediation_usd_per_defect = model.remediation_usd_per_defect if model is not None else 0.0
    _non_negative(escaped_defects, "escaped_defects")
    _non_negative(remediation_usd_per_defect, "remediation_usd_per_defect")
    direct, qa_review, rework_usd = (float(v) for v in usd_by)
    downstream = escaped_defects * remediation_usd_per_defect
    total = direct + qa_review + rework_usd + downstream

    def ratio(measured: float, modelled: float) -> float | None:
        return measured / modelled if modelled > 0 else None

    ratios: dict[str, float | None] = {}
    model_total = ratio_total = None
    if model is not None:
        model_total = model.total_usd
        ratio_total = ratio(total, model.total_usd)
        ratios = {
            "direct_usd": ratio(direct, model.direct_usd),
            "qa_review_usd": ratio(qa_review, model.qa_review_usd),
            "rework_usd": ratio(rework_usd, model.rework_usd),
            "downstream_usd": ratio(downstream, model.downstream_usd),
        }
    return MeasuredCost(
        direct_usd=direct,
        qa_review_usd=qa_review,
        rework_usd=rework_usd,
        downstream_usd=downstream,
        total_usd=total,
        hidden_cost_fraction=_hidden(total, direct),
        direct_hours=float(hours_by[0]),
        qa_review_hours=float(hours_by[1]),
        rework_hours=float(hours_by[2]),
        total_hours=float(hours.sum()),
        rework_cycles=rework,
        by_activity=per_activity,
        escaped_defects=float(escaped_defects),
        remediation_usd_per_defect=float(remediation_usd_per_defect),
        annotator_hourly_usd=float(annotator_hourly_usd),
        review_hourly_usd=float(review_hourly_usd),
        model_total_usd=model_total,
        ratio_to_model=ratio_total,
        ratio_by_category=ratios,
    )
