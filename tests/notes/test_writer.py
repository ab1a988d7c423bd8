"""Issue 18, "a writer never loses work", through the real app on SQLite, MariaDB and
PostgreSQL: edit conflicts on every write path (editor, API, admin, Excel import), revisions
and restore, the trash and its purge (images included), deleting a user, a form posted after
the session ended."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select, update

from notes.extensions import db
from notes.models import Note, NoteRevision, User, utcnow
from tests.web import PNG

from .conftest import PASSWORD, csrf, make_app, xlsx
from .test_api import token_for
from .test_site import write


def only_note(app) -> Note:  # type: ignore[no-untyped-def]
    with app.app_context():
        note = db.session.scalars(select(Note)).one()
        db.session.expunge(note)
        return note


def editor(client, note_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The editor's form as it was opened: its hidden fields (token, version)."""
    page = client.get(f"/notes/{note_id}/edit").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    version = re.search(r'id="version" name="version" type="hidden" value="(\d+)"', page)
    assert token and version, page
    return {"csrf_token": token.group(1), "version": version.group(1)}


def save(client, note_id: int, opened: dict[str, str], title: str, body: str,  # type: ignore[no-untyped-def]
         tags: str = "", published: bool = True, **extra: str):
    data = {**opened, "title": title, "body": body, "tags": tags, **extra}
    if published:
        data["published"] = "y"
    return client.post(f"/notes/{note_id}/edit", data=data)


def revisions_of(app, note_id: int) -> list[NoteRevision]:  # type: ignore[no-untyped-def]
    with app.app_context():
        found = list(db.session.scalars(select(NoteRevision).where(
            NoteRevision.note_id == note_id).order_by(NoteRevision.id)))
        db.session.expunge_all()
        return found


def test_two_editors_the_second_gets_409_with_its_text_and_a_choice(app, client, user,
                                                                      login) -> None:
    login(client, user[0].email)
    write(client, "Shared", "<p>first paragraph</p>")
    nid = only_note(app).id
    tab_a, tab_b = editor(client, nid), editor(client, nid)
    r = save(client, nid, tab_a, "Shared, retitled",
             "<p>first paragraph</p><p>A's paragraph</p>", tags="travel")
    assert r.status_code == 302
    r = save(client, nid, tab_b, "Shared", "<p>first paragraph</p><p>B's paragraph</p>")
    assert r.status_code == 409
    page = r.get_data(as_text=True)
    assert "B&#39;s paragraph" in page  # the writer's own text, kept in the form
    assert "this note was changed since you opened it" in page
    # what changed since B opened it: A's title, tag and paragraph
    assert re.search(r"<ins[^>]*>.*A&#39;s paragraph</ins>", page)
    assert "Shared, retitled" in page and "travel" in page
    assert 'name="overwrite" value="2"' in page and "Take theirs" in page
    note = only_note(app)
    assert note.title == "Shared, retitled" and "A's paragraph" in note.body  # A's work is safe
    # "Save mine anyway": deliberate, and A's version stays in the history
    r = save(client, nid, tab_b, "Shared", "<p>first paragraph</p><p>B's paragraph</p>",
             overwrite="2")
    assert r.status_code == 302
    assert "B's paragraph" in only_note(app).body
    kept = revisions_of(app, nid)
    assert [r.version for r in kept] == [1, 2, 3]
    assert "A's paragraph" in kept[1].body and kept[1].tags_text == "travel"
    assert [r.via for r in kept] == ["editor", "editor", "editor"]
    assert kept[2].by_name == "Alice"


def test_a_stale_form_never_republishes(app, client, user, login) -> None:
    login(client, user[0].email)
    write(client, "Public for now")
    note = only_note(app)
    opened = editor(client, note.id)
    r = client.post(f"/notes/{note.id}/publish",
                    data={"csrf_token": opened["csrf_token"], "published": "0"})
    assert r.status_code == 302
    # the same unpublish sent again from a stale My notes page does not flip it back
    client.post(f"/notes/{note.id}/publish",
                data={"csrf_token": opened["csrf_token"], "published": "0"})
    assert not only_note(app).published
    r = save(client, note.id, opened, "Public for now", "<p>text</p><p>more</p>")
    assert r.status_code == 409
    assert not only_note(app).published
    assert app.test_client().get(f"/n/{note.slug}").status_code == 404


