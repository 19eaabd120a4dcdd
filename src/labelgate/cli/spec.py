"""``labelgate spec check SPEC``: validate a program spec; print its summary or every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelgate.cli._output import EXIT_BAD_INPUT, console, emit_json, err_console
from labelgate.errors import SpecError
from labelgate.spec import PRICE_UNITS, ProgramSpec, load_spec

__all__ = ["spec_app"]

spec_app = typer.Typer(
    name="spec",
    no_args_is_help=True,
    help="Program specs: taxonomy, per-class SLAs, gates, prices and pools (TOML).",
)


def summary(spec: ProgramSpec) -> dict[str, Any]:
    """The JSON summary of a valid spec (``labelgate spec check --json``)."""
    return {
        "project": spec.project.name,
        "digest": spec.digest(),
        "taxonomy_digest": spec.taxonomy_digest(),
        "scene_types": list(spec.scene_types),
        "classes": [
            {
                "id": c.id,
                "name": c.name,
                "kind": c.kind,
                "tier": c.tier,
                "iou_threshold": c.iou_threshold,
                "scene_thresholds": dict(c.scene_thresholds),
                "sla": c.sla.model_dump(),
            }
            for c in spec.classes
        ],
        "attributes": [a.name for a in spec.attributes],
        "edge_cases": len(spec.edge_cases),
        "gates": spec.gates.model_dump(),
        "assignment": spec.assignment.model_dump(),
        "prices": spec.prices.model_dump(),
        "pools": [
            {
                "name": p.name,
                "cohort": p.cohort,
                "annotators": len(p.annotators),
                "price_multiple": p.price_multiple,
            }
            for p in spec.pools
        ],
    }


@spec_app.command("check")
def check_command(
    path: Annotated[Path, typer.Argument(help="The spec file (TOML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Validate SPEC: print its summary, or every problem with its TOML path (exit 2)."""
    try:
        spec = load_spec(path)
    except SpecError as exc:
        if as_json:
            emit_json(
                {
                    "path": str(path),
                    "valid": False,
                    "problems": [{"location": w, "message": m} for w, m in exc.problems],
                }
            )
        else:
            err_console.print(f"[bold red]invalid spec[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        emit_json({"path": str(path), "valid": True, **summary(spec)})
        return
    _render(path, spec)


def _render(path: Path, spec: ProgramSpec) -> None:
    gates = spec.gates
    console.print(
        f"[green]ok[/] {path}: [bold]{spec.project.name}[/], {len(spec.classes)} classes, "
        f"{len(spec.attributes)} attributes, {len(spec.edge_cases)} edge-case rules, "
        f"scene types {', '.join(spec.scene_types) or '-'}\n"
        f"digest {spec.digest()[:16]}  taxonomy {spec.taxonomy_digest()[:16]}",
        highlight=False,
    )
    table = Table(
        "id", "class", "kind", "tier", "IoU", "scene IoU", "SLA IoU", "SLA agree",
        "SLA miss", title="classes",
    )  # fmt: skip
    for c in spec.classes:
        scenes = ", ".join(f"{k} {v}" for k, v in sorted(c.scene_thresholds.items()))
        table.add_row(
            str(c.id), c.name, c.kind, c.tier, f"{c.threshold:.2f}", scenes or "-",
            f"{c.sla.iou_threshold:.2f}", f"{c.sla.agreement:.2f}",
            f"{c.sla.max_missing_rate:.1%}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"gates: gold set {gates.gold_set_size}, pilot agreement {gates.pilot_agreement:.0%}, "
        f"review accuracy {gates.review_accuracy:.0%}, QA sample {gates.qa_sample_rate:.0%}, "
        f"defect limit {gates.defect_limit:.0%} at {gates.confidence:.0%} confidence, "
        f"rework {gates.rework_policy} (max {gates.max_rework_cycles} cycles)",
        highlight=False,
    )
    prices = ", ".join(
        f"{kind} ${spec.prices.price(kind):.3f}/{unit}" for kind, unit in PRICE_UNITS.items()
    )
    console.print(f"prices: {prices}", highlight=False)
    for pool in spec.pools:
        console.print(
            f"pool {pool.name}: {pool.cohort}, {len(pool.annotators)} annotators, "
            f"x{pool.price_multiple}",
            highlight=False,
        )
