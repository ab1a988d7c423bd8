"""Publishing (issue 11) through the real app on SQLite, MariaDB and PostgreSQL: stable links,
any language, paging, authors, discovery, tags, the one content declaration, first visit."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from notes.auth import create_user
from notes.extensions import db
from notes.models import Note
from notes.search import highlight
from notes.search.tokens import index_text
from notes.services import CONTENT, clean_html, editor_config

from .conftest import PASSWORD, csrf, make_app, xlsx
from .test_data import flask_cli
from .test_site import write

ATOM = "{http://www.w3.org/2005/Atom}"


def note_id(app, title: str) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return db.session.query(Note).filter_by(title=title).one().id


def edit(client, app, title: str, new_title: str, tags: str = "",  # type: ignore[no-untyped-def]
         body: str = "<p>text</p>"):
    with app.app_context():  # the oldest note of that title
        nid = db.session.query(Note).filter_by(title=title).order_by(Note.id).first().id
    token = csrf(client, f"/notes/{nid}/edit")
    return client.post(f"/notes/{nid}/edit", data={"title": new_title, "body": body,
                                                   "tags": tags, "published": "y",
                                                   "csrf_token": token})


def test_a_retitled_note_keeps_its_old_links(app, client, user, login) -> None:
    login(client, user[0].email)
    write(client, "First title")
    assert edit(client, app, "First title", "Second title").location.endswith(
        "/n/second-title")
    r = client.get("/n/first-title")
    assert r.status_code == 301 and r.location.endswith("/n/second-title")
    write(client, "First title")  # the old address stays the first note's
    assert client.get("/n/first-title-2").status_code == 200
    assert client.get("/n/first-title").location.endswith("/n/second-title")
    edit(client, app, "Second title", "Third title")  # a chain: every old link still works
    assert client.get("/n/first-title").location.endswith("/n/third-title")
    assert client.get("/n/second-title").location.endswith("/n/third-title")
    edit(client, app, "Third title", "First title")  # its own old slug becomes current again
    assert client.get("/n/first-title").status_code == 200
    assert client.get("/n/third-title").location.endswith("/n/first-title")
    # through the API too, and a deleted note's old links go with it
    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        token = issue_token(db.session.get(User, user[0].id), "t")
    with app.app_context():
        nid = db.session.query(Note).filter_by(slug="first-title").one().id
    r = client.patch(f"/api/notes/{nid}", json={"title": "Via API"},
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json["slug"] == "via-api"
    assert client.get("/n/first-title").location.endswith("/n/via-api")
    assert client.delete(f"/api/notes/{nid}",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert client.get("/n/first-title").status_code == 404
    assert client.get("/n/third-title").status_code == 404


def test_titles_in_any_script_get_readable_distinct_slugs(client, user, login) -> None:
    login(client, user[0].email)
    titles = {
        "Ελληνικά νέα": "ελληνικά-νέα",
        "Ελληνικα νεα": "ελληνικα-νεα-2",  # differs only in accents: distinct on every database
        "中文标题": "中文标题",
        "مرحبا بالعالم": "مرحبا-بالعالم",
        "🎉🎉": "🎉🎉",
        "Привет, мир": "привет-мир",
        "Hello, World! Ça va?": "hello-world-ca-va",
        "!!!": "note",
    }
    for title, slug in titles.items():
        r = write(client, title)
        assert r.status_code == 302 and r.location.endswith("/n/" + quote(slug)), (title,
                                                                                  r.location)
        page = client.get("/n/" + quote(slug)).get_data(as_text=True)
        assert f'<h1 dir="auto">{title}</h1>' in page


def test_search_ignores_case_and_accents_in_any_script_and_marks_the_words(
        client, user, login) -> None:
    login(client, user[0].email)
    write(client, "Ελληνικά ΝΈΑ", "<p>Στην Αθήνα</p>")
    write(client, "Café CRÈME", "<p>Straße und Grüße</p>")
    write(client, "Русский текст", "<p>Ёлка и ЁЖИК</p>")
    write(client, "Other")

    def results(q: str) -> str:
        r = client.get("/", query_string={"q": q})
        assert r.status_code == 200
        return r.get_data(as_text=True)

    assert "<mark>Ελληνικά</mark> <mark>ΝΈΑ</mark>" in results("ελληνικα νεα")
    assert "<mark>Αθήνα</mark>" in results("ΑΘΗΝΑ")
    assert "<mark>Café</mark>" in results("cafe")
    assert "<mark>CRÈME</mark>" in results("crème")
    assert "<mark>Straße</mark>" in results("STRASSE")
    assert "<mark>ЁЖИК</mark>" in results("ежик")
    assert "Other" not in results("ежик")
    assert "Café" not in results("cafe absent")  # every word must be there


def test_highlighting_cannot_inject_markup(client, user, login) -> None:
    login(client, user[0].email)
    write(client, '<img src=x onerror=alert(1)> "mark"',
          "<p>&lt;script&gt;alert(2)&lt;/script&gt;</p>")
    page = client.get("/", query_string={"q": "img script mark"}).get_data(as_text=True)
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;<mark>img</mark> src=x onerror=alert(1)&gt; &#34;<mark>mark</mark>&#34;" in page
    assert "&lt;<mark>script</mark>&gt;alert(2)" in page
    page = client.get("/", query_string={"q": "<mark>"}).get_data(as_text=True)
    assert "<mark><mark>" not in page


def test_a_too_large_image_is_refused_with_the_limit(app, client, user, login) -> None:
    login(client, user[0].email)
    token = csrf(client, "/notes/new")
    big = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * app.config["NOTES_MAX_IMAGE"])
    r = client.post("/upload", data={"upload": (big, "big.png")},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 413
    assert r.json["error"]["message"].startswith("The image is too large: at most 9.5 MB.")
    page = client.get("/notes/new").get_data(as_text=True)
    assert '<meta name="max-image" content="9961472">' in page and "up to 9.5 MB each" in page


def test_excerpts_of_long_notes_show_the_match_wherever_it_is() -> None:
    long = "Lorem ipsum dolor sit amet. " * 40_000 + "Then the Café at the end."
    excerpt = highlight(long, "cafe", 200)
    assert "<mark>Café</mark> at the end." in excerpt and excerpt.startswith("…")
    assert len(excerpt.striptags()) < 260
    assert highlight("Café first. " + long, "CAFE", 200).startswith("<mark>Café</mark> first.")
    assert highlight(long, "absent", 200).startswith("Lorem ipsum")


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "99999999999999999999", "", "2",
                                  "1e3", " 1", "\uff11"])
def test_every_bad_page_is_a_404(client, user, login, page: str) -> None:
    login(client, user[0].email)
    write(client, "Only note", "<p>x</p>")
    uid = user[0].id
    for path in ("/", "/my", f"/a/{uid}", "/t/none"):
        assert client.get(path, query_string={"page": page}).status_code == 404, path
    r = client.get("/api/notes", query_string={"page": page})
    assert r.status_code == 404 and r.json["message"], r.json
    assert client.get("/?page=1").status_code == 200
    assert client.get("/api/notes?page=1").status_code == 200


def test_an_empty_list_has_a_page_1_only(client) -> None:
    assert client.get("/?page=1").status_code == 200
    assert client.get("/?page=2").status_code == 404
    assert client.get("/api/notes?page=1").json["items"] == []
    assert client.get("/api/notes?page=2").status_code == 404


def test_public_pages_show_the_display_name_never_the_email(app, client, login) -> None:
    token = csrf(client, "/register")
    r = client.post("/register", data={"display_name": "  Ada   Lovelace ",
                                       "email": "ada@example.com", "password": PASSWORD,
                                       "confirm": PASSWORD, "csrf_token": token})
    assert r.status_code == 302
    write(client, "Public words")
    write(client, "Draft words", published=False)
    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        ada = db.session.query(User).filter_by(email="ada@example.com").one()
        uid, api_token = ada.id, issue_token(ada, "t")
    reader = app.test_client()
    pages = ["/", "/n/public-words", f"/a/{uid}", "/feed.xml", "/api/notes", "/sitemap.xml",
             "/?q=public"]
    for path in pages:
        body = reader.get(path).get_data(as_text=True)
        assert "ada@example.com" not in body and "ada@" not in body, path
    assert "Ada Lovelace" in reader.get("/n/public-words").get_data(as_text=True)
    author = reader.get(f"/a/{uid}").get_data(as_text=True)
    assert '<h1 dir="auto">Ada Lovelace</h1>' in author
    assert "Public words" in author and "Draft words" not in author
    assert reader.get("/api/notes").json["items"][0]["author"] == "Ada Lovelace"
    assert reader.get("/a/999999").status_code == 404
    # the name is editable; an empty or too long one is refused, tied to its field
    token = csrf(client, "/account")
    r = client.post("/account", data={"name-display_name": "x" * 81, "name-csrf_token": token})
    page = r.get_data(as_text=True)
    assert 'aria-invalid="true"' in page and 'aria-describedby="name-display_name-help ' \
        'name-display_name-error"' in page and 'id="name-display_name-error"' in page
    r = client.post("/account", data={"name-display_name": "Countess", "name-csrf_token": token})
    assert r.status_code == 302
    assert "Countess" in reader.get("/n/public-words").get_data(as_text=True)
    assert client.get("/api/notes", headers={"Authorization": f"Bearer {api_token}"}).json[
        "items"][0]["author"] == "Countess"
    # an account made without a name (CLI, old accounts) shows a neutral name, not its address
    with app.app_context():
        anon = create_user("anon@example.com", PASSWORD)
        assert anon.public_name == f"author {anon.id}"


def test_feed_sitemap_robots_favicon_and_meta(app, client, user, login) -> None:
    login(client, user[0].email)
    body = ('<p>First <img src="/media/a.png" alt="a"> paragraph of the first note, with '
            'enough words to describe it.</p>')
    write(client, "Feed one", body)
    r = edit(client, app, "Feed one", "Feed one", tags="alpha, Beta", body=body)
    assert r.status_code == 302
    write(client, "Hidden draft", published=False)
    reader = app.test_client()
    r = reader.get("/feed.xml")
    assert r.status_code == 200 and r.mimetype == "application/atom+xml"
    feed = ET.fromstring(r.data)
    assert feed.find(f"{ATOM}title").text == "notes"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Feed one"]
    entry = entries[0]
    assert entry.find(f"{ATOM}link").get("href") == "http://localhost/n/feed-one"
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == ["alpha", "beta"]
    assert "<img" in entry.find(f"{ATOM}content").text  # HTML, escaped once in the XML
    assert entry.find(f"{ATOM}author/{ATOM}name").text == "Alice"

    home = reader.get("/").get_data(as_text=True)
    assert '<link rel="alternate" type="application/atom+xml"' in home
    assert 'rel="icon" type="image/svg+xml" href="/static/favicon.svg?v=' in home

    def locs(path: str) -> list[str | None]:
        found = ET.fromstring(reader.get(path).get_data())
        return [e.text for e in found.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]

    # an index of parts (see test_scale): the site's pages, then the notes by ranges of ids
    assert locs("/sitemap.xml") == ["http://localhost/sitemap-0.xml",
                                    "http://localhost/sitemap-1.xml"]
    assert locs("/sitemap-0.xml") + locs("/sitemap-1.xml") == [
        "http://localhost/", "http://localhost/n/feed-one"]
    robots = reader.get("/robots.txt").get_data(as_text=True)
    assert "Sitemap: http://localhost/sitemap.xml" in robots and "Disallow: /admin/" in robots
    favicon = reader.get("/favicon.ico")
    assert favicon.status_code == 302
    assert reader.get(favicon.location).status_code == 200

    page = reader.get("/n/feed-one").get_data(as_text=True)
    assert '<meta name="description" content="First paragraph of the first note, with enough ' \
        'words to describe it.">' in page
    assert '<link rel="canonical" href="http://localhost/n/feed-one">' in page
    assert '<meta property="og:title" content="Feed one">' in page
    assert '<meta property="og:image" content="http://localhost/media/a.png">' in page
    assert '<meta property="article:tag" content="beta">' in page


def test_site_title_and_description_are_settings(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url, tmp_path / "data", NOTES_SITE_TITLE="Field <notes>",
                   NOTES_SITE_DESCRIPTION="Notes from the field & more.",
                   NOTES_SITE_URL="https://notes.example.org")
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    assert '<a class="brand" href="/">Field &lt;notes&gt;</a>' in page
    assert "<title>Field &lt;notes&gt;</title>" in page
    assert '<meta name="description" content="Notes from the field &amp; more.">' in page
    feed = ET.fromstring(client.get("/feed.xml").data)
    assert feed.find(f"{ATOM}title").text == "Field <notes>"
    assert feed.find(f"{ATOM}subtitle").text == "Notes from the field & more."
    assert feed.find(f"{ATOM}id").text == "https://notes.example.org/"
    assert '<link rel="canonical" href="https://notes.example.org/">' in page
    assert "Sitemap: https://notes.example.org/sitemap.xml" in client.get(
        "/robots.txt").get_data(as_text=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_first_visit_says_how_to_create_an_admin_and_invites_the_first_note(
        app, client, login) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "has no administrator yet" in page
    assert "flask --app notes users create you@example.com --admin" in page
    with app.app_context():
        create_user("root@example.com", PASSWORD, is_admin=True, display_name="Root")
    page = client.get("/").get_data(as_text=True)
    assert "no administrator" not in page and "to write the first one" in page
    login(client, "root@example.com")
    assert 'href="/notes/new">Write the first one</a>' in client.get("/").get_data(as_text=True)


def test_tags_through_editor_api_excel_and_tag_page(app, client, user, admin, login) -> None:
    login(client, user[0].email)
    write(client, "Tagged")
    r = edit(client, app, "Tagged", "Tagged", tags=" Travel ,  food, travel, Ελλάδα ")
    assert r.status_code == 302
    page = client.get("/n/tagged").get_data(as_text=True)
    for name in ("ελλάδα", "food", "travel"):
        assert f'href="/t/{quote(name)}"' in page
    assert "Tagged" in client.get("/t/travel").get_data(as_text=True)
    assert client.get("/t/" + quote("ελλάδα")).status_code == 200
    assert client.get("/t/Travel").status_code == 404  # names are lower case: one address
    too_long = edit(client, app, "Tagged", "Tagged", tags="x" * 51)
    assert too_long.status_code == 422 and "longer than 50" in too_long.get_data(as_text=True)

    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        auth = {"Authorization": "Bearer " + issue_token(db.session.get(User, user[0].id), "t")}
    r = client.post("/api/notes", json={"title": "API tagged", "tags": ["Food", "new one"],
                                        "published": True}, headers=auth)
    assert r.status_code == 201 and r.json["tags"] == ["food", "new one"]
    r = client.patch(f"/api/notes/{r.json['id']}", json={"tags": ["ΕΛΛΑΔΑ"]}, headers=auth)
    assert r.json["tags"] == ["ελλάδα"]  # accents aside the same tag, on every database
    r = client.patch(f"/api/notes/{r.json['id']}", json={"tags": []}, headers=auth)
    assert r.json["tags"] == []
    assert client.post("/api/notes", json={"title": "x", "tags": ["y" * 51]},
                       headers=auth).status_code == 422
    assert len(client.get("/api/notes", query_string={"tag": "travel"}).json["items"]) == 1

    boss = app.test_client()
    login(boss, admin[0].email)
    data = boss.get("/admin/excel/export").data
    rows = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    tags_at, title_at = rows[0].index("tags"), rows[0].index("title")
    assert ("Tagged", "food, travel, ελλάδα") in [(r[title_at], r[tags_at]) for r in rows]
    sheet = xlsx([["title", "author", "body", "tags"],
                  ["Imported", user[0].email, "<p>x</p>", "Excel, travel"]])
    token = csrf(boss, "/admin/excel/")
    r = boss.post("/admin/excel/import", data={"csrf_token": token,
                                               "file": (io.BytesIO(sheet), "n.xlsx")})
    assert r.status_code == 302
    with app.app_context():
        imported = db.session.query(Note).filter_by(title="Imported").one()
        assert imported.tag_names == ["excel", "travel"]
        # written in bulk, searchable all the same
        assert imported.search_text == index_text("Imported", "x")
    bad = xlsx([["title", "author", "body", "tags"], ["Bad", user[0].email, "x", "y" * 60]])
    r = boss.post("/admin/excel/import", data={"csrf_token": token,
                                               "file": (io.BytesIO(bad), "b.xlsx")})
    assert r.status_code == 422 and "row 2, column tags" in r.get_data(as_text=True)
    # the tag appears in the admin's list and its form
    assert "travel" in boss.get("/admin/note/").get_data(as_text=True)


def test_writers_racing_for_one_new_tag_all_succeed(app, user) -> None:
    from notes.api import issue_token
    from notes.models import User

    with app.app_context():
        token = issue_token(db.session.get(User, user[0].id), "t")

    def post(i: int) -> int:
        client = app.test_client()
        return client.post("/api/notes", json={"title": f"Race {i}", "tags": ["brand new"]},
                           headers={"Authorization": f"Bearer {token}"}).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(post, range(6))) == [201] * 6
    with app.app_context():
        assert db.session.query(Note).count() == 6


def test_the_sanitiser_keeps_what_the_editor_offers_and_nothing_more() -> None:
    html = ('<p><img src="/media/a.png" alt="a" style="float:right; width:120px; '
            'height: 80px; position:fixed; background:url(javascript:x)">'
            '<img src="/media/b.png" alt="b" style="width:expression(alert(1))">'
            '<span class="marker">hi</span><span class="marker evil">x</span>'
            '<span style="color:red">y</span><div onclick="x">d</div></p>'
            '<table style="width:500px;float:left"><tr><td>c</td></tr></table>')
    clean = clean_html(html)
    # the size is written as attributes (images.fit): a height in a style would squash it
    assert ('<img src="/media/a.png" alt="a" width="120" height="80" style="float:right">'
            in clean)
    assert '<img src="/media/b.png" alt="b">' in clean
    assert '<span class="marker">hi</span><span class="marker">x</span><span>y</span>' in clean
    assert "<div" not in clean and "onclick" not in clean
    assert '<table style="width:500px">' in clean
    # one declaration: every element the sanitiser keeps is a rule of the editor's, and back
    rules = editor_config()["allowedContent"].split("; ")
    assert sorted(r.split("[")[0] for r in rules) == sorted(CONTENT)
    assert "img[src,alt,width,height,lang,dir]{float}" in rules  # the editor writes attributes
    assert "span[lang,dir](marker)" in rules


def test_every_static_url_carries_a_content_version(app, client, user, login) -> None:
    login(client, user[0].email)
    anonymous = client.application.test_client()
    for path in ("/", "/notes/new", "/login", "/nowhere", "/api/docs"):
        page = (anonymous if path == "/login" else client).get(path).get_data(as_text=True)
        statics = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
        assert statics, path
        assert all(re.search(r"\?v=[0-9a-f]{12}$", s) for s in statics), (path, statics)
        assert "https://" not in page.split("<body", 1)[0].replace(
            'http://www.w3.org', ''), path  # nothing loaded from outside
    docs = client.get("/api/docs").get_data(as_text=True)
    assert "apiflask.com" not in docs and "favicon.svg?v=" in docs


def test_upgrade_from_0002_keeps_every_note_and_fills_the_new_columns(
        db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0002").returncode == 0
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:  # a site's data as revision 0002 stored it
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO notes (author_id, title, slug, body, body_text, published, "
                "created_at, updated_at) SELECT id, 'Crème Brûlée', 'note', '<p>Crème</p>', "
                "'Crème', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM users"))
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        with engine.connect() as conn:
            assert conn.execute(text("SELECT search_text FROM notes")).scalars().all() == [
                index_text("Crème Brûlée", "Crème")]
            assert conn.execute(text("SELECT display_name FROM users")).scalars().all() == [""]
        with engine.begin() as conn:  # any language now, MariaDB made with latin1 included
            conn.execute(text("UPDATE notes SET title = 'Ελληνικά 中文 🎉'"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT title FROM notes")).scalar() == "Ελληνικά 中文 🎉"
        check = flask_cli(env, "db", "check")  # the models and the migrations agree
        assert check.returncode == 0, check.stderr
        assert flask_cli(env, "db", "downgrade", "0004_data").returncode == 0
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 1
        # every downgrade keeps the notes (a batch rebuild of users would cascade-delete them)
        assert flask_cli(env, "db", "downgrade", "0002").returncode == 0
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 1
    finally:
        engine.dispose()
