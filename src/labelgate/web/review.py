"""What the review page shows beside a submitted task: its blind twin, pairs, consensus.

Every number comes from the core (:func:`labelgate.core.matching.match` with
:func:`labelgate.core.iou.pair_iou`, :func:`labelgate.core.merge.merge` as the workflow's
consensus runs it); the page only draws them. Access is the workflow's: both label sets
are read through :meth:`Program.review_labels`, which refuses the task's own author and
anyone without a reviewer's role.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelgate.core.annotations import Annotations, Kind
from labelgate.core.iou import pair_iou
from labelgate.core.matching import match
from labelgate.core.merge import merge
from labelgate.errors import PermissionDenied
from labelgate.store.db import Database
from labelgate.workflow.auth import Principal
from labelgate.workflow.program import Program
from labelgate.workflow.queries import task_project

__all__ = ["PAIRING_IOU", "review_pair"]

#: pairs are shown from this IoU up, so that boxes looser than their tier show as pairs
PAIRING_IOU = 0.1


def _attribute_diff(a: Annotations, row_a: int, b: Annotations, row_b: int) -> list[str]:
    names = [
        name
        for name, column in (("occluded", "occluded"), ("truncated", "truncated"))
        if bool(getattr(a, column)[row_a]) != bool(getattr(b, column)[row_b])
    ]
    if int(a.track_id[row_a]) != int(b.track_id[row_b]):
        names.append("track_id")
    for name in sorted(set(a.attributes) | set(b.attributes)):
        value_a = a.attributes[name].to_list()[row_a] if name in a.attributes else None
        value_b = b.attributes[name].to_list()[row_b] if name in b.attributes else None
        if value_a != value_b:
            names.append(name)
    return names


def review_pair(db: Database, me: Principal, task_id: int) -> dict[str, Any]:
    """The review page's data for one submitted task (see the module docstring).

    Returns
    -------
    dict
        ``task_id``, ``project``, ``image_id``, ``width``, ``height``, ``twin_task_id``
        (None for a single-annotated item or a twin the caller may not read),
        ``pairs`` (``a``/``b`` object ids, ``class_id``, ``iou``, ``tier``, ``below_tier``,
        ``class_swap``, ``attribute_diff``; lowest IoU first), ``unmatched_a``,
        ``unmatched_b`` (object ids) and ``consensus`` (``merged``, ``disputed``).
    """
    project = task_project(db, task_id)
    program = Program(db, project)
    labels_a = program.review_labels(me.name, task_id)
    image_id = program.task_image(me.name, task_id)
    twin_id, width, height = program.review_twin(me.name, task_id)
    labels_b: Annotations | None = None
    if twin_id is not None:
        try:
            labels_b = program.review_labels(me.name, twin_id)
        except PermissionDenied:
            twin_id = None  # not submitted yet, or the caller's own: show A alone
    out: dict[str, Any] = {
        "task_id": task_id,
        "project": project,
        "image_id": image_id,
        "width": width,
        "height": height,
        "image_url": f"/web/images/{task_id}",
        "twin_task_id": twin_id,
        "pairs": [],
        "unmatched_a": labels_a.id.tolist(),
        "unmatched_b": [],
        "consensus": None,
    }
    if labels_b is None:
        return out
    spec = program.spec()
    tiers = {c.id: c.iou_threshold for c in spec.classes}
    a = labels_a[labels_a.kind != Kind.TAG]
    b = labels_b[labels_b.kind != Kind.TAG]
    result = match(a, b, iou_threshold=PAIRING_IOU, pair_iou=pair_iou)
    pairs: list[dict[str, Any]] = []
    for rows_a, rows_b, iou, swap in (
        (result.ref_rows, result.other_rows, result.iou, False),
        (result.swap_ref_rows, result.swap_other_rows, result.swap_iou, True),
    ):
        for row_a, row_b, value in zip(rows_a.tolist(), rows_b.tolist(), iou.tolist()):
            class_id = int(a.class_id[row_a])
            tier = tiers.get(class_id)
            pairs.append(
                {
                    "a": int(a.id[row_a]),
                    "b": int(b.id[row_b]),
                    "class_id": class_id,
                    "class_id_b": int(b.class_id[row_b]),
                    "iou": round(float(value), 4),
                    "tier": tier,
                    "below_tier": tier is not None and value < tier,
                    "class_swap": swap,
                    "attribute_diff": _attribute_diff(a, row_a, b, row_b),
                }
            )
    pairs.sort(key=lambda p: float(p["iou"]))
    paired_a = {p["a"] for p in pairs}
    paired_b = {p["b"] for p in pairs}
    out["pairs"] = pairs
    out["unmatched_a"] = [i for i in a.id.tolist() if i not in paired_a]
    out["unmatched_b"] = [i for i in b.id.tolist() if i not in paired_b]
    both = [x.replace(image_id=np.zeros(len(x), dtype=np.int64)) for x in (a, b)]
    consensus = merge(both, taxonomy=spec.taxonomy(), quorum=1.0)
    out["consensus"] = {
        "merged": len(consensus.annotations),
        "disputed": int(consensus.n_clusters - len(consensus.annotations)),
    }
    return out
