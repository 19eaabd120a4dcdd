"""``labelgate qa plan|decide|sprt``: acceptance sampling for the QA-sampling gate.

``plan`` sizes the audit, ``decide`` releases or blocks a batch on the upper confidence bound
of its defect rate (never on the point estimate), ``sprt`` runs Wald's sequential test on an
audit in progress. ``decide`` and ``sprt`` exit 0 only on ``release``: 1 means the batch may
not be released (blocked, or the sequential audit must go on), 2 bad input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from labelgate.cli._output import EXIT_CHECK_FAILED, console, emit_json, fail
from labelgate.core.sampling import (
    DEFAULT_PRODUCER_RISK,
    SamplingPlan,
    allocate,
    decide,
    oc_curve,
    plan,
    sprt,
    sprt_operating_characteristic,
)
from labelgate.errors import LabelgateError, ValidationError

__all__ = ["qa_app"]

qa_app = typer.Typer(
    name="qa",
    no_args_is_help=True,
    add_completion=False,
    help="Acceptance sampling: size a QA audit, decide on it, or audit sequentially.",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Limit = Annotated[
    float,
    typer.Option("--limit", metavar="P", help="Defect rate a released batch must be shown below."),
]
Confidence = Annotated[
    float, typer.Option("--confidence", metavar="C", help="Confidence of that demonstration.")
]
LotSize = Annotated[
    int | None,
    typer.Option(
        "--lot-size",
        metavar="N",
        help="Items in the batch, sampled without replacement (exact hypergeometric); "
        "binomial when omitted.",
    ),
]


def _pairs(text: str, option: str) -> list[tuple[str, str]]:
    """``a=1,b=2`` as ``[("a", "1"), ("b", "2")]``; names are unique and non-empty."""
    pairs = []
    for item in text.split(","):
        name, sep, value = item.strip().rpartition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValidationError(
                f"expected NAME=VALUE pairs such as a=10,b=5, got {item!r}", field=option
            )
        pairs.append((name.strip(), value.strip()))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValidationError(f"a stratum is named twice in {text!r}", field=option)
    return pairs


def _numbers(text: str, option: str) -> list[int]:
    """``0,0,1`` as ``[0, 0, 1]``."""
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise ValidationError(
                f"expected comma-separated counts >= 0 such as 0,0,1, got {item!r}", field=option
            )
        values.append(int(item))
    return values


def _oc_rates(result: SamplingPlan) -> list[float]:
    limit = result.limit
    rates = {0.0, limit / 2, limit, 2 * limit, 3 * limit}
    if result.acceptable is not None:
        rates.add(result.acceptable)
    return sorted(rate for rate in rates if rate <= 1.0)


def _allocation(
    result: SamplingPlan, strata: str, method: str, expected_rates: str | None
) -> dict[str, Any]:
    pairs = _pairs(strata, "--strata")
    names = [name for name, _ in pairs]
    sizes = []
    for name, value in pairs:
        if not value.isdigit():
            raise ValidationError(
                f"stratum {name!r}: expected a count, got {value!r}", field="--strata"
            )
        sizes.append(int(value))
    total = sum(sizes)
    if result.lot_size is not None and total != result.lot_size:
        raise ValidationError(
            f"the strata hold {total} items but --lot-size is {result.lot_size}", field="--strata"
        )
    if result.sample_size > total:
        raise ValidationError(
            f"the plan samples {result.sample_size} items but the strata hold only {total}; "
            f"pass --lot-size {total} for a plan on this finite batch",
            field="--strata",
        )
    rates = None
    if expected_rates is not None:
        given = dict(_pairs(expected_rates, "--expected-rates"))
        missing = [name for name in names if name not in given]
        unknown = [name for name in given if name not in names]
        if missing or unknown:
            raise ValidationError(
                f"expected one rate per stratum; missing {missing}, unknown {unknown}",
                field="--expected-rates",
            )
        try:
            rates = [float(given[name]) for name in names]
        except ValueError as exc:
            raise ValidationError(str(exc), field="--expected-rates") from exc
    if method not in ("proportional", "neyman"):
        raise ValidationError(
            f"expected proportional or neyman, got {method!r}", field="--allocation"
        )
    chosen: Literal["proportional", "neyman"] = "neyman" if method == "neyman" else "proportional"
    counts = allocate(sizes, result.sample_size, method=chosen, expected_rates=rates)
    return {
        "method": chosen,
        "strata": [
            {"name": name, "size": size, "sample_size": int(count)}
            for name, size, count in zip(names, sizes, counts.tolist())
        ],
    }


@qa_app.command("plan")
def plan_command(
    limit: Limit,
    confidence: Confidence,
    acceptable: Annotated[
        float | None,
        typer.Option(
            "--acceptable",
            metavar="P0",
            help="A defect rate that should pass; without it the plan is zero-acceptance.",
        ),
    ] = None,
    lot_size: LotSize = None,
    producer_risk: Annotated[
        float,
        typer.Option(
            "--producer-risk",
            metavar="ALPHA",
            help="With --acceptable: most probability of blocking a batch at that rate.",
        ),
    ] = DEFAULT_PRODUCER_RISK,
    strata: Annotated[
        str | None,
        typer.Option(
            "--strata",
            metavar="NAME=SIZE,...",
            help="Split the sample across classes, scene types or annotators, "
            "e.g. person=5000,car=3000.",
        ),
    ] = None,
    allocation: Annotated[
        str,
        typer.Option(
            "--allocation", help="proportional (to stratum size) or neyman (needs rates)."
        ),
    ] = "proportional",
    expected_rates: Annotated[
        str | None,
        typer.Option(
            "--expected-rates",
            metavar="NAME=RATE,...",
            help="Expected defect rate per stratum, for --allocation neyman.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Smallest sample n and acceptance number c that demonstrate a defect rate below P at C."""
    try:
        result = plan(
            limit,
            confidence,
            acceptable=acceptable,
            lot_size=lot_size,
            max_producer_risk=producer_risk,
        )
        split = None
        if strata is not None:
            split = _allocation(result, strata, allocation, expected_rates)
        elif expected_rates is not None:
            raise ValidationError("--expected-rates needs --strata", field="--expected-rates")
    except LabelgateError as exc:
        fail(exc, as_json=as_json)
    rates = _oc_rates(result)
    oc = [
        {"rate": rate, "acceptance_probability": float(p)}
        for rate, p in zip(rates, oc_curve(result, rates).tolist())
    ]
    if as_json:
        emit_json(
            {
                **result.to_dict(),
                "max_producer_risk": producer_risk if acceptable is not None else None,
                "oc": oc,
                "allocation": split,
            }
        )
        return
    model = "binomial" if lot_size is None else f"hypergeometric, lot of {lot_size:,}"
    console.print(
        f"[bold]inspect {result.sample_size:,} items[/]; release on at most "
        f"{result.acceptance_number} defects ({model}): shows the defect rate <= "
        f"{limit:.2%} at {confidence:.0%} confidence",
        highlight=False,
    )
    risks = f"consumer risk {result.consumer_risk:.2%} (release at the limit)"
    if result.producer_risk is not None:
        risks += f", producer risk {result.producer_risk:.2%} (block at {acceptable:.2%})"
    console.print(risks, highlight=False)
    table = Table("defect rate", "P(release)", title="operating characteristic")
    for row in oc:
        table.add_row(f"{row['rate']:.2%}", f"{row['acceptance_probability']:.4f}")
    console.print(table)
    if split is not None:
        strata_table = Table("stratum", "items", "sample", title=f"{split['method']} allocation")
        for row in split["strata"]:
            strata_table.add_row(row["name"], f"{row['size']:,}", f"{row['sample_size']:,}")
        console.print(strata_table)


