"""Commands imported when they run, not when ``labelgate`` starts.

Importing every command module at start-up cost ~1.6 s before ``--help`` printed anything
(SQLAlchemy, pydantic, scipy, FastAPI, matplotlib through the program, report and ML
commands). The root group instead names each command by ``module:attribute`` with the
one-line help its listing shows, and imports the module only when the command is
resolved for running (``labelgate qa decide ...`` imports :mod:`labelgate.cli.qa` and
what it needs, nothing else). ``tests/cli/test_cli_startup.py`` checks that the lines
here match the commands' own help, and that ``labelgate --help`` imports none of the heavy
packages.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["LAZY_COMMANDS", "LazyCommand", "LazyGroup", "load_command"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A command of the root group: where it lives and the help line its listing shows."""

    module: str
    attribute: str
    help: str


def _c(module: str, attribute: str, help: str) -> LazyCommand:
    return LazyCommand(f"labelgate.cli.{module}", attribute, help)


#: every command of the root group that is not defined in :mod:`labelgate.cli.app`, in
#: the order ``--help`` lists them (plain commands first, then groups, as Typer does)
LAZY_COMMANDS: dict[str, LazyCommand] = {
    "compare": _c(
        "compare",
        "compare_command",
        "Match OTHER to REF per image and class; count misses, extras, swaps, IoU and box bias.",
    ),
    "agreement": _c(
        "agreement",
        "agreement_command",
        "Agreement of annotators: categorical (--labels) or geometric (two or more files).",
    ),
    "eval": _c(
        "evaluate",
        "eval_command",
        "COCO AP/AR of DT against GT: pycocotools' 12 stats, and AP per class.",
    ),
    "merge": _c(
        "merge",
        "merge_command",
        "Cluster the annotators' objects, label by vote, merge by median, score the agreement.",
    ),
    "cost": _c(
        "cost",
        "cost_command",
        "Price a program with its rework: four categories, rework cycles, hidden cost, P10-P90.",
    ),
    "calibrate": _c(
        "calibrate",
        "calibrate_command",
        "Tightest tier humans reach per class and scene; exit 1 where a threshold or SLA is not.",
    ),
    "defects": _c(
        "calibrate",
        "defects_command",
        "Type every defect of OTHER against REF, break the rate down, and name what to fix.",
    ),
    "init": _c(
        "program",
        "init_command",
        "Create a program: its folder, database, locked spec v1, pool annotators and an admin.",
    ),
    "import": _c(
        "program",
        "import_command",
        "Register a file's images for production, or with --gold/--honeypot their answers.",
    ),
    "qualify": _c(
        "program",
        "qualify_command",
        "Score an annotator's pilot labels against the gold set (exit 1 when they fail).",
    ),
    "assign": _c(
        "program",
        "assign_command",
        "Create a batch's production tasks (qualified annotators, blind doubles, honeypots).",
    ),
    "export": _c(
        "program",
        "export_command",
        "Write a batch's final labels (atomically) with their provenance.",
    ),
    "report": _c(
        "report",
        "report_command",
        "Write the delivery report (HTML with figures, and its JSON) for a program database.",
    ),
    "errors": _c(
        "ml",
        "errors_command",
        "Rank suspected label errors by a model's disagreement; score every image.",
    ),
    "select": _c(
        "ml",
        "select_command",
        "Pick the images to label next; image_ids in pick order, plus per-image scores.",
    ),
    "prelabel": _c(
        "prelabel",
        "prelabel_command",
        "Store a model's proposals as pre-labels of a batch, or report what they saved.",
    ),
    "serve": _c(
        "serve",
        "serve_command",
        "Serve the web API: OpenAPI at /openapi.json, interactive docs at /docs.",
    ),
    "spec": _c(
        "spec",
        "spec_app",
        "Program specs: taxonomy, per-class SLAs, gates, prices and pools (TOML).",
    ),
    "audit": _c(
        "audit",
        "audit_app",
        "Verify or export the tamper-evident audit trail (HMAC key: $LABELGATE_AUDIT_KEY).",
    ),
    "db": _c(
        "db",
        "db_app",
        "Create or migrate the program database (SQLite file or PostgreSQL).",
    ),
    "user": _c("program", "user_app", "People of a program and their roles."),
    "batch": _c(
        "batch",
        "batch_app",
        "Create batches, show their gate history, advance them through the stages.",
    ),
    "task": _c(
        "program",
        "task_app",
        "An annotator's own tasks: list them, save labels from a file, submit.",
    ),
    "review": _c(
        "review",
        "review_app",
        "Review tasks (`review BATCH --decisions FILE.csv`, `review queue BATCH`), inspect the "
        "QA sample (`qa`, `qa-queue`), settle disputes (`disputes`, `adjudicate`).",
    ),
    "qa": _c(
        "qa",
        "qa_app",
        "Acceptance sampling: size a QA audit, decide on it, or audit sequentially.",
    ),
}


def load_command(name: str, entry: LazyCommand) -> Any:
    """Import a lazy command's module and build its (Typer's click) command or group."""
    target: Any = getattr(importlib.import_module(entry.module), entry.attribute)
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _Listed(TyperCommand):
    """Stands for a lazy command in the root's ``--help`` listing (never runs)."""

    def invoke(self, ctx: Any) -> Any:  # pragma: no cover - resolve loads it first
        raise typer.Exit(2)


class LazyGroup(TyperGroup):
    """The root group: lists lazy commands from their table, imports one when it runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return eager + [n for n in LAZY_COMMANDS if n not in self.commands]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        # listing (help): the table's line, no import
        return _Listed(cmd_name, help=LAZY_COMMANDS[cmd_name].help)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in LAZY_COMMANDS and name not in self.commands:
            self.add_command(load_command(name, LAZY_COMMANDS[name]), name)
        return super().resolve_command(ctx, args)
