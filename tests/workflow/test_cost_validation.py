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
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from labelgate.core.cost import CostInputs, estimate, rework_cycles, simulate
from labelgate.core.generate import NoiseModel
from labelgate.core.simulate import AnnotatorProfile
from labelgate.store.db import Database, upgrade
from labelgate.store.models import TaskRow
from labelgate.workflow.simulation import SimulationConfig, run_simulation

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "spec.toml").read_text()

IMAGES = 80
DEFECT_RATE = 0.3  # first pass: P(image has a defect)
REWORK_DEFECT_RATE = 0.2  # after a fix
SEEDS = (0, 1, 2, 3, 4)


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
        AnnotatorProfile(name, "managed", noise=noise, learning_rate=learning_rate)
        for name in ("farid", "gus")
    )


def _run(tmp_path: Path, seed: int, cycle_cap: int) -> list[int]:
    """Units re-labelled in rework cycles 1..cap of one program, then the open defects."""
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
    finally:
        db.dispose()
    qa = [g for g in result.gates if g["gate"] == "qa_defect_rate"]
    # each QA pass is a census: it inspected the whole lot
    assert all(g["inputs"]["sampled_images"] == IMAGES for g in qa)
    found = [g["inputs"]["defective_images"] for g in qa]
    units = [per_cycle.get(k, 0) for k in range(1, cycle_cap + 1)]
    # the units of cycle k are exactly the images QA rejected in cycle k - 1
    assert units[: len(found)] == found[:cycle_cap][: len(units)]
    open_defects = found[cycle_cap] if len(found) > cycle_cap else 0
    return [*units, open_defects]


@pytest.mark.slow
def test_measured_rework_cycles_agree_with_the_cost_model(tmp_path: Path) -> None:
    expected = rework_cycles(IMAGES, DEFECT_RATE, REWORK_DEFECT_RATE)
    cap = len(expected)  # the closed form's own number of cycles: [24.0, 4.8]
    measured = np.array([_run(tmp_path, seed, cap) for seed in SEEDS], dtype=np.float64)
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
