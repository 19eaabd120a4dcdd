"""Checks across keys of a spec: references, duplicates, and thresholds within their tier.

:func:`cross_check` reads the raw TOML mapping, not the validated model, so it also runs on
a spec whose other keys have the wrong type: a user fixing a file sees every problem in one
go. Values of the wrong type are skipped here (the model reports them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from labelgate.core.taxonomy import TIER_RANGES, PrecisionTier

__all__ = ["cross_check", "toml_key"]

Problems = list[tuple[str, str]]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """A key as TOML writes it in a dotted path: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.match(key) else '"' + key.replace('"', '\\"') + '"'


def _rows(raw: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, table) of an array of tables; entries that are not tables are skipped."""
    value = raw.get(key)
    if not isinstance(value, list | tuple):
        return []
    return [(i, row) for i, row in enumerate(value) if isinstance(row, Mapping)]


def _strings(value: Any) -> list[tuple[int, str]]:
    """(index, text) of the strings of a list; anything else yields nothing."""
    if not isinstance(value, list | tuple):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def _number(value: Any) -> float | None:
    """A TOML number as float; ``None`` for anything else (bool included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _tier(row: Mapping[str, Any]) -> PrecisionTier | None:
    tier = row.get("tier", PrecisionTier.LOOSE.value)
    return PrecisionTier(tier) if tier in PrecisionTier._value2member_map_ else None


def _duplicates(
    rows: list[tuple[int, Mapping[str, Any]]], array: str, key: str, what: str, problems: Problems
) -> None:
    seen: dict[Any, int] = {}
    for i, row in rows:
        value = row.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool):
            continue
        if value in seen:
            problems.append(
                (f"{array}[{i}].{key}", f"duplicate {what} {value!r} (also {array}[{seen[value]}])")
            )
        else:
            seen[value] = i


def _check_classes(
    raw: Mapping[str, Any], scene_names: set[str], problems: Problems
) -> dict[str, int]:
    rows = _rows(raw, "classes")
    _duplicates(rows, "classes", "id", "class id", problems)
    _duplicates(rows, "classes", "name", "class name", problems)
    for i, row in rows:
        where = f"classes[{i}]"
        tier = _tier(row)
        threshold = _number(row.get("iou_threshold"))
        if tier is not None:
            low, high, default = TIER_RANGES[tier]
            if threshold is not None and not low <= threshold <= high:
                problems.append(
                    (
                        f"{where}.iou_threshold",
                        f"tier {tier.value} allows IoU {low}-{high}, got {threshold}",
                    )
                )
            if threshold is None and "iou_threshold" not in row:
                threshold = default
        overrides = row.get("scene_thresholds")
        if isinstance(overrides, Mapping):
            for scene, value in overrides.items():
                key = f"{where}.scene_thresholds.{toml_key(str(scene))}"
                if scene not in scene_names:
                    known = ", ".join(sorted(scene_names)) or "none"
                    problems.append((key, f"unknown scene type {scene!r} (scene_types: {known})"))
                number = _number(value)
                if tier is not None and number is not None:
                    low, high, _ = TIER_RANGES[tier]
                    if not low <= number <= high:
                        problems.append(
                            (key, f"tier {tier.value} allows IoU {low}-{high}, got {number}")
                        )
        _check_keypoints(row, where, problems)
        sla = row.get("sla")
        if isinstance(sla, Mapping) and threshold is not None:
            sla_iou = _number(sla.get("iou_threshold"))
            if sla_iou is not None and sla_iou < threshold:
                problems.append(
                    (
                        f"{where}.sla.iou_threshold",
                        f"a median IoU target below the matching threshold {threshold} is met "
                        f"by every match; expected >= {threshold}, got {sla_iou}",
                    )
                )
    return {
        row["name"]: row["id"]
        for _, row in rows
        if isinstance(row.get("name"), str) and isinstance(row.get("id"), int)
    }


def _check_keypoints(row: Mapping[str, Any], where: str, problems: Problems) -> None:
    keypoints = row.get("keypoints", [])
    skeleton = row.get("skeleton", [])
    kind = row.get("kind", "box")
    if kind == "keypoints" and isinstance(keypoints, list | tuple) and not keypoints:
        problems.append((f"{where}.keypoints", "a keypoints class needs its keypoint names"))
    if kind != "keypoints" and kind in ("tag", "box", "polygon", "mask"):
        for key, value in (("keypoints", keypoints), ("skeleton", skeleton)):
            if isinstance(value, list | tuple) and value:
                problems.append(
                    (f"{where}.{key}", f"only keypoints classes have {key}; kind is {kind!r}")
                )
        return
    seen: dict[str, int] = {}
    for j, name in _strings(keypoints):
        if name in seen:
            problems.append(
                (f"{where}.keypoints[{j}]", f"duplicate keypoint {name!r} (also [{seen[name]}])")
            )
        seen.setdefault(name, j)
    count = len(keypoints) if isinstance(keypoints, list | tuple) else 0
    if not isinstance(skeleton, list | tuple):
        return
    for j, edge in enumerate(skeleton):
        if not isinstance(edge, list | tuple):
            continue
        for k, end in enumerate(edge):
            if isinstance(end, int) and not isinstance(end, bool) and not 1 <= end <= count:
                problems.append(
                    (
                        f"{where}.skeleton[{j}][{k}]",
                        f"expected a 1-based keypoint index in 1..{count}, got {end}",
                    )
                )


