"""What a page costs the database (issue 9: pages with the response cache off), on SQLite,
MariaDB and PostgreSQL: the note page runs one statement and the lists a fixed few, whatever
the number of notes, authors and tags (no query per note for its author or its tags), and the
tag names they show (``notes.tags_text``, kept at write time) follow every way tags are
written."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text

from notes.extensions import db
from notes.models import Note

from .conftest import csrf, import_sheet
from .test_data import flask_cli
from .test_publishing import edit
from .test_scale import statements
from .test_site import write


def tags_shown(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('property="article:tag" content="')[1:]]


def test_pages_run_the_same_few_statements_whatever_they_show(app, client, user, other,
                                                              login) -> None:
    app.config["NOTES_PER_PAGE"] = 5
    for account in (user, other):
        writer = app.test_client()
        login(writer, account[0].email)
        for i in range(3):
            write(writer, f"{account[0].email} {i}")
            edit(writer, app, f"{account[0].email} {i}", f"{account[0].email} {i}",
                 tags=f"common, own {i}, {account[0].email.split('@')[0]}")
    slug = "alice-example-com-1"
    assert client.get(f"/n/{slug}").status_code == 200  # connections made, dialect known
    with statements(app, every=True) as seen:
        page = client.get(f"/n/{slug}").get_data(as_text=True)
    assert len(seen) == 1, seen  # the note with its author and its tags
    assert tags_shown(page) == ["alice", "common", "own 1"]
    # the notes (with authors and tag names), never counted (notes.lists); an old page
    # number first finds its place by the notes counted per day (the scheduled notes, the
    # days, the notes of one day: notes.lists.by_days); the tag and author pages first find their
    # tag or author; a list kept by the shared cache asks when the next scheduled note is due
    # (notes.caching: no list is kept past it)
    for path, count in (("/", 2), ("/?page=2", 5), ("/t/common", 3), (f"/a/{user[0].id}", 3),
                        ("/feed.xml", 2)):
        with statements(app, every=True) as seen:
            page = client.get(path).get_data(as_text=True)
        assert len(seen) == count, (path, seen)
        assert "own " in page and ("Alice" in page or "Bob" in page)  # tags and bylines


def test_the_tags_a_page_shows_follow_every_writer(app, client, user, admin, login) -> None:
    login(client, user[0].email)
    write(client, "Tagged")
    edit(client, app, "Tagged", "Tagged", tags="zebra, Éclair, apple")
    assert tags_shown(client.get("/n/tagged").get_data(as_text=True)) == [
        "apple", "zebra", "éclair"]  # by code point, the same on every database
    edit(client, app, "Tagged", "Tagged", tags="apple")
    page = client.get("/n/tagged").get_data(as_text=True)
    assert tags_shown(page) == ["apple"] and "/t/zebra" not in page
    assert client.get("/t/zebra").get_data(as_text=True).count('class="summary"') == 0

    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        auth = {"Authorization": "Bearer " + issue_token(db.session.get(User, user[0].id), "t")}
        nid = db.session.query(Note).filter_by(title="Tagged").one().id
    r = client.patch(f"/api/notes/{nid}", json={"tags": ["Mango", "kiwi"]}, headers=auth)
    assert r.json["tags"] == ["kiwi", "mango"]
    assert tags_shown(client.get("/n/tagged").get_data(as_text=True)) == ["kiwi", "mango"]
    assert client.get("/api/notes", query_string={"tag": "kiwi"}).json["items"][0]["tags"] == [
        "kiwi", "mango"]

    boss = app.test_client()
    login(boss, admin[0].email)
    r = import_sheet(boss, [["id", "title", "author", "body", "tags"],
                            [nid, "Tagged", user[0].email, "<p>text</p>", "pear, ÉCLAIR"],
                            [None, "New one", user[0].email, "<p>x</p>", "kiwi"]])
    assert r.status_code == 302
    # the existing tag's spelling (accents aside the same tag), written in bulk
    assert tags_shown(client.get("/n/tagged").get_data(as_text=True)) == ["pear", "éclair"]
    assert tags_shown(client.get("/n/new-one").get_data(as_text=True)) == ["kiwi"]
    with app.app_context():
        assert db.session.query(Note).filter_by(title="Tagged").one().tag_names == [
            "pear", "éclair"]
    # the admin's form shows them, and saving it unchanged keeps them
    form = boss.get(f"/admin/note/edit/?id={nid}").get_data(as_text=True)
    assert 'value="pear, éclair"' in form
    r = boss.post(f"/admin/note/edit/?id={nid}", data={
        "csrf_token": csrf(boss, f"/admin/note/edit/?id={nid}"), "author": str(user[0].id),
        "title": "Tagged", "body": "<p>text</p>", "tag_list": "pear, éclair, fig",
        "published": "y"})
    assert r.status_code == 302
    assert tags_shown(client.get("/n/tagged").get_data(as_text=True)) == [
        "fig", "pear", "éclair"]
    assert "/t/" + quote("fig") in client.get("/").get_data(as_text=True)


def test_upgrade_to_0006_fills_the_tags_text_and_downgrade_keeps_notes(
        db_url: str, tmp_path: Path) -> None:
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0005_publishing").returncode == 0
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:  # notes and tags as revision 0005 stored them
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('old@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            for slug in ("tagged", "untagged"):
                conn.execute(text(
                    "INSERT INTO notes (author_id, title, slug, body, body_text, published, "
                    "created_at, updated_at) SELECT id, :slug, :slug, '<p>x</p>', 'x', true, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM users"), {"slug": slug})
            for name in ("ελλάδα", "travel", "food"):
                conn.execute(text("INSERT INTO tags (name) VALUES (:n)"), {"n": name})
            conn.execute(text(
                "INSERT INTO note_tags (note_id, tag_id) SELECT notes.id, tags.id FROM notes, "
                "tags WHERE notes.slug = 'tagged'"))
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT slug, tags_text FROM notes")).all())
        assert rows == {"tagged": "food\ntravel\nελλάδα", "untagged": ""}  # noqa: RUF001
        check = flask_cli(env, "db", "check")  # the models and the migrations agree
        assert check.returncode == 0, check.stderr
        assert flask_cli(env, "db", "downgrade", "0005_publishing").returncode == 0
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM note_tags")).scalar() == 3
        assert flask_cli(env, "db", "upgrade").returncode == 0  # and up again
    finally:
        engine.dispose()
