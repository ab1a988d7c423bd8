"""Issue 18 in Chromium, on the real `flaskstack serve` (Nginx, uWSGI) with SQLite, MariaDB and
PostgreSQL (`NOTES_TEST_DBS` chooses): two tabs on one note (the second gets a 409 with its text
kept), the local draft offered back, and a save after the session ended (the text is back in
the editor after signing in)."""

# ruff: noqa: F811  (the page fixture is imported: pytest passes it by its name)
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests import servers

from .notes_stack import serve_notes
from .test_notes_in_chromium import ARTIFACTS, PASSWORD, page, wait_for_editor  # noqa: F401

pytestmark = pytest.mark.browser
EDITOR = "Object.values(CKEDITOR.instances)[0]"


DBS = [d for d in os.environ.get("NOTES_TEST_DBS", "sqlite,mariadb,postgresql").split(",") if d]


@pytest.fixture(scope="module", params=DBS)
def site(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    with contextlib.ExitStack() as running:
        extra: dict[str, str] = {}
        if request.param != "sqlite":
            server = running.enter_context(getattr(servers, request.param)())
            extra["NOTES_DATABASE_URL"] = servers.create_database(server, "notes_browser")
        stack = running.enter_context(serve_notes("notes-writer-", env=lambda port: extra))
        stack.create_user("writer@example.com", PASSWORD, "--name", "Writer")
        yield {"url": stack.url, "db": request.param}


def sign_in(page: Any, url: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=email]", "writer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(url + "/")


def new_note(page: Any, url: str, title: str, text: str) -> int:
    page.goto(url + "/notes/new")
    wait_for_editor(page)
    page.fill("input[name=title]", title)
    page.evaluate(f"{EDITOR}.setData({text!r})")
    page.check("input[name=published]")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/n/**")
    href = page.locator("a:has-text('Edit')").first.get_attribute("href")
    return int(href.split("/")[2])


def type_into_editor(page: Any, words: str) -> None:
    page.frame_locator("iframe.cke_wysiwyg_frame").locator("body").click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.type(words)


def test_two_tabs_the_second_save_is_a_409_with_its_text_kept(site: dict[str, Any],
                                                              page: Any) -> None:
    url = site["url"]
    sign_in(page, url)
    nid = new_note(page, url, "Two tabs", "<p>The first paragraph.</p>")
    tab_a, tab_b = page, page.context.new_page()
    for tab in (tab_a, tab_b):
        tab.goto(f"{url}/notes/{nid}/edit")
        wait_for_editor(tab)
    tab_a.fill("input[name=title]", "Two tabs, retitled in A")
    type_into_editor(tab_a, "Paragraph from tab A.")
    tab_a.fill("input[name=tags]", "from-a")
    tab_a.click("form.editor button[type=submit]")
    tab_a.wait_for_url("**/n/**")

    type_into_editor(tab_b, "Paragraph from tab B.")
    with tab_b.expect_response(lambda r: r.request.method == "POST") as answer:
        tab_b.click("form.editor button[type=submit]")
    assert answer.value.status == 409
    wait_for_editor(tab_b)
    conflict = tab_b.locator("section.conflict")
    assert "changed since you opened it" in conflict.inner_text()
    assert "Paragraph from tab A." in conflict.locator("ol.diff ins").all_inner_texts()[0]
    assert "Two tabs, retitled in A" in conflict.inner_text()
    assert "Paragraph from tab B." in tab_b.evaluate(f"{EDITOR}.getData()")  # kept
    tab_b.screenshot(path=str(ARTIFACTS / "edit-conflict.png"), full_page=True)
    tab_b.click("button[name=overwrite]")  # "Save mine anyway"
    tab_b.wait_for_url("**/n/**")
    assert "Paragraph from tab B." in tab_b.locator("div.body").inner_text()
    tab_b.goto(f"{url}/notes/{nid}/history")
    assert tab_b.locator("table.list tbody tr").count() == 3  # A's version is kept
    assert page.problems == []


def test_a_local_draft_is_offered_back(site: dict[str, Any], page: Any) -> None:
    url = site["url"]
    sign_in(page, url)
    nid = new_note(page, url, "Drafted", "<p>Saved words.</p>")
    page.goto(f"{url}/notes/{nid}/edit")
    wait_for_editor(page)
    type_into_editor(page, "Words typed and never saved.")
    for _ in range(50):  # kept as the writer types (the status line says so)
        kept = page.evaluate(f"localStorage.getItem('notes-draft:' + "
                             f"document.querySelector('#note-form').dataset.user + "
                             f"':/notes/{nid}/edit') || ''")
        if "never saved." in kept:
            break
        page.wait_for_timeout(100)
    assert "Draft kept" in page.locator("#draft-status").inner_text()
    context = page.context
    page.close(run_before_unload=False)  # the tab is gone (a crash, closed by mistake)
    again = context.new_page()
    again.goto(f"{url}/notes/{nid}/edit")
    wait_for_editor(again)
    offer = again.locator(".draft-offer")
    assert "not saved" in offer.inner_text()
    offer.locator("button[data-draft=restore]").click()
    assert "Words typed and never saved." in again.evaluate(f"{EDITOR}.getData()")
    again.click("form.editor button[type=submit]")
    again.wait_for_url("**/n/**")
    again.goto(f"{url}/notes/{nid}/edit")  # saved: nothing is offered any more
    wait_for_editor(again)
    assert again.locator(".draft-offer").count() == 0


def test_a_save_after_the_session_ended_comes_back_after_signing_in(site: dict[str, Any],
                                                                     page: Any) -> None:
    url = site["url"]
    sign_in(page, url)
    nid = new_note(page, url, "Session ends", "<p>Before.</p>")
    page.goto(f"{url}/notes/{nid}/edit")
    wait_for_editor(page)
    page.fill("input[name=title]", "Session ends, text survives")
    type_into_editor(page, "An hour of careful writing.")
    other = page.context.new_page()  # another tab: "Log out"
    other.goto(url + "/my")
    with other.expect_navigation(url=url + "/", wait_until="load"):
        other.click("text=Log out")
    # The tab stays open: closing a tab whose navigation is committing can hang Chromium's
    # close for good (microsoft/playwright#42366); the context closes it with the browser.
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/login**")
    assert "sign in again" in page.locator("main").inner_text()
    page.fill("input[name=email]", "writer@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{url}/notes/{nid}/edit")
    wait_for_editor(page)
    assert "here is your text again" in page.locator("main").inner_text()
    assert page.input_value("input[name=title]") == "Session ends, text survives"
    assert "An hour of careful writing." in page.evaluate(f"{EDITOR}.getData()")
    page.click("form.editor button[type=submit]")
    page.wait_for_url("**/n/**")
    assert "An hour of careful writing." in page.locator("div.body").inner_text()


def test_an_open_editor_keeps_its_session_alive_while_the_writer_types(site: dict[str, Any],
                                                                       page: Any) -> None:
    """With a 6 s idle timeout, a writer typing for 12 s without saving still saves: the
    editor's pings kept the session alive (without them the save would meet the sign-in)."""
    if site["db"] != "sqlite":
        pytest.skip("the session lives in files, not in the database: SQLite's run says it")
    with serve_notes("notes-alive-", env=lambda port: {"NOTES_SESSION_IDLE": "6"}) as stack:
        stack.create_user("writer@example.com", PASSWORD, "--name", "Writer")
        url = stack.url
        sign_in(page, url)
        nid = new_note(page, url, "Kept alive", "<p>Start.</p>")
        page.goto(f"{url}/notes/{nid}/edit")
        wait_for_editor(page)
        for second in range(12):  # active, with no other request than the editor's own
            type_into_editor(page, f"Word {second}.")
            page.wait_for_timeout(1000)
        page.click("form.editor button[type=submit]")
        page.wait_for_url("**/n/**")
        assert "Word 11." in page.locator("div.body").inner_text()
        assert page.problems == []