@qa_app.command("decide")
def decide_command(
    sampled: Annotated[int, typer.Option("--sampled", metavar="N", help="Items inspected.")],
    defects: Annotated[int, typer.Option("--defects", metavar="D", help="Defects found.")],
    limit: Limit,
    confidence: Confidence,
    lot_size: LotSize = None,
    as_json: JsonFlag = False,
) -> None:
    """Release only if the upper confidence bound of the defect rate is <= P; exit 1 on block."""
    try:
        result = decide(sampled, defects, limit, confidence, lot_size=lot_size)
    except LabelgateError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        colour = "green" if result["decision"] == "release" else "red"
        relation = "<=" if result["decision"] == "release" else ">"
        rate = result["defect_rate"]
        observed = "-" if rate is None else f"{rate:.2%}"
        console.print(
            f"[bold {colour}]{result['decision']}[/]: upper bound {result['upper_bound']:.2%} "
            f"{relation} limit {limit:.2%} ({defects} defects in {sampled:,}, observed "
            f"{observed}, {confidence:.0%} confidence, {result['bound']})",
            highlight=False,
        )
    if result["decision"] != "release":
        raise typer.Exit(EXIT_CHECK_FAILED)


@qa_app.command("sprt")
def sprt_command(
    p0: Annotated[float, typer.Option("--p0", help="Acceptable defect rate.")],
    p1: Annotated[float, typer.Option("--p1", help="Rejectable defect rate (e.g. the limit).")],
    defects: Annotated[
        str,
        typer.Option(
            "--defects",
            metavar="D,...",
            help="Defects per step: 0/1 per item in inspection order (e.g. 0,0,1,0), or "
            "counts with --sampled.",
        ),
    ],
    sampled: Annotated[
        str | None,
        typer.Option(
            "--sampled",
            metavar="N,...",
            help="Items per step, one per --defects entry (a single N: one step).",
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Risk of blocking a batch at p0.")] = 0.05,
    beta: Annotated[float, typer.Option("--beta", help="Risk of releasing a batch at p1.")] = 0.10,
    as_json: JsonFlag = False,
) -> None:
    """Wald's sequential test: release, block, or continue inspecting (exit 0 only on release)."""
    try:
        found = _numbers(defects, "--defects")
        inspected = None if sampled is None else _numbers(sampled, "--sampled")
        result = sprt(found, sampled=inspected, p0=p0, p1=p1, alpha=alpha, beta=beta)
        _, asn = sprt_operating_characteristic([p0, p1], p0=p0, p1=p1, alpha=alpha, beta=beta)
    except LabelgateError as exc:
        fail(exc, as_json=as_json)
    expected = {"p0": float(asn[0]), "p1": float(asn[1])}
    if as_json:
        emit_json({**result.to_dict(), "wald_expected_sample_size": expected})
    else:
        colour = {"release": "green", "block": "red", "continue": "yellow"}[result.decision]
        console.print(
            f"[bold {colour}]{result.decision}[/] after {result.sampled:,} items with "
            f"{result.defects} defects (log-likelihood ratio {result.log_likelihood_ratio:.3f}; "
            f"release <= {result.release_threshold:.3f}, block >= {result.block_threshold:.3f})",
            highlight=False,
        )
        console.print(
            f"release while defects <= {result.release_intercept:.3f} + {result.slope:.5f} n; "
            f"block once defects >= {result.block_intercept:.3f} + {result.slope:.5f} n; "
            f"Wald's expected items {expected['p0']:.0f} at p0, {expected['p1']:.0f} at p1",
            highlight=False,
        )
    if result.decision != "release":
        raise typer.Exit(EXIT_CHECK_FAILED)
