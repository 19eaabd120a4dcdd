"""``labelgate calibrate A B`` and ``labelgate defects REF OTHER``.

``calibrate`` measures how tightly two annotators agree on each class (and scene type) and
says which tier humans can hold, which configured thresholds or SLAs they cannot (exit 1),
and what moving a class to the recommended tier costs. ``defects`` types every defect of a
label set against a reference, breaks the defect rate down, and names the guideline to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._output import EXIT_CHECK_FAILED, console, emit_json, fail
from labelgate.cli.compare import _check_same_classes, _spec_note, _with_spec_taxonomy
from labelgate.core.calibration import (
    DEFAULT_MIN_PAIRS,
    DEFAULT_TARGET_SHARE,
    MATCH_IOU,
    Calibration,
    calibrate,
    inter_annotator_ious,
)
from labelgate.core.compare import compare
from labelgate.core.defects import (
    AGREEMENT_FLOOR,
    BIAS_LIMIT,
    MIN_SUPPORT,
    classify_defects,
    defect_rates,
    root_causes,
)
from labelgate.core.summary import objects_per_image
from labelgate.errors import FormatError, LabelgateError
from labelgate.formats.registry import detect_format, read
from labelgate.spec import ProgramSpec, load_spec

__all__ = ["calibrate_command", "defects_command"]

FromFormat = Annotated[
    str | None, typer.Option("--from", help="Format of both inputs (detected if omitted).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def calibrate_command(
    first: Annotated[Path, typer.Argument(help="Annotator A's labels.")],
    second: Annotated[Path, typer.Argument(help="Annotator B's labels of the same images.")],
    spec_path: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="Check this program spec's thresholds (with scene overrides) and SLA "
            "medians, and price the change in its currency.",
        ),
    ] = None,
    target_share: Annotated[
        float,
        typer.Option(
            "--target-share",
            min=0.01,
            max=1.0,
            help="Share of human pairs that must reach a threshold for it to be achievable.",
        ),
    ] = DEFAULT_TARGET_SHARE,
    min_pairs: Annotated[
        int, typer.Option("--min-pairs", min=1, help="Fewest pairs for a verdict.")
    ] = DEFAULT_MIN_PAIRS,
    match_iou: Annotated[
        float,
        typer.Option(
            "--match-iou", min=0.0, max=1.0, help="IoU at which two boxes are the same object."
        ),
    ] = MATCH_IOU,
    from_format: FromFormat = None,
    as_json: JsonFlag = False,
) -> None:
    """Tightest tier humans reach per class and scene; exit 1 where a threshold or SLA is not."""
    spec: ProgramSpec | None = None
    try:
        if spec_path is not None:
            spec = load_spec(spec_path)
        data_a = read(first, from_format or detect_format(first))
        data_b = read(second, from_format or detect_format(second))
        _check_same_classes(data_a.taxonomy.ids.tolist(), data_b, second)
        if spec is not None:
            data_a = _with_spec_taxonomy(data_a, spec, first, spec_path)
            _check_same_classes(data_a.taxonomy.ids.tolist(), data_b, second)
        pairs = inter_annotator_ious(data_a.annotations, data_b.annotations, match_iou=match_iou)
        scenes = pairs.scene_type(data_a.images)
        thresholds = spec.thresholds(pairs.class_id, scenes) if spec is not None else None
        sla = (
            {c.id: c.sla.iou_threshold for c in spec.classes if c.sla.iou_threshold is not None}
            if spec is not None
            else None
        )
        result = calibrate(
            pairs.class_id,
            pairs.iou,
            data_a.taxonomy,
            scene_type=scenes,
            iou_threshold=thresholds,
            sla_iou=sla,
            target_share=target_share,
            min_pairs=min_pairs,
            match_iou=match_iou,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    document = result.to_dict()
    document["files"] = [str(first), str(second)]
    if spec is not None:
        document["spec"] = {**_spec_note(spec, spec_path), "scene_thresholds_applied": True}
        _add_prices(document, spec)
    if as_json:
        emit_json(document)
    else:
        _render_calibration(result, document)
    if result.false_precision:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _add_prices(document: dict[str, Any], spec: ProgramSpec) -> None:
    """USD per unit at the current and recommended thresholds, from the spec's prices."""
    for row in (*document["per_class"], *document["per_class_scene"]):
        price = spec.prices.price(spec.class_by_id(row["class_id"]).kind)
        cost = row["cost"]
        cost["unit_price_usd"] = round(price * cost["current_multiplier"], 6)
        recommended = cost["recommended_multiplier"]
        cost["recommended_unit_price_usd"] = (
            round(price * recommended, 6) if recommended is not None else None
        )


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _verdict(row: dict[str, Any]) -> str:
    if row["threshold_met"] is None:
        return "[dim]too few pairs[/]"
    return "[red]false precision[/]" if row["false_precision"] else "[green]ok[/]"


