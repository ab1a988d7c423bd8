"""The notes site behind the kit's response cache, through the real Nginx and uWSGI (SQLite):
anonymous public pages are cached for NOTES_CACHE_SECONDS, a signed-in reader's pages never
are nor are they ever served to anyone else, and an edit reaches anonymous readers within that
bound and its author at once (issue 9, items 2 and 3).
"""

from __future__ import annotations

import html
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from bench.run import Stack, notes_setup, serve

SECONDS = 2  # NOTES_CACHE_SECONDS for these tests


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Stack, str, dict[str, str]]]:
    root = Path(tempfile.mkdtemp(prefix="notes-cache-"))
    root.chmod(0o755)
    stack = serve("cache", root, "--app-dir", str(root), env={
        "NOTES_DATA_DIR": str(root / "data"), "NOTES_SECRET_KEY": "c" * 40,
        "NOTES_CACHE_SECONDS": str(SECONDS)})
    stack.start()
    try:
        note, cookies = notes_setup(stack)
        yield stack, note, cookies
    finally:
        stack.stop()


def anonymous(stack: Stack, path: str) -> requests.Response:
    return requests.get(stack.url + path, timeout=10, allow_redirects=False)


def test_anonymous_pages_are_cached_and_set_no_cookie(site) -> None:  # type: ignore[no-untyped-def]
    stack, note, _ = site
    for path in ("/", note):
        first, second = anonymous(stack, path), anonymous(stack, path)
        assert first.status_code == second.status_code == 200
        assert "Set-Cookie" not in first.headers and "Set-Cookie" not in second.headers
        assert "public" in first.headers["Cache-Control"]
        assert second.headers["X-Cache-Status"] in {"HIT", "STALE", "UPDATING"}
        # stored as the site compressed it, for clients that take gzip only
        assert second.headers["Content-Encoding"] == "gzip"
        plain = requests.get(stack.url + path, headers={"Accept-Encoding": None}, timeout=10,
                             stream=True)
        assert "Content-Encoding" not in plain.headers
        assert plain.raw.read().startswith(b"<!doctype html>")


def test_a_signed_in_page_is_never_cached_nor_served_to_others(site) -> None:  # type: ignore[no-untyped-def]
    stack, note, cookies = site
    mine = requests.get(stack.url + note, cookies=cookies, timeout=10)
    assert mine.headers["X-Cache-Status"] == "BYPASS"
    assert "private" in mine.headers["Cache-Control"]
    assert "/logout" in mine.text  # the page as its signed-in reader sees it
    for _ in range(3):
        theirs = anonymous(stack, note)
        assert theirs.status_code == 200 and "/logout" not in theirs.text
    # a page only signed-in readers get is never stored either
    again = requests.get(stack.url + "/my", cookies=cookies, timeout=10)
    assert again.headers["X-Cache-Status"] == "BYPASS"
    assert anonymous(stack, "/my").status_code in {302, 401, 403}


def test_each_language_is_cached_apart(site) -> None:  # type: ignore[no-untyped-def]
    """A page made in the browser's language says Vary: Accept-Language: the cache never hands
    a Chinese page to an English reader, nor the other way, and keeps serving both."""
    stack, note, _ = site
    for _ in range(3):
        for asked, lang in (("zh-TW,zh;q=0.9", "zh-Hant"), ("en-GB,en;q=0.8", "en"),
                            ("zh-TW,zh;q=0.9", "zh-Hant")):
            for path in ("/", note):
                r = requests.get(stack.url + path, headers={"Accept-Language": asked},
                                 timeout=10)
                assert r.status_code == 200
                assert f'<html lang="{lang}">' in r.text, (asked, path)
                assert "Accept-Language" in r.headers["Vary"]
    again = requests.get(stack.url + "/", headers={"Accept-Language": "zh-TW,zh;q=0.9"},
                         timeout=10)
    assert again.headers["X-Cache-Status"] in {"HIT", "STALE", "UPDATING"}
    assert '<html lang="zh-Hant">' in again.text


