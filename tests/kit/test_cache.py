"""The response cache through the real Nginx and uWSGI, driven by the fixture app's headers
(tests/kit/apps/cachy.py: the query says which Cache-Control to send; every body is unique to
one call of the app)."""

from __future__ import annotations

import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

APP = ("--app", "cachy:application")


def fetch(stack, path: str, headers: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
          cookies: dict[str, str] | None = None) -> requests.Response:
    return requests.get(stack.url + path, headers=headers, cookies=cookies, timeout=30)


def calls(stack, path: str) -> int:  # type: ignore[no-untyped-def]
    """How many times the app itself answered ``path``."""
    return stack.seen().count(path.split("?")[0])


CACHED = ["public, max-age=60", "public, s-maxage=60", "max-age=60, public",
          "PUBLIC, S-MAXAGE=60", "public, max-age=1, s-maxage=60",
          "public, max-age=0, s-maxage=60"]
NOT_CACHED = ["max-age=60", "s-maxage=60", "public", "public, max-age=0", "private, max-age=60",
              "public, max-age=60, no-store", "public, max-age=60, no-cache",
              "public, private, max-age=60", ""]


def test_only_public_responses_with_a_lifetime_are_cached(make_stack) -> None:
    stack = make_stack(*APP).start()
    for i, cc in enumerate(CACHED + NOT_CACHED):
        path = f"/rule{i}?cc={quote(cc)}"
        first, second = fetch(stack, path), fetch(stack, path)
        assert first.status_code == second.status_code == 200
        assert first.headers["X-Cache-Status"] == "MISS", cc
        if cc in CACHED:
            assert second.headers["X-Cache-Status"] == "HIT", cc
            assert second.text == first.text and calls(stack, path) == 1, cc
        else:
            assert second.headers["X-Cache-Status"] == "MISS", cc
            assert second.text != first.text and calls(stack, path) == 2, cc
    # a Set-Cookie answer is never stored, whatever its Cache-Control says
    path = f"/cookie?cc={quote('public, max-age=60')}&cookie=1"
    first, second = fetch(stack, path), fetch(stack, path)
    assert "chosen=1" in first.headers["Set-Cookie"] and "chosen=1" in second.headers["Set-Cookie"]
    assert second.headers["X-Cache-Status"] == "MISS" and second.text != first.text
    # static files and Nginx's own error pages carry no cache status
    assert "X-Cache-Status" not in fetch(stack, "/.env").headers


