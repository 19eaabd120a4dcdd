"""Program commands: ``init``, ``user add``, ``import``, ``qualify``, ``assign``, ``export``.

Each command parses its arguments, calls one :class:`~labelgate.workflow.program.Program`
method and renders the result; every rule (roles, gates, blindness) lives in the workflow
service. The helpers here are shared with ``batch`` and ``review``:

- every command names its database (``--db``, else ``$LABELGATE_DB``, else
  ``sqlite:///labelgate.db``), the acting user (``--as``, else ``$LABELGATE_USER``) and,
  where a database holds several projects, the project (``--project``);
- errors map to exit codes: bad input, unknown users and refused requests exit 2; a gate
  that could not pass (``GateFailed``) and a concurrent edit (``ConflictError``) exit 1.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from labelgate.cli._output import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    console,
    emit_json,
    err_console,
    error_fields,
    fail,
)
from labelgate.cli.db import DbOption, JsonFlag, database_error, display_url, open_database
from labelgate.core.dataset import Dataset
from labelgate.errors import (
    ConflictError,
    FormatError,
    GateFailed,
    LabelgateError,
    PermissionDenied,
    SpecError,
    StoreError,
)
from labelgate.formats.registry import FORMATS, detect_format, read, write
from labelgate.spec import load_spec
from labelgate.store.db import Database, resolve_url, upgrade
from labelgate.workflow.auth import check_password, set_password
from labelgate.workflow.program import ROLES, SYSTEM_USER, Program

__all__ = [
    "ActorOption",
    "ProjectOption",
    "assign_command",
    "export_command",
    "import_command",
    "init_command",
    "opened_program",
    "progress_bar",
    "qualify_command",
    "read_labels",
    "refusals",
    "require_actor",
    "task_app",
    "user_app",
    "user_passwd_command",
    "working",
]

ACTOR_ENV = "LABELGATE_USER"

ActorOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="USER",
        envvar=ACTOR_ENV,
        show_envvar=False,
        help=f"Who is acting (default: ${ACTOR_ENV}); recorded in the audit trail.",
    ),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project", metavar="NAME", help="Project name; needed only when the database has several."
    ),
]
FormatName = Annotated[
    str | None,
    typer.Option("--from", help=f"Input format ({', '.join(FORMATS)}); detected when omitted."),
]
ImageSize = Annotated[
    str | None,
    typer.Option(
        "--image-size",
        metavar="WxH",
        help="YOLO: size of images that are not beside their labels, e.g. 1920x1080.",
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the random draws (recorded in the audit trail).")
]


# --- shared plumbing -------------------------------------------------------------------


def _refuse(error: BaseException, code: int, *, as_json: bool, **extra: Any) -> NoReturn:
    """Print an error (one JSON document under ``--json``) and exit with ``code``."""
    if as_json:
        emit_json(
            {"error": str(error), "type": type(error).__name__, **error_fields(error), **extra}
        )
    else:
        label = "gate failed" if isinstance(error, GateFailed) else "error"
        if isinstance(error, SpecError):
            label = "invalid spec"
        err_console.print(f"[bold red]{label}:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def refusals(url: str, *, as_json: bool) -> Iterator[None]:
    """Turn the service's errors into exit codes: 1 for gates and conflicts, else 2."""
    try:
        yield
    except GateFailed as exc:
        _refuse(exc, EXIT_CHECK_FAILED, as_json=as_json)
    except ConflictError as exc:
        _refuse(
            exc, EXIT_CHECK_FAILED, as_json=as_json, current_revision_id=exc.current_revision_id
        )
    except SpecError as exc:
        problems = [{"location": where, "message": what} for where, what in exc.problems]
        _refuse(exc, EXIT_BAD_INPUT, as_json=as_json, problems=problems)
    except (LabelgateError, OSError) as exc:
        _refuse(exc, EXIT_BAD_INPUT, as_json=as_json)
    except SQLAlchemyError as exc:
        _refuse(database_error(url, exc), EXIT_BAD_INPUT, as_json=as_json)


