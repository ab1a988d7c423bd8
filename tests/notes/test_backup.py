"""Backup and restore (issue 18, item 6) on SQLite, MariaDB and PostgreSQL: a backup taken
while a writer keeps committing, the database and data folder wiped, the restore bringing back
every note, user, token and image with sign-in working; SQLite into PostgreSQL; hostile files
refused with one line and nothing written."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from notes.extensions import db
from notes.models import ApiToken, Note, User
from notes.services import create_note, issue_token
from tests import servers
from tests.notes.conftest import PASSWORD, _account, csrf, make_app
from tests.notes.test_pages import check_days_counted
from tests.notes.test_tag_pages import check_blocks_counted

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def fill(app: Any) -> tuple[str, str]:
    """Two users, notes with tags and an image, an API token; returns (token, image name)."""
    alice, _ = _account(app, "alice@example.com")
    _account(app, "bob@example.com")
    image = "ab/cdef0123.png"
    folder = Path(app.config["NOTES_DATA_DIR"]) / "uploads" / "ab"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cdef0123.png").write_bytes(IMAGE)
    with app.app_context():
        author = db.session.get(User, alice.id)
        for i in range(30):
            create_note(author, f"Note {i} é",
                        f'<p>text {i}</p><img src="/media/{image}" alt="picture {i}">',
                        published=i % 2 == 0, tags=["travel", f"t{i % 3}"])
        db.session.commit()
        token = issue_token(author, "laptop")
    return token, image


def cli(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args), catch_exceptions=False)


def counts(app: Any) -> dict[str, int]:
    with app.app_context():
        return {"notes": db.session.scalar(select(func.count()).select_from(Note)) or 0,
                "users": db.session.scalar(select(func.count()).select_from(User)) or 0,
                "tokens": db.session.scalar(select(func.count()).select_from(ApiToken)) or 0}


def fresh_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.db'}"
    server = request.getfixturevalue(
        "mariadb_server" if db_url.startswith("mysql") else "postgresql_server")
    return servers.create_database(server, f"notes_restored_{os.getpid()}_{time.time_ns()}")


def test_backup_under_writes_then_wipe_and_restore(app: Any, db_url: str, tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    token, image = fill(app)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with app.app_context():
            author = db.session.scalar(select(User).where(User.email == "alice@example.com"))
            while not stop.is_set():
                create_note(author, f"During {time.time_ns()}", "<p>meanwhile</p>")
                db.session.commit()
                written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not written:
            time.sleep(0.01)
        path = tmp_path / "notes.tar.gz"
        result = cli(app, "backup", str(path))
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert written and path.stat().st_mode & 0o777 == 0o600
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile(tar.next()))  # type: ignore[arg-type]
    assert 30 <= manifest["tables"]["notes"] <= 30 + len(written)
    checked = cli(app, "backup", "--verify", str(path))
    assert checked.exit_code == 0 and "good" in checked.output

    # wipe: a new, empty database and data folder
    target = make_app(fresh_url(db_url, tmp_path, request), tmp_path / "wiped",
                      SECRET_KEY=None)
    restored = cli(target, "restore", str(path))
    assert restored.exit_code == 0, restored.output
    got = counts(target)
    assert got == {"notes": manifest["tables"]["notes"], "users": 2, "tokens": 1}
    check_days_counted(target)  # counted again as the notes came back (note_days: derived)
    check_blocks_counted(target)  # (tag_blocks, author_blocks: the same)
    assert (tmp_path / "wiped" / "uploads" / image).read_bytes() == IMAGE
    assert (tmp_path / "wiped" / "secret_key").read_text().strip() == app.config["SECRET_KEY"]

    client = target.test_client()
    signed_in = client.post("/login", data={"email": "alice@example.com", "password": PASSWORD,
                                            "csrf_token": csrf(client)})
    assert signed_in.status_code == 302
    assert "Note 0" in client.get("/notes/1/edit").get_data(as_text=True)  # hers, signed in
    api = target.test_client().get("/api/notes", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    assert target.test_client().get(f"/media/{image}").data == IMAGE
    # new writes after a restore get new ids (PostgreSQL's sequences were moved on)
    with target.app_context():
        author = db.session.scalar(select(User).where(User.email == "bob@example.com"))
        create_note(author, "After the restore", "<p>new</p>")
        db.session.commit()

    # a second restore into the now used database is refused without --force
    again = target.test_cli_runner().invoke(args=["restore", str(path)])
    assert again.exit_code != 0 and "not empty" in again.output
    assert counts(target)["notes"] == got["notes"] + 1
    forced = cli(target, "restore", "--force", str(path))
    assert forced.exit_code == 0, forced.output
    assert counts(target) == got
    check_days_counted(target)
    check_blocks_counted(target)


@pytest.mark.skipif("postgresql" not in os.environ.get("NOTES_TEST_DBS", "postgresql"),
                    reason="PostgreSQL not among NOTES_TEST_DBS")
def test_a_sqlite_backup_restores_into_postgresql(tmp_path: Path,
                                                   postgresql_server: servers.Server) -> None:
    source = make_app(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path / "data")
    token, _ = fill(source)
    path = tmp_path / "from-sqlite.tar.gz"
    assert cli(source, "backup", str(path)).exit_code == 0
    url = servers.create_database(postgresql_server, f"notes_moved_{os.getpid()}")
    target = make_app(url, tmp_path / "moved")
    assert cli(target, "restore", str(path)).exit_code == 0
    assert counts(target) == counts(source)
    with target.app_context():
        published = db.session.scalars(select(Note.published)).all()
        assert sorted(published) == sorted(db.session.scalars(select(Note.published)).all())
        assert published.count(True) == 15
    api = target.test_client().get("/api/notes", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and "Note 0" in api.get_data(as_text=True)


# -- hostile and broken files ------------------------------------------------------------------

def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A good backup, made once: each case spoils a copy of it."""
    folder = tmp_path_factory.mktemp("good")
    source = make_app(f"sqlite:///{folder / 'source.db'}", folder / "source")
    fill(source)
    path = folder / "good.tar.gz"
    assert cli(source, "backup", str(path)).exit_code == 0
    return path.read_bytes()


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]