def test_a_compressed_answer_is_stored_for_clients_that_take_gzip_only(make_stack) -> None:
    stack = make_stack(*APP).start()
    path = f"/gz?cc={quote('public, max-age=60')}&gzip=1"
    first = fetch(stack, path, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    # the app is told only whether the client takes gzip
    assert first.headers["X-Seen-Accept-Encoding"] == "gzip"
    assert first.headers["Content-Encoding"] == "gzip" and first.headers["X-Cache-Status"] == "MISS"
    hit = fetch(stack, path, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert hit.headers["X-Cache-Status"] == "HIT" and hit.text == first.text
    assert hit.headers["Content-Encoding"] == "gzip" and calls(stack, path) == 1
    # hostile: clients that do not take gzip never get the stored gzip copy
    for encoding in (None, "identity", "br", "gzip;q=0", "x-gzip;q=0, deflate"):
        r = requests.get(stack.url + path, headers={"Accept-Encoding": encoding}, timeout=30,
                         stream=True)
        assert "Content-Encoding" not in r.headers, encoding
        assert r.headers["X-Seen-Accept-Encoding"] == "", encoding
        assert r.raw.read().decode().startswith("v1 /gz "), encoding
    assert calls(stack, path) >= 2


@pytest.mark.parametrize("credentials", [
    {"headers": {"Authorization": "Bearer secret"}},
    {"cookies": {"session": "signed-in"}},
    {"cookies": {"remember_token": "1|abc"}},
])
def test_requests_with_credentials_bypass_the_cache_both_ways(make_stack, credentials) -> None:
    stack = make_stack(*APP).start()
    public = f"/page?cc={quote('public, max-age=60')}"
    stored = fetch(stack, public)
    assert fetch(stack, public).headers["X-Cache-Status"] == "HIT"
    # a signed-in reader gets the app's own answer, not the stored one ...
    mine = fetch(stack, public, **credentials)
    assert mine.headers["X-Cache-Status"] == "BYPASS" and mine.text != stored.text
    # ... and what the app answered them is never stored for others, even when marked public
    assert fetch(stack, public).text == stored.text
    cold = f"/cold?cc={quote('public, max-age=60')}"
    theirs = fetch(stack, cold, **credentials)
    assert theirs.headers["X-Cache-Status"] == "BYPASS"
    anonymous = fetch(stack, cold)
    assert anonymous.headers["X-Cache-Status"] == "MISS" and anonymous.text != theirs.text
    assert calls(stack, "/page") == 2 and calls(stack, "/cold") == 2


def test_bypass_cookie_names_are_a_setting(make_stack) -> None:
    stack = make_stack(*APP, "--cache-bypass-cookies", "sid,auth_v2").start()
    public = f"/page?cc={quote('public, max-age=60')}"
    fetch(stack, public)
    assert fetch(stack, public, cookies={"sid": "x"}).headers["X-Cache-Status"] == "BYPASS"
    assert fetch(stack, public, cookies={"auth_v2": "x"}).headers["X-Cache-Status"] == "BYPASS"
    # Flask's default name is no longer special here; unrelated cookies never were
    assert fetch(stack, public, cookies={"session": "x"}).headers["X-Cache-Status"] == "HIT"
    assert fetch(stack, public, cookies={"theme": "dark"}).headers["X-Cache-Status"] == "HIT"


def test_a_burst_on_a_cold_key_reaches_the_app_once(make_stack) -> None:
    stack = make_stack(*APP, "--workers", "2", "--cache-lock", "on").start()
    path = f"/burst?cc={quote('public, max-age=60')}&sleep=0.3"
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(lambda _: fetch(stack, path), range(24)))
    assert [r.status_code for r in answers] == [200] * 24
    assert len({r.text for r in answers}) == 1  # everyone got the one answer
    assert calls(stack, path) == 1


def test_stale_copy_is_served_while_one_request_refreshes_it(make_stack) -> None:
    stack = make_stack(*APP, "--workers", "2").start()
    path = f"/stale?cc={quote('public, max-age=1, stale-while-revalidate=30')}&sleep=2"
    old = fetch(stack, path)
    time.sleep(2.5)  # expired (Nginx counts whole seconds: max-age=1 may last 2 s)
    # the first reader after expiry gets the old copy and starts one refresh in the
    # background; readers meanwhile get the old copy too, not a wait
    with ThreadPoolExecutor(6) as pool:
        during = list(pool.map(lambda _: fetch(stack, path), range(6)))
    assert {r.text for r in during} == {old.text}
    assert {r.headers["X-Cache-Status"] for r in during} <= {"STALE", "UPDATING"}
    assert "STALE" in {r.headers["X-Cache-Status"] for r in during}
    for _ in range(50):  # the refresh lands
        fresh = fetch(stack, path)
        if fresh.text != old.text:
            break
        time.sleep(0.2)
    assert fresh.text != old.text
    assert calls(stack, path) == 2  # one refresh, however many readers


def test_a_change_reaches_readers_within_max_age(make_stack) -> None:
    stack = make_stack(*APP)
    content = stack.root / "content.txt"
    content.write_text("v1")
    content.chmod(0o666)
    stack.env["CACHY_CONTENT"] = str(content)
    stack.start()
    path = f"/fresh?cc={quote('public, max-age=2')}"
    assert fetch(stack, path).text.startswith("v1 ")
    content.write_text("v2")
    changed = time.monotonic()
    assert fetch(stack, path).text.startswith("v1 ")  # still stored
    seen_v2 = None
    while time.monotonic() - changed < 6:
        if fetch(stack, path).text.startswith("v2 "):
            seen_v2 = time.monotonic() - changed
            break
        time.sleep(0.1)
    # max-age, plus one refresh of the app (served stale meanwhile), plus the clock's second
    assert seen_v2 is not None and seen_v2 < 2 + 2


def test_cache_off_passes_everything_to_the_app(make_stack) -> None:
    stack = make_stack(*APP, FLASKSTACK_CACHE="off").start()
    path = f"/off?cc={quote('public, max-age=60')}"
    first, second = fetch(stack, path), fetch(stack, path)
    assert "X-Cache-Status" not in second.headers and second.text != first.text
    assert "uwsgi_cache" not in (stack.run_dir / "nginx.conf").read_text()
    assert not (stack.run_dir / "cache").exists()


def test_cache_files_live_in_the_configured_directory(make_stack) -> None:
    stack = make_stack(*APP)
    where = stack.root / "elsewhere"
    stack.args += ["--cache-path", str(where)]
    stack.start()
    path = f"/where?cc={quote('public, max-age=60')}"
    fetch(stack, path)
    assert fetch(stack, path).headers["X-Cache-Status"] == "HIT"
    assert [p for p in where.rglob("*") if p.is_file()]
    assert not (stack.run_dir / "cache").exists()


def test_concurrent_requests_for_a_never_cacheable_url_wait_at_most_the_lock_timeout(
        make_stack) -> None:
    # Nginx cannot know beforehand that an answer will not be cacheable: the cache lock makes
    # concurrent readers of one URL wait for the first answer, but only for lock_timeout (1 s),
    # then they ask the app themselves; they never queue behind each other's slow answers.
    stack = make_stack(*APP, "--workers", "4", "--cache-lock", "on").start()
    path = "/uncacheable?sleep=2"
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: fetch(stack, path), range(4)))
    elapsed = time.monotonic() - started
    assert [r.status_code for r in answers] == [200] * 4 and len({r.text for r in answers}) == 4
    assert calls(stack, path) == 4
    assert elapsed < 6  # about 2 s + the 1 s lock; serialised, they would take 4 x 2 s


