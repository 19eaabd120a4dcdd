"""``labelgate cost``: the rework-inclusive cost of a labelling program.

Direct annotation, QA and review, rework cycles and downstream remediation, in USD, with
the hidden-cost fraction over the quoted labour price and a Monte Carlo P10/P50/P90
(:mod:`labelgate.core.cost`; the model and every default: ``docs/cost.md``).

With ``--spec`` the quoted price comes from the spec's ``[prices]`` (when ``--unit-price`` is
omitted), the tier and required attributes from its classes (``--class`` for one class,
otherwise the mean over the classes, each counted once), deep QA from
``assignment.double_annotation_rate``, the cycle cap from ``gates.max_rework_cycles`` and the
price multiples from its ``[[pools]]``. An option given on the command line always wins.

With ``--db URL [--project NAME]`` it prices a program in the store instead, from what
really happened (:func:`labelgate.workflow.costing.price_program`): the model at the
program's measured defect rates, and its work log (measured seconds of every save, review,
QA inspection and adjudication) at the spec's hourly rates, in the same four categories.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._output import console, emit_json, fail
from labelgate.core.cost import (
    DEFAULT_ESCAPE_RATE,
    DEFAULT_QA_SHARE,
    MANAGED,
    Cohort,
    CohortComparison,
    CostBreakdown,
    CostDrivers,
    CostInputs,
    CostSimulation,
    compare_cohorts,
    estimate,
    simulate,
)
from labelgate.errors import LabelgateError, SpecError, StoreError, ValidationError
from labelgate.spec import PRICE_UNITS, Prices, ProgramSpec, load_spec

__all__ = ["cost_command"]

_CATEGORIES = ("direct_usd", "qa_review_usd", "rework_usd", "downstream_usd", "total_usd")
_RATE = {"min": 0.0, "max": 1.0}


def _required_attributes(spec: ProgramSpec, class_name: str) -> int:
    return sum(
        1 for a in spec.attributes if a.required and (not a.classes or class_name in a.classes)
    )


def _class_drivers(spec: ProgramSpec | None, class_name: str | None) -> tuple[float, float, str]:
    """IoU threshold, required attributes and the kind the spec gives (defaults without)."""
    if spec is None:
        return 0.5, 0.0, "box"
    if class_name is not None:
        try:
            c = spec.class_by_name(class_name)
        except KeyError:
            raise SpecError(f"no class {class_name!r} in the spec", location="--class") from None
        return c.threshold, float(_required_attributes(spec, c.name)), c.kind
    # one class at a time is exact; without --class every class counts once
    thresholds = [c.threshold for c in spec.classes]
    attributes = [_required_attributes(spec, c.name) for c in spec.classes]
    kinds = {c.kind for c in spec.classes}
    kind = kinds.pop() if len(kinds) == 1 else "box"
    return sum(thresholds) / len(thresholds), sum(attributes) / len(attributes), kind


def _pool_multiple(spec: ProgramSpec | None, *, pool: str | None, cohort: str) -> float | None:
    """The price multiple of a named pool, or of the spec's first pool of a cohort."""
    if spec is None:
        return None
    for p in spec.pools:
        if (pool is not None and p.name == pool) or (pool is None and p.cohort == cohort):
            return p.price_multiple
    if pool is not None:
        raise SpecError(f"no pool {pool!r} in the spec", location="--pool")
    return None


def _specialization(given: float | None, spec: ProgramSpec | None, pool: str | None) -> float:
    """The annotators' price multiple: the option, else the ``--pool``'s, else 1 (crowd)."""
    if given is not None:
        return given
    if pool is not None:
        multiple = _pool_multiple(spec, pool=pool, cohort="")
        if multiple is not None:
            return multiple
    return 1.0


