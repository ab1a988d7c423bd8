"""Scheduled publishing behind the kit's response cache, through the real Nginx and uWSGI
(SQLite), with the longest cache bound allowed (10 s): a note scheduled a few seconds ahead is
on no cached page before its time, and on the home page, the feed and its tag's page the
first time they are asked for once its time has come (issue 24, item 4)."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from bench.run import Stack, notes_setup, serve

SECONDS = 10  # NOTES_CACHE_SECONDS: its largest value
AHEAD = 6  # seconds the note is scheduled ahead (less than SECONDS: the bound must shorten)


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[Stack, dict[str, str]]]:
    root = Path(tempfile.mkdtemp(prefix="notes-schedule-"))
    root.chmod(0o755)
    stack = serve("schedule", root, "--app-dir", str(root), env={
        "NOTES_DATA_DIR": str(root / "data"), "NOTES_SECRET_KEY": "s" * 40,
        "NOTES_CACHE_SECONDS": str(SECONDS), "NOTES_TIMEZONE": "UTC"})
    stack.start()
    try:
        _, cookies = notes_setup(stack)
        yield stack, cookies
    finally:
        stack.stop()


def test_a_scheduled_note_is_served_from_its_time_on_not_before(site) -> None:  # type: ignore[no-untyped-def]
    stack, cookies = site
    pages = ("/", "/feed.xml", "/t/timed")

    def shown() -> dict[str, bool]:
        return {path: "Timed note" in requests.get(stack.url + path, timeout=10).text
                for path in pages}

    form = requests.get(stack.url + "/notes/new", cookies=cookies, timeout=10).text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
    assert csrf
    at = (datetime.now(UTC) + timedelta(seconds=AHEAD)).replace(microsecond=0)
    r = requests.post(stack.url + "/notes/new", cookies=cookies, timeout=10, data={
        "title": "Timed note", "body": "<p>on time</p>", "tags": "timed", "published": "y",
        "publish_at": at.strftime("%Y-%m-%dT%H:%M:%S"), "csrf_token": csrf.group(1)},
        allow_redirects=False)
    assert r.status_code == 302
    # before its time: cached pages (asked twice: the second from the cache) do not show it,
    # and the cache is told to keep them no longer than until then
    for _ in range(2):
        assert not any(shown().values())
    home = requests.get(stack.url + "/", timeout=10)
    assert home.headers["X-Cache-Status"] in {"HIT", "MISS", "EXPIRED"}
    match = re.search(r"s-maxage=(\d+)", home.headers["Cache-Control"])
    assert match and int(match.group(1)) <= AHEAD
    while datetime.now(UTC) < at - timedelta(seconds=1):
        assert not any(shown().values())
        time.sleep(0.5)
    # from its time on (Nginx counts whole seconds: one more), every page shows it
    while datetime.now(UTC) < at + timedelta(seconds=1.5):
        time.sleep(0.1)
    assert all(shown().values()), shown()
