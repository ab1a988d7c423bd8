"""Every write path purges what it changed from the kit's cache (issue 18, item 4): the editor,
the API, the admin and the Excel import, from the session's own events. The purges are caught
by a Unix socket standing in for the kit's purger (what sits outside the site); the purger
itself is tested through the real Nginx in tests/kit/test_cache.py and
tests/notes/test_cache_nginx.py."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notes.extensions import db
from notes.models import User
from notes.services import issue_token

from .conftest import _account, csrf, import_sheet, make_app


class Purges:
    """A purge socket that records each request's paths and answers 200."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(8)
        self.received: list[set[str]] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                self.received.append(set(body.decode().split()))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n1\n")

    def take(self) -> set[str]:
        got = set().union(*self.received) if self.received else set()
        self.received.clear()
        return got


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Purges]]:
    folder = Path(tempfile.mkdtemp(prefix="purges-"))
    purges = Purges(folder / "purge.sock")
    monkeypatch.setenv("FLASKSTACK_CACHE_PURGE_TO", f"unix:{folder / 'purge.sock'}")
    app = make_app(f"sqlite:///{folder / 'notes.db'}", folder / "data")
    yield app, purges
    purges.server.close()


def test_the_api_purges_the_note_its_lists_its_tags_and_author(site) -> None:  # type: ignore[no-untyped-def]
    app, purges = site
    alice, _ = _account(app, "alice@example.com")
    with app.app_context():
        token = issue_token(db.session.get(User, alice.id), "t")
    purges.take()
    api = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    made = api.post("/api/notes", json={"title": "Café notes", "body": "<p>x</p>",
                                        "published": True, "tags": ["food"]}, headers=auth)
    assert made.status_code == 201, made.get_data(as_text=True)
    note = made.get_json()
    assert purges.take() >= {"/", "/feed.xml", "/sitemap.xml", "/n/cafe-notes", "/t/food",
                             f"/a/{alice.id}"}
    changed = api.patch(f"/api/notes/{note['id']}", headers=auth,
                        json={"title": "Τσάι", "tags": ["drink"]})
    assert changed.status_code == 200
    # the old address and the old tag too
    assert purges.take() >= {"/n/cafe-notes", "/n/τσάι", "/t/food", "/t/drink", "/"}
    assert api.delete(f"/api/notes/{note['id']}", headers=auth).status_code == 204
    assert purges.take() >= {"/n/τσάι", "/t/drink", f"/a/{alice.id}", "/feed.xml"}


def test_the_admin_and_the_import_purge_too_signing_in_does_not(site) -> None:  # type: ignore[no-untyped-def]
    app, purges = site
    alice, password = _account(app, "alice@example.com")
    _account(app, "root@example.com", True)
    boss = app.test_client()
    purges.take()
    signed_in = boss.post("/login", data={"email": "root@example.com", "password": password,
                                          "csrf_token": csrf(boss)})
    assert signed_in.status_code == 302
    assert purges.take() == set()  # nothing public changed
    r = import_sheet(boss, [["title", "author", "body", "published"],
                            ["Imported", alice.email, "<p>x</p>", "yes"]])
    assert r.status_code == 302
    assert purges.take() == {"*"}  # written in bulk: everything
    with app.app_context():
        nid = db.session.scalar(db.select(db.text("id")).select_from(db.text("notes")))
    r = boss.post(f"/admin/note/edit/?id={nid}", data={
        "csrf_token": csrf(boss, f"/admin/note/edit/?id={nid}"), "author": str(alice.id),
        "title": "Imported", "body": "<p>changed</p>", "tag_list": "", "published": ""})
    assert r.status_code == 302
    assert purges.take() >= {"/n/imported", "/", f"/a/{alice.id}"}
