"""Issue 24 in Chromium, on the real `flaskstack serve` (Nginx, uWSGI): writing in Markdown
(choosing the format shows a plain text area, Preview shows the rendered note, unsaved) and
back to rich text (CKEditor holds the rendered HTML); a draft's preview link read by a
browser that is not signed in."""

# ruff: noqa: F811  (the page fixture is imported: pytest passes it by its name)
from __future__ import annotations

from typing import Any

import pytest

from .test_notes_in_chromium import PASSWORD, page, wait_for_editor  # noqa: F401
from .test_writer_in_chromium import EDITOR, sign_in, site  # noqa: F401

pytestmark = pytest.mark.browser


def test_markdown_editor_preview_switch_and_preview_link(site: dict[str, Any],
                                                         page: Any) -> None:
    url = site["url"]
    sign_in(page, url)
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    page.fill("input[name=title]", "Markdown in a browser")
    with page.expect_navigation():  # the editor comes back as text
        page.select_option("select[name=format]", "markdown")
    page.wait_for_selector("#preview-title", state="attached")
    assert page.locator("textarea[name=body]").is_visible()
    assert not page.evaluate("!!(window.CKEDITOR && Object.keys(CKEDITOR.instances).length)")
    page.fill("textarea[name=body]", "# Big heading\n\n- first\n- second\n")
    page.click("button[name=preview]")
    page.wait_for_selector("section.preview h1")
    assert page.locator("section.preview h1").inner_text() == "Big heading"
    assert page.locator("section.preview li").all_inner_texts() == ["first", "second"]
    page.click("form.editor button[type=submit]:has-text('Save')")  # a draft
    page.wait_for_url("**/n/**")
    assert page.locator("article.note h1").nth(1).inner_text() == "Big heading"
    edit = page.locator("a:has-text('Edit')").first.get_attribute("href")
    page.goto(url + edit)
    assert page.locator("textarea[name=body]").input_value().startswith("# Big heading")
    # a preview link, opened in a browser that is not signed in
    page.click("button:has-text('Make a preview link')")
    link = page.locator("input[aria-label='Preview link']").input_value()
    stranger = page.context.browser.new_context()
    try:
        other = stranger.new_page()
        other.goto(link.replace("http://localhost", url))
        assert other.locator("article.note .body h1").inner_text() == "Big heading"
    finally:
        stranger.close()
    # back to rich text: CKEditor holds the rendered HTML
    with page.expect_navigation():
        page.select_option("select[name=format]", "html")
    wait_for_editor(page)
    assert "<h1>Big heading</h1>" in page.evaluate(f"{EDITOR}.getData()")
