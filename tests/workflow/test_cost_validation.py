"""The rework cost model against the real workflow: measured rework cycles vs closed form.

The cost model (:mod:`labelgate.core.cost`) assumes every unit fails QA independently with
probability ``d`` on the first pass and ``r`` after each fix, that QA sees every defect,
and that exactly the rejected units go back. The simulation below runs that process through
the real :class:`~labelgate.workflow.program.Program` (assignment, saves, review, QA census,
targeted rework, the cycle cap) and checks the measured units per cycle against
:func:`~labelgate.core.cost.rework_cycles` and the Monte Carlo
:func:`~labelgate.core.cost.simulate`.

How the workflow is aligned with the model, and why the comparison is fair:

- **unit = image**: ``qa_unit = "image"`` counts an image with any defect as one defective
  unit, the unit the model reworks;
- **every unit inspected, every defect seen**: ``qa_sample_rate = 1.0`` (a census: the
  hypergeometric bound is then the observed rate), ``inspector_catch_rate = 1`` (escape
  rate 0 in the model), and a ``defect_limit`` below one image in the lot, so QA releases a
  batch only when no defect is left, as the model's loop does;
- **exactly the rejected units go back**: ``rework_policy = "defective"``; review accepts
  everything (``reviewer_catch_rate = 0``) and nothing is double-annotated, so QA is the
  only stage that rejects (no consensus or adjudication fixing defects on the side);
- **known per-unit defect probabilities**: annotators copy the truth exactly and add
  Poisson(lambda) false boxes per image, so an image is defective with probability
  ``1 - exp(-lambda)``; a rework pass is drawn with experience ``rework_care = 1`` and a
  learning rate chosen so its lambda gives ``r``;
- **the cycle cap**: ``max_rework_cycles`` equals the number of cycles the closed form
  runs, so both stop at the same cycle; what QA still rejects then ships (open defects).

The same programs are then priced from their work log (every save carries the log-normal
time its objects took) and checked against the closed form where the two are comparable:
the first pass at a unit price equal to the expected time of an image at the hourly rate,
and the rework cycles at the expected time of a fix (see the last test's docstring).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from labelgate.core._typing import FloatArray
from labelgate.core.cost import CostInputs, estimate, rework_cycles, simulate
from labelgate.core.generate import NoiseModel
from labelgate.core.simulate import AnnotatorProfile
from labelgate.store.db import Database, upgrade
from labelgate.store.models import TaskRow, WorkLogRow
from labelgate.workflow.costing import price_program
from labelgate.workflow.simulation import SimulationConfig, run_simulation

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()

IMAGES = 80
DEFECT_RATE = 0.3  # first pass: P(image has a defect)
REWORK_DEFECT_RATE = 0.2  # after a fix
SEEDS = (0, 1, 2, 3, 4)
SECONDS = 8.0  # median seconds per object drawn
SIGMA = 0.5  # log-normal sigma of the time per object
CHECK_SECONDS = 2.5  # median seconds to check one object handed to rework
HOURLY = 36.0  # annotator_hourly_usd, at price multiple 1 for both annotators


def _aligned_spec(cycle_cap: int) -> str:
    """The example spec, changed only where the model's process must be matched."""
    changes = {
        "qa_sample_rate": "1.0",
        "defect_limit": "0.001",
        "rework_policy": '"defective"',
        "max_rework_cycles": str(cycle_cap),
        "double_annotation_rate": "0.0",
        "gold_rate": "0.0",
        "honeypot_rate": "0.0",
        "pilot_agreement": "0.9",
        "qualify_per": "[]",
    }
    text = SPEC
    for key, value in changes.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    text = text.replace("box = 0.08", f"box = 0.08\nannotator_hourly_usd = {HOURLY}")
    pools = 'annotators = ["eve", "farid"]\nprice_multiple = 2.2'
    assert pools in text
    text = text.replace(pools, 'annotators = ["eve", "farid", "gus"]\nprice_multiple = 1.0')
    return text.replace("[gates]\n", '[gates]\nqa_unit = "image"\n')


