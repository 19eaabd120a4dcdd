"""``labelgate agreement --labels FILE.csv``: how much annotators agree on categorical labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._output import EXIT_BAD_INPUT, console, emit_json, fail
from labelgate.core.agreement import LEVELS, CategoricalAgreement, categorical_agreement
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.ratings import read_ratings

__all__ = ["agreement_command"]


def agreement_command(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels", help="CSV with columns item,annotator,label (one row per rating)."
        ),
    ],
    level: Annotated[
        str,
        typer.Option(
            "--level",
            help="Krippendorff's metric: nominal, ordinal, interval or ratio (the last three "
            "need numeric labels).",
        ),
    ] = "nominal",
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Bootstrap resamples of items for the intervals (0: none)."
        ),
    ] = 1000,
    confidence: Annotated[
        float,
        typer.Option("--confidence", min=0.5, max=0.999, help="Coverage of the intervals."),
    ] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha, with intervals."""
    if level not in LEVELS:
        fail(
            FormatError(f"expected one of {', '.join(LEVELS)}, got {level!r}", path="--level"),
            as_json=as_json,
        )
    try:
        ratings = read_ratings(labels, numeric=level != "nominal")
        result = categorical_agreement(
            ratings.item_id,
            ratings.annotator_id,
            ratings.label_id,
            level=level,
            values=ratings.values,
            n_categories=len(ratings.categories),
            n_resamples=bootstrap,
            confidence=confidence,
            seed=seed,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
        raise typer.Exit(EXIT_BAD_INPUT) from exc  # unreachable: _fail exits
    if as_json:
        emit_json(result.to_dict())
        return
    _render(labels, result, console)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _render(path: Path, result: CategoricalAgreement, console: Any) -> None:
    console.print(
        f"[bold]{path}[/]: {result.items:,} items, {result.annotators:,} annotators, "
        f"{result.ratings:,} ratings, {result.categories:,} categories",
        highlight=False,
    )
    coverage = f"{result.confidence:.0%} CI"
    table = Table("statistic", "value", coverage, "note")
    rows = (
        ("percent agreement", "percent_agreement", result.percent_agreement, None),
        ("Cohen's kappa", "cohen_kappa", result.cohen_kappa, result.cohen_kappa_reason),
        ("Fleiss' kappa", "fleiss_kappa", result.fleiss_kappa, result.fleiss_kappa_reason),
        (
            f"Krippendorff's alpha ({result.level})",
            "krippendorff_alpha",
            result.krippendorff_alpha,
            None,
        ),
    )
    for title, key, value, note in rows:
        low, high = result.ci.get(key, (None, None))
        interval = "-" if low is None or high is None else f"{_num(low)} .. {_num(high)}"
        table.add_row(title, _num(value), interval, note or "")
    console.print(table)
