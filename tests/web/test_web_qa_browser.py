"""The QA inspection page and the manager's QA section in headless Chromium (Playwright).

rita (a reviewer holding the batch's QA sample) follows the top bar's QA link, marks one
object "wrong class" (3) and one missing object (1, then a click on the image) on item 1,
submits, and calls item 2 clean (C). The database then holds exactly those two defects
(found by QA, against the item's final revision) and one ``qa`` work-log row per item. The
rest of the sample is inspected clean; the manager advances the batch and the QA section
shows the bound and decision that ``core.sampling.upper_bound`` gives here, with the plan's
OC curve as inline SVG (its n, c and the limit). An annotator gets the 403 page and 403s.
On SQLite and PostgreSQL.
Screenshots: ``qa-item.png``, ``qa-clean.png``, ``qa-home.png``, ``qa-manage.png``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from api_world import MANAGER
from sqlalchemy import select
from test_api_qa import into_qa
from test_web_browser import (  # noqa: F401
    SHOTS,
    browser,
    login,
    new_page,
    poll,
    site_on_each_db,
)
from web_world import Served

from labelgate.core.sampling import upper_bound
from labelgate.store.models import DefectRow, ImageRow, TaskRow, UserRow, WorkLogRow
from labelgate.workflow.qa_views import acceptance_number

pytestmark = pytest.mark.browser


def _screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Screen position of an image pixel under the QA page's current view."""
    view = page.evaluate("({...window.__qa.view})")
    box = page.locator("#stage").bounding_box()
    return box["x"] + view["tx"] + x * view["scale"], box["y"] + view["ty"] + y * view["scale"]


