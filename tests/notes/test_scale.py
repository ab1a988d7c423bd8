"""Notes at any number (issue 19), on SQLite, MariaDB and PostgreSQL: the statements every
public list and search runs are answered along an index (their query plans, never timings);
search means the same on the three databases and follows every writer; pages go deep by their
links and old page numbers; the sitemap index reaches every published note."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from bench.scale import fill
from sqlalchemy import event, select, text, true

from notes import search, views
from notes.extensions import db
from notes.models import Note
from notes.search import parse
from notes.search import postgresql as postgresql_search

from .conftest import import_sheet
from .test_site import write


@contextmanager
def statements(app: Any, every: bool = False) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements the app runs meanwhile (``every``: all statements), with their
    parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if every or statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(app: Any, statement: str, parameters: Any) -> str:
    """The database's plan for a statement, as text. PostgreSQL is told that scanning the
    whole table or sorting is dear (``enable_seqscan``/``enable_sort`` off), as it is at a
    million notes: with a few hundred it would rightly prefer them; it still chooses them
    when no index can serve."""
    with app.app_context():
        raw = db.engine.raw_connection()
        dialect = db.engine.dialect.name
    try:
        cursor = raw.cursor()
        if dialect == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        if dialect == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            if postgresql_search.BITMAPS in statement:  # as the search ran it (its matches
                for setting in postgresql_search.SCANS:  # found by bitmaps, then sorted)
                    cursor.execute(f"SET {setting} = off")
            else:
                cursor.execute("SET enable_sort = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            return "\n".join(str(row[0]) for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + statement, parameters)
        names = [d[0] for d in cursor.description]
        return "\n".join(str(dict(zip(names, row, strict=True))) for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


def problems(dialect: str, statement: str, found: str) -> list[str]:
    """What in a plan reads or sorts all notes (or all of a tag's links)."""
    wrong = []
    limited = " LIMIT " in statement.upper()
    if dialect == "sqlite":
        for line in found.splitlines():
            if "TEMP B-TREE" in line:
                wrong.append(line)
            # a scan in the table's own (id) order is an index read when it stops at a LIMIT
            if re.match(r"SCAN (notes|note_tags)\b", line) and "INDEX" not in line \
                    and not limited:
                wrong.append(line)
    elif dialect == "postgresql":
        # a search's matches found by the GIN index are sorted (a rare word's, or those of a
        # window of the newest ids: see notes.search.postgresql), not all notes
        by_index = "search_vector" in statement and "ix_notes_search_vector" in found
        for line in found.splitlines():
            if re.search(r"Seq Scan on (notes|note_tags)\b", line) or (
                    re.search(r"\bSort\b", line) and not by_index):
                wrong.append(line.strip())
    else:
        for line in found.splitlines():
            row = eval(line)  # our own repr of the EXPLAIN row, above
            if row["table"] not in ("notes", "note_tags"):
                continue
            # InnoDB's FULLTEXT hands its matches unordered: they are sorted (see
            # docs/notes/search.md), but found by the index
            if row["type"] == "ALL" or ("filesort" in (row["Extra"] or "")
                                        and row["type"] != "fulltext"):
                wrong.append(line)
    searching = ("AGAINST", "notes_fts", "search_vector")
    if any(s in statement for s in searching) and not any(
            s in found for s in ("fulltext", "VIRTUAL TABLE", "search_vector")):
        wrong.append("the full-text index is not used")
    return wrong


@pytest.fixture
def many(app: Any) -> dict[str, str]:
    """300 published notes of 20 authors and 50 tags, written in bulk (as the bench does)."""
    with app.app_context():
        words = fill(300)
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("ANALYZE"))
            elif conn.dialect.name != "sqlite":
                conn.execute(text("ANALYZE TABLE notes, note_tags"))
            conn.commit()
    return words