def _profiles() -> tuple[AnnotatorProfile, ...]:
    first = -math.log(1.0 - DEFECT_RATE)  # Poisson mean of false boxes per image
    again = -math.log(1.0 - REWORK_DEFECT_RATE)
    noise = NoiseModel(
        miss_base=0.0,
        miss_small_extra=0.0,
        jitter=0.0,
        swap_probability=0.0,
        duplicate_probability=0.0,
        false_positives_per_image=first,
    )
    # rework is drawn at experience rework_care = 1: exp(-learning_rate) scales lambda
    learning_rate = math.log(first / again)
    return tuple(
        AnnotatorProfile(
            name,
            "managed",
            noise=noise,
            learning_rate=learning_rate,
            seconds_per_object=SECONDS,
            speed_sigma=SIGMA,
            attribute_error_rate=0.0,
        )
        for name in ("farid", "gus")
    )


@dataclass(frozen=True)
class Program:
    """One simulated program: its rework units, its work log and its truth."""

    units: list[int]  # rework cycles 1..cap, then the open defects
    first_pass_seconds: float  # annotate entries of cycle 0
    rework_seconds: dict[int, list[float]]  # per cycle, each rework task's seconds
    truth_objects: FloatArray  # (images,) truth objects on each production image
    measured: dict[str, Any]  # price_program()["measured"]


def _run(tmp_path: Path, seed: int, cycle_cap: int) -> Program:
    """Run one aligned program; its rework units per cycle and what its work log holds."""
    db = Database(f"sqlite:///{tmp_path / f'cost-{seed}.db'}")
    try:
        upgrade(db)
        config = SimulationConfig(
            images=IMAGES,
            batches=1,
            gold_images=20,
            honeypot_images=5,
            annotators=_profiles(),
            reviewer_catch_rate=0.0,
            inspector_catch_rate=1.0,
            rework_care=1,
            review_seconds_per_object=CHECK_SECONDS,
            speed_sigma=SIGMA,
            seed=seed,
        )
        result = run_simulation(db, _aligned_spec(cycle_cap), config)
        with db.session() as s:
            per_cycle = dict(
                s.execute(
                    select(TaskRow.cycle, func.count())
                    .where(TaskRow.purpose == "rework")
                    .group_by(TaskRow.cycle)
                ).all()
            )
            log = s.execute(select(WorkLogRow.activity, WorkLogRow.cycle, WorkLogRow.seconds)).all()
        measured = price_program(db)["measured"]
    finally:
        db.dispose()
    rework_seconds: dict[int, list[float]] = {}
    for activity, cycle, seconds in log:
        if activity == "rework":
            rework_seconds.setdefault(cycle, []).append(seconds)
    work_images = np.sort(result.truth.images.id[config.gold_images + config.honeypot_images :])
    on_work = np.isin(result.truth.annotations.image_id, work_images)
    truth_objects = np.bincount(
        np.searchsorted(work_images, result.truth.annotations.image_id[on_work]),
        minlength=len(work_images),
    ).astype(np.float64)
    assert truth_objects.sum() == on_work.sum()
    qa = [g for g in result.gates if g["gate"] == "qa_defect_rate"]
    # each QA pass is a census: it inspected the whole lot
    assert all(g["inputs"]["sampled_images"] == IMAGES for g in qa)
    found = [g["inputs"]["defective_images"] for g in qa]
    units = [per_cycle.get(k, 0) for k in range(1, cycle_cap + 1)]
    # the units of cycle k are exactly the images QA rejected in cycle k - 1
    assert units[: len(found)] == found[:cycle_cap][: len(units)]
    open_defects = found[cycle_cap] if len(found) > cycle_cap else 0
    return Program(
        units=[*units, open_defects],
        first_pass_seconds=sum(s for a, c, s in log if a == "annotate" and c == 0),
        rework_seconds=rework_seconds,
        truth_objects=truth_objects,
        measured=measured,
    )


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> list[Program]:
    """The aligned program under each seed, run once for every test of this module."""
    cap = len(rework_cycles(IMAGES, DEFECT_RATE, REWORK_DEFECT_RATE))
    tmp_path = tmp_path_factory.mktemp("cost-validation")
    return [_run(tmp_path, seed, cap) for seed in SEEDS]


