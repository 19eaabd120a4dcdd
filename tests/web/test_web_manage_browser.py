"""The management and adjudication pages in headless Chromium (Playwright).

A manager advances a batch and reads the gate's value against its threshold (and, after a
QA sample with a defect, the failed gate that sends rework); an adjudicator takes version B
of a disputed object with a reason, which the audit log and the item's lineage then show;
an annotator who opens the management or adjudication page is refused. Screenshots go to
``/tmp/web_shots/`` (manage, manage-rework, adjudicate, audit, forbidden).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_world import MANAGER
from scipy import stats
from test_api_manage import SHIFT, into_review, label
from test_web_browser import SHOTS, browser, login, new_page, poll, site  # noqa: F401
from web_world import Served

pytestmark = pytest.mark.browser
MANAGE = "/manage/street-scenes"


def _gate_result(page: Any) -> str:
    poll(page, "document.getElementById('gate-result')?.dataset.outcome")
    poll(page, "document.getElementById('gate-result').textContent.includes('Now at stage')")
    return str(page.inner_text("#gate-result"))


def _advance(page: Any) -> str:
    page.evaluate("document.getElementById('gate-result').removeAttribute('data-outcome')")
    page.get_by_role("button", name="Advance b1").click()
    return _gate_result(page)


def test_a_manager_advances_a_batch_and_sees_the_gate_value_and_threshold(
    browser: Any,
    site: Served,
) -> None:
    world = site.world
    label(world, disputes=False)
    page = new_page(browser)
    login(page, site.url, MANAGER, MANAGE)
    page.wait_for_selector("body[data-ready=true]")
    row = page.locator("#batches tbody tr").first
    assert "production / open" in row.inner_text()
    assert "✓ pilot" in row.inner_text()
    # every task is submitted: the production gate reads exactly 1 / 1 and passes
    text = _advance(page)
    assert "production gate submitted: 1 / 1 ✓ passed" in text
    assert "Now at stage prelabel, cycle 0" in text
    row = page.locator("#batches tbody tr").first
    assert "submitted: 1 / 1 ✓ pass → advanced" in row.inner_text()
    # qualification: ana and bo passed the gold set with F1 1 in every class cell
    qual = page.locator("#qualification tbody tr")
    assert qual.count() == 2
    assert "1 / 0.950" in qual.nth(0).inner_text() and "✓ passed" in qual.nth(0).inner_text()
    page.screenshot(path=str(SHOTS / "manage.png"), full_page=True)

    # prelabel -> review; the reviewer accepts everything; review -> QA draws the sample
    assert "Now at stage review" in _advance(page)
    for task_id in world.program.review_queue("rita", world.batch):
        world.program.review("rita", task_id, [])
    assert "Now at stage qa" in _advance(page)
    sample = world.program.qa_queue("rita", world.batch)
    world.program.qa_inspect("rita", sample[0], [(-1, "missing")])
    for task_id in sample[1:]:
        world.program.qa_inspect("rita", task_id, [])
    # the whole lot is sampled; QA counts objects (the spec's qa_unit): every final object
    # (the truth: both annotators submitted it) plus the one reported missing, 1 defect
    lot = len(world.work.images)
    assert len(sample) == lot
    inspected = len(world.work.annotations) + 1
    bound = float(stats.beta.ppf(0.95, 2, inspected - 1))  # one-sided Clopper-Pearson
    text = _advance(page)
    assert f"qa gate qa_defect_rate: {bound:.3f} / 0.020 ✗ failed" in text
    assert "sent the defective items back to rework (cycle 1)" in text
    assert "Now at stage production, cycle 1" in text
    page.select_option("#qa-batch", str(world.batch))
    page.fill("#qa-cycle", "0")
    page.get_by_role("button", name="Show", exact=True).click()
    poll(page, "document.getElementById('qa-summary')?.textContent.includes('Block')")
    summary = page.inner_text("#qa-summary")
    assert f"lot N = {lot} · sample n = {lot} · inspected {lot} · defects 1 in 1 images" in summary
    assert f"rate {1 / inspected:.3f}" in summary
    assert f"upper bound {bound:.3f} (clopper-pearson) vs limit 0.020" in summary
    assert "sent to rework" in summary
    page.screenshot(path=str(SHOTS / "manage-rework.png"), full_page=True)
    # no horizontal scroll at 1366 x 768
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.errors == []


def test_an_adjudicator_takes_version_b_with_a_reason_and_the_audit_shows_it(
    browser: Any,
    site: Served,
) -> None:
    world = site.world
    into_review(world, disputes=True)
    cases = [
        world.program.adjudication_case(d["id"], actor="adam")
        for d in world.program.adjudications(world.batch, actor="adam")
    ]
    pair = next(c for c in cases if c["versions"]["a"] and c["versions"]["b"])
    page = new_page(browser)
    login(page, site.url, "adam", "/review")
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("link", name=f"Adjudicate dispute {pair['id']}", exact=True).click()
    page.wait_for_url(f"**/adjudicate/{pair['id']}")
    page.wait_for_selector("body[data-ready=true]")
    iou = page.inner_text("#iou")
    assert f"{(1 - SHIFT) / (1 + SHIFT):.2f} / tier 0.70" in iou  # car: tier 0.70
    assert not re.search(r"\b(ana|bo)\b", page.inner_text("body"))  # names hidden
    # Enter without a choice or reason is refused inline, nothing is sent
    page.keyboard.press("Enter")
    assert "Choose A or B" in page.inner_text("#decision-error")
    page.keyboard.press("2")
    assert page.get_attribute("#take-b", "aria-pressed") == "true"
    page.keyboard.press("Enter")
    assert "A reason is required" in page.inner_text("#decision-error")
    reason = "B follows the car's outline; A is cut off on the left"
    page.select_option("#reason-code", "tighter_fit")
    page.fill("#reason", reason)
    page.screenshot(path=str(SHOTS / "adjudicate.png"))
    page.keyboard.press("Enter")
    poll(page, "document.getElementById('decided-list')?.textContent.includes('took B')")
    decided = page.inner_text("#decided-list")
    assert all(f"#{i}" in decided for i in pair["group"]) and reason in decided
    # the page moved on to the next open dispute; the decided pair left the queue
    listed = page.locator("#disputes tr[data-id]").evaluate_all(
        "rows => rows.map(r => +r.dataset.id)"
    )
    assert not set(pair["group"]) & set(listed) and len(listed) == len(cases) - 2
    page.screenshot(path=str(SHOTS / "adjudicate-next.png"))
    b_id = pair["versions"]["b"][0]["adjudication_id"]
    decision = world.program.adjudication_case(b_id, actor="adam")["decision"]
    assert (decision["choice"], decision["keep"], decision["reason"]) == ("b", True, reason)
    assert page.errors == []

    # the auditor finds the decision and its reason in the audit log and the lineage
    audit = new_page(browser)
    login(audit, site.url, "audrey", MANAGE)
    audit.wait_for_selector("body[data-ready=true]")
    audit.get_by_role("button", name="Verify chain").click()
    poll(audit, "document.getElementById('verify-result').textContent.includes('Chain intact')")
    audit.select_option("select[name=action]", "adjudication.decide")
    audit.get_by_role("button", name="Filter").click()
    poll(audit, "document.querySelectorAll('#audit-table tbody tr').length === 2")
    rows = audit.locator("#audit-table tbody tr")
    for i in range(2):
        text = rows.nth(i).inner_text()
        assert "adam" in text and "adjudication.decide" in text
        assert "choice: b" in text and f"reason: {reason}" in text
    audit.select_option("#lineage-batch", str(world.batch))
    audit.fill("#lineage-image", str(pair["image_id"]))
    audit.get_by_role("button", name="Show lineage").click()
    poll(audit, "document.getElementById('lineage-disputes') !== null")
    disputes = audit.inner_text("#lineage-disputes")
    assert f"by adam: took B · tighter_fit · “{reason}”" in disputes
    assert "← final" in audit.inner_text("#lineage-revisions")
    audit.locator("#audit").scroll_into_view_if_needed()
    audit.screenshot(path=str(SHOTS / "audit.png"), full_page=True)
    assert audit.errors == []


def test_an_annotator_is_refused_the_management_and_adjudication_pages(
    browser: Any,
    site: Served,
) -> None:
    page = new_page(browser)
    login(page, site.url, "ana", "/queue")
    for path in (MANAGE, "/manage", "/adjudicate/1"):
        response = page.goto(f"{site.url}{path}")
        assert response is not None and response.status == 403, path
        assert "Not allowed" in page.inner_text("h1")
    assert "admin, auditor, manager" in page.inner_text("main") or "adjudicator" in page.inner_text(
        "main"
    )
    page.goto(f"{site.url}{MANAGE}")
    page.screenshot(path=str(SHOTS / "forbidden.png"))
    # and the data behind the pages answers 403 too
    for api in ("/api/projects/street-scenes/gates", "/api/projects/street-scenes/audit/events"):
        assert page.request.get(f"{site.url}{api}").status == 403
    assert page.request.get(f"{site.url}/api/adjudications/1").status == 403
