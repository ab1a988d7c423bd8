"""Issue 24, item 2 in Chromium on the real `flaskstack serve` (SQLite): a browser set to
Traditional Chinese gets the site, CKEditor's own toolbar and the editor's messages in Chinese,
everything from 127.0.0.1; a Greek note written there is marked Greek on its page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from .notes_stack import serve_notes
from .test_notes_in_chromium import ARGS, CHROMIUM, PASSWORD, wait_for_editor

pytestmark = pytest.mark.browser
EDITOR = "Object.values(CKEDITOR.instances)[0]"


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_notes("notes-languages-") as stack:
        stack.create_user("writer@example.com", PASSWORD, "--name", "Writer")
        yield stack.url


@pytest.fixture
def page() -> Iterator[Any]:
    """A Chromium tab whose browser asks for Traditional Chinese (as set up in Taiwan)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is not installed (bash scripts/install.sh test)"
    blocked: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(locale="zh-TW", viewport={"width": 1366, "height": 900})

        def guard(route: Any) -> None:
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:")) or urlparse(url).hostname == (
                    "127.0.0.1"):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", guard)
        tab = context.new_page()
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.set_default_timeout(20_000)
        yield tab
        browser.close()
    assert blocked == [], f"requests left 127.0.0.1: {blocked}"
    assert problems == [], problems


def test_a_chinese_browser_gets_the_site_and_the_editor_in_chinese(site: str, page: Any
                                                                   ) -> None:
    page.goto(site + "/login")
    assert page.evaluate("document.documentElement.lang") == "zh-Hant"
    assert page.locator("h1").inner_text() == "登入"
    page.fill("input[name=email]", "writer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(site + "/")
    assert page.locator("nav a").first.inner_text() == "寫筆記"

    page.goto(site + "/notes/new")
    wait_for_editor(page)
    assert page.evaluate(f"{EDITOR}.langCode") == "zh"  # CKEditor's Traditional Chinese
    bold = page.locator(".cke_button__bold").get_attribute("title") or ""
    assert "粗體" in bold, bold  # its toolbar, from its own lang/zh.js
    assert "圖片太大" in page.evaluate(  # what editor.js says, from the server
        "JSON.parse(document.querySelector('meta[name=editor-messages]').content).tooLarge")
    assert page.locator("label[for=language]").inner_text() == "筆記的語言"

    page.fill("input[name=title]", "Καλημέρα")
    page.evaluate(f"{EDITOR}.setData('<p>Γεια σου, κόσμε.</p>')")  # noqa: RUF001
    page.select_option("select[name=language]", "el")
    page.check("input[name=published]")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/n/**")
    assert page.locator("p.flash").first.inner_text() == "筆記已儲存。"
    assert page.evaluate("document.documentElement.lang") == "zh-Hant"  # the interface
    assert page.locator("article.note").get_attribute("lang") == "el"  # the note
    assert page.locator("article.note p.meta").get_attribute("lang") == "zh-Hant"
    og = page.locator("meta[property='og:locale']").get_attribute("content")
    assert og == "el_GR"