def _pickable(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """An object whose centre no smaller box covers (a click there selects it)."""

    def area(o: dict[str, Any]) -> float:
        b = o["bbox"]
        return float((b[2] - b[0]) * (b[3] - b[1]))

    for o in sorted(objects, key=area, reverse=True):
        b = o["bbox"]
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        covering = [
            p
            for p in objects
            if p["bbox"][0] <= cx <= p["bbox"][2] and p["bbox"][1] <= cy <= p["bbox"][3]
        ]
        if min(covering, key=area) is o and area(o) > 400:
            return o
    raise AssertionError("no object can be picked by a click")


def test_an_inspector_flags_defects_and_a_clean_item_and_the_manager_sees_the_bound(
    browser: Any,
    site_on_each_db: Served,
) -> None:
    site = site_on_each_db
    world = site.world
    into_qa(world)
    sample = world.program.qa_queue("rita", world.batch)
    assert len(sample) >= 3
    started = time.monotonic()

    # an annotator: the 403 page, and the endpoint behind it answers 403
    page = new_page(browser)
    login(page, site.url, "ana", "/queue")
    page.goto(f"{site.url}/qa/street-scenes/{world.batch}")
    assert "Not allowed" in page.inner_text("body")
    status = page.evaluate(
        f"fetch('/api/projects/street-scenes/batches/{world.batch}/qa-tasks').then(r => r.status)"
    )
    assert status == 403
    page.context.close()

    page = new_page(browser)
    login(page, site.url, "rita", "/review")
    link = page.locator("#qa-link")
    link.wait_for()
    assert link.inner_text() == f"QA inspection ({len(sample)} open)"
    link.click()
    page.wait_for_url(f"**/qa/street-scenes/{world.batch}")
    page.wait_for_selector("body[data-ready=true]")
    assert page.inner_text("#qa-progress") == f"1/{len(sample)}"
    assert page.evaluate("window.__qa.items.map(i => i.task_id)") == sample
    objects = page.evaluate("window.__qa.objects")
    assert objects and page.evaluate("document.body.dataset.item") == str(sample[0])

    # item 1: one object is the wrong class, one object nobody drew
    target = _pickable([o for o in objects if o["kind"] != "tag"])
    b = target["bbox"]
    page.mouse.click(*_screen(page, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2))
    assert page.evaluate("window.__qa.selected") == target["id"]
    page.keyboard.press("3")
    row = page.locator(f"#objects tr[data-key='{target['id']}']")
    assert "Wrong class" in row.inner_text()
    page.keyboard.press("1")
    assert page.get_attribute("button[data-defect=missing]", "aria-pressed") == "true"
    width, height = page.evaluate("[window.__qa.items[0].width, window.__qa.items[0].height]")
    page.mouse.click(*_screen(page, width * 0.05, height * 0.05))
    assert page.evaluate("window.__qa.drafts.get(window.__qa.items[0].task_id).missing.length") == 1
    assert "2 defect(s) flagged" in page.inner_text("#qa-flags")
    page.screenshot(path=str(SHOTS / "qa-item.png"))
    # "Clean" with flags set is refused inline and sends nothing
    page.keyboard.press("c")
    assert "remove them to call the item clean" in page.inner_text("#qa-error")
    page.keyboard.press("Enter")
    poll(page, f"document.getElementById('qa-progress')?.textContent === '2/{len(sample)}'")
    poll(page, f"document.body.dataset.item === '{sample[1]}'")

    # item 2: clean
    page.get_by_role("button", name="Clean (C)").wait_for()
    page.mouse.move(400, 300)
    page.keyboard.press("c")
    poll(page, f"document.getElementById('qa-progress')?.textContent === '3/{len(sample)}'")
    # K goes back to item 2, now read only with "clean"
    page.keyboard.press("k")
    poll(page, f"document.body.dataset.item === '{sample[1]}'")
    assert "Inspected: clean" in page.inner_text("#qa-state")
    assert page.get_by_role("button", name="Submit (Enter)").is_disabled()
    page.keyboard.press("k")
    poll(page, f"document.body.dataset.item === '{sample[0]}'")
    assert "Inspected: 2 defect(s)" in page.inner_text("#qa-state")
    page.screenshot(path=str(SHOTS / "qa-clean.png"))
    # /qa lists rita's batch with what is still open
    page.goto(f"{site.url}/qa")
    page.wait_for_selector("body[data-ready=true]")
    open_link = page.get_by_role("link", name=f"Inspect b1 ({len(sample) - 2} open)")
    assert open_link.get_attribute("href") == f"/qa/street-scenes/{world.batch}"
    assert f"{len(sample) - 2} / {len(sample)}" in page.inner_text("#home")
    page.screenshot(path=str(SHOTS / "qa-home.png"))
    assert page.errors == []

    # the database holds exactly those defects and one qa work-log row per item
    with world.db.session() as s:
        rita = s.execute(select(UserRow.id).where(UserRow.name == "rita")).scalar_one()
        images = dict(
            s.execute(select(TaskRow.id, TaskRow.image_id).where(TaskRow.id.in_(sample))).all()
        )
        defects = s.execute(
            select(DefectRow.image_id, DefectRow.object_key, DefectRow.type, DefectRow.reporter_id)
            .where(DefectRow.batch_id == world.batch, DefectRow.found_by == "qa")
            .order_by(DefectRow.id)
        ).all()
        logged = s.execute(
            select(WorkLogRow.task_id, WorkLogRow.user_id, WorkLogRow.seconds, WorkLogRow.objects)
            .where(WorkLogRow.activity == "qa")
            .order_by(WorkLogRow.id)
        ).all()
        external = s.execute(
            select(ImageRow.external_id).where(ImageRow.id == images[sample[0]])
        ).scalar_one()
    assert [tuple(d) for d in defects] == [
        (images[sample[0]], target["id"], "wrong_class", rita),
        (images[sample[0]], None, "missing", rita),
    ]
    assert [(t, u, n) for t, u, _, n in logged] == [(sample[0], rita, 2), (sample[1], rita, 0)]
    elapsed = time.monotonic() - started
    assert all(0.0 <= seconds <= elapsed for _, _, seconds, _ in logged)
    assert logged[0].seconds > 0  # the clicks and keys on item 1 took time

    # the rest of the sample is clean; the manager advances and reads the QA section
    for task_id in sample[2:]:
        world.program.qa_inspect("rita", task_id, [])
    finals = sum(len(world.truth(world.program.qa_labels("rita", t).image_id[0])) for t in sample)
    n = finals + 1  # every final object of the sample, plus the one reported missing
    assert int(world.program.qa_labels("rita", sample[0]).image_id[0]) == external
    confidence = world.program.spec().gates.confidence
    limit = world.program.spec().gates.defect_limit
    bound = upper_bound(2, n, confidence)
    decision = "Release" if bound <= limit else "Block"
    gate = world.program.advance(world.batch, actor=MANAGER)
    assert gate.value == pytest.approx(bound)
    page.context.close()

    page = new_page(browser)
    login(page, site.url, MANAGER, "/manage/street-scenes")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#qa-batch", str(world.batch))
    page.fill("#qa-cycle", "0")
    page.get_by_role("button", name="Show", exact=True).click()
    poll(page, f"document.getElementById('qa-summary')?.textContent.includes('{decision}')")
    summary = page.inner_text("#qa-summary")
    assert "defects 2 in 1 images" in summary
    assert f"upper bound {bound:.3f} (clopper-pearson) vs limit {limit:.3f}" in summary
    assert f"decision: {decision}" in summary
    curve = page.locator("#qa-plan svg.oc-curve")
    assert curve.count() == 1
    c = acceptance_number(n, limit, confidence)
    assert curve.get_attribute("data-n") == str(n) and curve.get_attribute("data-c") == str(c)
    assert f"n = {n}" in page.inner_text("#qa-plan")
    assert page.locator("#qa-plan svg .oc-limit").count() == 1
    points = curve.locator("polyline.oc-line").get_attribute("points") or ""
    # the grid 0, limit / 20, ..., 3 x limit, with the limit itself on it
    assert len(points.split()) == len(np.union1d(limit * 3 * np.arange(61) / 60, [limit]))
    page.locator("#qa").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "qa-manage.png"), full_page=True)
    assert page.errors == []
    page.context.close()

    # after the gate sent the batch to rework (cycle 1), rita holds no QA task there
    page = new_page(browser)
    login(page, site.url, "rita", "/qa")
    page.wait_for_selector("body[data-ready=true]")
    assert "No QA tasks." in page.inner_text("#home")
    assert page.locator("#qa-link").count() == 0
    assert page.errors == []