def test_api_etag_and_if_match(app, client, user) -> None:
    auth = token_for(app, user[0].email)
    made = client.post("/api/notes", json={"title": "Via API", "published": True}, headers=auth)
    nid, etag = made.json["id"], made.headers["ETag"]
    assert etag == f'"{nid}-1"' and made.json["version"] == 1
    r = client.get(f"/api/notes/{nid}", headers=auth)
    assert r.headers["ETag"] == etag
    r = client.patch(f"/api/notes/{nid}", json={"title": "Second"},
                     headers={**auth, "If-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] == f'"{nid}-2"'
    stale = client.patch(f"/api/notes/{nid}", json={"title": "Lost?"},
                         headers={**auth, "If-Match": etag})
    assert stale.status_code == 412 and "changed since" in stale.json["message"]
    assert client.get(f"/api/notes/{nid}").json["title"] == "Second"
    assert client.delete(f"/api/notes/{nid}", headers={**auth, "If-Match": etag}
                         ).status_code == 412
    # without If-Match, as before: the last write wins
    assert client.patch(f"/api/notes/{nid}", json={"title": "Third"}, headers=auth
                        ).status_code == 200
    assert client.patch(f"/api/notes/{nid}", json={"title": "Fourth"},
                        headers={**auth, "If-Match": "*"}).status_code == 200
    spec = client.get("/openapi.json").json
    patch = spec["paths"]["/api/notes/{note_id}"]["patch"]
    assert {"409", "412"} <= set(patch["responses"])
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in patch["parameters"])
    assert "ETag" in patch["responses"]["200"]["headers"]
    assert client.delete(f"/api/notes/{nid}", headers={**auth, "If-Match": f'"{nid}-4"'}
                         ).status_code == 204


def test_revisions_list_show_restore(app, client, user, login) -> None:
    auth = token_for(app, user[0].email)
    nid = client.post("/api/notes", json={"title": "One", "body": "<p>alpha</p>",
                                          "tags": ["x"]}, headers=auth).json["id"]
    client.patch(f"/api/notes/{nid}", json={"title": "Two", "body": "<p>beta</p>"},
                 headers=auth)
    client.patch(f"/api/notes/{nid}", json={"published": True}, headers=auth)
    listed = client.get(f"/api/notes/{nid}/revisions", headers=auth).json["items"]
    assert [r["title"] for r in listed] == ["Two", "Two", "One"]  # newest first
    assert set(listed[0]) >= {"id", "created_at", "author", "title"}
    assert listed[0]["author"] == "Alice" and listed[-1]["via"] == "api"
    first = client.get(f"/api/notes/{nid}/revisions/{listed[-1]['id']}", headers=auth).json
    assert first["body"] == "<p>alpha</p>" and first["tags"] == ["x"]
    other = token_for(app, user[0].email)
    assert client.get(f"/api/notes/{nid}/revisions").status_code == 401
    r = client.post(f"/api/notes/{nid}/revisions/{listed[-1]['id']}/restore", headers=other)
    assert r.status_code == 200 and r.json["title"] == "One" and r.json["version"] == 4
    assert r.json["published"] is True  # restoring old words does not change publishing
    assert client.get(f"/api/notes/{nid}/revisions", headers=auth).json["items"][0]["via"] == (
        "restore")
    # in the editor: the History page, a diff between two revisions, "restore this"
    login(client, user[0].email)
    page = client.get(f"/notes/{nid}/history?a={listed[-1]['id']}&b={listed[0]['id']}"
                      ).get_data(as_text=True)
    assert "Version 1 → version 3" in page
    assert re.search(r"<del[^>]*>.*alpha</del>", page) and re.search(r"<ins[^>]*>.*beta</ins>",
                                                                        page)
    r = client.post(f"/notes/{nid}/history/{listed[0]['id']}/restore",
                    data={"csrf_token": csrf(client, f"/notes/{nid}/history")})
    assert r.status_code == 302
    assert only_note(app).title == "Two" and only_note(app).version == 5


def test_revisions_kept_are_bounded_and_their_images_go_after_them(db_url, tmp_path: Path,
                                                                     login) -> None:
    app = make_app(db_url, tmp_path / "data", NOTES_REVISIONS_KEEP=2)
    from notes.auth import create_user

    with app.app_context():
        create_user("alice@example.com", PASSWORD, display_name="Alice")
    client = app.test_client()
    login(client, "alice@example.com")
    image = upload(client)
    write(client, "Pictured", f'<p><img alt="a" src="{image}"></p>')
    nid = only_note(app).id
    uploads = tmp_path / "data" / "uploads"
    name = image.rsplit("/", 1)[1]
    save(client, nid, editor(client, nid), "Pictured", "<p>no picture now</p>")
    assert (uploads / name).exists()  # revision 1 still shows it
    save(client, nid, editor(client, nid), "Pictured", "<p>still none</p>")
    assert [r.version for r in revisions_of(app, nid)] == [2, 3]
    assert not (uploads / name).exists()  # no note and no kept revision shows it any more
    with app.app_context():
        db.engine.dispose()


def upload(client) -> str:  # type: ignore[no-untyped-def]
    r = client.post("/upload", data={"upload": (io.BytesIO(PNG), "x.png")},
                    headers={"X-CSRFToken": csrf(client, "/notes/new")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    return str(r.json["url"])


def test_trash_hides_everywhere_and_restores_the_same_note(app, client, user, other,
                                                           login) -> None:
    login(client, user[0].email)
    write(client, "Binned soon", "<p>findable words</p>")
    client.post("/notes/new", data={"title": "x", "csrf_token": csrf(client, "/notes/new")})
    note = db_note(app, "Binned soon")
    edit = editor(client, note.id)
    save(client, note.id, edit, "Binned soon", "<p>findable words</p>", tags="kept")
    r = client.post(f"/notes/{note.id}/delete", data={"csrf_token": edit["csrf_token"]})
    assert r.status_code == 302
    anonymous = app.test_client()
    assert anonymous.get(f"/n/{note.slug}").status_code == 404
    for path in ("/", "/?q=findable", "/feed.xml", "/sitemap.xml", "/t/kept",
                 f"/a/{user[0].id}", "/api/notes", "/api/notes?q=findable"):
        assert "Binned soon" not in anonymous.get(path).get_data(as_text=True), path
    assert anonymous.get(f"/api/notes/{note.id}").status_code == 404
    theirs = token_for(app, other[0].email)
    assert client.get(f"/api/notes/{note.id}", headers=theirs).status_code == 404
    assert f'href="/notes/{note.id}/edit"' not in client.get("/my").get_data(as_text=True)
    assert client.get(f"/notes/{note.id}/edit").status_code == 404
    page = client.get("/trash").get_data(as_text=True)
    assert "Binned soon" in page and "Restore" in page
    mine = token_for(app, user[0].email)
    assert [n["id"] for n in client.get("/api/trash", headers=mine).json["items"]] == [note.id]
    assert client.get("/api/trash", headers=theirs).json["items"] == []
    assert client.post(f"/api/trash/{note.id}/restore", headers=theirs).status_code == 404
    # a new note cannot take its address while it is in the trash
    write(client, "Binned soon")
    assert db_note(app, "Binned soon", newest=True).slug != note.slug
    r = client.post(f"/trash/{note.id}/restore", data={"csrf_token": edit["csrf_token"]})
    assert r.status_code == 302
    back = db_note(app, "Binned soon")
    assert (back.id, back.slug, back.tag_names) == (note.id, note.slug, ["kept"])
    assert anonymous.get(f"/n/{note.slug}").status_code == 200
    assert len(revisions_of(app, note.id)) == 2
    # through the API: delete, list, restore, purge for good
    assert client.delete(f"/api/notes/{note.id}", headers=mine).status_code == 204
    assert client.post(f"/api/trash/{note.id}/restore", headers=mine).json["slug"] == note.slug
    client.delete(f"/api/notes/{note.id}", headers=mine)
    assert client.delete(f"/api/trash/{note.id}", headers=mine).status_code == 204
    assert revisions_of(app, note.id) == []
    with app.app_context():
        assert db.session.get(Note, note.id) is None


def db_note(app, title: str, newest: bool = False) -> Note:  # type: ignore[no-untyped-def]
    with app.app_context():
        order = Note.id.desc() if newest else Note.id
        note = db.session.scalars(select(Note).where(Note.title == title).order_by(order)).first()
        assert note is not None
        note.tag_names  # noqa: B018 (loaded before leaving the session)
        db.session.expunge(note)
        return note


def test_the_site_purges_old_trash_by_itself_with_images_no_one_shows(db_url, tmp_path: Path,
                                                                        login) -> None:
    data = tmp_path / "data"
    app = make_app(db_url, data, NOTES_TRASH_DAYS=7)
    from notes.auth import create_user

    with app.app_context():
        create_user("alice@example.com", PASSWORD, display_name="Alice")
    client = app.test_client()
    login(client, "alice@example.com")
    only, shared = upload(client), upload(client)
    write(client, "Old", f'<p><img alt="a" src="{only}"><img alt="b" src="{shared}"></p>')
    write(client, "Keeps one", f'<p><img alt="b" src="{shared}"></p>')
    write(client, "Recent")
    old, recent = db_note(app, "Old"), db_note(app, "Recent")
    token = csrf(client, "/my")
    for note in (old, recent):
        client.post(f"/notes/{note.id}/delete", data={"csrf_token": token})
    with app.app_context():  # eight days ago
        db.session.execute(update(Note).where(Note.id == old.id)
                           .values(deleted_at=utcnow() - timedelta(days=8)))
        db.session.commit()
        db.engine.dispose()
    assert (data / "uploads" / only.rsplit("/", 1)[1]).exists()
    # a worker started later (no cron): its first request purges what has expired
    later = make_app(db_url, data, NOTES_TRASH_DAYS=7)
    assert later.test_client().get("/").status_code == 200
    with later.app_context():
        assert db.session.get(Note, old.id) is None
        assert db.session.get(Note, recent.id) is not None  # still in the trash
        db.engine.dispose()
    assert not (data / "uploads" / only.rsplit("/", 1)[1]).exists()
    assert (data / "uploads" / shared.rsplit("/", 1)[1]).exists()  # "Keeps one" shows it
    with app.app_context():
        db.engine.dispose()


def test_admin_deleting_a_user_asks_about_their_notes(app, client, user, other, admin,
                                                      login) -> None:
    for person in (user, other):
        writer = app.test_client()
        login(writer, person[0].email)
        write(writer, f"By {person[0].email}")
        write(writer, f"Also by {person[0].email}")
    login(client, admin[0].email)
    page = client.get(f"/admin/user/remove/?id={user[0].id}").get_data(as_text=True)
    assert "has 2 notes" in page and "Move them to the trash" in page
    assert "Give them to another user" in page
    listing = client.get("/admin/user/").get_data(as_text=True)
    assert f"/admin/user/remove/?id={user[0].id}" in listing
    assert 'action="/admin/user/delete/"' not in listing  # no bare "Are you sure?"
    token = csrf(client, f"/admin/user/remove/?id={user[0].id}")
    r = client.post(f"/admin/user/remove/?id={user[0].id}",
                    data={"csrf_token": token, "notes": "reassign", "heir": str(other[0].id)})
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(User, user[0].id) is None
        owners = {n.title: n.author_id for n in db.session.scalars(select(Note))}
    assert owners[f"By {user[0].email}"] == other[0].id
    r = client.post(f"/admin/user/remove/?id={other[0].id}",
                    data={"csrf_token": token, "notes": "trash"})
    assert r.status_code == 302
    with app.app_context():
        notes = list(db.session.scalars(select(Note)))
        assert len(notes) == 4 and all(n.in_trash and n.author_id == admin[0].id for n in notes)
    assert "By alice@example.com" in client.get("/trash").get_data(as_text=True)
    assert "By alice@example.com" not in client.get("/").get_data(as_text=True)


def test_admin_edit_of_a_changed_note_is_refused_then_deliberate(app, client, user, admin,
                                                                 login) -> None:
    login(client, user[0].email)
    write(client, "Watched", "<p>author's words</p>")
    nid = only_note(app).id
    boss = app.test_client()
    login(boss, admin[0].email)
    form = boss.get(f"/admin/note/edit/?id={nid}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    assert token and 'name="opened_version" type="hidden" value="1"' in form
    save(client, nid, editor(client, nid), "Watched", "<p>author's second words</p>")
    data = {"csrf_token": token.group(1), "author": str(user[0].id), "title": "Watched",
            "body": "<p>admin's words</p>", "tag_list": "", "published": "y",
            "opened_version": "1"}
    r = boss.post(f"/admin/note/edit/?id={nid}", data=data)
    page = r.get_data(as_text=True)
    assert "changed by someone else since you opened it" in page
    assert "admin&#39;s words" in page  # kept in the form
    assert 'name="opened_version" type="hidden" value="2"' in page
    assert "second words" in only_note(app).body
    r = boss.post(f"/admin/note/edit/?id={nid}", data={**data, "opened_version": "2"})
    assert r.status_code == 302
    assert "admin's words" in only_note(app).body
    assert revisions_of(app, nid)[-1].via == "admin"
    # deleting in the admin: to the author's trash
    r = boss.post("/admin/note/delete/", data={"csrf_token": token.group(1), "id": str(nid)})
    assert r.status_code == 302
    assert only_note(app).in_trash


def test_a_form_posted_after_the_session_ended_comes_back_after_signing_in(app, client, user,
                                                                           login) -> None:
    login(client, user[0].email)
    write(client, "Long work")
    nid = only_note(app).id
    opened = editor(client, nid)
    other_tab = client  # one browser: logging out in another tab ends this tab's session too
    other_tab.post("/logout", data={"csrf_token": opened["csrf_token"]})
    other_tab.get("/")
    words = "<p>an hour of writing</p>"
    r = client.post(f"/notes/{nid}/edit", headers={"Origin": "http://localhost"},
                    data={**opened, "title": "Long work, finished", "body": words})
    assert r.status_code == 302 and "/login?next=" in r.location
    r = client.post(r.location, data={"email": user[0].email, "password": PASSWORD,
                                      "csrf_token": csrf(client, r.location)})
    assert r.status_code == 302 and r.location.endswith(f"/notes/{nid}/edit")
    page = client.get(f"/notes/{nid}/edit").get_data(as_text=True)
    assert "an hour of writing" in page and "Long work, finished" in page
    assert "here is your text again" in page
    assert only_note(app).title == "Long work"  # shown, not saved behind the writer's back
    # another site's form cannot fill someone's editor
    stranger = app.test_client()
    stranger.post(f"/notes/{nid}/edit", data={"title": "spam", "body": "spam"},
                  headers={"Origin": "http://evil.example"})
    assert "pending_form" not in str(stranger.get("/login").headers)


def test_excel_import_of_an_older_export_is_a_conflict(app, client, user, admin, login) -> None:
    login(client, user[0].email)
    write(client, "Exported", "<p>as exported</p>")
    nid = only_note(app).id
    with app.app_context():  # written a minute ago (MariaDB keeps whole seconds)
        table = Note.__table__
        db.session.execute(update(table).where(table.c.id == nid).values(
            updated_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    boss = app.test_client()
    login(boss, admin[0].email)
    old = boss.get("/admin/excel/export").data
    header = next(load_workbook(io.BytesIO(old)).active.iter_rows(values_only=True))
    assert "version" in header
    save(client, nid, editor(client, nid), "Exported", "<p>newer words</p>")

    def import_(data: bytes):  # type: ignore[no-untyped-def]
        return boss.post("/admin/excel/import", data={
            "csrf_token": csrf(boss, "/admin/excel/"), "file": (io.BytesIO(data), "n.xlsx")},
            content_type="multipart/form-data")

    edited = load_workbook(io.BytesIO(old))
    edited.active.cell(row=2, column=5).value = "<p>edited in the spreadsheet</p>"
    out = io.BytesIO()
    edited.save(out)
    r = import_(out.getvalue())
    assert r.status_code == 422
    assert "conflict: note" in r.get_data(as_text=True)
    assert "newer words" in only_note(app).body  # not applied
    # a file from before versions: its updated_at tells the same
    rows = list(load_workbook(io.BytesIO(old)).active.iter_rows(values_only=True))
    legacy = [list(rows[0][:9]), [*rows[1][:4], "<p>legacy</p>", *rows[1][5:9]]]
    assert import_(xlsx(legacy)).status_code == 422
    fresh = load_workbook(io.BytesIO(boss.get("/admin/excel/export").data))
    fresh.active.cell(row=2, column=5).value = "<p>edited after a fresh export</p>"
    out = io.BytesIO()
    fresh.save(out)
    assert import_(out.getvalue()).status_code == 302
    assert "fresh export" in only_note(app).body
    kept = revisions_of(app, nid)
    assert [r.via for r in kept] == ["editor", "editor", "import"]
    assert kept[-1].by_name == "Root" and kept[-1].version == 3
