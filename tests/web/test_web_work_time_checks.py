"""Reviews and adjudications report active time with each decision (Chromium, page clock).

The page's clock is paused and moved by hand (Playwright ``clock``), so the active time is
known exactly: inputs one second apart count whole seconds, a gap longer than the idle gap
(60 s) counts nothing. The work log must hold that number, to the tenth of a second the
pages report, under the right activity, person, task or batch and cycle; a post refused on
the way keeps its time for the retry. The review runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from test_api_manage import into_review
from test_web_browser import (  # noqa: F401
    _submit,
    browser,
    login,
    new_page,
    poll,
    site,
    site_on_each_db,
)
from web_world import Served

from labelgate.store.db import Database
from labelgate.store.models import UserRow, WorkLogRow

pytestmark = pytest.mark.browser

IDLE_GAP_S = 60  # worktime.js: a minute without input is a break


def _work_log(db: Database) -> list[tuple[str, str, int | None, int | None, int, float, int]]:
    with db.session() as s:
        rows = s.execute(
            select(
                WorkLogRow.activity,
                UserRow.name,
                WorkLogRow.task_id,
                WorkLogRow.batch_id,
                WorkLogRow.cycle,
                WorkLogRow.seconds,
                WorkLogRow.objects,
            )
            .join(UserRow, UserRow.id == WorkLogRow.user_id)
            .order_by(WorkLogRow.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _work(page: Any, seconds: int) -> None:
    """Pointer moves one (paused) second apart: exactly ``seconds`` of active time."""
    box = page.locator("#stage").bounding_box()
    for i in range(seconds + 1):
        if i:
            page.clock.run_for(1000)
        page.mouse.move(box["x"] + 20 + 7 * i, box["y"] + 20 + 3 * i)


def _paused_page(browser: Any, site: Served, user: str, path: str) -> Any:
    page = new_page(browser)
    login(page, site.url, user, "/queue" if user != "adam" else "/review")
    page.clock.install()
    page.clock.pause_at(1_800_000_000_000)
    page.goto(f"{site.url}{path}")
    page.wait_for_selector("body[data-ready=true]")
    return page


def test_a_review_reports_the_reviewers_active_time(
    browser: Any,
    site_on_each_db: Served,
) -> None:
    served = site_on_each_db
    image = served.world.shared_images()[0]
    ana_task = next(t.task_id for t in served.world.tasks("ana") if t.image_id == image)
    bo_task = next(t.task_id for t in served.world.tasks("bo") if t.image_id == image)
    _submit(served, "ana", ana_task, [[10, 10, 110, 110], [200, 200, 260, 300]], [1, 2])
    _submit(served, "bo", bo_task, [[14, 12, 114, 108], [400, 50, 450, 90]], [1, 3])
    before = _work_log(served.world.db)  # the test saved through the workflow: no time logged
    assert before == []

    page = _paused_page(browser, served, "rita", f"/review/{ana_task}")
    _work(page, 7)  # 7 s of input ...
    page.clock.run_for((IDLE_GAP_S + 30) * 1000)  # ... a 90 s break (not counted) ...
    _work(page, 4)  # ... 4 s more
    page.locator("#pairs tr").nth(1).click()
    page.click("#reject")  # the clicks: inputs at the same instant, 0 s more
    # the first post never reaches the workflow (a 503 on the way): its time is kept
    refused: list[float] = []

    def refuse(route: Any) -> None:
        refused.append(route.request.post_data_json["work_seconds"])
        route.fulfill(status=503, json={"detail": "service unavailable"})

    page.route(f"**/api/review/{ana_task}", refuse)
    page.click("#send-review")
    page.wait_for_selector("#banner .banner:has-text('Review refused')")
    page.unroute(f"**/api/review/{ana_task}")
    assert refused == [11.0] and _work_log(served.world.db) == []
    _work(page, 2)  # 2 s more before the retry
    page.click("#send-review")
    page.wait_for_selector(".banner.ok")
    log = _work_log(served.world.db)
    assert log == [("review", "rita", ana_task, served.world.batch, 0, 13.0, 2)]
    assert page.evaluate(
        "[window.__review.activeTime.pendingMs, window.__review.activeTime.sentMs]"
    ) == [0, 0]
    assert page.errors == []


def test_adjudications_report_the_time_since_the_previous_decision(
    browser: Any,
    site: Served,
) -> None:
    world = site.world
    into_review(world, disputes=True)
    cases = [
        world.program.adjudication_case(d["id"], actor="adam")
        for d in world.program.adjudications(world.batch, actor="adam")
    ]
    first = cases[0]
    assert _work_log(world.db) == []

    page = _paused_page(browser, site, "adam", f"/adjudicate/{first['id']}")
    _work(page, 5)
    page.keyboard.press("1" if first["versions"]["a"] else "2")
    page.select_option("#reason-code", "tighter_fit")
    page.click("#confirm")
    poll(
        page,
        "window.__adjudicate.decided.length === 1 && window.__adjudicate.c.status === 'open'"
        f" && window.__adjudicate.id !== {first['id']}",
    )
    # the page moved on to the next dispute: its time starts after the first decision
    page.clock.run_for(2 * IDLE_GAP_S * 1000)  # reading for two minutes: no input, no time
    _work(page, 3)
    second = page.evaluate("window.__adjudicate.c")
    assert second["id"] not in first["group"]
    page.keyboard.press("1" if second["versions"]["a"] else "2")
    page.select_option("#reason-code", "tighter_fit")
    page.click("#confirm")
    poll(page, "window.__adjudicate.decided.length === 2")

    log = _work_log(world.db)
    assert [(a, who, task, batch, cycle, sec) for a, who, task, batch, cycle, sec, _ in log] == [
        ("adjudicate", "adam", None, world.batch, 0, 5.0),
        ("adjudicate", "adam", None, world.batch, 0, 3.0),
    ]
    # each entry counts the disputes its one choice decided
    assert [n for *_, n in log] == [len(first["group"]), len(second["group"])]
    assert page.errors == []
