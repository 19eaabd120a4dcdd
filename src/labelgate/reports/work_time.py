"""Each annotator's measured work: annotation hours, throughput and rework hours.

Read from the work log (``work_log``: one entry per save, with the active time the editor
measured since the previous one and the object count of the saved state). The report puts
it beside each annotator's quality (``quality.per_annotator[].work``) and the dashboard's
annotator table shows it.

Throughput is objects per hour of first-pass annotation: each task counts the objects of
its last logged ``annotate`` save (the state the annotator left it in; earlier saves of the
same task are steps on the way, not more objects), divided by all ``annotate`` hours. Tasks
saved without a measured time (an API client that sends no ``work_seconds``) count on
neither side. Rework hours are the ``rework`` entries: re-labelling items a gate sent back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelgate.store.models import UserRow, WorkLogRow

__all__ = ["annotator_work"]


def annotator_work(s: Session, project_id: int) -> dict[str, dict[str, Any]]:
    """Measured annotation and rework time per annotator of a project.

    Parameters
    ----------
    s
        An open session.
    project_id
        The project's row id.

    Returns
    -------
    dict
        By user name, for everyone with a logged ``annotate`` or ``rework`` entry:
        ``annotate_hours``, ``annotate_tasks`` (tasks with a logged save),
        ``annotate_objects`` (their objects as last saved), ``objects_per_hour``
        (``None`` when no annotation time was logged, e.g. only 0 s entries) and
        ``rework_hours``.
    """
    rows = s.execute(
        select(
            UserRow.name,
            func.coalesce(WorkLogRow.task_id, -1),
            WorkLogRow.activity,
            WorkLogRow.seconds,
            WorkLogRow.objects,
        )
        .join(UserRow, UserRow.id == WorkLogRow.user_id)
        .where(
            WorkLogRow.project_id == project_id,
            WorkLogRow.activity.in_(("annotate", "rework")),
        )
        .order_by(WorkLogRow.id)
    ).all()
    if not rows:
        return {}
    name, task, activity, seconds, objects = (list(c) for c in zip(*rows))
    people, person = np.unique(np.asarray(name, dtype=object), return_inverse=True)
    n = len(people)
    task_id = np.asarray(task, dtype=np.int64)
    annotate = np.asarray(activity, dtype=object) == "annotate"
    secs = np.asarray(seconds, dtype=np.float64)
    annotate_s = np.bincount(person, weights=np.where(annotate, secs, 0.0), minlength=n)
    rework_s = np.bincount(person, weights=np.where(annotate, 0.0, secs), minlength=n)
    # the last annotate entry of each (person, task): first seen when walking backwards
    at = np.flatnonzero(annotate)[::-1]
    key = person[at].astype(np.int64) * (int(task_id.max()) + 2) + task_id[at] + 1
    _, first = np.unique(key, return_index=True)
    last = at[first]
    count = np.asarray(objects, dtype=np.float64)[last]
    tasks = np.bincount(person[last], minlength=n)
    annotated = np.bincount(person[last], weights=count, minlength=n)
    return {
        str(people[i]): {
            "annotate_hours": float(annotate_s[i] / 3600.0),
            "annotate_tasks": int(tasks[i]),
            "annotate_objects": int(annotated[i]),
            "objects_per_hour": (
                float(annotated[i] / (annotate_s[i] / 3600.0)) if annotate_s[i] > 0 else None
            ),
            "rework_hours": float(rework_s[i] / 3600.0),
        }
        for i in range(n)
    }