def test_without_the_lock_a_cold_burst_reaches_the_app_but_expiry_is_refreshed_once(
        make_stack) -> None:
    stack = make_stack(*APP, "--workers", "2").start()  # cache_lock off: the default
    assert "uwsgi_cache_lock" not in (stack.run_dir / "nginx.conf").read_text()
    path = f"/nolock?cc={quote('public, max-age=1, stale-while-revalidate=30')}&sleep=0.5"
    with ThreadPoolExecutor(4) as pool:
        cold = list(pool.map(lambda _: fetch(stack, path), range(4)))
    assert {r.headers["X-Cache-Status"] for r in cold} == {"MISS"}
    assert calls(stack, path) == len({r.text for r in cold})  # each one its own answer
    before = calls(stack, path)
    time.sleep(2.5)  # expired (whole seconds): one refresh, whatever the readers
    with ThreadPoolExecutor(6) as pool:
        during = list(pool.map(lambda _: fetch(stack, path), range(6)))
    assert {r.headers["X-Cache-Status"] for r in during} <= {"STALE", "UPDATING", "HIT"}
    for _ in range(30):
        if fetch(stack, path).headers["X-Cache-Status"] == "HIT":
            break
        time.sleep(0.2)
    assert calls(stack, path) == before + 1


def test_a_restarted_stack_serves_nothing_a_previous_run_cached(make_stack) -> None:
    """After a restart (an upgrade, say), no page the old code rendered is served again."""
    stack = make_stack(*APP).start()
    path = f"/kept?cc={quote('public, max-age=600')}"
    first = fetch(stack, path)
    assert fetch(stack, path).headers["X-Cache-Status"] == "HIT"
    assert stack.stop() == 0
    stack.ready.clear()
    stack.start()
    again = fetch(stack, path)
    assert again.headers["X-Cache-Status"] == "MISS" and again.text != first.text


def test_an_expired_copy_is_served_only_as_long_as_the_app_allows(make_stack) -> None:
    """Bounded staleness: the app's stale-while-revalidate, never Nginx's unbounded
    "updating" (issue 18, item 4)."""
    stack = make_stack(*APP, "--workers", "2").start()
    strict = f"/strict?cc={quote('public, max-age=1')}"
    old = fetch(stack, strict)
    time.sleep(2.5)  # expired, and no stale-while-revalidate: the next reader gets a new answer
    again = fetch(stack, strict)
    assert again.headers["X-Cache-Status"] == "EXPIRED" and again.text != old.text
    bounded = f"/bounded?cc={quote('public, max-age=1, stale-while-revalidate=2')}"
    old = fetch(stack, bounded)
    time.sleep(2.5)  # expired, within stale-while-revalidate: the old copy, one refresh
    assert fetch(stack, bounded).text == old.text
    newest = None
    for _ in range(30):
        newest = fetch(stack, bounded)
        if newest.text != old.text:
            break
        time.sleep(0.1)
    assert newest is not None and newest.text != old.text
    time.sleep(5)  # past max-age and stale-while-revalidate (whole seconds): never served
    latest = fetch(stack, bounded)
    assert latest.headers["X-Cache-Status"] == "EXPIRED" and latest.text != newest.text
    conf = (stack.run_dir / "nginx.conf").read_text()
    assert "uwsgi_cache_use_stale" not in conf and "inactive=1d" not in conf