def cost_command(
    units: Annotated[
        int | None,
        typer.Option("--units", min=0, help="Units labelled (e.g. images); needed without --db."),
    ] = None,
    defect_rate: Annotated[
        float | None,
        typer.Option(
            "--defect-rate",
            **_RATE,
            help="Share of first-pass units QA rejects; needed without --db.",
        ),
    ] = None,
    rework_defect_rate: Annotated[
        float | None,
        typer.Option(
            "--rework-defect-rate",
            **_RATE,
            help="Share of corrections QA rejects again (default: the defect rate).",
        ),
    ] = None,
    unit_price: Annotated[
        float | None,
        typer.Option(
            "--unit-price",
            min=0.0,
            help="Quoted USD per unit (default: the spec's or the seed's mid-range price "
            "of --kind).",
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help=f"Priced unit: {', '.join(PRICE_UNITS)} (default box)."),
    ] = None,
    spec_path: Annotated[
        Path | None, typer.Option("--spec", help="Program spec (TOML) for prices and drivers.")
    ] = None,
    class_name: Annotated[
        str | None, typer.Option("--class", help="With --spec: price this class only.")
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", help="With --spec: the pool whose multiple applies.")
    ] = None,
    cycles_cap: Annotated[
        int | None,
        typer.Option(
            "--cycles-cap",
            min=0,
            help="Most rework cycles (default: the spec's max_rework_cycles, else none).",
        ),
    ] = None,
    qa_share: Annotated[
        float,
        typer.Option("--qa-share", min=0.0, help="QA and review cost as a share of direct."),
    ] = DEFAULT_QA_SHARE,
    escape_rate: Annotated[
        float,
        typer.Option("--escape-rate", min=0.0, max=0.999, help="Share of defects QA misses."),
    ] = DEFAULT_ESCAPE_RATE,
    remediation_usd: Annotated[
        float | None,
        typer.Option(
            "--remediation-usd",
            min=0.0,
            help="Downstream USD per defect reaching training (default 100 x unit price).",
        ),
    ] = None,
    objects_per_image: Annotated[
        float, typer.Option("--objects-per-image", min=0.0, help="Priced instances per unit.")
    ] = 1.0,
    iou_threshold: Annotated[
        float | None,
        typer.Option("--iou-threshold", **_RATE, help="Required IoU (default 0.5 or the spec)."),
    ] = None,
    required_attributes: Annotated[
        float | None,
        typer.Option("--required-attributes", min=0.0, help="Required attributes per instance."),
    ] = None,
    deep_qa_share: Annotated[
        float | None,
        typer.Option(
            "--deep-qa-share",
            **_RATE,
            help="Share of units with multi-pass review / blind re-annotation / adjudication.",
        ),
    ] = None,
    specialization: Annotated[
        float | None,
        typer.Option("--specialization", min=0.0, help="Price multiple of the annotators."),
    ] = None,
    runs: Annotated[
        int, typer.Option("--runs", min=0, help="Monte Carlo runs (0: no simulation).")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Monte Carlo seed.")] = 0,
    cohorts: Annotated[
        bool, typer.Option("--compare-cohorts", help="Also price the program crowd vs managed.")
    ] = False,
    managed_multiple: Annotated[
        float | None,
        typer.Option("--managed-multiple", min=0.0, help="Managed price multiple (2.5)."),
    ] = None,
    managed_defect_rate: Annotated[
        float, typer.Option("--managed-defect-rate", **_RATE, help="Managed defect rate.")
    ] = MANAGED.defect_rate,
    managed_qa_share: Annotated[
        float, typer.Option("--managed-qa-share", min=0.0, help="Managed QA share.")
    ] = MANAGED.qa_share,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Price the program in this database from its measured work (no --units).",
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="With --db: project name (default: the first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Price a program with its rework: four categories, rework cycles, hidden cost, P10-P90."""
    if db_url is not None:
        _stored_program(db_url, project, units=units, defect_rate=defect_rate, as_json=as_json)
        return
    try:
        if project is not None:
            raise ValidationError("--project needs --db", field="--project")
        if units is None or defect_rate is None:
            missing = " and ".join(
                name
                for name, value in (("--units", units), ("--defect-rate", defect_rate))
                if value is None
            )
            raise ValidationError(
                f"give {missing} (or --db URL to price a stored program)", field="--units"
            )
        spec = load_spec(spec_path) if spec_path is not None else None
        if spec is None and (class_name is not None or pool is not None):
            raise SpecError("--class and --pool need --spec", location="--spec")
        spec_threshold, spec_attributes, spec_kind = _class_drivers(spec, class_name)
        kind = kind or spec_kind
        if kind not in PRICE_UNITS:
            raise ValidationError(
                f"expected one of {', '.join(PRICE_UNITS)}, got {kind!r}", field="--kind"
            )
        prices = spec.prices if spec is not None else Prices()
        quoted = unit_price if unit_price is not None else prices.price(kind)
        drivers = CostDrivers(
            objects_per_image=objects_per_image,
            iou_threshold=iou_threshold if iou_threshold is not None else spec_threshold,
            required_attributes=(
                required_attributes if required_attributes is not None else spec_attributes
            ),
            deep_qa_share=(
                deep_qa_share
                if deep_qa_share is not None
                else (spec.assignment.double_annotation_rate if spec is not None else 0.0)
            ),
            specialization=_specialization(specialization, spec, pool),
        )
        cap = cycles_cap
        if cap is None and spec is not None:
            cap = spec.gates.max_rework_cycles
        rework_rate = rework_defect_rate if rework_defect_rate is not None else defect_rate
        inputs = CostInputs(
            units=units,
            unit_price_usd=quoted,
            defect_rate=defect_rate,
            rework_defect_rate=rework_rate,
            qa_share=qa_share,
            escape_rate=escape_rate,
            remediation_usd_per_defect=remediation_usd,
            cycle_cap=cap,
            multiplier=drivers.multiplier(),
        )
        breakdown = estimate(inputs)
        simulation = simulate(inputs, n_runs=runs, seed=seed) if runs > 0 else None
        comparison = None
        if cohorts:
            # the cohorts bring their own price multiples: every other driver stays
            base = replace(inputs, multiplier=drivers.multiplier() / drivers.specialization)
            crowd = Cohort(
                "crowd",
                _pool_multiple(spec, pool=None, cohort="crowd") or 1.0,
                defect_rate,
                rework_rate,
                qa_share,
            )
            managed = Cohort(
                "managed",
                managed_multiple
                or _pool_multiple(spec, pool=None, cohort="managed")
                or MANAGED.price_multiple,
                managed_defect_rate,
                managed_defect_rate,
                managed_qa_share,
            )
            comparison = compare_cohorts(base, crowd, managed)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    context = {
        "spec": str(spec_path) if spec_path is not None else None,
        "class": class_name,
        "pool": pool,
        "kind": kind,
        "price_unit": PRICE_UNITS[kind],
    }
    document = _document(inputs, drivers, breakdown, simulation, comparison, context)
    if as_json:
        emit_json(document)
        return
    _render(document, breakdown, simulation, comparison)


def _document(
    inputs: CostInputs,
    drivers: CostDrivers,
    breakdown: CostBreakdown,
    simulation: CostSimulation | None,
    comparison: CohortComparison | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The ``--json`` document (docs/cost.md): contract keys first, then the detail."""
    costs = breakdown.to_dict()
    monte_carlo: dict[str, Any] | None = None
    if simulation is not None:
        total = simulation.total_usd.to_dict()
        monte_carlo = {
            "runs": simulation.runs,
            "seed": simulation.seed,
            **total,
            "categories": {
                name: getattr(simulation, name).to_dict()
                for name in (
                    *_CATEGORIES,
                    "hidden_cost_fraction",
                    "rework_units",
                    "escaped_defects",
                )
            },
        }
    return {
        "rework_cycles": costs["rework_cycles"],
        **{name: costs[name] for name in _CATEGORIES},
        "hidden_cost_fraction": costs["hidden_cost_fraction"],
        "monte_carlo": monte_carlo,
        "unit_price_usd": costs["unit_price_usd"],
        "escaped_defects": costs["escaped_defects"],
        "open_defects": costs["open_defects"],
        "remediation_usd_per_defect": costs["remediation_usd_per_defect"],
        "inputs": {
            **context,
            "units": inputs.units,
            "quoted_unit_price_usd": inputs.unit_price_usd,
            "defect_rate": inputs.defect_rate,
            "rework_defect_rate": inputs.rework_defect_rate,
            "qa_share": inputs.qa_share,
            "escape_rate": inputs.escape_rate,
            "cycles_cap": inputs.cycle_cap,
        },
        "multipliers": {**drivers.factors(), "multiplier": drivers.multiplier()},
        "compare_cohorts": comparison.to_dict() if comparison is not None else None,
    }


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _render(
    document: dict[str, Any],
    breakdown: CostBreakdown,
    simulation: CostSimulation | None,
    comparison: CohortComparison | None,
) -> None:
    inputs = document["inputs"]
    console.print(
        f"[bold]{inputs['units']:,}[/] units at {_usd(inputs['quoted_unit_price_usd'])}/"
        f"{inputs['price_unit']} ({inputs['kind']}) x {document['multipliers']['multiplier']:.3f}"
        f" = {_usd(breakdown.unit_price_usd)} per unit; defects {inputs['defect_rate']:.1%}, "
        f"rework defects {inputs['rework_defect_rate']:.1%}, QA misses {inputs['escape_rate']:.0%}",
        highlight=False,
    )
    titles = ("direct annotation", "QA and review", "rework", "downstream remediation", "total")
    table = Table("category", "expected", "of direct", title="rework-inclusive cost")
    if simulation is not None:
        for column in ("P10", "P50", "P90"):
            table.add_column(column, justify="right")
    for name, title in zip(_CATEGORIES, titles):
        value = getattr(breakdown, name)
        share = value / breakdown.direct_usd if breakdown.direct_usd > 0 else float("nan")
        row = [title, _usd(value), f"{share:.1%}"]
        if simulation is not None:
            q = getattr(simulation, name)
            row += [_usd(q.p10), _usd(q.p50), _usd(q.p90)]
        table.add_row(*row)
    console.print(table)
    cycles = Table("cycle", "units", "USD", title="rework cycles")
    for c in breakdown.rework_cycles:
        cycles.add_row(str(c.cycle), f"{c.units:,.2f}", _usd(c.usd))
    console.print(cycles)
    console.print(
        f"hidden cost: [bold]{breakdown.hidden_cost_fraction:.1%}[/] over the quoted labour "
        f"price; {breakdown.escaped_defects:,.1f} defects reach training at "
        f"{_usd(breakdown.remediation_usd_per_defect)} each",
        highlight=False,
    )
    if comparison is None:
        return
    versus = Table("", "crowd", "managed", title="crowd vs managed")
    pairs = ((comparison.crowd_cohort, comparison.crowd), (comparison.managed_cohort,
             comparison.managed))  # fmt: skip
    versus.add_row("price multiple", *(f"{c.price_multiple:g}x" for c, _ in pairs))
    versus.add_row("defect rate", *(f"{c.defect_rate:.1%}" for c, _ in pairs))
    versus.add_row("QA share", *(f"{c.qa_share:.0%}" for c, _ in pairs))
    for name, title in zip(_CATEGORIES, titles):
        versus.add_row(title, *(_usd(getattr(b, name)) for _, b in pairs))
    versus.add_row("hidden cost", *(f"{b.hidden_cost_fraction:.1%}" for _, b in pairs))
    console.print(versus)
    break_even = comparison.break_even_remediation_usd_per_defect
    console.print(
        f"[bold]{comparison.cheaper}[/] is cheaper by {_usd(comparison.saving_usd)}"
        + (
            f"; the totals cross at {_usd(break_even)} of downstream cost per escaped defect"
            if break_even is not None
            else ""
        ),
        highlight=False,
    )


# --- a program in the store -------------------------------------------------------------------

_MEASURED_ROWS = (
    ("direct annotation", "direct_usd", "direct_hours"),
    ("QA and review", "qa_review_usd", "qa_review_hours"),
    ("rework", "rework_usd", "rework_hours"),
    ("downstream remediation", "downstream_usd", None),
    ("total", "total_usd", "total_hours"),
)


def _stored_program(
    url: str, project: str | None, *, units: int | None, defect_rate: float | None, as_json: bool
) -> None:
    """``--db``: the model at measured rates and the work log priced (docs/cost.md)."""
    # only this path needs the database stack: plain `cost` starts without SQLAlchemy
    from sqlalchemy.exc import SQLAlchemyError

    from labelgate.cli.db import database_error, display_url, open_database
    from labelgate.workflow.costing import price_program

    if units is not None or defect_rate is not None:
        fail(
            ValidationError(
                "--db prices a stored program from what it measured: leave out --units and "
                "--defect-rate",
                field="--db",
            ),
            as_json=as_json,
        )
    database = open_database(url, must_exist=True, as_json=as_json)
    try:
        if not database.has_schema():
            raise StoreError(f"{display_url(database)} holds no labelgate program")
        document = price_program(database, project=project)
    except SQLAlchemyError as exc:
        fail(database_error(database.url, exc), as_json=as_json)
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    finally:
        database.dispose()
    document = {"database": display_url(database), **document}
    if as_json:
        emit_json(document)
        return
    model = document.get("model") or {}
    measured = document.get("measured") or {}
    console.print(
        f"[bold]{document['project']}[/] (spec v{document['spec_version']}): "
        f"{document['units']:,} first-pass objects"
        + (
            f" at {_usd(document['unit_price_usd'])}; defects "
            f"{document['measured_defect_rate']:.2%}, rework defects "
            f"{document['measured_rework_defect_rate']:.2%}"
            if document["units"]
            else ""
        ),
        highlight=False,
    )
    if not model and not measured:
        console.print("nothing labelled and no work time logged yet")
        return
    table = Table("category", "model (unit price)", "measured (hours)", "hours", "x model")
    ratios = measured.get("ratio_by_category") or {}
    for title, key, hours in _MEASURED_ROWS:
        ratio = measured.get("ratio_to_model") if key == "total_usd" else ratios.get(key)
        table.add_row(
            title,
            _usd(model[key]) if model else "—",
            _usd(measured[key]) if measured else "—",
            f"{measured[hours]:,.2f}" if measured and hours else "—",
            f"{ratio:.2f}" if ratio is not None else "—",
        )
    console.print(table)
    if measured.get("rework_cycles"):
        cycles = Table("cycle", "items", "hours", "USD", title="measured rework cycles")
        for c in measured["rework_cycles"]:
            cycles.add_row(str(c["cycle"]), f"{c['units']:,}", f"{c['hours']:,.2f}", _usd(c["usd"]))
        console.print(cycles)
    if not measured:
        console.print("no work time logged: only the model can price this program")
