"""Old ``?page=N`` addresses of a tag's page and of ``/api/notes?tag=`` (issue 19): found by the
tag's notes counted per block of ids (``tag_blocks``, kept by triggers on ``note_tags`` and
``notes``: migration 0014), they show the notes their links walk to, whatever was written
since: a tag added or removed, a note trashed, restored, withdrawn, deleted (by the ORM, or by
plain SQL and the foreign key's cascade, which fires no trigger on MariaDB), scheduled; on
the three databases. The counts are what a recount finds."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, insert, select, text, true

from notes import lists, trash
from notes.extensions import db
from notes.models import AuthorBlock, Note, NoteBlock, Tag, TagBlock, live, note_tags

from .test_data import flask_cli, migrations_round_trip
from .test_pages import old_notes
from .test_scale import many, plan, problems, statements  # noqa: F401 (many: a fixture)

SIZE = 7
TAG = 8  # tag7 (bench.scale.fill names tag i "tag{i}", id i + 1)
SHOWN = re.compile(r'<h2 dir="auto"><a href="/n/([^"]+)"')
OLDER = re.compile(r'href="(/t/tag7\?before=[0-9]+)" rel="next"')


def recount(app: Any, block: int) -> dict[tuple[int, int], int]:
    """The links whose note is published and not in the trash, per tag and block."""
    with app.app_context():
        links = db.session.execute(
            select(note_tags.c.tag_id, note_tags.c.note_id).join(Note, Note.id ==
                                                                 note_tags.c.note_id)
            .where(Note.published == true(), live())).all()
    return dict(Counter((t, n // block) for t, n in links))


def kept(app: Any) -> dict[tuple[int, int], int]:
    with app.app_context():
        return {(t, b): n for t, b, n in db.session.execute(
            select(TagBlock.tag_id, TagBlock.block, TagBlock.notes)) if n}


def check_blocks_counted(app: Any) -> None:
    """tag_blocks and author_blocks are what a recount finds (after a restore, say)."""
    assert kept(app) == recount(app, 1000)
    with app.app_context():
        recounted = Counter((a, i // 1000) for a, i in db.session.execute(
            select(Note.author_id, Note.id).where(Note.published == true(), live())))
        authors = {(a, b): n for a, b, n in db.session.execute(
            select(AuthorBlock.author_id, AuthorBlock.block, AuthorBlock.notes)) if n}
    assert authors == dict(recounted)


def refill(app: Any, block: int) -> None:
    """tag_blocks counted by ``block`` ids (the triggers count by 1,000)."""
    with app.app_context():
        db.session.execute(delete(TagBlock))
        db.session.execute(insert(TagBlock), [
            {"tag_id": t, "block": b, "notes": n} for (t, b), n in recount(app, block).items()])
        db.session.commit()


def walk_web(client: Any) -> list[list[str]]:
    pages, url = [], "/t/tag7"
    while url:
        page = client.get(url).get_data(as_text=True)
        pages.append(SHOWN.findall(page))
        older = OLDER.search(page)
        url = older.group(1) if older else ""
    return pages


def walk_api(client: Any, headers: dict[str, str]) -> list[list[int]]:
    pages, url = [], f"/api/notes?tag=tag7&per_page={SIZE}"
    while url:
        r = client.get(url, headers=headers)
        pages.append([n["id"] for n in r.json["items"]])
        url = r.json["next"]
    return pages


def check_plans(app: Any, seen: list[tuple[str, Any]]) -> None:
    with app.app_context():
        dialect = db.engine.dialect.name
    for statement, parameters in seen:
        if "notes" in statement:
            found = plan(app, statement, parameters)
            assert not problems(dialect, statement, found), (statement, found)


def check_authors(app: Any, client: Any, writer: dict[str, str], writer_id: int) -> None:
    """The counts are a recount's, and the API's pages of an author by their numbers are those
    its links walk to (for the writer too)."""
    check_blocks_counted(app)
    for headers in ({}, writer):
        for author in (3, writer_id):
            walked, url = [], f"/api/notes?author={author}&per_page=3"
            while url:
                r = client.get(url, headers=headers)
                walked.append([n["id"] for n in r.json["items"]])
                url = r.json["next"]
            for number in range(2, len(walked) + 1):
                with statements(app) as seen:
                    r = client.get("/api/notes", headers=headers, query_string={
                        "author": author, "per_page": 3, "page": number})
                assert [n["id"] for n in r.json["items"]] == walked[number - 1]
                assert any("author_blocks" in s for s, _ in seen)


def check_every_page(app: Any, client: Any, writer: dict[str, str], monkeypatch: Any,
                     writer_id: int) -> None:
    """The counts are a recount's; every page by its number is the page its links walk to,
    on the site and in the API (anonymous, and a writer who sees their own notes too), with
    blocks of any size; the place is found by tag_blocks."""
    assert kept(app) == recount(app, 1000)
    check_authors(app, client, writer, writer_id)
    web, anonymous, own = walk_web(client), walk_api(client, {}), walk_api(client, writer)
    assert len(web) > 5 and all(len(p) == SIZE for p in web[:-1]) and web[-1]
    assert own != anonymous  # (the writer sees their scheduled note, or draft)
    for block in (1000, 10, 7, 1):
        monkeypatch.setattr(NoteBlock, "BLOCK", block)
        refill(app, block)
        for number in range(2, len(web) + 1):
            with statements(app) as seen:
                page = client.get(f"/t/tag7?page={number}")
            assert SHOWN.findall(page.get_data(as_text=True)) == web[number - 1], (block, number)
            assert any("tag_blocks" in s for s, _ in seen)
            check_plans(app, seen)
        assert client.get(f"/t/tag7?page={len(web) + 1}").status_code == 404
        for headers, walked in (({}, anonymous), (writer, own)):
            for number in range(2, len(walked) + 1):
                with statements(app) as seen:
                    r = client.get("/api/notes", headers=headers, query_string={
                        "tag": "tag7", "per_page": SIZE, "page": number})
                assert [n["id"] for n in r.json["items"]] == walked[number - 1], (
                    block, number, bool(headers))
                assert any("tag_blocks" in s for s, _ in seen)
                check_plans(app, seen)
            r = client.get("/api/notes", headers=headers, query_string={
                "tag": "tag7", "per_page": SIZE, "page": len(walked) + 1})
            assert r.status_code == 404
    monkeypatch.setattr(NoteBlock, "BLOCK", 1000)
    refill(app, 1000)


def sql(app: Any, *statements: str) -> None:
    with app.app_context():
        for statement in statements:
            db.session.execute(text(statement))
        db.session.commit()


@pytest.mark.usefixtures("many")
def test_tag_page_numbers_show_what_their_links_walk_to_after_every_change(
        app, client, user, monkeypatch) -> None:
    from .test_api import token_for

    app.config["NOTES_PER_PAGE"] = SIZE
    # tag7 on every third note more, by plain SQL (the triggers count each link)
    sql(app, f"INSERT INTO note_tags (note_id, tag_id) SELECT id, {TAG} FROM notes WHERE "
             f"id % 3 = 0 AND id NOT IN (SELECT note_id FROM note_tags WHERE tag_id = {TAG})")
    with app.app_context():  # the writer's: a draft and a scheduled note with the tag
        tagged = list(db.session.scalars(select(note_tags.c.note_id).where(
            note_tags.c.tag_id == TAG).order_by(note_tags.c.note_id)))
        db.session.execute(text("UPDATE notes SET author_id = :a WHERE id IN (:d, :s)"),
                           {"a": user[0].id, "d": tagged[5], "s": tagged[30]})
        db.session.commit()
    sql(app, f"UPDATE notes SET published = false WHERE id = {tagged[5]}",
        f"UPDATE notes SET published_at = '2999-01-01 00:00:00' WHERE id = {tagged[30]}")
    writer = token_for(app, user[0].email)
    check_every_page(app, client, writer, monkeypatch, user[0].id)

    with app.app_context():  # through the ORM
        tag = db.session.get(Tag, TAG)
        untagged = db.session.scalar(select(Note).where(Note.id.not_in(tagged)).limit(1))
        untagged.tags.append(tag)  # a tag added
        removed = db.session.get(Note, tagged[10])
        removed.tags = [t for t in removed.tags if t.id != TAG]  # and removed
        trash.move(db.session.get(Note, tagged[20]))  # to the trash
        db.session.get(Note, tagged[21]).published = False  # withdrawn
        db.session.get(Note, tagged[22]).published_at = (  # scheduled
            datetime.now(UTC) + timedelta(days=2))
        trash.purge(db.session.get(Note, tagged[23]))  # deleted, links first
        db.session.commit()
    sql(app, f"DELETE FROM notes WHERE id = {tagged[24]}",  # deleted: its links by the cascade
        f"DELETE FROM note_tags WHERE note_id = {tagged[25]} AND tag_id = {TAG}",  # plain SQL
        f"UPDATE notes SET deleted_at = published_at WHERE id = {tagged[26]}",
        f"DELETE FROM note_tags WHERE note_id = {tagged[26]} AND tag_id = {TAG}",
        f"INSERT INTO note_tags (note_id, tag_id) VALUES ({tagged[26]}, {TAG})",  # in the trash
        "DELETE FROM tags WHERE id = 10")  # another tag, gone with its links and counts
    with app.app_context():
        assert db.session.scalar(select(Note.id).where(Note.id == tagged[24])) is None
        assert not db.session.scalar(select(TagBlock.notes).where(TagBlock.tag_id == 10))
    check_every_page(app, client, writer, monkeypatch, user[0].id)

    with app.app_context():  # back again
        trash.restore(db.session.get(Note, tagged[20]))
        trash.restore(db.session.get(Note, tagged[26]))
        db.session.get(Note, tagged[21]).published = True
        db.session.get(Note, tagged[22]).published_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.get(Note, tagged[5]).published = True
        db.session.commit()
    check_every_page(app, client, writer, monkeypatch, user[0].id)

    # more notes scheduled, or drafts of the reader, than the bounds: skipped to, the same
    sql(app, f"UPDATE notes SET published = false WHERE id = {tagged[5]}")
    web, anonymous, own = walk_web(client), walk_api(client, {}), walk_api(client, writer)
    monkeypatch.setattr(lists, "SCHEDULED_MAX", 0)
    monkeypatch.setattr(lists, "OWN_MAX", 0)
    for path, headers, walked in (("/t/tag7", None, web), ("/api/notes", {}, anonymous),
                                  ("/api/notes", writer, own)):
        with statements(app) as seen:
            if headers is None:
                shown = SHOWN.findall(client.get(f"{path}?page=3").get_data(as_text=True))
            else:
                shown = [n["id"] for n in client.get(path, headers=headers, query_string={
                    "tag": "tag7", "per_page": SIZE, "page": 3}).json["items"]]
        assert shown == walked[2]
        assert not any("tag_blocks" in s for s, _ in seen)


def test_upgrade_to_0014_counts_each_tags_notes_per_block(db_url: str, tmp_path: Path) -> None:
    """tag_blocks: the links whose note is published and not in the trash, per tag and 1,000
    ids, counted by the upgrade, then by triggers; the downgrade drops them."""
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0013_words").returncode == 0
    engine = create_engine(db_url)

    def blocks() -> dict[tuple[int, int], int]:
        with engine.connect() as conn:
            return {(t, b): n for t, b, n in conn.execute(text(
                "SELECT tag_id, block, notes FROM tag_blocks")) if n}

    try:
        with engine.begin() as conn:
            old_notes(conn)
            conn.execute(text("INSERT INTO tags (id, name) VALUES (1, 'one'), (2, 'two')"))
            conn.execute(text("INSERT INTO note_tags (note_id, tag_id) VALUES (1, 1), (2, 1), "
                              "(2, 2), (3, 1), (1500, 1), (1600, 2)"))
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        assert blocks() == {(1, 0): 2, (2, 0): 1, (1, 1): 1}
        with engine.begin() as conn:  # and follows what is written now
            conn.execute(text("UPDATE notes SET published = true WHERE id = 3"))  # 1: +1
            conn.execute(text("UPDATE notes SET deleted_at = NULL WHERE id = 1600"))  # 2: +1
            conn.execute(text("DELETE FROM note_tags WHERE note_id = 1"))  # 1: -1
            conn.execute(text("DELETE FROM note_tags WHERE note_id = 2 AND tag_id = 2"))
            conn.execute(text("DELETE FROM notes WHERE id = 1"))  # (no link left)
            conn.execute(text("UPDATE notes SET published = false WHERE id = 1500"))
            conn.execute(text("INSERT INTO note_tags (note_id, tag_id) VALUES (3, 2)"))
        assert blocks() == {(1, 0): 2, (2, 0): 1, (2, 1): 1}
        with engine.begin() as conn:  # a note deleted with its links still there
            conn.execute(text("DELETE FROM note_tags WHERE note_id = 2"))
            conn.execute(text("DELETE FROM note_tags WHERE note_id = 3 AND tag_id = 1"))
            conn.execute(text("DELETE FROM notes WHERE id = 3"))  # tag 2: -1
            conn.execute(text("DELETE FROM notes WHERE id = 2"))
        assert blocks() == {(2, 1): 1}
        migrations_round_trip(env, engine, "0013_words", notes=2)
        assert blocks() == {(2, 1): 1}
    finally:
        engine.dispose()


@pytest.mark.usefixtures("many")
def test_a_tag_page_by_its_number_skips_within_one_block(app, client) -> None:
    """The statement that finds a tag page's place reads the tag's links from the end of one
    block of ids, not from the newest."""
    app.config["NOTES_PER_PAGE"] = 2
    with statements(app) as seen:
        assert client.get("/t/tag7?page=3").status_code == 200
    within = [(s, p) for s, p in seen if re.match(r"SELECT (STRAIGHT_JOIN )?note_tags.note_id", s)]
    assert len(within) == 1
    statement, _ = within[0]
    assert "note_tags.note_id < " in statement, statement
    check_plans(app, within)


def test_upgrade_to_0015_counts_each_authors_notes_per_block(db_url: str, tmp_path: Path
                                                            ) -> None:
    """author_blocks: an author's notes published and not in the trash per 1,000 ids, counted
    by the upgrade, then by triggers (a note moved to another author moves its count)."""
    env = {"NOTES_DATABASE_URL": db_url, "NOTES_DATA_DIR": str(tmp_path)}
    assert flask_cli(env, "db", "upgrade", "0014_tags").returncode == 0
    engine = create_engine(db_url)

    def blocks() -> dict[tuple[int, int], int]:
        with engine.connect() as conn:
            return {(a, b): n for a, b, n in conn.execute(text(
                "SELECT author_id, block, notes FROM author_blocks")) if n}

    try:
        with engine.begin() as conn:
            old_notes(conn)
            author = conn.execute(text("SELECT id FROM users")).scalar()
        r = flask_cli(env, "db", "upgrade")
        assert r.returncode == 0, r.stderr
        assert blocks() == {(author, 0): 2, (author, 1): 1}
        with engine.begin() as conn:  # and follows what is written now
            conn.execute(text(
                "INSERT INTO users (email, password_hash, is_admin, active, created_at) "
                "VALUES ('new@example.com', 'x', false, true, '2026-01-01 00:00:00')"))
            other = conn.execute(text(
                "SELECT id FROM users WHERE email = 'new@example.com'")).scalar()
            conn.execute(text("UPDATE notes SET published = true WHERE id = 3"))
            conn.execute(text("UPDATE notes SET author_id = :o WHERE id = 2"), {"o": other})
            conn.execute(text("DELETE FROM notes WHERE id = 1"))
            conn.execute(text("UPDATE notes SET deleted_at = NULL WHERE id = 1600"))
        assert blocks() == {(author, 0): 1, (other, 0): 1, (author, 1): 2}
        migrations_round_trip(env, engine, "0014_tags", notes=4)
        assert blocks() == {(author, 0): 1, (other, 0): 1, (author, 1): 2}
    finally:
        engine.dispose()