def test_an_app_purges_every_cached_answer_for_a_path(make_stack) -> None:
    stack = make_stack(*APP).start()
    cc = quote("public, max-age=600")
    variants = [  # compression, query strings, hosts: each its own entry
        (f"/page?cc={cc}&gzip=1", {"Accept-Encoding": "gzip"}),
        (f"/page?cc={cc}&gzip=1", {"Accept-Encoding": "identity"}),
        (f"/page?cc={cc}&gzip=1", {"Accept-Encoding": "gzip, br"}),
        (f"/page?cc={cc}&page=2", {}),
        (f"/page?cc={cc}", {"Host": "other.example"}),
        (f"/p%61ge?cc={cc}", {}),
    ]
    first = [fetch(stack, path, headers) for path, headers in variants]
    kept = fetch(stack, f"/elsewhere?cc={cc}")
    assert all(fetch(stack, p, h).headers["X-Cache-Status"] == "HIT" for p, h in variants)
    # the app itself purges, through the address the kit gave it (FLASKSTACK_CACHE_PURGE_TO)
    purged = fetch(stack, "/writer?purge=/page")
    assert purged.headers["X-Purge-Problems"] == "none"
    after = [fetch(stack, path, headers) for path, headers in variants]
    assert [r.headers["X-Cache-Status"] for r in after] == ["MISS"] * len(variants)
    assert all(a.text != b.text for a, b in zip(after, first, strict=True))
    assert [fetch(stack, p, h).headers["X-Cache-Status"] for p, h in variants] == \
        ["HIT"] * len(variants)  # the new answers are cached again
    assert fetch(stack, f"/elsewhere?cc={cc}").text == kept.text  # other paths stay
    # "*" purges everything
    assert fetch(stack, "/writer?purge=*").headers["X-Purge-Problems"] == "none"
    assert fetch(stack, f"/elsewhere?cc={cc}").headers["X-Cache-Status"] == "MISS"
    assert "[crit]" not in stack.output()


def test_only_the_stacks_own_user_reaches_the_purge_socket(make_stack) -> None:
    stack = make_stack(*APP).start()
    sock = stack.run_dir / "purge.sock"
    mode = sock.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
    with socket.socket(socket.AF_UNIX) as s:  # a malformed purge: refused, the stack serves on
        s.connect(str(sock))
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    assert fetch(stack, "/").status_code == 200


def test_a_proxy_takes_purges_from_its_app_replicas_only(make_stack) -> None:
    from tests.conftest import free_port

    listen = f"127.0.0.1:{free_port()}"
    app = make_stack("--role", "app", "--app", "cachy:application", "--app-listen",
                     f"127.0.0.1:{free_port()}", FLASKSTACK_CACHE_PURGE_TO=listen).start()
    upstream = app.args[app.args.index("--app-listen") + 1]
    proxy = make_stack("--role", "proxy", "--upstreams", upstream,
                       "--cache-purge-listen", listen).start()
    path = f"/shared?cc={quote('public, max-age=600')}"
    first = fetch(proxy, path)
    assert fetch(proxy, path).headers["X-Cache-Status"] == "HIT"
    # from the replica (its connections come from 127.0.0.1, its upstream address): purged
    assert fetch(proxy, "/writer?purge=/shared").headers["X-Purge-Problems"] == "none"
    assert fetch(proxy, path).text != first.text
    # from any other address (here 127.0.0.2): refused
    with socket.create_connection(("127.0.0.1", int(listen.rsplit(":", 1)[1])),
                                  source_address=("127.0.0.2", 0)) as s:
        s.sendall(b"POST /purge HTTP/1.1\r\nContent-Length: 8\r\n\r\n/shared\n")
        assert s.recv(100).startswith(b"HTTP/1.1 403 ")
