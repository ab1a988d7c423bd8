"""The HTTP cache policy: which answers a shared cache (the kit's Nginx) may keep, and for
how long; those are compressed here, once, so the cache keeps and serves the compressed copy
instead of compressing it again for every reader."""

from __future__ import annotations

import gzip

from flask import Response, current_app, request

# cacheable for anonymous readers
PUBLIC_ENDPOINTS = frozenset({"views.index", "views.note", "views.author", "views.tag",
                              "views.feed", "views.sitemap", "views.robots"})
STATIC_ENDPOINTS = frozenset({"static", "views.media", "admin.static"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CACHED_STATUSES = frozenset({200, 404})
COMPRESSED_TYPES = frozenset({"text/html", "text/plain", "text/xml", "application/xml",
                              "application/atom+xml", "application/json"})
SMALLEST_COMPRESSED = 256  # bytes: below this gzip's own header and trailer outweigh the gain


def public_read() -> bool:
    return request.method in SAFE_METHODS and request.endpoint in PUBLIC_ENDPOINTS


def cache_policy(response: Response, personal: bool) -> None:
    """Anonymous public pages may be shared by caches for ``NOTES_CACHE_SECONDS``; anything that
    could differ per user (a session, a cookie sent or set, a token) is ``private, no-store``."""
    if request.endpoint in STATIC_ENDPOINTS:
        return
    config = current_app.config
    personal = personal or "Set-Cookie" in response.headers or "Authorization" in request.headers
    cookies = (config["SESSION_COOKIE_NAME"], config["REMEMBER_COOKIE_NAME"])
    personal = personal or any(name in request.cookies for name in cookies)
    if personal:
        response.headers["Cache-Control"] = "private, no-store"
    elif (public_read() and response.status_code in CACHED_STATUSES
          and config["NOTES_CACHE_SECONDS"]):
        # max-age=0: browsers revalidate (after signing in they must not show the anonymous
        # page); s-maxage: a shared cache may serve it to other anonymous readers for N seconds.
        # A 404 too: a shared cache that holds the page keeps serving its stale copy while its
        # refreshed answer (the note unpublished or deleted) is not cacheable.
        response.headers["Cache-Control"] = (
            f"public, max-age=0, s-maxage={config['NOTES_CACHE_SECONDS']}")
        compress(response)


def compress(response: Response) -> None:
    """gzip ``response`` in place when the client accepts it and it is worth it."""
    response.vary.add("Accept-Encoding")
    if (not request.accept_encodings["gzip"] or response.direct_passthrough
            or response.is_streamed or "Content-Encoding" in response.headers
            or response.mimetype not in COMPRESSED_TYPES):
        return
    data = response.get_data()
    if len(data) < SMALLEST_COMPRESSED:
        return
    response.set_data(gzip.compress(data, compresslevel=6, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
