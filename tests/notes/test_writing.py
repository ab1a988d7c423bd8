"""Issue 24, writers' side: Markdown as a second way to write, scheduled publishing (with the
response cache bounded by the next scheduled note), private preview links for drafts, feeds
per tag and per author with absolute addresses, "My notes" search and filters."""

from __future__ import annotations

import io
import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

from notes.extensions import db
from notes.models import Note

from .conftest import csrf, xlsx
from .test_api import token_for
from .test_site import write

ATOM = "{http://www.w3.org/2005/Atom}"
MARKDOWN = ("# A heading\n\nSome *words* and **more**.\n\n- one\n- two\n\n"
            "<script>alert(1)</script>\n\n"
            "| name | size |\n|------|------|\n| nginx | small |\n\n"
            '[bad](javascript:alert(1)) <img src="/media/abcdefgh.png" alt="a photo" '
            'onerror="x()">\n')


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_markdown_through_the_api_renders_and_is_sanitised(app, client, user) -> None:
    auth = token_for(app, user[0].email)
    r = client.post("/api/notes", json={"title": "Written in Markdown", "body": MARKDOWN,
                                        "format": "markdown", "published": True,
                                        "tags": ["md"]}, headers=auth)
    assert r.status_code == 201, r.json
    note = r.json
    assert note["format"] == "markdown" and note["source"] == MARKDOWN
    body = note["body"]
    assert "<h1>A heading</h1>" in body and "<li>one</li>" in body
    assert "<em>words</em>" in body and "<strong>more</strong>" in body
    assert "<table>" in body and "<td>nginx</td>" in body
    assert "<script" not in body and "href=\"javascript" not in body and "onerror" not in body
    assert '<img src="/media/abcdefgh.png" alt="a photo">' in body
    page = client.get(f"/n/{note['slug']}").get_data(as_text=True)
    assert "<h1>A heading</h1>" in page and "# A heading" not in page
    # search, excerpts and the feed use the rendered text, not the Markdown
    found = client.get("/?q=nginx").get_data(as_text=True)
    assert "Written in Markdown" in found
    entry = ET.fromstring(client.get("/feed.xml").data).find(f"{ATOM}entry")
    assert entry is not None
    summary = entry.find(f"{ATOM}summary")
    assert summary is not None and summary.text is not None
    assert summary.text.startswith("A heading Some words and more.") and "*" not in summary.text
    with app.app_context():
        stored = db.session.get(Note, note["id"])
        assert stored is not None and "#" not in stored.body_text

    # changed to HTML without a body: its rendered HTML is the note's text from now on
    r = client.patch(f"/api/notes/{note['id']}", json={"format": "html"}, headers=auth)
    assert r.status_code == 200 and r.json["format"] == "html" and r.json["source"] is None
    assert r.json["body"] == body
    # the revision kept the Markdown: restoring it gives a Markdown note again
    first = client.get(f"/api/notes/{note['id']}/revisions", headers=auth).json["items"][-1]
    old = client.get(f"/api/notes/{note['id']}/revisions/{first['id']}", headers=auth).json
    assert old["format"] == "markdown" and old["body"] == MARKDOWN
    r = client.post(f"/api/notes/{note['id']}/revisions/{first['id']}/restore", headers=auth)
    assert r.json["format"] == "markdown" and r.json["source"] == MARKDOWN
    assert r.json["body"] == body
    # Markdown past the bounds of what its renderer does in a few seconds: refused, said why
    for text, reason in (("[" * 20_001, "at most 20000 markup characters"),
                         ("a\n" * 20_000, "at most 20000 lines"),
                         ("word " * 40_001, "at most 200000 characters")):
        r = client.post("/api/notes", json={"title": "Too much", "body": text,
                                            "format": "markdown"}, headers=auth)
        assert r.status_code == 422 and reason in r.json["message"], r.json
        # a format that is not one is refused, with the choices named
    r = client.post("/api/notes", json={"title": "x", "format": "rst"}, headers=auth)
    assert r.status_code == 422 and "html" in str(r.json)