def test_every_list_and_search_reads_along_an_index(app, client, many) -> None:
    app.config["NOTES_PER_PAGE"] = 5
    older = re.search(r'href="/\?before=([0-9-]+)"', client.get("/").get_data(as_text=True))
    assert older
    pages = ["/", "/?page=7", f"/?before={older.group(1)}", "/a/3", "/a/3?page=2", "/t/tag7",
             "/t/tag7?page=2", "/feed.xml", "/sitemap.xml", "/sitemap-1.xml",
             f"/?q={many['rare']}", f"/?q={many['common']}",
             f"/?q={many['common']}+{many['second']}", "/api/notes", "/api/notes?after=150",
             "/api/notes?author=3", "/api/notes?tag=tag7", "/api/notes?published=true",
             f"/api/notes?q={many['common']}"]
    with app.app_context():
        dialect = db.engine.dialect.name
    for path in pages:
        with statements(app) as seen:
            assert client.get(path).status_code == 200, path
        assert seen, path
        for statement, parameters in seen:
            if "notes" not in statement:
                continue
            if postgresql_search.BITMAPS in statement:
                continue  # of 300 notes, any plan reads them all: see the test below
            found = plan(app, statement, parameters)
            assert not problems(dialect, statement, found), (path, statement, found)


def test_postgresql_asks_the_newest_ids_or_the_index_by_its_statistics(app, client,
                                                                      monkeypatch) -> None:
    """On PostgreSQL, a word among the column's common elements (pg_stats) is asked within
    a window of the newest ids, found by bitmap scans (the GIN index's notes, intersected with
    the window's); a rare word, of the GIN index alone; a word in most notes, along the
    primary key within its window; a word in most notes beside a rare one: the index for the
    rare one only. The same notes as asking the whole index."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL's statistics")
        words = fill(3000)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # as autovacuum does after a bulk load
        postgresql_search.forget()
        # 20 of 3,000 notes stand for 200 of 30,000: the middling word's window is 1/2 of them
        monkeypatch.setattr(search, "CANDIDATES", 20)
        stats = postgresql_search.shares()
        assert stats is not None
        assert stats.share(parse(words["rare"])) is None
        assert 0.01 < (stats.share(parse(words["middling"])) or 0) < 0.05
        every = {w: list(db.session.scalars(
            select(Note.id).where(postgresql_search.PostgreSQL().condition(parse(w)))
            .order_by(Note.id.desc()).limit(search.CANDIDATES)))
            for w in (words["middling"], words["rare"], words["common"],
                      f"{words['common']} {words['rare']}")}
    for word, ids in every.items():
        with statements(app) as seen:
            r = client.get("/api/notes", query_string={"q": word, "per_page": 100})
        assert {n["id"] for n in r.json["items"]} == set(ids)
        asked = [(s, p) for s, p in seen if "search_vector @@" in s]
        assert asked, word
        found = [plan(app, s, p) for s, p in asked]
        if word == words["rare"]:  # the index alone, its notes sorted
            assert len(asked) == 1 and "notes.id >" not in asked[0][0]
            assert "Bitmap Index Scan on ix_notes_search_vector" in found[0], found[0]
        elif " " in word:  # the index for the rare word alone, its notes checked for both
            assert len(asked) == 1 and "ts_match_vq" in asked[0][0]
            index = found[0].split("Bitmap Index Scan on ix_notes_search_vector")
            assert len(index) == 2 and words["common"] not in index[1].split("\n")[1], found[0]
        elif word == words["middling"]:  # a window of the newest ids, found by bitmaps (at
            # 3,000 notes the planner checks the window's notes; at 20,000 and more it
            # intersects them with the GIN index's: BitmapAnd)
            assert "notes.id >" in asked[0][0] and postgresql_search.BITMAPS in asked[0][0]
            assert "Index Cond: (id >" in found[0] and "Bitmap Heap Scan" in found[0], found[0]
        else:  # a word in most notes: its window, along the primary key
            assert postgresql_search.BITMAPS not in asked[0][0]
            assert "notes.id >" in asked[0][0] and "pk_notes" in found[0], found[0]
    # the same notes as the whole index gives, also when the first window holds too few
    # (windows STEP times wider follow)
    for spare in (postgresql_search.SPARE, 0.2):
        monkeypatch.setattr(postgresql_search, "SPARE", spare)
        with app.app_context(), statements(app) as seen:
            for word, ids in every.items():
                assert postgresql_search.PostgreSQL()._ids(
                    parse(word), true(), search.CANDIDATES) == ids, (word, spare)
        if spare < 1:
            assert sum("notes.id <=" in s for s, _ in seen) >= 2


CORPUS = {  # title: text
    "Ελληνικά νέα": "Στην Αθήνα σήμερα",
    "Café crème": "Straße und Grüße; naïve coöperation",
    "Русский текст": "Ёлка и ЁЖИК",
    "東京タワー": "東京タワーに行った。とても高い。",
    "中文笔记": "我们今天学习中文",
    "Concatenate": "strings in C",
    "Cat facts": "a cat sat",
}
QUERIES = {  # query: the titles it finds, on every database
    "cat": {"Cat facts"},  # words that start with it: not "concatenate"
    "CONCAT": {"Concatenate"},
    "ελληνικα ΑΘΗΝΑ": {"Ελληνικά νέα"},
    "cafe CREME": {"Café crème"},
    "strasse": {"Café crème"},
    "naive cooperation": {"Café crème"},
    "ежик елка": {"Русский текст"},
    "東京": {"東京タワー"},
    "タワー": {"東京タワー"},
    "高い": {"東京タワー"},
    "中文": {"中文笔记"},
    "学": {"中文笔记"},
    "c": {"Concatenate"},  # a word of one letter: that word only
    "cat absent": set(),  # every word must match
    "": set(),
    "!!! ???": set(),
}


def found(client: Any, query: str) -> set[str]:
    r = client.get("/api/notes", query_string={"q": query, "per_page": 100})
    return {n["title"] for n in r.json["items"]}


def test_search_finds_the_same_notes_on_every_database(client, user, login) -> None:
    login(client, user[0].email)
    for title, body in CORPUS.items():
        write(client, title, f"<p>{body}</p>")
    for query, titles in QUERIES.items():
        if query:
            assert found(client, query) == titles, query
    page = client.get("/", query_string={"q": "東京 cafe"}).get_data(as_text=True)
    assert "No notes match" in page
    page = client.get("/", query_string={"q": "タワ"}).get_data(as_text=True)
    assert "<mark>タワ</mark>" in page
    page = client.get("/", query_string={"q": "cat"}).get_data(as_text=True)
    assert "<mark>Cat</mark> facts" in page and "Con<mark>" not in page


def test_search_follows_every_writer(app, client, user, admin, login) -> None:
    login(client, user[0].email)
    write(client, "Original words", "<p>alpha</p>")
    assert found(client, "original") == {"Original words"}
    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        auth = {"Authorization": "Bearer " + issue_token(db.session.get(User, user[0].id), "t")}
        nid = db.session.query(Note).filter_by(title="Original words").one().id
    client.patch(f"/api/notes/{nid}", json={"title": "Renamed", "body": "<p>beta</p>"},
                 headers=auth)
    assert found(client, "original") == set() and found(client, "alpha") == set()
    assert found(client, "renamed beta") == {"Renamed"}
    boss = app.test_client()
    login(boss, admin[0].email)
    r = import_sheet(boss, [["id", "title", "author", "body", "published"],
                            [nid, "Imported title", user[0].email, "<p>gamma</p>", "yes"],
                            [None, "Fresh import", user[0].email, "<p>delta</p>", "yes"]])
    assert r.status_code == 302
    assert found(client, "gamma") == {"Imported title"} and found(client, "beta") == set()
    assert found(client, "delta") == {"Fresh import"}
    with app.app_context():  # a row written by plain SQL (a restore), and one deleted
        from notes.models import plain_text
        from notes.search.tokens import index_text

        db.session.execute(text(
            "INSERT INTO notes (author_id, title, slug, body, body_text, search_text, "
            "published, created_at, updated_at, published_at, tags_text) VALUES (:a, "
            "'Restored', 'restored', '<p>epsilon</p>', 'epsilon', :s, :t, :now, :now, :now, "
            "'')"), {"a": user[0].id, "s": index_text("Restored", plain_text("<p>epsilon</p>")),
                      "t": True, "now": "2026-01-01 00:00:00"})
        db.session.commit()
    assert found(client, "epsilon") == {"Restored"}
    client.delete(f"/api/notes/{nid}", headers=auth)
    assert found(client, "gamma") == set()


def test_a_query_is_bounded() -> None:
    from notes.search import QUERY_MAX, WORDS_MAX, parse
    from notes.search.query import TERMS_MAX

    long = parse(" ".join(f"word{i}" for i in range(100)))
    assert len(long.words) == WORDS_MAX and len(long.text) <= QUERY_MAX
    assert len(parse("漢" * 500).terms) <= TERMS_MAX
    assert not parse("   ") and not parse("---")


def test_pages_go_deep_by_their_links_and_old_numbers(app, client, many) -> None:
    app.config["NOTES_PER_PAGE"] = 7
    walked, url, pages = [], "/", []
    while url:
        page = client.get(url).get_data(as_text=True)
        pages.append(re.findall(r'<h2 dir="auto"><a href="(/n/[^"]+)"', page))
        walked += pages[-1]
        nxt = re.search(r'href="(/\?before=[0-9-]+)" rel="next"', page)
        url = nxt.group(1) if nxt else ""
    assert len(walked) == len(set(walked)) == 300
    for number in (1, 2, 20, 43):  # the old addresses show the same notes
        page = client.get(f"/?page={number}").get_data(as_text=True)
        assert re.findall(r'<h2 dir="auto"><a href="(/n/[^"]+)"', page) == pages[number - 1]
    assert client.get("/?page=44").status_code == 404
    for bad in ("/?before=x", "/?before=1-2-3", "/?after=99999999999999999999-1"):
        assert client.get(bad).status_code == 404, bad
    # back by the "newer" links, from the last page to the first
    back, url = [], f"/?page={len(pages)}"
    while url:
        page = client.get(url).get_data(as_text=True)
        back = re.findall(r'<h2 dir="auto"><a href="(/n/[^"]+)"', page) + back
        prev = re.search(r'href="(/\?after=[0-9-]+)" rel="prev"', page)
        url = prev.group(1) if prev else ""
    assert back == walked


def test_the_sitemap_index_reaches_every_published_note(app, client, user, login,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(views, "SITEMAP_PART", 5)
    login(client, user[0].email)
    for i in range(12):
        write(client, f"Note {i}", "<p>x</p>", published=i != 4)
    client.get("/logout")
    index = client.get("/sitemap.xml").get_data(as_text=True)
    parts = re.findall(r"<loc>http://localhost(/sitemap-[0-9]+\.xml)</loc>", index)
    assert parts == ["/sitemap-0.xml", "/sitemap-1.xml", "/sitemap-2.xml", "/sitemap-3.xml"]
    urls: list[str] = []
    for part in parts:
        xml = client.get(part).get_data(as_text=True)
        assert xml.count("<url>") <= 5
        urls += re.findall(r"<loc>http://localhost(/n/[^<]+)</loc><lastmod>[0-9T:Z-]+</lastmod>",
                           xml)
    assert sorted(urls) == sorted(f"/n/note-{i}" for i in range(12) if i != 4)
    assert "<loc>http://localhost/</loc>" in client.get("/sitemap-0.xml").get_data(as_text=True)
    assert client.get("/sitemap-4.xml").status_code == 404


def test_a_sitemap_part_gives_each_note_its_address_and_its_time(app, client, user,
                                                                    login) -> None:
    """The database formats ``lastmod`` (isotime's form, on each of the three), and a slug
    outside ASCII is percent-encoded, the others written as they are."""
    login(client, user[0].email)
    write(client, "Plain words", "<p>x</p>")
    write(client, "中文筆記 café", "<p>x</p>")
    client.get("/logout")
    with app.test_request_context():
        notes = db.session.query(Note).order_by(Note.id).all()
        expected = [(views.absolute("views.note", slug=n.slug), views.isotime(n.updated_at))
                    for n in notes]
        assert any(not n.slug.isascii() for n in notes)
    xml = client.get("/sitemap-1.xml").get_data(as_text=True)
    found = re.findall(r"<url><loc>([^<]+)</loc><lastmod>([^<]+)</lastmod></url>", xml)
    assert found == expected
    assert all(loc.isascii() and "%" in loc for loc, _ in found[1:])



def test_the_apis_old_page_numbers_find_their_place_by_counted_blocks(app, client, user,
                                                                     many, monkeypatch) -> None:
    """``/api/notes?page=N`` (an older interface beside ``after=``) answers the notes the
    ``after=`` links walk to, for a reader and for a writer who sees their drafts too. The
    public list finds the block of ids a page starts in by the notes counted per block
    (note_blocks, kept by triggers: migration 0013), less those scheduled for later, and is
    read along the primary key from that block; whatever was written since. A writer's list
    adds their drafts to the counts (not with ``published=true``)."""
    from notes import lists
    from notes.models import NoteBlock

    from .test_api import token_for

    monkeypatch.setattr(NoteBlock, "BLOCK", 1000)  # (what the triggers count by)
    with app.app_context():  # a draft, a note in the trash, one scheduled, one deleted
        db.session.execute(text("UPDATE notes SET published = false WHERE id = 5"))
        db.session.execute(text("UPDATE notes SET deleted_at = published_at WHERE id = 9"))
        db.session.execute(text("UPDATE notes SET published_at = '2999-01-01 00:00:00' "
                                "WHERE id = 12"))
        db.session.execute(text("UPDATE notes SET author_id = :a WHERE id IN (5, 40)"),
                           {"a": user[0].id})
        db.session.execute(text("DELETE FROM note_tags WHERE note_id = 77"))
        db.session.execute(text("DELETE FROM notes WHERE id = 77"))
        db.session.commit()
        kept = dict(db.session.execute(text("SELECT block, notes FROM note_blocks")).all())
        assert {b: n for b, n in kept.items() if n} == {0: 300 - 3}  # 5, 9, 77: not counted
        authors = {a: n for a, b, n in db.session.execute(text(
            "SELECT author_id, block, notes FROM author_blocks")) if n}
        assert authors == dict(Counter(db.session.scalars(text(
            "SELECT author_id FROM notes WHERE published = :t AND deleted_at IS NULL"),
            {"t": True})))  # (note 40 moved to the writer: their count follows)
        dialect = db.engine.dialect.name
    writer, public = token_for(app, user[0].email), []
    for headers, query in (({}, {}), (writer, {}), ({}, {"author": 3}),
                           (writer, {"published": "true"}), ({}, {"published": "true"})):
        walked, url = [], "/api/notes?" + "&".join(f"{k}={v}" for k, v in
                                                     {"per_page": 7, **query}.items())
        while url:
            r = client.get(url, headers=headers)
            walked.append([n["id"] for n in r.json["items"]])
            url = r.json["next"]
        assert walked[-1] and all(len(p) == 7 for p in walked[:-1])
        ids = [i for p in walked for i in p]
        assert ids == sorted(set(ids)) and not {9, 12, 77} & set(ids)
        assert (5 in ids) == (headers == writer and not query)  # (the writer's draft)
        public = public if headers or query else walked
        for block in (1000, 10, 7, 1):  # blocks of any size say the same
            monkeypatch.setattr(NoteBlock, "BLOCK", block)
            with app.app_context():
                div = "id / :b" if dialect in ("sqlite", "postgresql") else "id DIV :b"
                db.session.execute(text("DELETE FROM note_blocks"))
                db.session.execute(text("DELETE FROM author_blocks"))
                db.session.execute(text(
                    f"INSERT INTO note_blocks (block, notes) SELECT {div}, count(*) FROM notes "
                    f"WHERE published = :t AND deleted_at IS NULL GROUP BY {div}"),
                    {"b": block, "t": True})
                db.session.execute(text(
                    f"INSERT INTO author_blocks (author_id, block, notes) SELECT author_id, "
                    f"{div}, count(*) FROM notes WHERE published = :t AND deleted_at IS NULL "
                    f"GROUP BY author_id, {div}"), {"b": block, "t": True})
                db.session.commit()
            for number in (2, len(walked) // 2, len(walked)):
                with statements(app) as seen:
                    r = client.get("/api/notes", query_string={
                        "per_page": 7, "page": number, **query}, headers=headers)
                assert [n["id"] for n in r.json["items"]] == walked[number - 1], number
                # (the writer's drafts are added to the counts; an author's: author_blocks)
                table = "author_blocks" if "author" in query else "note_blocks"
                counted = any(table in s for s, _ in seen)
                assert counted or number == 1
                for statement, parameters in seen:
                    if counted and "OFFSET" in statement.upper() and "notes" in statement:
                        found = plan(app, statement, parameters)
                        assert not problems(dialect, statement, found), found
            r = client.get("/api/notes", query_string={"per_page": 7, "page": len(walked) + 1,
                                                       **query}, headers=headers)
            assert r.status_code == 404
    monkeypatch.setattr(lists, "SCHEDULED_MAX", 0)  # more scheduled than that: skipped to
    with statements(app) as seen:
        r = client.get("/api/notes", query_string={"per_page": 7, "page": 3})
    assert [n["id"] for n in r.json["items"]] == public[2]
    assert not any("note_blocks" in s for s, _ in seen)
