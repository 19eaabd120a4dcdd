"""The dashboard shows measured work: annotators' hours, objects per hour, rework hours,
and the cost so far priced from the work log beside the model (Chromium).

ana's saves on production tasks carry hand-picked times (1 h of annotation on 4 objects as
last saved, then half an hour of rework at cycle 1); bo saves without a time. At the spec's
default 36 USD an hour and price multiple 1.0, direct annotation costs 36.00 and rework
18.00.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from api_world import MANAGER
from sqlalchemy import select
from test_web_browser import SHOTS, browser, login, new_page, site  # noqa: F401
from web_world import Served

from labelgate.core.annotations import Annotations
from labelgate.store.models import ProjectRow, UserRow, WorkLogRow

pytestmark = pytest.mark.browser


def boxes(n: int) -> Annotations:
    return Annotations.create(
        id=list(range(1, n + 1)),
        image_id=[0] * n,
        class_id=[1] * n,
        bbox=[[10.0 * i, 10.0, 10.0 * i + 8.0, 30.0] for i in range(n)],
    )


def _cells(page: Any, label: str, first: str) -> list[str]:
    """The cells of the row of table ``label`` whose first cell reads ``first``."""
    rows = page.locator(f'table[aria-label="{label}"] tbody tr').evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    (row,) = [r for r in rows if r[0] == first]
    return list(row)


def test_the_dashboard_shows_throughput_rework_hours_and_cost_so_far(
    browser: Any,
    site: Served,
) -> None:
    world = site.world
    prog = world.program
    t1, t2 = [t.task_id for t in world.tasks("ana") if t.image_id < 20_000][:2]
    saved = prog.save("ana", t1, boxes(2), base_revision_id=None, work_seconds=1800.0)
    prog.save("ana", t1, boxes(3), base_revision_id=saved.revision_id, work_seconds=900.0)
    prog.save("ana", t2, boxes(1), base_revision_id=None, work_seconds=900.0)
    bo_task = next(t.task_id for t in world.tasks("bo") if t.image_id < 20_000)
    prog.save("bo", bo_task, boxes(2), base_revision_id=None)
    with world.db.session() as s:
        ana = s.execute(select(UserRow.id).where(UserRow.name == "ana")).scalar_one()
        project = s.execute(
            select(ProjectRow.id).where(ProjectRow.name == "street-scenes")
        ).scalar_one()
        s.add(
            WorkLogRow(
                project_id=project,
                batch_id=world.batch,
                task_id=t2,
                user_id=ana,
                activity="rework",
                cycle=1,
                seconds=1800.0,
                objects=1,
                created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
        )
    report = world.client.get(
        "/api/projects/street-scenes/report", headers=world.login(MANAGER)
    ).json()
    measured = report["cost"]["measured"]
    assert (measured["direct_usd"], measured["rework_usd"]) == (36.0, 18.0)
    assert (measured["direct_hours"], measured["rework_hours"]) == (1.0, 0.5)
    model = report["cost"]["model"]

    page = new_page(browser)
    login(page, site.url, MANAGER, "/dashboard/street-scenes")
    page.wait_for_selector("body[data-ready=true]")
    # annotation h, objects / h, rework h are the table's last three columns
    assert _cells(page, "Annotators", "ana")[-3:] == ["1.00", "4.0", "0.50"]
    assert _cells(page, "Annotators", "bo")[-3:] == ["no time logged", "–", "–"]
    assert _cells(page, "Cost so far vs model", "direct annotation") == [
        "direct annotation",
        "$36.00",
        "1.00",
        f"${model['direct_usd']:.2f}",
        f"{36.0 / model['direct_usd']:.2f}",
    ]
    assert _cells(page, "Cost so far vs model", "rework cycles")[:3] == [
        "rework cycles",
        "$18.00",
        "0.50",
    ]
    heading = page.inner_text("#cost-measured h3")
    assert heading.startswith(f"Cost so far (measured): ${measured['total_usd']:.2f} over 1.50 h")
    assert f"{measured['ratio_to_model']:.2f} × the model's ${model['total_usd']:.2f}" in heading
    # 13 annotator columns still fit 1366 px: no horizontal scroll
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(SHOTS / "dashboard-work-time.png"), full_page=True)
    assert page.errors == []
