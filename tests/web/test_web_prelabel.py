"""Pre-labels in the editor (Chromium): review each proposal, then what the server recorded.

A task holds three stored proposals (a model's first revision, ``source=prelabel``). In the
browser the annotator accepts one, nudges one by an arrow key, and rejects one; submit is
blocked while any is unreviewed. The server's decision rows must then be exactly accept,
adjust (with the IoU the 1 px nudge implies, computed by hand) and reject. A second test
checks that every other kind of edit (class, attribute, keyboard resize, handle drag, a
polygon's vertex drag) turns a proposal into an adjusted, human object under the same key,
and "Accept all"; the last reads the batch's figures on the manager dashboard.
Screenshots go to ``/tmp/web_shots/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from test_web_browser import SHOTS, browser, site  # noqa: F401
from web_world import PASSWORD, Served

from labelgate.core.annotations import Annotations, Kind, Source
from labelgate.core.ragged import Ragged
from labelgate.store.db import Database
from labelgate.store.models import PrelabelDecisionRow, TaskRow
from labelgate.workflow.prelabel import prelabel_plan, store_prelabels

pytestmark = pytest.mark.browser

MANAGER = "maria"
CAR, PERSON = 1, 2


def _store(site: Served, make: Callable[[int], Annotations]) -> int:
    """Store ``make(image)``'s proposals on one of ana's work images; its task id."""
    program = site.world.program
    plan = prelabel_plan(program, site.world.batch, actor=MANAGER)
    pending = set(plan.images.id.tolist())
    task = next(t for t in site.world.tasks("ana") if t.image_id in pending and t.image_id < 20_000)
    proposals = make(task.image_id)
    stored = store_prelabels(
        program, site.world.batch, proposals, model="det", actor=MANAGER, images=[task.image_id]
    )
    assert stored.objects >= len(proposals)  # the twin of a blind double item gets them too
    shown = program.task_labels("ana", task.task_id)
    assert (shown.source == Source.PRELABEL).all()
    assert shown.id.tolist() == list(range(1, len(proposals) + 1))  # keys, in the given order
    assert shown.class_id.tolist() == proposals.class_id.tolist()
    return task.task_id


def _proposed_task(site: Served, boxes: list[tuple[int, list[float], float]]) -> int:
    """Store ``(class, box, score)`` proposals on one of ana's work images; its task id."""
    return _store(
        site,
        lambda image: Annotations.create(
            id=list(range(1, len(boxes) + 1)),
            image_id=[image] * len(boxes),
            class_id=[b[0] for b in boxes],
            bbox=[b[1] for b in boxes],
            score=[b[2] for b in boxes],
        ),
    )


def _login(browser: Any, site: Served) -> Any:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script("window.__labelgateSaveDelayMs = 200;")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{site.url}/queue")
    page.wait_for_url("**/login**")
    page.fill("#name", "ana")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#queue-body tr[data-task]")
    return page


def _open(page: Any, url: str, task: int) -> None:
    page.goto(f"{url}/annotate/{task}")
    page.wait_for_selector("body[data-ready=true]")
    page.keyboard.press("v")  # the select tool: class keys relabel the selection


def _poll(page: Any, expression: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := page.evaluate(expression)):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        page.wait_for_timeout(25)
    return value


def _wait_saved(page: Any) -> None:
    _poll(page, "window.__editor.dirty === window.__editor.saved && !window.__editor.saving")


def _objects(page: Any) -> dict[int, dict[str, Any]]:
    found = page.evaluate(
        "window.__editor.objects.map((o) => ({id: o.id, class_id: o.class_id, bbox: o.bbox,"
        " source: o.source, state: o._prelabel ?? null, occluded: o.occluded}))"
    )
    return {o["id"]: o for o in found}


def _select(page: Any, key: int) -> None:
    page.evaluate(f"window.__editor.selected = {key}")


