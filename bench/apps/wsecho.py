"""The build comparison's app: Flask's hello on /, a uWSGI WebSocket echo on /ws."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hello import app


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/ws":
        import uwsgi  # only inside uWSGI

        uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"],
                                  environ.get("HTTP_ORIGIN", ""))
        while True:
            uwsgi.websocket_send(uwsgi.websocket_recv())
    return app(environ, start_response)
