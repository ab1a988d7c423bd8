"""Flask-SocketIO in its uWSGI mode (``gevent_uwsgi``) behind flaskstack: an echo event.

    flaskstack serve --app socketio_app:app --gevent 1000 --workers 1     # in this folder

uWSGI's gevent loop serves many sockets per worker (``--gevent``: greenlets per worker; the
``gevent`` package must be installed). One worker per Socket.IO server, or several with
``SocketIO(app, message_queue="redis://...")``; clients use the WebSocket transport (long-polling
needs sticky sessions, which workers sharing one socket do not give).
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent_uwsgi")


@socketio.on("echo")
def echo(data: dict[str, Any]) -> None:
    emit("echoed", {"text": str(data.get("text", "")).upper()})