def _decisions(db: Database, task: int) -> dict[int, tuple[str, float | None]]:
    with db.session() as s:
        rows = s.execute(
            select(
                PrelabelDecisionRow.object_key,
                PrelabelDecisionRow.decision,
                PrelabelDecisionRow.iou,
            ).where(PrelabelDecisionRow.task_id == task)
        ).all()
    return {r.object_key: (r.decision, r.iou) for r in rows}


def _status(db: Database, task: int) -> str:
    with db.session() as s:
        return str(s.execute(select(TaskRow.status).where(TaskRow.id == task)).scalar_one())


def test_accept_nudge_reject_then_submit_records_each_decision(browser: Any, site: Served) -> None:
    task = _proposed_task(
        site,
        [
            (CAR, [100, 100, 200, 180], 0.9),
            (CAR, [300, 100, 400, 200], 0.8),
            (PERSON, [450, 250, 520, 400], 0.75),
        ],
    )
    page = _login(browser, site)
    _open(page, site.url, task)
    assert page.locator("#prelabel-bar").inner_text().startswith("3 pre-labels to review")
    assert page.locator("#prelabels").inner_text() == "3 pre-labels left"

    # Tab selects the first proposal, A accepts it
    page.keyboard.press("Tab")
    assert page.evaluate("window.__editor.selected") == 1
    page.keyboard.press("a")
    # Tab: the second; one arrow key nudges it 1 px right
    page.keyboard.press("Tab")
    assert page.evaluate("window.__editor.selected") == 2
    page.keyboard.press("ArrowRight")
    _wait_saved(page)
    objects = _objects(page)
    assert objects[1]["source"] == "human" and objects[1]["state"] == "accepted"
    assert objects[1]["bbox"] == [100, 100, 200, 180]
    assert objects[2]["source"] == "human" and objects[2]["state"] == "adjusted"
    assert objects[2]["bbox"] == [301, 100, 401, 200]
    assert objects[3]["source"] == "prelabel"

    # the third is still a proposal: submit is blocked, with the count, and nothing is sent
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#banner[data-reason=unreviewed-prelabels]")
    text = page.locator("#banner").inner_text()
    assert "Not submitted" in text and "1 pre-label is not reviewed" in text, text
    assert page.locator("#prelabel-bar").inner_text().startswith("1 pre-label to review")
    page.screenshot(path=str(SHOTS / "prelabel-blocked.png"))
    assert _status(site.world.db, task) != "submitted"
    # the server refuses it as well (its 409 names the count)
    refused = page.evaluate(
        """async (task) => {
          const token = document.cookie.split("; ").find((c) => c.startsWith("labelgate_csrf="));
          const response = await fetch(`/api/tasks/${task}/submit`, {method: "POST",
            headers: {"X-CSRF-Token": token ? decodeURIComponent(token.split("=")[1]) : ""}});
          return [response.status, (await response.json()).detail];
        }""",
        task,
    )
    assert refused[0] == 409 and "1 pre-label" in refused[1], refused
    # and when the server refuses what the page let through, its message is shown: mark
    # the proposal reviewed in this page only (never saved), then submit
    page.evaluate("window.__editor.byId.get(3).source = 'human'")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#banner[data-reason=http-409]")
    text = page.locator("#banner").inner_text()
    assert text.startswith("Submit refused:") and "still holds 1 pre-label" in text, text
    page.evaluate("window.__editor.byId.get(3).source = 'prelabel'")
    assert _status(site.world.db, task) != "submitted"

    # X rejects the third; submit goes through and leaves the editor
    page.keyboard.press("Tab")
    assert page.evaluate("window.__editor.selected") == 3
    page.keyboard.press("x")
    assert sorted(_objects(page)) == [1, 2]
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: f"/annotate/{task}" not in url)
    assert _status(site.world.db, task) == "submitted"

    # the server's decisions: exactly accept / adjust / reject; the nudge's IoU by hand:
    # [300,100,400,200] vs [301,100,401,200]: 99 x 100 overlap over 10,000 + 10,000 - 9,900
    decisions = _decisions(site.world.db, task)
    assert set(decisions) == {1, 2, 3}
    assert decisions[1] == ("accept", 1.0)
    assert decisions[2][0] == "adjust"
    assert decisions[2][1] == pytest.approx(9_900 / 10_100, abs=1e-9)
    assert decisions[3] == ("reject", None)
    page.context.close()


