"""The kit's bounds under attack, through the real Nginx and uWSGI (issue 23: findings 1, 6, 9,
10, 11, 12, 13 and the kit's part of 14). Each test is the attacker's reproduction; see
docs/security/kit-bounds.md for the figures before and after."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

from .certs import CA

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "websocket" / "app.py"
SITE = "notes.test"


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    tmp_path.chmod(0o755)
    return CA(tmp_path)


def raw(port: int, request: bytes, tls: ssl.SSLContext | None = None,
        sni: str = SITE) -> tuple[int, dict[str, list[str]], bytes]:
    """Send ``request`` as it is (any request line, any Host) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as plain, \
            (tls.wrap_socket(plain, server_hostname=sni) if tls else
             contextlib.nullcontext(plain)) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


def get(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, text=True, timeout=60, check=False)


# -- 1: request_timeout holds for every request but a completed WebSocket handshake -----------

def test_an_upgrade_header_does_not_escape_request_timeout_on_http11_or_http2(
        make_stack, ca) -> None:
    issued = ca.issue("site")
    stack = make_stack("--app", "wsprobe:app", "--workers", "2", "--request-timeout", "2",
                       "--tls-cert", str(issued.cert), "--tls-key", str(issued.key))
    shutil.copy(EXAMPLE, stack.app_dir / "wsexample.py")
    (stack.app_dir / "wsexample.py").chmod(0o644)
    stack.start()
    url = f"https://127.0.0.1:{stack.port}/slow/6"
    # before: 200 after 6 s on both (the header alone spared the request from harakiri)
    for version in ("--http1.1", "--http2"):
        result = curl(version, "--cacert", str(ca.path), "-H", "Upgrade: websocket", url)
        assert result.stdout == "502", (version, result.stdout, result.stderr)
    # a real WebSocket (wss) still outlives the timeout: only its completed handshake lifts it
    from websockets.sync.client import connect

    context = ssl.create_default_context(cafile=str(ca.path))
    with connect(f"wss://127.0.0.1:{stack.port}/ws", ssl=context, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "welcome"
        time.sleep(4)
        ws.send("still here")
        assert ws.recv(timeout=10) == "STILL HERE"


# -- 6, 13, 10: server_names whatever the request line, on every server; TLS 1.3 everywhere ----

def test_server_names_hold_for_absolute_form_requests_on_https_http_and_the_redirect(
        make_stack, ca) -> None:
    issued, redirect = ca.issue("site", (SITE, "127.0.0.1")), free_port()
    stack = make_stack("--app", "probe:application", "--server-names", SITE,
                       "--tls-cert", str(issued.cert), "--tls-key", str(issued.key),
                       "--http-redirect-port", str(redirect)).start()
    tls = ssl.create_default_context(cafile=str(ca.path))
    ok = raw(stack.port, get("/headers", SITE), tls)
    assert ok[0] == 200 and b'"HTTP_HOST": "notes.test"' in ok[2]
    assert b'"wsgi.url_scheme": "https"' in ok[2]  # (from HTTPS: the app's only word of it)
    assert raw(stack.port, get(f"https://{SITE}/headers", SITE), tls)[0] == 200
    # before: the app's 200, and it saw Host evil.example
    for target, host in ((f"https://{SITE}/headers", "evil.example"),
                         (f"https://{SITE}/headers", f"evil.example:{stack.port}"),
                         (f"http://{SITE.upper()}/headers", "evil.example")):
        status, _, body = raw(stack.port, get(target, host), tls)
        assert status == 400, (target, host, status)
        assert b"evil" not in body
    assert stack.seen().count("/headers") == 2  # only the first two reached the app
    # the redirect server: before, any Host (or request line) was reflected into Location
    status, headers, _ = raw(redirect, get("/a?b", SITE))
    assert (status, headers["location"]) == (301, [f"https://{SITE}:{stack.port}/a?b"])
    for request in (get("/a", "evil.example"), get(f"http://{SITE}/a", "evil.example"),
                    get("http://evil.example/a", SITE)):
        status, headers, _ = raw(redirect, request)
        assert status in (400, 421), request
        assert "location" not in headers
    # 10: TLS 1.3 and 1.2 on the site's name (before: the 421 catch-all, which takes the
    # handshake, had no ssl_protocols, and Debian's Nginx default has no TLS 1.3)
    resolve = f"{SITE}:{stack.port}:127.0.0.1"
    for versions in (("--tlsv1.3",), ("--tlsv1.2", "--tls-max", "1.2")):
        result = curl(*versions, "--cacert", str(ca.path), "--resolve", resolve,
                      f"https://{SITE}:{stack.port}/")
        assert result.stdout == "200", (versions, result.stderr)
    old = curl("--tlsv1.1", "--tls-max", "1.1", "--cacert", str(ca.path), "--resolve", resolve,
               f"https://{SITE}:{stack.port}/")
    assert old.returncode != 0


# -- 14 (the kit's part): a host name no DNS name can have is a clean 400 ----------------------

def test_a_host_label_over_63_characters_is_a_400_from_nginx(make_stack) -> None:
    stack = make_stack("--app", "probe:application").start()
    assert raw(stack.port, get("/x", "a" * 63 + ".example"))[0] == 200
    for host in ("a" * 64 + ".example", "www." + "b" * 64, "c" * 64, ("d" * 60 + ".") * 5):
        status, _, body = raw(stack.port, get("/x", host))
        assert status == 400 and body.startswith(b"Bad request"), host
    assert stack.seen().count("/x") == 1


# -- 9: one Strict-Transport-Security header, from the kit's setting -------------------------

@pytest.mark.parametrize("hsts", ["300", "0"])
def test_one_hsts_header_from_the_setting_whatever_the_app_sends(make_stack, ca, hsts) -> None:
    issued = ca.issue("site")
    stack = make_stack("--app", "probe:application", "--hsts", hsts,
                       "--tls-cert", str(issued.cert), "--tls-key", str(issued.key)).start()
    expected = [f"max-age={hsts}"] if hsts != "0" else []
    for path in ("/hsts", "/", "/static-missing/x"):
        r = requests.get(f"https://127.0.0.1:{stack.port}{path}", verify=str(ca.path),
                         timeout=10)
        # before: the app's max-age=31536000 came first (browsers take it), then the kit's
        assert r.raw.headers.getlist("Strict-Transport-Security") == expected, path
        assert r.raw.headers.getlist("X-Content-Type-Options") == ["nosniff"], path  # once


# -- 12: a negotiated answer is never served to the other kind of client ----------------------

def test_a_json_answer_stored_for_an_api_client_is_not_served_to_browsers(make_stack) -> None:
    stack = make_stack("--app", "cachy:application").start()
    path = "/missing?cc=public,+max-age=60&negotiate=1"
    api = requests.get(stack.url + path, headers={"Accept": "application/json"}, timeout=10)
    assert api.headers["Content-Type"] == "application/json"
    browser = requests.get(stack.url + path, timeout=10, headers={
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    # before: the stored JSON (HIT)
    assert browser.headers["Content-Type"] == "text/plain", browser.headers
    again = requests.get(stack.url + path, headers={"Accept": "application/json"}, timeout=10)
    assert again.headers["X-Cache-Status"] == "HIT" and again.text == api.text


# -- 11: the metrics listener holds no thread per connection and times idle ones out -----------

def threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_idle_connections_to_metrics_cost_no_threads_and_never_starve_a_scrape(
        make_stack) -> None:
    port = free_port()
    stack = make_stack("--app", "probe:application", "--metrics-listen",
                       f"127.0.0.1:{port}").start()
    assert stack.proc is not None
    before = threads(stack.proc.pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(3000, hard - 200)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 200), hard))
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30  # bounded even when the listener stops accepting
        while len(idle) < count and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # the listen queue may refuse some: fine
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=1))
        # before: a thread per connection (3,000 connections, 3,003 threads) and scrapes
        # waiting for minutes
        r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200 and "flaskstack_up" in r.text
        assert threads(stack.proc.pid) <= before
        # an idle connection is closed by the server (REQUEST_SECONDS), not held forever
        probe = idle[-1]
        probe.settimeout(15)
        assert probe.recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
    assert os.path.exists(stack.run_dir)
