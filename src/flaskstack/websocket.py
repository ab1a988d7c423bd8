"""Imported by every uWSGI worker (``import`` in uwsgi.ini): request_timeout holds for every
request but a completed WebSocket handshake.

uWSGI arms the timeout (its "user harakiri", from the ``route-run = harakiri:N`` rule) for every
request before the app runs. The app turns a request into a WebSocket by calling
``uwsgi.websocket_handshake``: only once that call has succeeded is the timeout lifted, for the
rest of that request (the socket stays open as long as its client wants; uWSGI's pings keep
Nginx's timer fresh). A client's ``Upgrade`` header alone decides nothing: a request that claims
to be an upgrade and is served as an ordinary one (Werkzeug routes it so without
``Connection: Upgrade``) is killed at the timeout like any other.

Apps and libraries call ``uwsgi.websocket_handshake`` by attribute (Flask examples,
Engine.IO's ``gevent_uwsgi`` driver), so replacing the attribute covers them.
"""

from __future__ import annotations

from typing import Any

import uwsgi

_handshake = uwsgi.websocket_handshake


def websocket_handshake(*args: Any, **kwargs: Any) -> Any:
    """uWSGI's handshake, then no request_timeout for this (now WebSocket) request."""
    result = _handshake(*args, **kwargs)  # raises when the handshake fails: timeout kept
    uwsgi.set_user_harakiri(0)
    return result


if not getattr(_handshake, "lifts_request_timeout", False):  # imported once per process
    websocket_handshake.lifts_request_timeout = True  # type: ignore[attr-defined]
    uwsgi.websocket_handshake = websocket_handshake
