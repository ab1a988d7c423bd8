"""Issue 24, item 2 in Chromium on the real `flaskstack serve` (SQLite): a browser set to
Traditional Chinese gets the site, CKEditor's own toolbar and the editor's messages in Chinese,
everything from 127.0.0.1; a Greek note written there is marked Greek on its page."""

# ruff: noqa: F811  (the page fixture is imported: pytest passes it by its name)
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .notes_stack import serve_notes
from .test_notes_in_chromium import PASSWORD, page, wait_for_editor  # noqa: F401

pytestmark = pytest.mark.browser
EDITOR = "Object.values(CKEDITOR.instances)[0]"


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, Any]]:
    with serve_notes("notes-languages-") as stack:
        stack.create_user("writer@example.com", PASSWORD, "--name", "Writer")
        yield {"url": stack.url}


def test_a_chinese_browser_gets_the_site_and_the_editor_in_chinese(site: dict[str, Any],
                                                                   page: Any) -> None:
    # a browser set up in Taiwan (the page fixture blocks and reports anything not local)
    page.context.set_extra_http_headers({"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.5"})
    url = site["url"]
    page.goto(url + "/login")
    assert page.evaluate("document.documentElement.lang") == "zh-Hant"
    assert page.locator("h1").inner_text() == "登入"
    page.fill("input[name=email]", "writer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(url + "/")
    assert page.locator("nav a").first.inner_text() == "寫筆記"

    page.goto(url + "/notes/new")
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