@contextmanager
def opened_program(db_url: str | None, project: str | None, *, as_json: bool) -> Iterator[Program]:
    """Open the project in the database; errors inside the block exit through :func:`refusals`."""
    path = _sqlite_path(db_url, as_json=as_json)
    if path is not None and not path.is_file():
        fail(
            StoreError(
                f"no program database at {path}: create one with "
                "`labelgate init DIR --spec spec.toml`, or name it with --db or $LABELGATE_DB"
            ),
            as_json=as_json,
        )
    database = open_database(db_url, must_exist=True, as_json=as_json)
    try:
        with refusals(database.url, as_json=as_json):
            try:
                program = Program(database, project)
            except StoreError as exc:
                raise StoreError(f"{exc} (`labelgate init` creates a project)") from exc
            yield program
    finally:
        database.dispose()


def _sqlite_path(db_url: str | None, *, as_json: bool) -> Path | None:
    """The file of a SQLite URL; None for other databases and memory; exit 2 on garbage."""
    resolved = resolve_url(db_url)
    try:
        url = make_url(resolved)
    except ArgumentError:
        # checked here: cli.db's error rendering parses the URL again and would crash
        fail(StoreError(f"not a database URL: {resolved!r}"), as_json=as_json)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def require_actor(actor: str | None, *, as_json: bool) -> str:
    """The acting user's name, or exit 2 saying how to give one."""
    if not actor:
        fail(LabelgateError(f"who is acting? pass --as USER or set {ACTOR_ENV}"), as_json=as_json)
    return actor


