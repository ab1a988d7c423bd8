"""A Flask app with a WebSocket endpoint on uWSGI's own WebSocket API, served by flaskstack.

    flaskstack serve --app app:app --threads 8      # in this folder; open http://127.0.0.1:85/

Each open WebSocket holds one uWSGI core (a thread here) for as long as it stays open: size
``--workers`` x ``--threads`` for the sockets you expect, plus the ordinary requests. The kit
keeps ``request_timeout`` from killing an open socket and keeps it alive through Nginx with pings.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, abort, request

app = Flask(__name__)


class Upgraded(Response):
    """What a WebSocket view returns: the connection is no longer HTTP, so nothing is sent."""

    def __call__(self, environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
        return []


def close(code: int = 1000) -> None:
    """Send a close frame (uWSGI 2.0 has no call for it): the client sees a clean close."""
    import uwsgi

    with contextlib.suppress(OSError):  # the client may be gone already
        os.write(uwsgi.connection_fd(), b"\x88\x02" + struct.pack("!H", code))

PAGE = """<!doctype html><meta charset="utf-8"><title>echo</title>
<input id="text" value="hello"><button id="send">send</button><pre id="log"></pre>
<script>
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/ws");
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
socket.onmessage = (event) => log("< " + event.data);
socket.onclose = (event) => log("closed " + event.code);
document.getElementById("send").onclick = () => {
  const text = document.getElementById("text").value; socket.send(text); log("> " + text);
};
</script>
"""


@app.get("/")
def index() -> str:
    return PAGE


# websocket=True: Werkzeug routes an upgrade request only to rules that say so (others: 400)
@app.route("/ws", websocket=True)
def echo() -> Upgraded:
    """Answer every message with its upper-case echo until the client closes."""
    try:
        import uwsgi  # only inside uWSGI
    except ImportError:
        abort(501, "WebSockets need uWSGI (flaskstack serve)")
    uwsgi.websocket_handshake(request.headers["Sec-WebSocket-Key"],
                              request.headers.get("Origin", ""))
    uwsgi.websocket_send(b"welcome")
    while True:
        try:
            message = uwsgi.websocket_recv()  # blocks; uWSGI answers pings and sends its own
        except OSError:  # the client closed, or Nginx ended the connection (a stop, a reload)
            break
        if message == b"close":
            close(1000)
            break
        uwsgi.websocket_send(message.decode("utf-8", "replace").upper())
    return Upgraded()
