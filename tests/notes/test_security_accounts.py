"""Accounts and sessions attacked over HTTP, through the real stack (`flaskstack serve`: Nginx,
uWSGI, the notes site on SQLite; Redis from tests/servers.py where sessions live there; Chromium
where how a browser reads a URL matters). Issue 12 items 1-6, issue 9 item 1, issue 13 items 2, 6.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests import servers
from tests.conftest import free_port

PASSWORD = "sturdy walrus meadow 7"
FLASKSTACK = [sys.executable, "-m", "flaskstack"]


class Site:
    """One `flaskstack serve` of the notes site, with a fresh data folder, and its output."""

    def __init__(self, **env: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="notes-security-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "NOTES_DATA_DIR": str(self.data), **env}
        self.args = ["--port", str(self.port), "--host", "127.0.0.1", "--app-dir",
                     str(self.root / "site"), "--run-dir", str(self.root / "run"),
                     "--workers", "2"]
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Site:
        self.proc = subprocess.Popen([*FLASKSTACK, "serve", *self.args], env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def read(stream: Any) -> None:
            for line in stream:
                self.lines.append(line)
                if line.startswith("ready: "):
                    ready.set()

        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=read, args=(stream,), daemon=True).start()
        assert ready.wait(90), "".join(self.lines)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def flask(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``flask --app notes ARGS`` as the workers' user, with the site's settings."""
        return subprocess.run([*FLASKSTACK, "exec", *self.args, "--", "flask", "--app", "notes",
                               *args], input=stdin, env=self.env, capture_output=True,
                              text=True, timeout=90, check=False)

    def session_files(self) -> list[str]:
        folder = self.data / "sessions"
        return [p.name for p in folder.iterdir()] if folder.exists() else []


@contextlib.contextmanager
def serving(**env: str) -> Iterator[Site]:
    site = Site(**env).start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serving() as served:
        yield served


_emails = iter(range(1, 10_000))
_addresses = (f"127.0.{a}.{b}" for a in range(1, 255) for b in range(1, 255))