def test_every_kind_of_edit_adjusts_a_proposal_and_accept_all(browser: Any, site: Served) -> None:
    boxes = [
        (CAR, [100, 100, 200, 200], 0.9),  # class change
        (CAR, [300, 100, 400, 200], 0.9),  # occluded (Q)
        (CAR, [100, 300, 200, 400], 0.9),  # Alt+arrow: resize
        (CAR, [300, 300, 400, 400], 0.9),  # drag of a corner handle
        (CAR, [500, 100, 600, 200], 0.6),  # accept all
        (PERSON, [500, 300, 560, 420], 0.55),  # accept all
    ]
    task = _proposed_task(site, boxes)
    page = _login(browser, site)
    _open(page, site.url, task)

    _select(page, 1)
    page.keyboard.press("2")  # class 2 (person) relabels the selection
    _select(page, 2)
    page.keyboard.press("q")
    _select(page, 3)
    page.keyboard.press("Alt+ArrowDown")
    # object 4: select it, then drag its south-east handle 20 px right in image space
    _select(page, 4)
    page.evaluate("window.__editor.render()")
    view = page.evaluate("window.__editor.view")
    canvas = page.locator("#overlay").bounding_box()

    def screen(x: float, y: float) -> tuple[float, float]:
        return canvas["x"] + x * view["scale"] + view["tx"], canvas["y"] + y * view["scale"] + view[
            "ty"
        ]

    page.mouse.move(*screen(400, 400))
    page.mouse.down()
    page.mouse.move(*screen(420, 400), steps=5)
    page.wait_for_timeout(100)  # moves are applied once per animation frame
    page.mouse.up()
    _wait_saved(page)
    objects = _objects(page)
    for key in (1, 2, 3, 4):
        assert (objects[key]["source"], objects[key]["state"]) == ("human", "adjusted"), key
    assert objects[1]["class_id"] == PERSON and objects[1]["bbox"] == [100, 100, 200, 200]
    assert objects[2]["occluded"] is True
    assert objects[3]["bbox"] == [100, 300, 200, 401]
    x2 = objects[4]["bbox"][2]
    assert objects[4]["bbox"][:2] == [300, 300] and 400 < x2 <= 420.5, objects[4]
    assert [objects[k]["source"] for k in (5, 6)] == ["prelabel", "prelabel"]
    assert page.locator("#prelabel-bar").inner_text().startswith("2 pre-labels to review")

    page.click("#prelabel-accept-all")
    objects = _objects(page)
    assert [objects[k]["state"] for k in (5, 6)] == ["accepted", "accepted"]
    assert objects[5]["bbox"] == [500, 100, 600, 200]
    assert page.locator("#prelabel-bar").inner_text() == "All pre-labels reviewed · 6 reviewed"
    page.screenshot(path=str(SHOTS / "prelabel-reviewed.png"))
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: f"/annotate/{task}" not in url)

    # the server judges class and geometry: a changed class or box is adjust (IoU of the
    # final box with the proposal), an attribute alone leaves both: accept
    decisions = _decisions(site.world.db, task)
    assert decisions[1] == ("adjust", 1.0)  # same box, other class
    assert decisions[2] == ("accept", 1.0)
    assert decisions[3][0] == "adjust"
    assert decisions[3][1] == pytest.approx(10_000 / 10_100, abs=1e-9)  # 100x100 in 100x101
    assert decisions[4][0] == "adjust"
    assert decisions[4][1] == pytest.approx(100 / (x2 - 300), abs=1e-9)  # 100x100 in (x2-300)x100
    assert decisions[5] == ("accept", 1.0) and decisions[6] == ("accept", 1.0)
    page.context.close()