def _render_calibration(result: Calibration, document: dict[str, Any]) -> None:
    console.print(
        f"[bold]calibrate[/] {document['files'][0]} vs {document['files'][1]}: "
        f"{document['pairs']:,} same-object pairs (IoU >= {result.match_iou}); a threshold is "
        f"achievable when {result.target_share:.0%} of pairs reach it",
        highlight=False,
    )
    with_sla = any(r["sla_iou"] is not None for r in result.per_class)
    table = Table(
        "class", "pairs", "IoU med", "IoU p10", "tier", "meets thr", *(["SLA"] if with_sla else []),
        "achievable", "recommended", "cost x", "verdict", title="per class",
    )  # fmt: skip
    for row in result.per_class:
        if not row["pairs"]:
            continue
        recommended = (
            f"{row['recommended_tier']} {row['recommended_iou_threshold']:.2f}"
            if row["recommended_tier"] is not None
            else "-"
        )
        table.add_row(
            row["name"], f"{row['pairs']:,}", _num(row["iou"]["median"]), _num(row["iou"]["p10"]),
            f"{row['tier']} {_num(row['iou_threshold'], 2)}", _pct(row["share_meeting_threshold"]),
            *([_num(row["sla_iou"], 2)] if with_sla else []), _num(row["achievable_iou"]),
            recommended, _num(row["cost"]["change_multiple"]), _verdict(row),
        )  # fmt: skip
    console.print(table)
    flagged = [r for r in result.per_class_scene if r["false_precision"]]
    if flagged:
        scenes = Table("class", "scene", "pairs", "thr", "meets thr", "IoU med", "recommended",
                       title="scene types that cannot meet their threshold")  # fmt: skip
        for row in flagged:
            scenes.add_row(
                row["name"], row["scene_type"], f"{row['pairs']:,}",
                _num(row["iou_threshold"], 2), _pct(row["share_meeting_threshold"]),
                _num(row["iou"]["median"]), _num(row["recommended_iou_threshold"], 2),
            )  # fmt: skip
        console.print(scenes)


def _parse_cohorts(values: list[str], *, as_json: bool) -> dict[int, str]:
    cohorts: dict[int, str] = {}
    for value in values:
        annotator, _, name = value.partition("=")
        if not (annotator.strip().lstrip("-").isdigit() and name.strip()):
            fail(
                FormatError(f"expected ANNOTATOR_ID=COHORT such as 3=crowd, got {value!r}",
                            path="--cohort"),
                as_json=as_json,
            )  # fmt: skip
        cohorts[int(annotator)] = name.strip()
    return cohorts


def defects_command(
    reference: Annotated[Path, typer.Argument(help="Reference labels (gold).")],
    other: Annotated[Path, typer.Argument(help="Labels under test, with annotator ids.")],
    iou_threshold: Annotated[
        float | None,
        typer.Option(
            "--iou-threshold",
            min=0.0,
            max=1.0,
            help="One IoU threshold for every class (default: each class's tier threshold).",
        ),
    ] = None,
    cohort: Annotated[
        list[str] | None,
        typer.Option(
            "--cohort", help="ANNOTATOR_ID=COHORT (repeat) for rates by cohort, e.g. 3=crowd."
        ),
    ] = None,
    agreement_floor: Annotated[
        float,
        typer.Option(
            "--agreement-floor", min=0.0, max=1.0, help="Name classes whose F1 is below this."
        ),
    ] = AGREEMENT_FLOOR,
    bias_limit: Annotated[
        float,
        typer.Option(
            "--bias-limit", min=0.0, help="Name annotators whose mean log size ratio exceeds this."
        ),
    ] = BIAS_LIMIT,
    min_support: Annotated[
        int, typer.Option("--min-support", min=1, help="Fewest objects behind a hint.")
    ] = MIN_SUPPORT,
    from_format: FromFormat = None,
    as_json: JsonFlag = False,
) -> None:
    """Type every defect of OTHER against REF, break the rate down, and name what to fix."""
    cohorts = _parse_cohorts(cohort or [], as_json=as_json)
    try:
        ref_dataset = read(reference, from_format or detect_format(reference))
        other_dataset = read(other, from_format or detect_format(other))
        _check_same_classes(ref_dataset.taxonomy.ids.tolist(), other_dataset, other)
        labels = other_dataset.annotations
        comparison = compare(ref_dataset, labels, iou_threshold=iou_threshold)
        defects, exposure = classify_defects(ref_dataset, labels, iou_threshold=iou_threshold)
        rates = defect_rates(
            defects,
            exposure,
            taxonomy=ref_dataset.taxonomy,
            images=ref_dataset.images,
            objects_per_image=objects_per_image(ref_dataset.annotations, ref_dataset.images),
            cohort_of=cohorts or None,
        )
        hints = root_causes(
            comparison,
            agreement_floor=agreement_floor,
            bias_limit=bias_limit,
            min_support=min_support,
        )
    except (LabelgateError, OSError) as exc:
        fail(exc, as_json=as_json)
    document = {
        "reference": str(reference),
        "other": str(other),
        "iou_threshold": iou_threshold if iou_threshold is not None else "per-class",
        "counts": defects.counts(),
        **rates.to_dict(),
        "root_causes": hints,
    }
    if as_json:
        emit_json(document)
        return
    _render_defects(document)


def _render_defects(document: dict[str, Any]) -> None:
    overall = document["overall"]
    console.print(
        f"[bold]defects[/] {document['other']} vs {document['reference']}: "
        f"{overall['defects']:,} defects on {overall['exposure']:,} audited objects "
        f"({_pct(overall['rate'])})",
        highlight=False,
    )
    types = [t for t, c in document["counts"].items() if c]
    table = Table("annotator", "cohort", "audited", "rate", *types, title="by annotator")
    for row in document["by_annotator"]:
        table.add_row(
            str(row["annotator_id"]),
            row.get("cohort", "-"),
            f"{row['exposure']:,}",
            _pct(row["rate"]),
            *(_pct(row["by_type"][t]["rate"]) for t in types),
        )
    console.print(table)
    classes = Table("class", "audited", "rate", *types, title="by class")
    for row in document["by_class"]:
        classes.add_row(
            row["name"],
            f"{row['exposure']:,}",
            _pct(row["rate"]),
            *(_pct(row["by_type"][t]["rate"]) for t in types),
        )
    console.print(classes)
    if document["root_causes"]:
        console.print("[bold]root causes[/]")
        for hint in document["root_causes"]:
            console.print(f"- [cyan]{hint['kind']}[/] {hint['guideline']}", highlight=False)
    else:
        console.print("no root-cause hint at these limits")
