"""The editor reports active time with each save; idle gaps do not count (Chromium)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select
from test_web_browser import browser, site  # noqa: F401
from web_world import PASSWORD, Served

from labelgate.store.db import Database
from labelgate.store.models import WorkLogRow

pytestmark = pytest.mark.browser

IDLE_GAP_MS = 800  # shortened from the editor's 60 s


def _poll(page: Any, expression: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := page.evaluate(expression)):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        page.wait_for_timeout(25)
    return value


def _logged(db: Database) -> list[float]:
    with db.session() as s:
        return list(s.execute(select(WorkLogRow.seconds).order_by(WorkLogRow.id)).scalars())


def test_a_save_reports_active_time_and_leaves_out_idle_gaps(browser: Any, site: Served) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script(
        f"window.__labelgateSaveDelayMs = 200; window.__labelgateIdleGapMs = {IDLE_GAP_MS};"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{site.url}/queue")
    page.wait_for_url("**/login**")
    page.fill("#name", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#queue-body tr[data-task]")
    task = next(t for t in site.world.tasks("ana") if t.image_id < 20_000)
    page.goto(f"{site.url}/annotate/{task.task_id}")
    page.wait_for_selector("body[data-ready=true]")
    box = page.locator("#overlay").bounding_box()
    x0, y0 = box["x"] + 50, box["y"] + 50

    # ~1 s of work: a pointer move every 100 ms
    started = time.monotonic()
    for i in range(11):
        page.mouse.move(x0 + 5 * i, y0)
        page.wait_for_timeout(100)
    worked = time.monotonic() - started
    page.wait_for_timeout(3 * IDLE_GAP_MS)  # a break: longer than the idle gap
    # then draw a box (more input), which saves 200 ms later
    drawing = time.monotonic()
    page.keyboard.press("r")
    page.mouse.move(x0 + 100, y0 + 100)
    page.mouse.down()
    page.mouse.move(x0 + 220, y0 + 200, steps=4)
    page.mouse.up()
    drew = time.monotonic() - drawing
    _poll(page, "window.__editor.dirty === window.__editor.saved && !window.__editor.saving")

    (seconds,) = _logged(site.world.db)
    # every gap of the first second counted (each < the idle gap), the break did not:
    # at least the 10 moves' 1.0 s, at most the two bursts' wall time
    assert 1.0 <= seconds <= worked + drew + 0.05, (seconds, worked, drew)
    assert seconds < worked + drew + 3 * IDLE_GAP_MS / 1000 - 1.0
    # the next save reports only what came after the first
    page.wait_for_timeout(3 * IDLE_GAP_MS)
    page.keyboard.press("Delete")
    _poll(page, "window.__editor.dirty === window.__editor.saved && !window.__editor.saving")
    logged = _logged(site.world.db)
    assert len(logged) in (1, 2)  # a key alone after a break is a single input: 0 s or none
    assert all(v <= 0.05 for v in logged[1:]), logged
    context.close()