def test_markdown_in_the_editor_with_a_preview_and_switching(app, client, user, login) -> None:
    login(client, user[0].email)
    form = {"title": "Plain words", "format": "markdown", "shown_format": "markdown",
            "body": "## Sub\n\n1. first\n2. second\n", "published": "y"}
    r = client.post("/notes/new", data={**form, "preview": "1",
                                        "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "Preview (not saved)" in page and "<h2>Sub</h2>" in page and "<li>first</li>" in page
    with app.app_context():
        assert db.session.scalar(select(Note).where(Note.title == "Plain words")) is None
    r = client.post("/notes/new", data={**form, "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 302 and r.location.endswith("/n/plain-words")
    assert "<ol>" in client.get("/n/plain-words").get_data(as_text=True)
    with app.app_context():
        nid = db.session.scalar(select(Note.id).where(Note.slug == "plain-words"))
    editor = client.get(f"/notes/{nid}/edit").get_data(as_text=True)
    assert "## Sub" in editor  # the writer edits the Markdown, not the HTML
    assert 'name="shown_format" type="hidden" value="markdown"' in editor
    # switching to rich text (the editor's Preview, which the select's change sends): the
    # text becomes its HTML, so the rich text editor shows the same note
    r = client.post(f"/notes/{nid}/edit", data={
        **form, "format": "html", "preview": "1", "csrf_token": csrf(client, f"/notes/{nid}/edit")})
    page = r.get_data(as_text=True)
    assert 'name="shown_format" type="hidden" value="html"' in page
    assert "&lt;h2&gt;Sub&lt;/h2&gt;" in page  # in the textarea, for CKEditor
    # an image not described yet does not stop the switch or the preview; the save asks for it
    undescribed = {**form, "body": "![](/media/x.png)\n", "format": "html", "preview": "1"}
    r = client.post(f"/notes/{nid}/edit", data={
        **undescribed, "csrf_token": csrf(client, f"/notes/{nid}/edit")})
    assert r.status_code == 200 and "Preview (not saved)" in r.get_data(as_text=True)
    del undescribed["preview"]
    r = client.post(f"/notes/{nid}/edit", data={
        **undescribed, "format": "markdown", "csrf_token": csrf(client, f"/notes/{nid}/edit")})
    assert r.status_code == 422 and "no description" in r.get_data(as_text=True)
    # and Markdown that makes markup too costly is refused with the reason, nothing saved
    r = client.post(f"/notes/{nid}/edit", data={
        **form, "body": "*a " * 20 + "\n" + "<b>" * 50,
        "csrf_token": csrf(client, f"/notes/{nid}/edit")})
    assert r.status_code == 422 and "bold, italic or link" in r.get_data(as_text=True)


def test_markdown_through_the_excel_import_and_export(app, client, user, admin, login) -> None:
    login(client, admin[0].email)

    def upload(rows: list[list[object]]) -> Any:
        return client.post("/admin/excel/import", data={
            "csrf_token": csrf(client, "/admin/excel/"),
            "file": (io.BytesIO(xlsx(rows)), "notes.xlsx")}, content_type="multipart/form-data")

    header = ["title", "author", "body", "published", "format"]
    r = upload([header, ["From a sheet", user[0].email, "## Sheet\n\n- a\n- b", "yes",
                         "Markdown"],
                ["Plain HTML", user[0].email, "<p>html</p>", "yes", None]])
    assert r.status_code == 302
    with app.app_context():
        md = db.session.scalar(select(Note).where(Note.title == "From a sheet"))
        assert md is not None and md.format == "markdown" and md.source == "## Sheet\n\n- a\n- b"
        assert "<h2>Sheet</h2>" in md.body and "<li>a</li>" in md.body
        plain = db.session.scalar(select(Note).where(Note.title == "Plain HTML"))
        assert plain is not None and plain.format == "html" and plain.source is None
    rows = list(load_workbook(io.BytesIO(client.get("/admin/excel/export").data)).active
                .iter_rows(values_only=True))
    columns = rows[0]
    exported = {row[1]: dict(zip(columns, row, strict=False)) for row in rows[1:]}
    assert exported["From a sheet"]["format"] == "markdown"
    assert exported["From a sheet"]["body"] == "## Sheet\n\n- a\n- b"  # what its writer wrote
    assert exported["Plain HTML"]["format"] == "html"
    # the export imported again changes nothing
    r = upload([list(columns), *[list(row) for row in rows[1:]]])
    assert r.status_code == 302
    page = client.get("/admin/excel/").get_data(as_text=True)
    assert "0 created, 0 updated, 2 skipped" in page
    r = upload([header, ["Bad", user[0].email, "x", "yes", "rst"]])
    assert r.status_code == 422
    assert "row 2, column format: &#39;rst&#39; is not one of html, markdown" in r.get_data(
        as_text=True)


def test_a_scheduled_note_appears_everywhere_when_its_time_comes(app, client, user) -> None:
    app.config["NOTES_CACHE_SECONDS"] = 600
    auth = token_for(app, user[0].email)
    r = client.post("/api/notes", json={"title": "Now", "published": True, "tags": ["soon"]},
                    headers=auth)
    assert r.status_code == 201
    at = datetime.now(UTC) + timedelta(seconds=4)
    r = client.post("/api/notes", json={"title": "Later on", "body": "<p>later</p>",
                                        "publish_at": _iso(at), "tags": ["soon"]},
                    headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["published"] is True and r.json["scheduled"] is True
    slug, uid = r.json["slug"], user[0].id
    reader = app.test_client()
    pages = ["/", "/feed.xml", "/sitemap-1.xml", "/t/soon", "/t/soon/feed.xml", f"/a/{uid}",
             f"/a/{uid}/feed.xml", "/?q=later", "/api/notes"]

    def shown() -> dict[str, bool]:
        return {p: "Later on" in reader.get(p).get_data(as_text=True) or
                f"/n/{slug}" in reader.get(p).get_data(as_text=True) for p in pages}

    assert not any(shown().values())
    assert reader.get(f"/n/{slug}").status_code == 404
    # its writer sees it, marked as scheduled, and through the API with the token
    assert client.get(f"/api/notes/{r.json['id']}", headers=auth).status_code == 200
    # the shared cache keeps no page past the time the note becomes public, and serves no
    # expired copy after it
    for path in ("/", f"/n/{slug}", "/feed.xml", "/t/soon/feed.xml"):  # its own 404 too
        control = reader.get(path).headers["Cache-Control"]
        match = re.search(r"s-maxage=(\d+)", control)
        assert match and int(match.group(1)) <= 4 and "stale-while-revalidate=0" in control
    stored = datetime.fromisoformat(r.json["published_at"])  # (to the second on MariaDB)
    stored = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
    while datetime.now(UTC) <= max(at, stored):
        time.sleep(0.2)
    assert all(shown().values()), shown()
    assert reader.get(f"/n/{slug}").status_code == 200
    control = reader.get("/").headers["Cache-Control"]
    assert "s-maxage=600" in control and "stale-while-revalidate=600" in control
    # publish_at with published: false contradicts itself: refused
    r = client.post("/api/notes", json={"title": "x", "published": False,
                                        "publish_at": _iso(at)}, headers=auth)
    assert r.status_code == 422 and "publish_at" in r.json["message"]
    r = client.post("/api/notes", json={"title": "x", "publish_at": "0001-01-01T00:00:00+05:00"},
                    headers=auth)
    assert r.status_code == 422 and "publish_at" in r.json["message"]


def test_scheduling_in_the_editor_in_the_sites_time_zone(app, client, user, login) -> None:
    app.config["NOTES_TIMEZONE"] = "Asia/Taipei"
    login(client, user[0].email)
    local = datetime(2040, 1, 2, 9, 30)
    r = client.post("/notes/new", data={"title": "For 2040", "body": "<p>x</p>",
                                        "published": "y", "publish_at": "2040-01-02T09:30",
                                        "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 302
    with app.app_context():
        note = db.session.scalar(select(Note).where(Note.title == "For 2040"))
        assert note is not None and note.published and note.is_scheduled
        assert note.published_at == local.replace(tzinfo=ZoneInfo("Asia/Taipei"))
        nid = note.id
    assert "scheduled for Jan 2, 2040, 09:30" in client.get("/my").get_data(as_text=True)
    assert "scheduled for Jan 2, 2040, 09:30" in client.get("/n/for-2040").get_data(as_text=True)
    assert app.test_client().get("/n/for-2040").status_code == 404
    editor = client.get(f"/notes/{nid}/edit").get_data(as_text=True)
    assert 'value="2040-01-02T09:30"' in editor
    # saved again unchanged: still scheduled; the time emptied: published now
    token = csrf(client, f"/notes/{nid}/edit")
    data = {"title": "For 2040", "body": "<p>x</p>", "published": "y", "csrf_token": token}
    client.post(f"/notes/{nid}/edit", data={**data, "publish_at": "2040-01-02T09:30"})
    with app.app_context():
        assert db.session.get(Note, nid).is_scheduled
    client.post(f"/notes/{nid}/edit", data={**data, "publish_at": ""})
    assert app.test_client().get("/n/for-2040").status_code == 200
    # a time that is none: refused, said so
    r = client.post("/notes/new", data={"title": "Bad time", "published": "y",
                                        "publish_at": "next tuesday",
                                        "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 422 and "is not a date and time" in r.get_data(as_text=True)
    r = client.post("/notes/new", data={"title": "Bad time", "published": "y",
                                        "publish_at": "0001-01-01T00:00",
                                        "csrf_token": csrf(client, "/notes/new")})
    assert r.status_code == 422 and "between the years 1970" in r.get_data(as_text=True)


def test_a_draft_has_a_private_preview_link_until_revoked_or_published(
        app, client, user, other, login) -> None:
    login(client, user[0].email)
    write(client, "Secret draft", "<p>not yet</p>", published=False)
    with app.app_context():
        nid = db.session.scalar(select(Note.id).where(Note.title == "Secret draft"))
    token = csrf(client, f"/notes/{nid}/edit")
    r = client.post(f"/notes/{nid}/preview-link", data={"action": "create", "csrf_token": token})
    assert r.status_code == 302
    editor = client.get(f"/notes/{nid}/edit").get_data(as_text=True)
    link = re.search(r'value="http://localhost(/p/[A-Za-z0-9_-]+)"', editor)
    assert link, editor
    reader = app.test_client()  # nobody signed in
    r = reader.get(link.group(1))
    assert r.status_code == 200 and "not yet" in r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "private, no-store"
    assert "noindex" in r.headers["X-Robots-Tag"] and r.headers["Referrer-Policy"] == "no-referrer"
    assert reader.get(link.group(1) + "x").status_code == 404
    assert reader.get("/p/short").status_code == 404
    # another writer cannot make or revoke a link for it
    stranger = app.test_client()
    login(stranger, other[0].email)
    r = stranger.post(f"/notes/{nid}/preview-link",
                      data={"action": "revoke", "csrf_token": csrf(stranger, "/my")})
    assert r.status_code == 403
    assert reader.get(link.group(1)).status_code == 200
    # revoked: nothing there any more
    client.post(f"/notes/{nid}/preview-link", data={"action": "revoke", "csrf_token": token})
    assert reader.get(link.group(1)).status_code == 404
    # a new link; once the note is published the link leads to the note and then ends
    client.post(f"/notes/{nid}/preview-link", data={"action": "create", "csrf_token": token})
    with app.app_context():
        second = db.session.get(Note, nid).preview_token
    assert second and f"/p/{second}" != link.group(1)
    assert reader.get(f"/p/{second}").status_code == 200
    client.post(f"/notes/{nid}/publish", data={"published": "1", "csrf_token": token})
    assert reader.get(f"/p/{second}").status_code == 404  # the link ended with publishing
    with app.app_context():
        assert db.session.get(Note, nid).preview_token is None
    assert "/p/" not in client.get(f"/notes/{nid}/edit").get_data(as_text=True)
    assert "Disallow: /p/" in reader.get("/robots.txt").get_data(as_text=True)


def test_feeds_per_tag_and_per_author_are_atom_with_absolute_addresses(
        app, client, user, other, login) -> None:
    login(client, user[0].email)
    picture = io.BytesIO()
    Image.new("RGB", (1200, 600), (200, 30, 30)).save(picture, "PNG")
    uploaded = client.post("/upload", data={"upload": (io.BytesIO(picture.getvalue()), "p.png")},
                           headers={"X-CSRFToken": csrf(client, "/notes/new")},
                           content_type="multipart/form-data").json["url"]
    body = ('<p>See <img src="/media/abcdefgh.png" alt="a photo"> and '
            '<a href="/n/other">another</a> or <a href="https://example.org/x?a=1&amp;b=2">'
            f'this</a>.</p><p><img src="{uploaded}" alt="red"></p>')
    write(client, "Tagged one", body)
    with app.app_context():
        nid = db.session.scalar(select(Note.id).where(Note.title == "Tagged one"))
    client.post(f"/notes/{nid}/edit", data={"title": "Tagged one", "body": body, "tags": "news",
                                            "published": "y",
                                            "csrf_token": csrf(client, f"/notes/{nid}/edit")})
    write(client, "Untagged", "<p>plain</p>")
    writer = app.test_client()
    login(writer, other[0].email)
    write(writer, "By Bob", "<p>bob</p>")
    reader = app.test_client()
    tag_page = reader.get("/t/news").get_data(as_text=True)
    author_page = reader.get(f"/a/{user[0].id}").get_data(as_text=True)
    assert ('<link rel="alternate" type="application/atom+xml" title="notes: notes tagged '
            '“news”" href="/t/news/feed.xml">') in tag_page
    assert f'href="/a/{user[0].id}/feed.xml">Atom feed of these notes</a>' in author_page

    for path, titles, title in (
            ("/t/news/feed.xml", ["Tagged one"], "#news · notes"),
            (f"/a/{user[0].id}/feed.xml", ["Untagged", "Tagged one"], "Alice · notes"),
            ("/feed.xml", ["By Bob", "Untagged", "Tagged one"], "notes")):
        r = reader.get(path)
        assert r.status_code == 200 and r.mimetype == "application/atom+xml"
        assert "public" in r.headers["Cache-Control"]
        feed = ET.fromstring(r.data)
        # what RFC 4287 requires of a feed and its entries
        assert feed.tag == f"{ATOM}feed"
        assert feed.findtext(f"{ATOM}title") == title
        for element in (feed, *feed.findall(f"{ATOM}entry")):
            assert element.findtext(f"{ATOM}id") and element.findtext(f"{ATOM}updated")
            assert element.findtext(f"{ATOM}title") is not None
        self_link = feed.find(f"{ATOM}link[@rel='self']")
        assert self_link is not None and self_link.get("href") == "http://localhost" + path
        entries = feed.findall(f"{ATOM}entry")
        assert [e.findtext(f"{ATOM}title") for e in entries] == titles
        for entry in entries:
            content = entry.findtext(f"{ATOM}content") or ""
            addresses = re.findall(r'(?:src|href)="([^"]*)"', content) + [
                c.strip().split(" ")[0] for found in re.findall(r'srcset="([^"]*)"', content)
                for c in found.split(",")]
            assert all(a.startswith(("http://localhost/", "https://")) for a in addresses), \
                addresses
    content = ET.fromstring(reader.get("/t/news/feed.xml").data).findtext(
        f"{ATOM}entry/{ATOM}content") or ""
    assert 'src="http://localhost/media/abcdefgh.png"' in content
    # the uploaded picture's smaller copies (srcset) too
    assert re.search(r'srcset="http://localhost/media/[^" ]+-480w\.png 480w, '
                     r'http://localhost/media/[^" ]+\.png 1200w"', content), content
    assert 'href="http://localhost/n/other"' in content
    assert 'href="https://example.org/x?a=1&amp;b=2"' in content
    moved = reader.get("/feed.xml?tag=news")  # as feed readers guess it
    assert moved.status_code == 301 and moved.location.endswith("/t/news/feed.xml")
    assert reader.get("/feed.xml?tag=nothing").status_code == 404
    assert reader.get("/t/nothing/feed.xml").status_code == 404
    assert reader.get("/a/999999/feed.xml").status_code == 404


def test_my_notes_search_and_filters(app, client, user, other, login) -> None:
    app.config["NOTES_PER_PAGE"] = 2
    login(client, user[0].email)
    write(client, "Draft about otters", "<p>otters swim</p>", published=False)
    write(client, "Published about otters", "<p>otters again</p>")
    write(client, "Published about cats", "<p>cats</p>")
    write(client, "Old otters", "<p>otters gone</p>")
    auth = token_for(app, user[0].email)
    later = _iso(datetime.now(UTC) + timedelta(days=3))
    client.post("/api/notes", json={"title": "Scheduled otters", "publish_at": later},
                headers=auth)
    with app.app_context():
        gone = db.session.scalar(select(Note.id).where(Note.title == "Old otters"))
    client.post(f"/notes/{gone}/delete", data={"csrf_token": csrf(client, "/my")})
    bob = app.test_client()
    login(bob, other[0].email)
    write(bob, "Bob's otters draft", "<p>otters</p>", published=False)

    def titles(query: str) -> list[str]:
        page = client.get(f"/my?{query}")
        assert page.status_code == 200
        return re.findall(r'<td dir="auto">(?:<a [^>]*>)?([^<]*(?:<mark>[^<]*</mark>[^<]*)*)',
                          page.get_data(as_text=True))

    assert titles("state=draft") == ["Draft about otters"]
    assert titles("state=scheduled") == ["Scheduled otters"]
    assert titles("state=published") == ["Published about cats", "Published about otters"]
    assert titles("state=trash") == ["Old otters"]
    page = client.get("/my").get_data(as_text=True)
    assert "Drafts (1)" in page and "Scheduled (1)" in page and "Published (2)" in page
    assert "Trash (1)" in page and "Bob" not in page
    assert "Old otters" not in page  # all: not what is in the trash
    # search: only the writer's own notes, in the filter chosen, with the words marked
    found = titles("q=otters")
    assert len(found) == 2 and all("<mark>otters</mark>" in t for t in found)
    assert "Next" in client.get("/my?q=otters").get_data(as_text=True) or \
        "Older" in client.get("/my?q=otters").get_data(as_text=True)
    assert titles("q=otters&page=2")
    assert [t.replace("<mark>", "").replace("</mark>", "") for t in titles(
        "q=otters&state=draft")] == ["Draft about otters"]
    assert titles("q=otters&state=trash") == ["Old <mark>otters</mark>"]
    assert "No notes match" in client.get("/my?q=zebras").get_data(as_text=True)
    assert titles("state=nonsense") == titles("")  # an unknown filter shows all