def _with_manifest(members: list[tuple[tarfile.TarInfo, bytes]], change: Any
                   ) -> list[tuple[tarfile.TarInfo, bytes]]:
    manifest = json.loads(members[0][1])
    change(manifest)
    return [_file("manifest.json", json.dumps(manifest).encode()), *members[1:]]


def _escaping(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    data = b"owned"
    out = _with_manifest(members, lambda m: m["files"].update(
        {"uploads/../../escaped": {"size": 5, "sha256": __import__("hashlib").sha256(
            data).hexdigest()}}))
    return [*out, _file("uploads/../../escaped", data)]


def _symlink(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    link = tarfile.TarInfo("uploads/ab/link.png")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    return [*members, (link, b"")]


HOSTILE = {
    "escaping path": (_escaping, "outside its folder"),
    "symlink": (_symlink, "symlink"),
    "newer schema": (lambda ms: _with_manifest(ms, lambda m: m.update(revision="9999_future")),
                     "newer version"),
    "oversized": (lambda ms: _with_manifest(ms, lambda m: m["files"]["data.db"].update(
        size=1 << 50)), "free"),
    "changed content": (lambda ms: [*ms[:1], *[(i, d[:-1] + b"x") if i.name == "secret_key"
                                               else (i, d) for i, d in ms[1:]]], "checksum"),
    "not a notes manifest": (lambda ms: [_file("manifest.json", b"[]"), *ms[1:]],
                             "not a notes backup"),
}


@pytest.mark.parametrize("case", [*HOSTILE, "truncated", "random bytes", "empty"])
def test_a_hostile_or_broken_backup_is_refused_and_nothing_written(
        good: bytes, tmp_path: Path, case: str) -> None:
    data = good
    if case == "truncated":
        raw = data[: len(data) // 2]
        expected = "damaged or truncated"
    elif case == "random bytes":
        raw, expected = os.urandom(5000), "not a notes backup"
    elif case == "empty":
        raw, expected = b"", "not a notes backup"
    else:
        make, expected = HOSTILE[case]
        raw = _tar(make(_members(data)))
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(raw)
    target = make_app(f"sqlite:///{tmp_path / 'target.db'}", tmp_path / "target" / "data")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "target").rglob("*"))
    for args in (["backup", "--verify", str(path)], ["restore", str(path)]):
        result = target.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.output
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "target").rglob("*")) == before
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "target" / "escaped").exists()
    assert counts(target) == {"notes": 0, "users": 0, "tokens": 0}


def test_an_older_backup_is_migrated_forward(tmp_path: Path) -> None:
    from flask_migrate import downgrade

    source = make_app(f"sqlite:///{tmp_path / 'old.db'}", tmp_path / "old")
    fill(source)
    with source.app_context():
        downgrade(revision="0005_publishing")  # the schema of an older notes
    path = tmp_path / "old.tar.gz"
    assert cli(source, "backup", str(path)).exit_code == 0
    target = make_app(f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "new")
    restored = cli(target, "restore", str(path))
    assert restored.exit_code == 0 and "schema 0005_publishing" in restored.output
    assert counts(target)["notes"] == 30
    with target.app_context():
        note = db.session.scalar(select(Note).where(Note.title == "Note 1 é"))
        assert note is not None and note.tag_names == ["t1", "travel"]  # 0006 filled it in