@pytest.mark.slow
def test_measured_rework_cycles_agree_with_the_cost_model(programs: list[Program]) -> None:
    expected = rework_cycles(IMAGES, DEFECT_RATE, REWORK_DEFECT_RATE)
    cap = len(expected)  # the closed form's own number of cycles: [24.0, 4.8]
    measured = np.array([p.units for p in programs], dtype=np.float64)
    units, open_defects = measured[:, :cap], measured[:, cap]
    n = len(SEEDS)

    # per cycle: u_1 ~ Bin(N, d), u_(k+1) | u_k ~ Bin(u_k, r): mean and variance by recursion
    mean, var = IMAGES * DEFECT_RATE, IMAGES * DEFECT_RATE * (1 - DEFECT_RATE)
    for k in range(cap):
        assert mean == pytest.approx(expected[k])
        z = (units[:, k].mean() - mean) / math.sqrt(var / n)
        assert abs(z) < 4, (k + 1, units[:, k].tolist(), mean)
        r = REWORK_DEFECT_RATE
        mean, var = r * mean, r * (1 - r) * mean + r * r * var
    # open defects after the last cycle: the model's u_(K+1)
    inputs = CostInputs(
        IMAGES, 1.0, DEFECT_RATE, REWORK_DEFECT_RATE, escape_rate=0.0, cycle_cap=cap
    )
    assert estimate(inputs).open_defects == pytest.approx(mean)
    assert abs(open_defects.mean() - mean) < 4 * math.sqrt(var / n) + 1e-9

    # total rework units against the Monte Carlo distribution of the same program
    mc = simulate(inputs, n_runs=20_000, seed=0)
    total = units.sum(axis=1)
    closed = float(expected.sum())
    assert abs(mc.rework_units.mean - closed) < 4 * mc.rework_units.std / math.sqrt(20_000)
    assert abs(total.mean() - closed) < 4 * mc.rework_units.std / math.sqrt(n), total.tolist()
    assert (
        (total > closed - 4 * mc.rework_units.std) & (total < closed + 4 * mc.rework_units.std)
    ).all()

    # the per-unit rates the workflow produced are the model's d and r (pooled over seeds)
    first = units[:, 0].sum() / (IMAGES * n)
    again = (units[:, 1:].sum() + open_defects.sum()) / units.sum()
    assert abs(first - DEFECT_RATE) < 4 * math.sqrt(DEFECT_RATE * (1 - DEFECT_RATE) / (IMAGES * n))
    r = REWORK_DEFECT_RATE
    assert abs(again - r) < 4 * math.sqrt(r * (1 - r) / units.sum())


def _lognormal_var(median: float) -> float:
    """Variance of one object's time: median^2 exp(sigma^2) (exp(sigma^2) - 1)."""
    return median**2 * math.exp(SIGMA**2) * (math.exp(SIGMA**2) - 1.0)


def _positive_poisson(lam: float) -> tuple[float, float]:
    """Mean and variance of a Poisson(lam) count given that it is at least 1."""
    mean = lam / (1.0 - math.exp(-lam))
    second = (lam + lam * lam) / (1.0 - math.exp(-lam))
    return mean, second - mean * mean


