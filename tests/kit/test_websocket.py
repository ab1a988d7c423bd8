"""WebSockets end to end: a real client, through the real Nginx, to uWSGI's WebSocket API."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.load import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "websocket" / "app.py"


@pytest.fixture
def ws_stack(make_stack):  # type: ignore[no-untyped-def]
    """``ws_stack(*args)`` -> a started stack serving the example plus a slow route."""

    def make(*args: str):  # type: ignore[no-untyped-def]
        stack = make_stack("--app", "wsprobe:app", "--threads", "4", "--workers", "2", *args)
        shutil.copy(EXAMPLE, stack.app_dir / "wsexample.py")
        (stack.app_dir / "wsexample.py").chmod(0o644)
        return stack.start()

    return make


def ws_url(stack) -> str:  # type: ignore[no-untyped-def]
    return f"ws://127.0.0.1:{stack.port}/ws"


def test_messages_flow_both_ways_through_nginx(ws_stack) -> None:
    stack = ws_stack()
    with connect(ws_url(stack), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "welcome"  # server to client, unprompted
        for text in ("hello", "ünïcode ✓", "x" * 50_000):
            ws.send(text)
            assert ws.recv(timeout=10) == text.upper()
        # the socket holds one uWSGI core; ordinary requests still get the others
        assert requests.get(stack.url + "/", timeout=10).status_code == 200
        ws.send("close")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    # the access log reaches the relay in buffered writes, at least once a second
    assert wait_for(lambda: '"GET /ws HTTP/1.1" 101' in stack.output(), timeout=10)


def test_plain_request_to_the_websocket_route_is_refused(ws_stack) -> None:
    stack = ws_stack()
    assert requests.get(stack.url + "/ws", timeout=10).status_code == 400
    # a WebSocket client on an ordinary route gets an HTTP error, not a hung socket
    with pytest.raises(InvalidStatus):
        connect(f"ws://127.0.0.1:{stack.port}/", open_timeout=10)


def test_open_socket_outlives_request_timeout_which_still_kills_slow_requests(ws_stack) -> None:
    # request_timeout 2: uWSGI's harakiri at 2 s, Nginx's upstream read timeout at 7 s
    stack = ws_stack("--request-timeout", "2")
    with connect(ws_url(stack), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "welcome"
        time.sleep(9)  # idle past both timeouts: uWSGI's pings keep Nginx's timer fresh
        ws.send("still here")
        assert ws.recv(timeout=10) == "STILL HERE"
    slow = requests.get(stack.url + "/slow/6", timeout=30)
    assert slow.status_code == 502  # harakiri killed it
    # hostile: another Upgrade header does not escape request_timeout (Nginx drops it) ...
    sneaky = requests.get(stack.url + "/slow/6", timeout=30,
                          headers={"Upgrade": "anything", "Connection": "Upgrade"})
    assert sneaky.status_code == 502
    # ... and a WebSocket upgrade of an ordinary route is refused by the app's router at once
    refused = requests.get(stack.url + "/slow/6", timeout=30,
                           headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert refused.status_code == 400
    deadline = time.monotonic() + 10  # uWSGI's master writes its log lines a little later
    while stack.output().count("HARAKIRI ON WORKER") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.output().count("HARAKIRI ON WORKER") == 2


def test_graceful_stop_closes_open_sockets(ws_stack) -> None:
    stack = ws_stack("--grace", "3")
    closed: list[float] = []
    with connect(ws_url(stack), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "welcome"

        def wait_close() -> None:
            try:
                while True:
                    ws.recv(timeout=30)
            except ConnectionClosed:
                closed.append(time.monotonic())

        reader = threading.Thread(target=wait_close)
        reader.start()
        start = time.monotonic()
        assert stack.stop(signal.SIGTERM, timeout=30) == 0  # nothing had to be forced
        reader.join(30)
    assert closed and closed[0] - start < 3 + 2
    assert "forcing" not in stack.output()


def test_reload_closes_open_sockets_and_serves_throughout(ws_stack) -> None:
    stack = ws_stack("--grace", "3")
    failures: list[str] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            r = requests.get(stack.url + "/", timeout=10)
            if r.status_code != 200:
                failures.append(str(r.status_code))

    loader = threading.Thread(target=load)
    with connect(ws_url(stack), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "welcome"
        loader.start()
        try:
            assert stack.cli("reload").returncode == 0
            with pytest.raises(ConnectionClosed):  # the old worker's socket ends within grace
                while True:
                    ws.recv(timeout=3 + 5)
            with connect(ws_url(stack), open_timeout=10) as again:  # new workers take new ones
                assert again.recv(timeout=10) == "welcome"
                again.send("after reload")
                assert again.recv(timeout=10) == "AFTER RELOAD"
        finally:
            done.set()
            loader.join(30)
    assert failures == []


def test_flask_socketio_uwsgi_mode_on_the_gevent_loop(make_stack) -> None:
    import socketio

    stack = make_stack("--app", "sioapp:app", "--gevent", "100", "--workers", "1",
                       "--request-timeout", "2")
    shutil.copy(EXAMPLE.with_name("socketio_app.py"), stack.app_dir / "sioapp.py")
    (stack.app_dir / "sioapp.py").chmod(0o644)
    stack.start()
    client = socketio.Client()
    answers: list[dict[str, str]] = []
    client.on("echoed", answers.append)
    client.connect(f"http://127.0.0.1:{stack.port}", transports=["websocket"], wait_timeout=10)
    try:
        client.emit("echo", {"text": "hi"})
        time.sleep(4)  # past request_timeout: the socket stays
        client.emit("echo", {"text": "again"})
        deadline = time.monotonic() + 10
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.disconnect()
    assert answers == [{"text": "HI"}, {"text": "AGAIN"}]
    assert "HARAKIRI" not in stack.output()


def test_gevent_with_threads_is_a_settings_error(make_stack) -> None:
    stack = make_stack()
    result = stack.cli("config", "--gevent", "100", "--threads", "4")
    assert result.returncode == 2
    assert result.stderr.startswith("flaskstack: error: settings gevent and threads")
