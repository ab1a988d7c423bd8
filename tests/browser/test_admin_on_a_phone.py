"""The admin and the account pages on a 390 x 844 phone in Chromium, served by the real stack:
nothing runs off the screen (issue 11, item 8)."""

from __future__ import annotations

from typing import Any

import pytest

from .test_notes_in_chromium import ARGS, ARTIFACTS, CHROMIUM, PASSWORD, site  # noqa: F401

pytestmark = pytest.mark.browser

OFF_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  const off = [];
  for (const el of document.querySelectorAll('a, button, input, select, td, th, h1, p')) {
    const box = el.getBoundingClientRect();
    if (box.width && (box.right > width + 1 || box.left < -1)) {
      off.push(`${el.tagName} "${(el.textContent || el.name || '').trim().slice(0, 40)}"`);
    }
  }
  return {width, scroll: document.documentElement.scrollWidth, off};
}"""


def test_admin_and_account_fit_a_phone(site: dict[str, Any]) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    url = site["url"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                      has_touch=True)
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/login")
        page.fill("input[name=email]", "admin@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        page.goto(url + "/notes/new")
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        for n in range(3):
            r = page.request.post(url + "/notes/new", form={
                "csrf_token": token or "", "title": f"A rather long title, number {n}, that "
                "goes on and on", "body": "<p>x</p>", "published": "y" if n % 2 else ""})
            assert r.ok
        for path in ("/admin/", "/admin/note/", "/admin/user/", "/admin/excel/", "/my",
                     "/account"):
            page.goto(url + path)
            seen = page.evaluate(OFF_SCREEN)
            name = path.strip("/").replace("/", "-") or "home"
            page.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
            assert seen["scroll"] <= seen["width"], (path, seen)
            assert seen["off"] == [], (path, seen)
        page.goto(url + "/admin/note/")
        labels = page.locator("table.model-list tbody td[data-label]")
        assert "Title" in labels.evaluate_all("cells => cells.map(c => c.dataset.label)")
        delete = page.locator("table.model-list td.list-buttons-column button").first
        box = delete.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390  # Delete is on screen
        assert errors == []
        browser.close()