class Author:
    """The signed-in writer of the module's site, using the pages as a browser would."""

    def __init__(self, stack: Stack, cookies: dict[str, str]) -> None:
        self.stack = stack
        self.web = requests.Session()
        self.web.cookies.update(cookies)

    def get(self, path: str) -> requests.Response:
        return self.web.get(self.stack.url + path, timeout=10)

    def hidden(self, page: str) -> dict[str, str]:
        """Every hidden field of the page's forms (the CSRF token, and any version field)."""
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*type="hidden"[^>]*value="([^"]*)"',
                                 page))
        fields.update(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                 page))
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)
        if token:
            fields.setdefault("csrf_token", token.group(1))
        return fields

    def new(self, title: str, tags: str) -> tuple[int, str]:
        form = self.hidden(self.get("/notes/new").text)
        made = self.web.post(self.stack.url + "/notes/new", timeout=10, data={
            **form, "title": title, "body": f"<p>{title} text</p>", "tags": tags,
            "published": "y"})
        slug = made.url.removeprefix(self.stack.url)
        edit = re.search(r'href="/notes/(\d+)/edit"', made.text)
        assert slug.startswith("/n/") and edit, made.text[:300]
        return int(edit.group(1)), slug

    def edit(self, note_id: int, **fields: str) -> requests.Response:
        page = self.get(f"/notes/{note_id}/edit").text
        current = {name: html.unescape(value) for name, value in re.findall(
            r'<input[^>]*name="(title|tags)"[^>]*value="([^"]*)"', page)}
        body = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', page, re.S)
        data = {**self.hidden(page), **current, "body": html.unescape(body.group(1)) if body
                else "", "published": "y", **fields}
        data = {k: v for k, v in data.items() if v is not None and v != "__off__"}
        saved = self.web.post(self.stack.url + f"/notes/{note_id}/edit", data=data, timeout=10)
        assert saved.status_code == 200, saved.text[:300]
        return saved

    def post(self, path: str) -> requests.Response:
        form = self.hidden(self.get("/my").text)
        done = self.web.post(self.stack.url + path, data={"csrf_token": form["csrf_token"]},
                             timeout=10)
        assert done.status_code == 200, done.text[:300]
        return done


def warm(stack: Stack, *paths: str) -> None:
    """Each path answered from the cache (a HIT) before the change."""
    for path in paths:
        anonymous(stack, path)
        assert anonymous(stack, path).headers.get("X-Cache-Status") == "HIT", path


def test_an_edit_reaches_every_reader_at_once(site) -> None:  # type: ignore[no-untyped-def]
    stack, _, cookies = site
    author = Author(stack, cookies)
    note_id, slug = author.new(f"Edited {time.time_ns()}", "editing")
    warm(stack, slug)
    changed = f"Changed {time.time_ns()}"
    author.edit(note_id, body=f"<p>{changed}</p>")
    assert changed in anonymous(stack, slug).text  # the next anonymous request


def test_what_is_no_longer_public_is_never_served_again(site) -> None:  # type: ignore[no-untyped-def]
    """Unpublish, retitle, tag and delete: the next anonymous request of every page that
    showed the note answers as it is now (issue 18, item 4)."""
    stack, _, cookies = site
    author = Author(stack, cookies)
    title = f"Public {time.time_ns()}"
    note_id, slug = author.new(title, "cachetag, other")
    person = re.search(r'href="(/a/\d+)"', anonymous(stack, slug).text)
    assert person
    pages = (slug, "/", "/t/cachetag", person.group(1), "/feed.xml", "/sitemap.xml")
    warm(stack, *pages)
    assert all(title in anonymous(stack, p).text or p == "/sitemap.xml" for p in pages)

    author.post(f"/notes/{note_id}/publish")  # unpublish
    assert anonymous(stack, slug).status_code == 404
    for page in pages[1:]:
        answer = anonymous(stack, page)
        assert title not in answer.text and slug not in answer.text, page

    author.post(f"/notes/{note_id}/publish")  # published again, then retitled and retagged
    warm(stack, slug, "/t/cachetag")
    retitled = f"Retitled {time.time_ns()}"
    author.edit(note_id, title=retitled, tags="newtag")
    moved = anonymous(stack, slug)
    assert moved.status_code == 301 and moved.headers["Location"].endswith(
        "/n/" + retitled.lower().replace(" ", "-"))
    assert retitled not in anonymous(stack, "/t/cachetag").text
    assert retitled in anonymous(stack, "/t/newtag").text

    new_slug = moved.headers["Location"].removeprefix(stack.url)
    warm(stack, new_slug, "/", "/feed.xml")
    author.post(f"/notes/{note_id}/delete")
    assert anonymous(stack, new_slug).status_code == 404
    assert retitled not in anonymous(stack, "/").text
    assert retitled not in anonymous(stack, "/feed.xml").text


def test_a_json_404_asked_by_an_api_client_is_never_served_to_browsers(site) -> None:  # type: ignore[no-untyped-def]
    # issue 23, finding 12: the missing note's JSON 404 was stored as public and the next
    # browser got it from the cache (HIT)
    stack, note, _ = site
    missing = note + "-nowhere"
    api = requests.get(stack.url + missing, headers={"Accept": "application/json"}, timeout=10)
    assert api.status_code == 404 and api.headers["Content-Type"] == "application/json"
    vary = {v.strip().lower() for v in api.headers["Vary"].split(",")}
    assert "accept" in vary  # the site says what the answer depends on
    browser = requests.get(stack.url + missing, timeout=10, headers={
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert browser.status_code == 404
    assert browser.headers["Content-Type"].startswith("text/html")
    assert "<!doctype html>" in browser.text
