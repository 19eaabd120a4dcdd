"""Read a spec from TOML and report every problem of the file at once.

TOML syntax errors name the file, line and column. Then two passes run on the parsed
mapping and their problems are merged: the pydantic model (types, ranges, allowed words,
unknown and missing keys) and :func:`~labelgate.spec.checks.cross_check` (references,
duplicates, tier ranges). Each problem is prefixed with its TOML path, 0-based:
``spec.toml: classes[2].iou_threshold: tier tight allows IoU 0.75-0.9, got 0.6``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pydantic

from labelgate.errors import SpecError
from labelgate.spec.checks import cross_check, toml_key
from labelgate.spec.model import ProgramSpec

__all__ = ["load_spec", "parse_spec"]

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _path_of(loc: tuple[int | str, ...]) -> str:
    """``("classes", 2, "iou_threshold")`` -> ``classes[2].iou_threshold``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + toml_key(part)
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[pydantic.BaseModel] | None:
    """The model class of the table at ``loc`` (for the keys it allows); None if unknown."""
    annotation: Any = ProgramSpec
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            if not args:
                return None
            annotation = args[0]
        elif isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that holds the keys."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _message(error: Any) -> str:
    """A pydantic error as a spec problem: what was expected and what came in."""
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        key = str(loc[-1])
        if model is None:
            return "unknown key"
        allowed = list(model.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if len(loc) > 1 and key in ProgramSpec.model_fields:
            hint = f"; top-level key {key!r} must come before the first [table]"
        return f"unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "missing":
        return "required key missing"
    message = str(error["msg"])
    if kind in ("value_error", "assertion_error"):
        return message.removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, dict | list):
        shown = "a table" if isinstance(value, dict) else "an array"
    else:
        shown = repr(value)
    context = error.get("ctx") or {}
    if kind in ("too_short", "too_long") and isinstance(value, list | dict):
        bound = context.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        noun = "entry" if bound == 1 else "entries"
        return f"expected {word} {bound} {noun}, got {len(value)}"
    top_level = len(loc) == 1 and isinstance(loc[0], str)
    if kind in ("tuple_type", "list_type"):
        if top_level and isinstance(value, dict):
            return f"expected an array of tables: write [[{loc[0]}]], not [{loc[0]}]"
        message = "expected an array"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        if top_level and isinstance(value, list):
            return f"expected a table: write [{loc[0]}], not [[{loc[0]}]]"
        message = "expected a table"
    message = message.replace("Input should be ", "expected ", 1)
    return f"{message[:1].lower()}{message[1:]}, got {shown}"


def _is_echo(error: Any) -> bool:
    """A too-short error caused only by its items failing (reported on their own)."""
    value = error.get("input")
    bound = (error.get("ctx") or {}).get("min_length")
    return (
        error["type"] == "too_short"
        and isinstance(value, list)
        and isinstance(bound, int)
        and len(value) >= bound
    )


def _order_key(problem: tuple[str, str]) -> tuple[Any, ...]:
    """Problems sort in spec order: top-level key as the model lists them, then indices."""
    top = list(ProgramSpec.model_fields)
    location = problem[0]
    head = re.split(r"[.\[]", location, maxsplit=1)[0]
    rank = top.index(head) if head in top else len(top)
    parts = tuple(
        (0, int(p), "") if p.isdigit() else (1, 0, p)
        for p in re.findall(r"\d+|[^.\[\]]+", location)
    )
    return (rank, parts)


def parse_spec(text: str, *, source: str = "<string>") -> ProgramSpec:
    r"""Parse and validate a spec from TOML text.

    Parameters
    ----------
    text
        The TOML document.
    source
        File name used in messages; default ``"<string>"``.

    Returns
    -------
    ProgramSpec
        The validated spec, defaults filled in.

    Raises
    ------
    SpecError
        On a TOML syntax error (file, line and column) or any invalid key; ``problems``
        lists every ``(toml_path, message)`` found, not just the first.

    Examples
    --------
    >>> spec = parse_spec('''
    ... project = { name = "demo" }
    ... classes = [{ id = 1, name = "car", tier = "standard" }]
    ... edge_cases = [{ id = "EC1", rule = "A car on a trailer is one car." }]
    ... ''')
    >>> spec.project.name, spec.classes[0].iou_threshold, spec.gates.gold_set_size
    ('demo', 0.7, 500)
    >>> try:
    ...     parse_spec('project = { name = "demo", nmae = "x" }')
    ... except SpecError as exc:
    ...     print(*exc.problems, sep="\n")
    ('project.nmae', "unknown key; did you mean 'name'? (allowed: name, description)")
    ('classes', 'required key missing')
    ('edge_cases', 'expected at least 1 edge-case rule (gates.min_edge_case_rules), got 0')
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        position = _TOML_POSITION.search(reason)
        where = ""
        if position:
            reason = reason[: position.start()]
            where = f"line {position.group(1)}, column {position.group(2)}"
        elif reason.endswith("(at end of document)"):
            reason = reason.removesuffix("(at end of document)").rstrip()
            last = text.split("\n")
            where = f"line {len(last)}, column {len(last[-1]) + 1} (end of file)"
        raise SpecError(f"invalid TOML: {reason}", location=where or None, path=source) from exc
    problems: list[tuple[str, str]] = []
    spec: ProgramSpec | None = None
    try:
        spec = ProgramSpec.model_validate(raw, context={"skip_cross_check": True})
    except pydantic.ValidationError as exc:
        problems.extend(
            (_path_of(tuple(e["loc"])), _message(e)) for e in exc.errors() if not _is_echo(e)
        )
    problems.extend(cross_check(raw))
    if problems:
        unique = sorted(dict.fromkeys(problems), key=_order_key)
        raise SpecError(f"{len(unique)} problems", path=source, problems=unique)
    assert spec is not None  # no problems means the model validated
    return spec


def load_spec(path: Path | str) -> ProgramSpec:
    """Read and validate a spec file.

    Parameters
    ----------
    path
        A TOML file (UTF-8).

    Returns
    -------
    ProgramSpec
        The validated spec.

    Raises
    ------
    SpecError
        When the file cannot be read, is not UTF-8 TOML, or holds any invalid key (every
        problem listed, each with its TOML path).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the spec: {exc}", path=path) from exc
    return parse_spec(text, source=str(path))