def _check_class_refs(
    value: Any, where: str, class_names: dict[str, int], problems: Problems
) -> None:
    seen: set[str] = set()
    for j, name in _strings(value):
        if name not in class_names:
            problems.append((f"{where}[{j}]", f"unknown class {name!r}"))
        elif name in seen:
            problems.append((f"{where}[{j}]", f"class {name!r} listed twice"))
        seen.add(name)


def _check_attributes(
    raw: Mapping[str, Any], class_names: dict[str, int], problems: Problems
) -> None:
    rows = _rows(raw, "attributes")
    _duplicates(rows, "attributes", "name", "attribute name", problems)
    for i, row in rows:
        where = f"attributes[{i}]"
        _check_class_refs(row.get("classes"), f"{where}.classes", class_names, problems)
        kind = row.get("type", "text")
        values = row.get("values", [])
        strings = _strings(values)
        if kind == "select" and isinstance(values, list | tuple) and not values:
            problems.append((f"{where}.values", "a select attribute needs its allowed values"))
        if kind == "bool" and isinstance(values, list | tuple) and values:
            problems.append((f"{where}.values", "a bool attribute takes no values"))
        for j, text in strings:
            if kind in ("int", "float") and not _parses(text, kind):
                problems.append((f"{where}.values[{j}]", f"expected {kind} text, got {text!r}"))
        if len({t for _, t in strings}) != len(strings):
            problems.append((f"{where}.values", "values listed twice"))
        default = row.get("default", "")
        if isinstance(default, str) and default:
            allowed = [t for _, t in strings]
            if allowed and default not in allowed:
                problems.append((f"{where}.default", f"expected one of {allowed}, got {default!r}"))
            elif kind in ("int", "float", "bool") and not _parses(default, kind):
                problems.append((f"{where}.default", f"expected {kind} text, got {default!r}"))


def _parses(text: str, kind: str) -> bool:
    if kind == "bool":
        return text in ("true", "false")
    try:
        int(text) if kind == "int" else float(text)
    except ValueError:
        return False
    return True


def _check_edge_cases(
    raw: Mapping[str, Any], class_names: dict[str, int], problems: Problems
) -> None:
    rows = _rows(raw, "edge_cases")
    _duplicates(rows, "edge_cases", "id", "edge-case id", problems)
    for i, row in rows:
        _check_class_refs(row.get("classes"), f"edge_cases[{i}].classes", class_names, problems)
    gates = raw.get("gates")
    minimum = gates.get("min_edge_case_rules", 1) if isinstance(gates, Mapping) else 1
    rules = raw.get("edge_cases", [])
    if isinstance(minimum, int) and isinstance(rules, list | tuple) and len(rules) < minimum:
        problems.append(
            (
                "edge_cases",
                f"expected at least {minimum} edge-case rule{'' if minimum == 1 else 's'} "
                f"(gates.min_edge_case_rules), got {len(rules)}",
            )
        )


def _check_pools(raw: Mapping[str, Any], problems: Problems) -> None:
    rows = _rows(raw, "pools")
    _duplicates(rows, "pools", "name", "pool name", problems)
    member_of: dict[str, str] = {}
    for i, row in rows:
        seen: set[str] = set()
        for j, user in _strings(row.get("annotators")):
            where = f"pools[{i}].annotators[{j}]"
            if user in seen:
                problems.append((where, f"annotator {user!r} listed twice"))
            elif user in member_of:
                problems.append(
                    (where, f"annotator {user!r} is already in pool {member_of[user]!r}")
                )
            seen.add(user)
            member_of.setdefault(user, str(row.get("name", i)))


def _check_assignment(raw: Mapping[str, Any], problems: Problems) -> None:
    assignment = raw.get("assignment")
    if not isinstance(assignment, Mapping):
        return
    gold = _number(assignment.get("gold_rate", 0.02))
    honeypot = _number(assignment.get("honeypot_rate", 0.02))
    if gold is not None and honeypot is not None and gold + honeypot >= 1.0:
        problems.append(
            (
                "assignment",
                f"gold_rate + honeypot_rate must leave room for production items, "
                f"got {gold} + {honeypot}",
            )
        )
    qualify = _strings(assignment.get("qualify_per"))
    if len({q for _, q in qualify}) != len(qualify):
        problems.append(("assignment.qualify_per", "listed twice"))


def cross_check(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem across keys of a raw spec mapping, as ``(toml_path, message)``.

    Parameters
    ----------
    raw
        The spec as ``tomllib`` reads it (or a model dump).

    Returns
    -------
    list of (str, str)
        Problems in file order; empty when the references hold.

    Examples
    --------
    >>> cross_check({"scene_types": ["urban"], "classes": [
    ...     {"id": 1, "name": "car", "tier": "tight", "iou_threshold": 0.6,
    ...      "scene_thresholds": {"highway": 0.8}}], "edge_cases": [{"id": "a", "rule": "r"}]})
    [('classes[0].iou_threshold', 'tier tight allows IoU 0.75-0.9, got 0.6'), \
('classes[0].scene_thresholds.highway', "unknown scene type 'highway' (scene_types: urban)")]
    """
    problems: Problems = []
    scene_types = _strings(raw.get("scene_types"))
    scene_names: set[str] = set()
    for j, scene in scene_types:
        if scene in scene_names:
            problems.append((f"scene_types[{j}]", f"scene type {scene!r} listed twice"))
        scene_names.add(scene)
    class_names = _check_classes(raw, scene_names, problems)
    _check_attributes(raw, class_names, problems)
    _check_edge_cases(raw, class_names, problems)
    _check_pools(raw, problems)
    _check_assignment(raw, problems)
    return problems