def browser(source: str | None = None) -> requests.Session:
    """A client from an address of its own on the loopback network (127.0.0.0/8), as distinct
    people are to the site: the login rate limit counts per address."""
    address = source or next(_addresses)

    class From(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["source_address"] = (address, 0)
            super().init_poolmanager(*args, **kwargs)

    web = requests.Session()
    web.mount("http://", From())
    return web


def plant(web: requests.Session, sid: str) -> None:
    """Put a session cookie into a client, as the site would have set it."""
    web.cookies.clear()
    web.cookies.set("session", sid, domain="127.0.0.1", path="/")


def token(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page) or re.search(
        r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def register(site: Site, web: requests.Session | None = None) -> tuple[requests.Session, str]:
    """A new account, signed in on the returned client."""
    web = web or browser()
    email = f"user{next(_emails)}-{site.port}@example.com"
    form = token(web.get(f"{site.url}/register", timeout=10).text)
    r = web.post(f"{site.url}/register", data={"email": email, "password": PASSWORD,
                 "confirm": PASSWORD, "csrf_token": form}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    return web, email


def login(site: Site, web: requests.Session, email: str, password: str = PASSWORD,
          remember: bool = False, next_: str | None = None) -> requests.Response:
    form = token(web.get(f"{site.url}/login", timeout=10).text)
    data = {"email": email, "password": password, "csrf_token": form}
    if remember:
        data["remember"] = "y"
    return web.post(f"{site.url}/login", params={"next": next_} if next_ is not None else None,
                    data=data, allow_redirects=False, timeout=10)


def signed_in(site: Site, web: requests.Session) -> bool:
    r = web.get(f"{site.url}/my", allow_redirects=False, timeout=10)
    assert r.status_code in (200, 302), r.status_code
    return r.status_code == 200


def api_token(site: Site, web: requests.Session) -> dict[str, str]:
    page = web.get(f"{site.url}/account", timeout=10).text
    r = web.post(f"{site.url}/account", data={"tok-name": "ci", "tok-csrf_token": token(page)},
                 timeout=10)
    found = re.search(r'id="new-token">([^<]+)<', r.text)
    assert found, r.text
    return {"Authorization": f"Bearer {found.group(1)}"}


def api_works(site: Site, auth: dict[str, str]) -> bool:
    r = requests.post(f"{site.url}/api/notes", json={"title": "via the API"}, headers=auth,
                      timeout=10)
    assert r.status_code in (201, 401), r.status_code
    return r.status_code == 201


def set_cookie_headers(r: requests.Response) -> list[str]:
    return [v for k, v in r.raw.headers.items() if k.lower() == "set-cookie"]


# --- 1. session fixation ---------------------------------------------------------------------

def test_a_session_id_known_before_login_is_worthless_after(site: Site) -> None:
    attacker = browser()
    attacker.get(f"{site.url}/login", timeout=10)  # the attacker gets a session id...
    planted = attacker.cookies["session"]
    victim, email = register(site)
    victim.post(f"{site.url}/logout", data={"csrf_token": token(
        victim.get(f"{site.url}/account", timeout=10).text)}, timeout=10)
    plant(victim, planted)  # ...and plants it in the victim's browser
    r = login(site, victim, email)
    assert r.status_code == 302
    assert victim.cookies["session"] != planted  # a new id at login
    assert signed_in(site, victim)
    assert not signed_in(site, attacker)  # the planted id did not become signed in
    assert planted not in site.session_files()  # and the old one is gone from the store


def test_a_privilege_change_ends_the_users_sessions(site: Site) -> None:
    web, email = register(site)
    assert signed_in(site, web)
    made = site.flask("shell", stdin=(
        "from notes.models import User\n"
        f"user = db.session.query(User).filter_by(email={email!r}).one()\n"
        "user.is_admin = True\n"
        "db.session.commit()\n"))
    assert made.returncode == 0, made.stderr
    assert not signed_in(site, web)  # signs in again: a new session with the new rights
    assert login(site, web, email).status_code == 302
    assert web.get(f"{site.url}/admin/", timeout=10).status_code == 200


# --- 2. open redirect -------------------------------------------------------------------------

HOSTILE_NEXT = [
    "//evil.example", "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    "/\\evil.example", "\\\\evil.example", "\\/evil.example", " //evil.example",
    "\x00//evil.example", "\x1f/\x1f/evil.example", "/\x7f/evil.example",
    "https://evil.example/", "https:evil.example", "javascript:alert(1)", "HTTP://evil.example",
    "/\r\nSet-Cookie: planted=1", "\r\n\r\n<script>alert(1)</script>", "/%2f/evil.example",
    "///evil.example", "/.//evil.example", "evil.example", "\u3002evil.example",
    "/\u2028/evil.example", "x" * 5000,
]


def test_next_never_leaves_the_site_and_never_errs(site: Site) -> None:
    web, email = register(site)
    origin = urlsplit(site.url)
    for hostile in HOSTILE_NEXT:
        web.cookies.clear()
        r = login(site, web, email, next_=hostile)
        assert r.status_code == 302, (hostile, r.status_code)
        location = r.headers["Location"]
        assert not re.search(r"[\x00-\x20\x7f\\]", location), (hostile, location)
        target = urlsplit(urljoin(site.url + "/login", location))
        assert (target.scheme, target.netloc) == (origin.scheme, origin.netloc), (hostile,
                                                                                  location)
        assert "planted" not in web.cookies
    web.cookies.clear()
    r = login(site, web, email, next_="/my?page=2")
    assert r.headers["Location"] == "/my?page=2"  # a genuine path is kept


@pytest.mark.browser
def test_next_in_chromium_stays_on_the_site(site: Site) -> None:
    """What the browser makes of the Location, with the payloads that fooled the old check."""
    from playwright.sync_api import sync_playwright

    _, email = register(site)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"]
    left: list[str] = []
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = chromium.new_context()

        def guard(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                left.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        for hostile in ["/\t/evil.example", "/\\evil.example", "\\\\evil.example",
                        " //evil.example", "/\n/evil.example"]:
            context.clear_cookies()
            page.goto(f"{site.url}/login?" + requests.compat.urlencode({"next": hostile}))
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", PASSWORD)
            with page.expect_navigation():
                page.click("form.narrow button[type=submit]")
            assert urlsplit(page.url).hostname == "127.0.0.1", (hostile, page.url)
        chromium.close()
    assert left == []


# --- 3. user enumeration ----------------------------------------------------------------------

def test_unknown_and_known_emails_get_the_same_answer(site: Site) -> None:
    _, email = register(site)
    answers = []
    for who in (email, "nobody-" + email):
        web = browser()
        r = login(site, web, who, password="wrong horse battery staple")
        body = re.sub(r'value="[^"]+"|content="[^"]+"', "", r.text)
        answers.append((r.status_code, body.replace("nobody-", ""),
                        sorted(k for k in r.headers if k.lower() not in ("date",))))
    assert answers[0] == answers[1]


# --- 4. lockout -------------------------------------------------------------------------------

def test_a_third_party_cannot_lock_an_account_out(site: Site) -> None:
    owner, email = register(site)
    attacker = browser("127.0.0.2")  # another client address
    statuses = [login(site, attacker, email, password=f"guess {i}").status_code
                for i in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]  # the guesser is stopped
    owner.cookies.clear()
    assert login(site, owner, email).status_code == 302  # the owner is not


def test_one_address_is_limited_whatever_the_accounts(site: Site) -> None:
    sprayer = browser("127.0.0.3")
    statuses = [login(site, sprayer, f"victim{i}@example.com", password="password1").status_code
                for i in range(22)]
    assert statuses[:20] == [200] * 20 and statuses[20:] == [429, 429]
    _, email = register(site)  # from another address: unaffected
    assert login(site, browser(), email).status_code == 302


# --- 5. sessions end when they should ---------------------------------------------------------

def test_the_session_cookie_ends_with_the_browser_unless_remember_me(site: Site) -> None:
    _, email = register(site)
    plain = login(site, browser(), email)
    cookie = next(c for c in set_cookie_headers(plain) if c.startswith("session="))
    assert "expires" not in cookie.lower() and "max-age" not in cookie.lower()
    assert not any(c.startswith("remember_token=") for c in set_cookie_headers(plain))
    remembered = login(site, browser(), email, remember=True)
    remember = next(c for c in set_cookie_headers(remembered)
                    if c.startswith("remember_token="))
    assert "Expires=" in remember and "HttpOnly" in remember


def _everywhere(site: Site) -> tuple[requests.Session, str, requests.Session, requests.Session,
                                     dict[str, str]]:
    """One user signed in three ways: a session, another session, a remember-me cookie alone;
    plus an API token."""
    here, email = register(site)
    there = browser()
    assert login(site, there, email).status_code == 302
    remembered = browser()
    assert login(site, remembered, email, remember=True).status_code == 302
    remembered.cookies.set("session", None)  # only the remember-me cookie is left
    assert signed_in(site, remembered)
    auth = api_token(site, here)
    assert api_works(site, auth)
    return here, email, there, remembered, auth


def test_logout_ends_every_session_remember_me_and_api_token(site: Site) -> None:
    here, _, there, remembered, auth = _everywhere(site)
    stolen = here.cookies["session"]
    here.post(f"{site.url}/logout", data={"csrf_token": token(
        here.get(f"{site.url}/account", timeout=10).text)}, timeout=10)
    assert not signed_in(site, here) and not signed_in(site, there)
    assert not signed_in(site, remembered)
    assert not api_works(site, auth)
    replay = browser()
    plant(replay, stolen)
    assert not signed_in(site, replay)


def test_requests_racing_a_logout_cannot_keep_the_session_alive(site: Site) -> None:
    """Requests of the same session in flight while it logs out may write it back to the store;
    the user's session version still refuses it."""
    here, _ = register(site)
    sid = here.cookies["session"]
    stop = threading.Event()
    clients = []

    def hammer() -> None:
        web = browser()
        plant(web, sid)
        clients.append(web)
        while not stop.is_set():
            web.get(f"{site.url}/my", allow_redirects=False, timeout=10)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    r = here.post(f"{site.url}/logout", data={"csrf_token": token(
        here.get(f"{site.url}/account", timeout=10).text)}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not signed_in(site, here)
    assert not any(signed_in(site, web) for web in clients)
    replay = browser()
    plant(replay, sid)
    assert not signed_in(site, replay)


def test_a_password_change_ends_the_other_sessions_and_tokens(site: Site) -> None:
    here, email, there, remembered, auth = _everywhere(site)
    page = here.get(f"{site.url}/account", timeout=10).text
    new = "another sturdy walrus 8"
    r = here.post(f"{site.url}/account", data={"pw-current": PASSWORD, "pw-password": new,
                  "pw-confirm": new, "pw-csrf_token": token(page)}, timeout=10)
    assert "Your password is changed" in r.text
    assert signed_in(site, here)  # this session goes on
    assert not signed_in(site, there) and not signed_in(site, remembered)
    assert not api_works(site, auth)
    assert login(site, browser(), email, password=new).status_code == 302


def test_deactivation_ends_everything_at_once(site: Site) -> None:
    here, email, there, remembered, auth = _everywhere(site)
    done = site.flask("users", "deactivate", email)
    assert done.returncode == 0, done.stderr
    assert not signed_in(site, here) and not signed_in(site, there)
    assert not signed_in(site, remembered)
    assert not api_works(site, auth)
    assert login(site, browser(), email).status_code == 200  # and no new sign-in


def test_an_idle_session_ends_on_the_server() -> None:
    with serving(NOTES_SESSION_IDLE="3") as site:
        web, email = register(site)
        kept = browser()
        assert login(site, kept, email).status_code == 302
        for _ in range(5):  # active: one request a second for five seconds
            assert signed_in(site, kept)
            time.sleep(1)
        time.sleep(4.5)  # idle longer than the timeout
        assert not signed_in(site, web) and not signed_in(site, kept)
        for _ in range(100):  # and the files are swept in the background
            if not site.session_files():
                break
            time.sleep(0.1)
        assert site.session_files() == []


# --- 6. password policy -----------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["password", "password1", "qwertyuiop", "iloveyou2",
                                  "P@ssw0rd!", "12345678", "aaaaaaaaaaaa"])
def test_common_and_guessable_passwords_are_refused(site: Site, weak: str) -> None:
    web = browser()
    form = token(web.get(f"{site.url}/register", timeout=10).text)
    email = f"weak{next(_emails)}@example.com"
    r = web.post(f"{site.url}/register", data={"email": email, "password": weak,
                 "confirm": weak, "csrf_token": form}, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and "too easy to guess" in r.text
    assert login(site, browser(), email, password=weak).status_code == 200  # no account


def test_the_password_may_not_be_the_email(site: Site) -> None:
    web = browser()
    form = token(web.get(f"{site.url}/register", timeout=10).text)
    r = web.post(f"{site.url}/register", data={
        "email": "margaret.hamilton@example.com", "password": "margaret.hamilton",
        "confirm": "margaret.hamilton", "csrf_token": form}, timeout=10)
    assert "too easy to guess" in r.text


def test_the_cli_refuses_a_weak_password_with_the_reason(site: Site) -> None:
    made = site.flask("users", "create", "cli@example.com", "--password-stdin",
                      stdin="password\n")
    assert made.returncode != 0
    assert "too easy to guess" in made.stderr and "Traceback" not in made.stderr


# --- issue 9: no session for readers ----------------------------------------------------------

def _publish(site: Site) -> str:
    web, _ = register(site)
    page = web.get(f"{site.url}/notes/new", timeout=10).text
    r = web.post(f"{site.url}/notes/new", data={"title": "Reader note", "body": "<p>words</p>",
                 "published": "y", "csrf_token": token(page)}, allow_redirects=False,
                 timeout=10)
    assert r.status_code == 302
    return urlsplit(r.headers["Location"]).path


def _read_anonymously(site: Site, note: str, views: int) -> int:
    """``views`` cookieless page views; how many answers set a cookie."""
    cookies = 0
    with requests.Session() as web:
        for i in range(views):
            path = ("/", note, "/?q=words")[i % 3]
            r = web.get(site.url + path, timeout=10)
            assert r.status_code == 200
            cookies += len(set_cookie_headers(r))
            web.cookies.clear()
    return cookies


def test_a_thousand_anonymous_views_store_nothing(site: Site) -> None:
    note = _publish(site)
    before = set(site.session_files())
    assert _read_anonymously(site, note, 1000) == 0
    assert set(site.session_files()) == before


# --- issue 13: the session store (Redis) down and back empty ----------------------------------

@pytest.fixture(scope="module")
def redis_site() -> Iterator[tuple[Site, servers.Server]]:
    with servers.redis() as redis, serving(NOTES_SESSION_REDIS_URL=redis.url) as site:
        yield site, redis


def _keys(server: servers.Server) -> list[bytes]:
    import redis as redis_client

    client = redis_client.Redis.from_url(server.url)
    try:
        return list(client.scan_iter("notes:session:*"))
    finally:
        client.close()


def test_redis_readers_store_nothing_and_sessions_expire(redis_site: Any) -> None:
    site, redis = redis_site
    note = _publish(site)
    before = set(_keys(redis))
    assert _read_anonymously(site, note, 1000) == 0
    assert set(_keys(redis)) == before
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    ttls = [client.ttl(key) for key in _keys(redis)]
    client.close()
    assert ttls and all(0 < ttl <= 3600 for ttl in ttls)  # NOTES_SESSION_IDLE


def _outage_lines(site: Site) -> list[str]:
    return [line for line in site.lines if "session store unreachable" in line]


def test_redis_down_readers_read_and_the_rest_get_a_clear_503(redis_site: Any) -> None:
    site, redis = redis_site
    note = _publish(site)
    member, email = register(site)
    assert signed_in(site, member)
    redis.stop()
    try:
        for _ in range(10):  # readers: no session needed, pages as usual
            for path in ("/", note, "/?q=words"):
                r = requests.get(site.url + path, timeout=10)
                assert r.status_code == 200 and not set_cookie_headers(r)
        for _ in range(10):  # needs its session: a clear 503, never a 500 or an empty answer
            r = member.get(f"{site.url}/my", allow_redirects=False, timeout=10)
            assert r.status_code == 503 and "Signing in is unavailable" in r.text
            r = member.get(f"{site.url}/my", headers={"Accept": "application/json"},
                           allow_redirects=False, timeout=10)
            assert r.status_code == 503 and r.json()["status"] == 503
            r = member.post(f"{site.url}/notes/new", data={"title": "x"}, timeout=10)
            assert r.status_code == 503
        fresh = browser()
        r = fresh.get(f"{site.url}/login", timeout=10)  # a form needs a session too
        assert r.status_code == 503 and "Signing in is unavailable" in r.text
        assert requests.get(site.url + note, cookies=member.cookies, timeout=10
                            ).status_code == 200  # a public page, read with a dead session
        assert 1 <= len(_outage_lines(site)) <= 2  # once per worker, not once per request
    finally:
        redis.restart()
    # back, and empty (it keeps nothing on disk): the member signs in again, cleanly
    r = member.get(f"{site.url}/my", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = member.get(f"{site.url}/", timeout=10)
    assert r.status_code == 200
    assert login(site, member, email).status_code == 302
    assert signed_in(site, member)
    assert any("session store reachable again" in line for line in site.lines)


def test_redis_back_empty_a_form_posted_from_the_lost_session_asks_to_sign_in(
        redis_site: Any) -> None:
    site, redis = redis_site
    member, _ = register(site)
    page = member.get(f"{site.url}/notes/new", timeout=10).text
    redis.restart()  # sessions lost
    r = member.post(f"{site.url}/notes/new", data={"title": "lost", "csrf_token": token(page)},
                    allow_redirects=False, timeout=10)
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/login"
    assert "Your session has ended" in member.get(site.url + r.headers["Location"],
                                                  timeout=10).text
