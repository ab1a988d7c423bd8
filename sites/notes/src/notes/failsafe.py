"""The last answer: whatever fails inside the app — an error handler included — the client
gets a real 500 response, never an empty one.

uWSGI closes the connection when the WSGI callable raises; Nginx then answers 502 and counts the
replica as failing, so a few broken requests could take every replica out of a proxy's rotation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

TEXT = b"500 Internal Server Error: something went wrong on our side. It has been logged.\n"
JSON = b'{"status": 500, "message": "Something went wrong on our side. It has been logged."}\n'


class LastResort:
    """WSGI middleware, outermost: an exception escaping the app becomes a plain 500."""

    def __init__(self, app: Callable[..., Iterable[bytes]], logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except Exception:
            self.logger.exception("unhandled error answering %s %s",
                                  environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            path = str(environ.get("PATH_INFO", ""))
            wants_json = path.startswith("/api/") or "json" in environ.get("HTTP_ACCEPT", "")
            body = JSON if wants_json else TEXT
            # nothing was sent: the server sends headers with the first piece of the body
            start_response("500 Internal Server Error", [
                ("Content-Type", "application/json" if wants_json else "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ])
            return [body]