@pytest.mark.slow
def test_measured_cost_agrees_with_the_closed_form_where_they_are_comparable(
    programs: list[Program],
) -> None:
    """The work log, priced at the hourly rate, against the model priced per image.

    The time model, by hand: a first-pass image with ``m`` truth objects and
    ``Poisson(lambda)`` false boxes takes ``(m + lambda) S exp(sigma^2 / 2)`` seconds on
    average, so the unit price that makes the closed form comparable is
    ``p = HOURLY / 3600 x that``, and the model's direct cost ``N p`` is the expected
    measured one. Rework is a fix, not a re-label: a rework task checks the objects it is
    handed (the item's labels, which QA rejected, so ``m`` plus a positive Poisson count of
    false boxes) at ``CHECK_SECONDS`` and draws its own new false boxes at ``S``. Its price
    per unit, ``p_k``, replaces ``p`` in the model's rework cycles: the closed form's
    ``sum_k u_k p_k`` against the measured rework cost, within the binomial error of the
    cycle units and the time noise of each unit.
    """
    lam = -math.log(1.0 - DEFECT_RATE)
    lam_r = -math.log(1.0 - REWORK_DEFECT_RATE)
    grow = math.exp(SIGMA**2 / 2)  # log-normal mean over median
    usd = HOURLY / 3600.0
    cap = len(rework_cycles(IMAGES, DEFECT_RATE, REWORK_DEFECT_RATE))
    direct = model_direct = direct_var = 0.0
    rework = model_rework = rework_var = 0.0
    for program in programs:
        m = program.truth_objects
        n, mean_m, var_m = len(m), float(m.mean()), float(m.var())
        assert n == IMAGES
        # --- first pass: N p with p = usd (m + lambda) S e^(s^2/2)
        price = usd * (mean_m + lam) * SECONDS * grow
        model = estimate(
            CostInputs(n, price, DEFECT_RATE, REWORK_DEFECT_RATE, escape_rate=0.0, cycle_cap=cap)
        )
        assert program.measured["direct_usd"] == pytest.approx(
            usd * program.first_pass_seconds, rel=1e-9
        )
        direct += program.measured["direct_usd"]
        model_direct += model.direct_usd
        objects = m.sum() + n * lam
        direct_var += usd**2 * (objects * _lognormal_var(SECONDS) + n * lam * (SECONDS * grow) ** 2)
        # --- rework: per cycle, a unit checks m + X (X >= 1 false boxes) and draws Y
        prices, unit_vars = [], []
        for k in range(1, cap + 1):
            handed, handed_var = _positive_poisson(lam if k == 1 else lam_r)
            checked = mean_m + handed
            unit = usd * grow * (CHECK_SECONDS * checked + SECONDS * lam_r)
            prices.append(unit)
            unit_vars.append(
                usd**2
                * (
                    checked * _lognormal_var(CHECK_SECONDS)
                    + (var_m + handed_var) * (CHECK_SECONDS * grow) ** 2
                    + lam_r * _lognormal_var(SECONDS)
                    + lam_r * (SECONDS * grow) ** 2
                )
            )
        expected_units = [c.units for c in model.rework_cycles]
        model_rework += sum(u * p for u, p in zip(expected_units, prices))
        measured_rework = usd * sum(
            sum(program.rework_seconds.get(k, [])) for k in range(1, cap + 1)
        )
        assert measured_rework == pytest.approx(
            program.measured["by_activity"]["rework"]["usd"], rel=1e-9
        )
        rework += measured_rework
        # binomial chain u_1 ~ Bin(N, d), u_2 | u_1 ~ Bin(u_1, r): Var(p_1 u_1 + p_2 u_2)
        v1 = n * DEFECT_RATE * (1 - DEFECT_RATE)
        r = REWORK_DEFECT_RATE
        v2 = r * (1 - r) * n * DEFECT_RATE + r * r * v1
        assert cap == 2
        rework_var += prices[0] ** 2 * v1 + prices[1] ** 2 * v2 + 2 * prices[0] * prices[1] * r * v1
        rework_var += sum(u * v for u, v in zip(expected_units, unit_vars))
    # first pass: measured and modelled direct cost agree within 4 sd
    assert abs(direct - model_direct) < 4 * math.sqrt(direct_var), (direct, model_direct)
    assert direct / model_direct == pytest.approx(1.0, abs=0.05)
    # rework: the closed form's cycles priced per fix agree with the measured fixes
    assert abs(rework - model_rework) < 4 * math.sqrt(rework_var), (rework, model_rework)
    # and the unit-price model (a rework unit costs a first-pass unit) overprices the fix
    assert rework < sum(
        estimate(
            CostInputs(
                IMAGES, usd * (float(p.truth_objects.mean()) + lam) * SECONDS * grow,
                DEFECT_RATE, REWORK_DEFECT_RATE, escape_rate=0.0, cycle_cap=cap,
            )
        ).rework_usd
        for p in programs
    )  # fmt: skip
