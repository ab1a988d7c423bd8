"""A person's path through the notes site in Chromium, served by the real `flaskstack serve`.

Every request that is not for 127.0.0.1 is blocked and recorded: any CDN use fails the test.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from .notes_stack import serve_notes

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
PASSWORD = "browser password 1"


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, Any]]:
    """`flaskstack serve` with the default app (notes) on a free port and a fresh data dir."""
    with serve_notes("notes-browser-") as stack:
        stack.create_user("admin@example.com", PASSWORD, "--admin")
        yield {"url": stack.url, "data": stack.root / "data"}


@pytest.fixture
def page(site: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is not installed (bash scripts/install.sh test)"
    ARTIFACTS.mkdir(exist_ok=True)
    blocked: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def guard(route: Any) -> None:
            url = route.request.url
            host = urlparse(url).hostname
            if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.set_default_timeout(20_000)
        page.blocked, page.problems = blocked, problems  # type: ignore[attr-defined]
        yield page
        browser.close()
    assert blocked == [], f"requests left 127.0.0.1: {blocked}"
    csp = [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert csp == [], csp


def wait_for_editor(page: Any) -> None:
    # polled with evaluate: wait_for_function would need eval, which the site's CSP forbids
    for _ in range(300):
        if page.evaluate("!!(window.CKEDITOR && Object.values(CKEDITOR.instances).length"
                         " && Object.values(CKEDITOR.instances)[0].status === 'ready')"):
            return
        page.wait_for_timeout(100)
    raise AssertionError("CKEditor never became ready")


def test_write_publish_read_and_admin_edit(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    page.goto(url + "/register")
    page.fill("input[name=display_name]", "Writer")
    page.fill("input[name=email]", "writer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/my")

    page.goto(url + "/notes/new")
    page.fill("input[name=title]", "Browser note")
    wait_for_editor(page)
    frame = page.frame_locator("iframe.cke_wysiwyg_frame")
    frame.locator("body").click()
    page.keyboard.type("Plain words, then ")
    page.keyboard.press("Control+b")
    page.keyboard.type("bold words")
    page.keyboard.press("Control+b")
    page.evaluate("Object.values(CKEDITOR.instances)[0].insertHtml("
                  "'<table><tbody><tr><td>cell A</td><td>cell B</td></tr></tbody></table>')")
    page.check("input[name=published]")
    page.screenshot(path=str(ARTIFACTS / "editor.png"), full_page=True)
    page.click("form.editor button[type=submit]")
    page.wait_for_url(url + "/n/browser-note")
    body = page.locator("div.body")
    assert body.locator("strong").inner_text() == "bold words"
    assert body.locator("td").all_inner_texts() == ["cell A", "cell B"]
    page.screenshot(path=str(ARTIFACTS / "note.png"), full_page=True)

    page.goto(url + "/")
    assert page.locator("article.summary h2 a").first.inner_text() == "Browser note"
    page.click("text=Log out")
    assert page.locator("text=Log in").count() == 1

    page.goto(url + "/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(url + "/admin/note/")
    page.screenshot(path=str(ARTIFACTS / "admin-list.png"), full_page=True)
    page.click("a[title='Edit Record']")
    wait_for_editor(page)
    page.fill("input[name=title]", "Edited by the admin")
    page.evaluate("Object.values(CKEDITOR.instances)[0]"
                  ".setData('<p>Admin <em>changed</em> it</p>')")
    page.screenshot(path=str(ARTIFACTS / "admin-edit.png"), full_page=True)
    page.click("input[type=submit][value=Save]")
    page.wait_for_url("**/admin/note/**")
    page.goto(url + "/n/edited-by-the-admin")
    assert page.locator("div.body em").inner_text() == "changed"
    page.screenshot(path=str(ARTIFACTS / "after-admin-edit.png"), full_page=True)