def test_a_vertex_drag_adjusts_a_polygon_proposal(browser: Any, site: Served) -> None:
    import shapely

    square = np.array([[300.0, 300], [400, 300], [400, 400], [300, 400]])
    task = _store(
        site,
        lambda image: Annotations.create(
            id=[1],
            image_id=[image],
            class_id=[CAR],
            bbox=[[300.0, 300, 400, 400]],
            kind=[Kind.POLYGON],
            score=[0.9],
            rings=Ragged(square, np.array([0, 4])),
            ring_offsets=np.array([0, 1]),
        ),
    )
    page = _login(browser, site)
    _open(page, site.url, task)
    _select(page, 1)
    page.evaluate("window.__editor.render()")
    view = page.evaluate("window.__editor.view")
    canvas = page.locator("#overlay").bounding_box()

    def screen(x: float, y: float) -> tuple[float, float]:
        return canvas["x"] + x * view["scale"] + view["tx"], canvas["y"] + y * view["scale"] + view[
            "ty"
        ]

    # the vertex (400, 400) dragged 20 px right in image space
    page.mouse.move(*screen(400, 400))
    page.mouse.down()
    page.mouse.move(*screen(420, 400), steps=5)
    page.wait_for_timeout(100)  # moves are applied once per animation frame
    page.mouse.up()
    _wait_saved(page)
    (obj,) = page.evaluate(
        "window.__editor.objects.map((o) => ({id: o.id, source: o.source, state: o._prelabel,"
        " ring: o.polygon[0]}))"
    )
    assert (obj["id"], obj["source"], obj["state"]) == (1, "human", "adjusted")
    ring = np.array(obj["ring"])
    x = ring[2][0]
    assert ring.tolist() == [[300, 300], [400, 300], [x, 400], [300, 400]] and 400 < x <= 420.5
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: f"/annotate/{task}" not in url)

    # by hand: the square plus the triangle (400,300)-(x,400)-(400,400) of area 50 (x - 400)
    by_hand = 10_000 / (10_000 + 50 * (x - 400))
    reference = shapely.Polygon(square).area / shapely.Polygon(ring).area
    decision, iou = _decisions(site.world.db, task)[1]
    assert decision == "adjust"
    assert iou == pytest.approx(by_hand, abs=1e-9) and iou == pytest.approx(reference, abs=1e-9)
    page.context.close()


def test_dashboard_shows_the_batchs_prelabel_metrics(browser: Any, site: Served) -> None:
    task = _proposed_task(
        site,
        [
            (CAR, [100, 100, 200, 180], 0.9),
            (CAR, [300, 100, 400, 200], 0.8),
            (PERSON, [450, 250, 520, 400], 0.75),
        ],
    )
    program = site.world.program
    shown = program.task_labels("ana", task)
    head = next(t.head_revision_id for t in site.world.tasks("ana") if t.task_id == task)
    # accept #1, adjust #2 to [300,100,400,350] (IoU 10,000 / 25,000), reject #3
    kept = shown[:2].replace(source=np.zeros(2, dtype=np.uint8))
    kept = kept.replace(bbox=np.array([[100, 100, 200, 180], [300, 100, 400, 350]], float))
    program.save("ana", task, kept, base_revision_id=head, work_seconds=40.0)
    program.submit("ana", task)

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{site.url}/dashboard/street-scenes")
    page.wait_for_url("**/login**")
    page.fill("#name", MANAGER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")
    section = page.locator("#prelabel")
    rows = section.locator("table").nth(0).locator("tbody tr")
    assert rows.count() == 1
    cells = rows.nth(0).locator("td").all_inner_texts()
    assert cells == [
        "b1",
        "3",
        "33.3 % (1)",
        "33.3 % (1)",
        "33.3 % (1)",
        "0.400 / 0.400",
        "0.333",  # precision: only the accepted box matches at car's tier 0.7
        "0.500",
    ]
    times = section.locator("table").nth(1).locator("tbody tr td").all_inner_texts()
    assert times[:3] == ["b1", "40 (n=1)", "– (n=0)"]
    assert times[3].startswith("not measurable")
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "dashboard-prelabel.png"))
    context.close()