@contextmanager
def working(text: str, *, as_json: bool) -> Iterator[None]:
    """A spinner on stderr while a long call runs (never under ``--json`` or in a pipe)."""
    if as_json or not err_console.is_terminal:
        yield
        return
    with err_console.status(text):
        yield


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` as ``(width, height)``; raises :class:`FormatError` on anything else."""
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise FormatError(
            f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}", path="--image-size"
        )
    return int(width), int(height)


def read_labels(path: Path, from_format: str | None, image_size: str | None) -> tuple[str, Dataset]:
    """Detect the format unless given, then read the whole file (errors propagate)."""
    name = from_format or detect_format(path)
    return name, read(path, name, image_size=parse_size(image_size))


def _env_value(database: Database) -> str:
    """What to put in ``LABELGATE_DB``: the file path for SQLite, else the URL."""
    url = make_url(database.url)
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return display_url(database)


# --- init --------------------------------------------------------------------------------


def init_command(
    directory: Annotated[Path, typer.Argument(help="Folder of the program (created).")],
    spec_path: Annotated[Path, typer.Option("--spec", help="The program spec (TOML).")],
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Database URL (default: sqlite:///DIR/labelgate.db; $LABELGATE_DB is ignored).",
        ),
    ] = None,
    admin: Annotated[
        str, typer.Option("--admin", metavar="NAME", help="The first user, with role admin.")
    ] = "admin",
    as_json: JsonFlag = False,
) -> None:
    """Create a program: its folder, database, locked spec v1, pool annotators and an admin."""
    try:
        spec = load_spec(spec_path)
        text = spec_path.read_text(encoding="utf-8")
    except SpecError as exc:
        problems = [{"location": where, "message": what} for where, what in exc.problems]
        _refuse(exc, EXIT_BAD_INPUT, as_json=as_json, problems=problems)
    except OSError as exc:
        fail(exc, as_json=as_json)
    url = db_url or f"sqlite:///{(directory / 'labelgate.db').resolve()}"
    _sqlite_path(url, as_json=as_json)  # exits 2 on an unparsable URL
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(exc, as_json=as_json)
    database = open_database(url, must_exist=False, as_json=as_json)
    try:
        with (
            refusals(database.url, as_json=as_json),
            working("creating the database", as_json=as_json),
        ):
            revision = upgrade(database)
            program = Program.create(database, text, source=spec_path.name, actor=admin)
            program.add_user(admin, ["admin"], actor=SYSTEM_USER)
    finally:
        database.dispose()
    annotators = sorted({name for pool in spec.pools for name in pool.annotators})
    env = {"LABELGATE_DB": _env_value(database), ACTOR_ENV: admin}
    if as_json:
        emit_json(
            {
                "project": program.name,
                "directory": str(directory),
                "database": display_url(database),
                "schema_revision": revision,
                "spec_version": 1,
                "spec_digest": spec.digest(),
                "admin": admin,
                "annotators": annotators,
                "env": env,
            }
        )
        return
    console.print(
        f"[green]created[/] project [bold]{program.name}[/] in {display_url(database)}\n"
        f"spec v1 (locked, digest {spec.digest()[:16]}); admin [bold]{admin}[/]; "
        f"annotators from the spec's pools: {', '.join(annotators) or '-'}\n"
        "next, in this shell:",
        highlight=False,
    )
    for key, value in env.items():
        console.print(f"  export {key}={shlex.quote(value)}", highlight=False, soft_wrap=True)


# --- users -------------------------------------------------------------------------------

user_app = typer.Typer(
    name="user",
    no_args_is_help=True,
    add_completion=False,
    help="People of a program and their roles.",
)


@user_app.command("add")
def user_add_command(
    name: Annotated[str, typer.Argument(help="The user's name (what they pass to --as).")],
    roles: Annotated[
        list[str],
        typer.Option("--role", help=f"A role, repeatable: {', '.join(ROLES)}."),
    ],
    cohort: Annotated[
        str | None, typer.Option("--cohort", help="Annotator cohort (crowd, managed, ...).")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the user's web password from stdin (first line); never from argv.",
        ),
    ] = False,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a user, or add roles to an existing one (managers and admins only)."""
    who = require_actor(actor, as_json=as_json)
    password = _read_password(as_json=as_json) if password_stdin else None
    with opened_program(db_url, project, as_json=as_json) as program:
        user_id = program.add_user(name, roles, cohort=cohort, actor=who)
        if password is not None:
            set_password(program.db, name, password, actor=who)
    if as_json:
        emit_json(
            {
                "project": program.name,
                "user": name,
                "id": user_id,
                "roles_added": sorted(set(roles)),
                "cohort": cohort,
                "password_set": password is not None,
            }
        )
        return
    console.print(
        f"[green]user[/] {name} (id {user_id}): roles {', '.join(sorted(set(roles)))}"
        + (f", cohort {cohort}" if cohort else "")
        + (", password set" if password is not None else ""),
        highlight=False,
    )


def _read_password(*, as_json: bool) -> str:
    """The first line of stdin, without its newline; exit 2 when stdin is empty.

    A password on the command line would sit in the shell history and in every process
    listing (``ps``), so it is read from stdin only: ``printf %s "$PW" | labelgate ...``.
    """
    import sys

    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        fail(LabelgateError("--password-stdin: stdin held no password"), as_json=as_json)
    try:
        check_password(password)  # before anything is written: no user without a password
    except LabelgateError as exc:
        fail(exc, as_json=as_json)
    return password


@user_app.command("passwd")
def user_passwd_command(
    name: Annotated[str, typer.Argument(help="Whose password to set.")],
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a user's web password, read from stdin; revokes every token they hold.

    Users set their own; managers and admins set anyone's.
    """
    who = require_actor(actor, as_json=as_json)
    password = _read_password(as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        set_password(program.db, name, password, actor=who)
    if as_json:
        emit_json({"user": name, "password_set": True})
        return
    console.print(f"[green]password set[/] for {name}; their tokens are revoked", highlight=False)


# --- import ------------------------------------------------------------------------------


def import_command(
    path: Annotated[Path, typer.Argument(help="Annotation file or folder (any format).")],
    from_format: FormatName = None,
    image_size: ImageSize = None,
    gold: Annotated[
        bool, typer.Option("--gold", help="The file holds the pilot gold set's answers.")
    ] = False,
    honeypot: Annotated[
        bool, typer.Option("--honeypot", help="The file holds hidden honeypot answers.")
    ] = False,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a file's images for production, or with --gold/--honeypot their answers.

    Without a flag only the images are registered, not the file's labels.
    The file is read whole and stored in one transaction: all or nothing.
    """
    who = require_actor(actor, as_json=as_json)
    if gold and honeypot:
        fail(LabelgateError("give --gold or --honeypot, not both"), as_json=as_json)
    purpose = "gold" if gold else "honeypot" if honeypot else "images"
    with opened_program(db_url, project, as_json=as_json) as program:
        with working(f"reading {path}", as_json=as_json):
            name, dataset = read_labels(path, from_format, image_size)
        with working(f"storing {len(dataset.images):,} images", as_json=as_json):
            if purpose == "images":
                count = len(program.import_images(dataset.images, actor=who))
            else:
                count = program.import_gold(dataset, purpose=purpose, actor=who)
    stored = len(dataset.annotations) if purpose != "images" else 0
    ignored = len(dataset.annotations) - stored
    if as_json:
        emit_json(
            {
                "project": program.name,
                "path": str(path),
                "format": name,
                "purpose": purpose,
                "images": count,
                "annotations": stored,
                "ignored_annotations": ignored,
            }
        )
        return
    what = {"images": "production images", "gold": "gold images", "honeypot": "honeypot images"}
    detail = f" with {stored:,} reference objects" if stored else ""
    console.print(
        f"[green]imported[/] {count:,} {what[purpose]}{detail} from {path} ({name})",
        highlight=False,
    )
    if ignored:
        err_console.print(
            f"[yellow]note:[/] the file's {ignored:,} labels were not imported; "
            "--gold or --honeypot stores them as reference answers",
            highlight=False,
        )


# --- qualify -----------------------------------------------------------------------------


def qualify_command(
    user: Annotated[str, typer.Argument(help="The annotator being qualified.")],
    labels: Annotated[Path, typer.Argument(help="Their labels of the gold images.")],
    from_format: FormatName = None,
    image_size: ImageSize = None,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Score an annotator's pilot labels against the gold set (exit 1 when they fail).

    The labels use the gold file's image ids. The score is F1 at each class's IoU.
    It must reach gates.pilot_agreement of the spec overall and in each cell
    (class, scene type) that assignment.qualify_per names.
    """
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        _, dataset = read_labels(labels, from_format, image_size)
        with working(f"scoring {user} on the gold set", as_json=as_json):
            result = program.qualify(user, dataset.annotations, actor=who)
    if as_json:
        emit_json(
            {
                "project": program.name,
                "user": result.user,
                "score": result.score,
                "threshold": result.threshold,
                "passed": result.passed,
                "gold_images": result.gold_images,
                "cells": result.cells,
                "failed_cells": result.failed_cells,
            }
        )
    else:
        verdict = "[green]qualified[/]" if result.passed else "[red]not qualified[/]"
        console.print(
            f"{verdict} {result.user}: F1 {result.score:.4f} vs {result.threshold:.4f} on "
            f"{result.gold_images:,} gold images",
            highlight=False,
        )
        if result.cells:
            table = Table("cell", "F1", "passed", title="cells with enough reference objects")
            for cell, value in result.cells.items():
                ok = cell not in result.failed_cells
                table.add_row(cell, f"{value:.4f}", "[green]yes[/]" if ok else "[red]no[/]")
            console.print(table)
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


# --- assign ------------------------------------------------------------------------------


def assign_command(
    batch: Annotated[str, typer.Argument(help="Batch name.")],
    seed: SeedOption = 0,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a batch's production tasks (qualified annotators, blind doubles, honeypots)."""
    who = require_actor(actor, as_json=as_json)
    with (
        opened_program(db_url, project, as_json=as_json) as program,
        working(f"assigning {batch}", as_json=as_json),
    ):
        counts = program.assign(batch, actor=who, seed=seed)
    if as_json:
        emit_json(
            {
                "project": program.name,
                "batch": batch,
                "seed": seed,
                "tasks": counts,
                "total": sum(counts.values()),
            }
        )
        return
    parts = ", ".join(f"{purpose} {count:,}" for purpose, count in counts.items())
    console.print(
        f"[green]assigned[/] {batch}: {sum(counts.values()):,} tasks ({parts})", highlight=False
    )


# --- export ------------------------------------------------------------------------------


def export_command(
    batch: Annotated[str, typer.Argument(help="Batch name.")],
    out: Annotated[Path, typer.Option("--out", help="Output file or folder.")],
    to: Annotated[str, typer.Option("--to", help=f"Output format: {', '.join(FORMATS)}.")] = "coco",
    accepted_only: Annotated[
        bool,
        typer.Option(
            "--accepted-only/--all",
            help="Only a delivered batch's accepted labels (default), or every item's "
            "current final labels.",
        ),
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a batch's final labels (atomically) with their provenance."""
    who = require_actor(actor, as_json=as_json)
    if to not in FORMATS:
        fail(
            FormatError(f"unknown output format {to!r}; expected one of {', '.join(FORMATS)}",
                        path=out),
            as_json=as_json,
        )  # fmt: skip
    if out.exists() and not overwrite:
        fail(FormatError("exists; pass --overwrite to replace it", path=out), as_json=as_json)
    with (
        opened_program(db_url, project, as_json=as_json) as program,
        working(f"exporting {batch}", as_json=as_json),
    ):
        dataset = program.export(batch, accepted_only=accepted_only, actor=who)
        report = write(dataset, out, to, overwrite=overwrite)
    if as_json:
        emit_json(
            {
                **report.to_dict(),
                "batch": batch,
                "accepted_only": accepted_only,
                "provenance": dataset.info,
            }
        )
        return
    info = dataset.info
    console.print(
        f"[green]wrote[/] {out} ({to}): {report.images:,} images, {report.annotations:,} "
        f"objects of batch {batch}\n"
        f"provenance: project {info.get('project')}, spec v{info.get('spec_version')} "
        f"({str(info.get('spec_digest', ''))[:16]}), {info.get('rework_cycles')} rework cycle(s)",
        highlight=False,
    )
    for dropped in report.dropped:
        detail = f" ({dropped.detail})" if dropped.detail else ""
        err_console.print(
            f"[yellow]dropped:[/] {dropped.count:,} {dropped.what}{detail}", highlight=False
        )


# --- annotators' tasks -------------------------------------------------------------------

task_app = typer.Typer(
    name="task",
    no_args_is_help=True,
    add_completion=False,
    help="An annotator's own tasks: list them, save labels from a file, submit.",
)

EDITABLE = ("assigned", "in_progress")


@task_app.command("list")
def task_list_command(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only tasks in this state (assigned, in_progress, ...)."),
    ] = None,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the caller's own tasks (never anyone else's, never what a task is for)."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        tasks = program.my_tasks(who, status=status)
    rows = [
        {
            "task_id": t.task_id,
            "image_id": t.image_id,
            "file_name": t.file_name,
            "width": t.width,
            "height": t.height,
            "batch": t.batch,
            "status": t.status,
            "head_revision_id": t.head_revision_id,
        }
        for t in tasks
    ]
    if as_json:
        emit_json({"project": program.name, "user": who, "tasks": rows})
        return
    if not rows:
        console.print(f"no tasks for {who}" + (f" with status {status}" if status else ""))
        return
    table = Table("task", "image", "file", "batch", "status", "revision", title=f"{who}'s tasks")
    for t in tasks:
        table.add_row(
            str(t.task_id),
            str(t.image_id),
            t.file_name,
            t.batch or "-",
            t.status,
            str(t.head_revision_id or "-"),
        )
    console.print(table)


@task_app.command("save")
def task_save_command(
    labels: Annotated[Path, typer.Argument(help="Labels file; image ids as in the import.")],
    task_id: Annotated[
        int | None, typer.Option("--task", help="Save only this task (default: every one).")
    ] = None,
    submit: Annotated[
        bool, typer.Option("--submit", help="Hand each saved task in (it becomes read-only).")
    ] = False,
    from_format: FormatName = None,
    image_size: ImageSize = None,
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Save the file's labels into the caller's open tasks on the file's images.

    Each open task whose image the file lists gets that image's labels as a new
    revision on top of its head; other open tasks are left alone. Gold and
    honeypot images in your queue count too: the file must cover them.
    A task saved by someone in between is a conflict (exit 1).
    """
    who = require_actor(actor, as_json=as_json)
    saved: list[dict[str, Any]] = []
    with opened_program(db_url, project, as_json=as_json) as program:
        _, dataset = read_labels(labels, from_format, image_size)
        in_file = set(dataset.images.id.tolist())
        open_tasks = [
            t
            for t in program.my_tasks(who)
            if t.status in EDITABLE and (task_id is None or t.task_id == task_id)
        ]
        if task_id is not None and not open_tasks:
            raise PermissionDenied(f"no open task {task_id} for {who!r}")
        todo = [t for t in open_tasks if t.image_id in in_file]
        with progress_bar(f"saving {who}'s tasks", len(todo), as_json=as_json) as advance:
            for task in todo:
                objects = dataset.annotations[dataset.annotations.image_id == task.image_id]
                revision = program.save(
                    who, task.task_id, objects, base_revision_id=task.head_revision_id
                )
                if submit:
                    program.submit(who, task.task_id)
                saved.append(
                    {
                        "task_id": task.task_id,
                        "image_id": task.image_id,
                        "revision_id": revision.revision_id,
                        "objects": len(objects),
                    }
                )
                advance()
    untouched = len(open_tasks) - len(todo)
    if as_json:
        emit_json(
            {
                "project": program.name,
                "user": who,
                "path": str(labels),
                "saved": saved,
                "submitted": len(saved) if submit else 0,
                "untouched": untouched,
            }
        )
        return
    objects = sum(s["objects"] for s in saved)
    console.print(
        f"[green]saved[/] {len(saved):,} task(s) of {who} ({objects:,} objects)"
        + (", submitted" if submit else "")
        + (f"; {untouched:,} open task(s) on images not in {labels}" if untouched else ""),
        highlight=False,
    )


@task_app.command("submit")
def task_submit_command(
    task_ids: Annotated[list[int], typer.Argument(help="Task ids to hand in.")],
    db_url: DbOption = None,
    actor: ActorOption = None,
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Hand tasks in: they leave the caller's editable queue."""
    who = require_actor(actor, as_json=as_json)
    with opened_program(db_url, project, as_json=as_json) as program:
        for task in task_ids:
            program.submit(who, task)
    if as_json:
        emit_json({"project": program.name, "user": who, "submitted": task_ids})
        return
    console.print(f"[green]submitted[/] {len(task_ids)} task(s)", highlight=False)


def counted_progress(*, as_json: bool) -> Progress:
    """The commands' progress display on stderr: description, bar, n / total, time left.

    Off for ``--json`` and when stderr is not a terminal.
    """
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=as_json or not err_console.is_terminal,
    )


@contextmanager
def progress_bar(description: str, total: int, *, as_json: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr over ``total`` steps; yields the function that advances it."""
    with counted_progress(as_json=as_json) as progress:
        bar = progress.add_task(description, total=total)
        yield lambda: progress.advance(bar)
