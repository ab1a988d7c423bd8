"""A fixture WSGI app for the response cache: answers with the headers the query asks for.

``/any/path?cc=public,+max-age=60&cookie=1&sleep=0.5``: ``cc`` is sent as Cache-Control,
``cookie`` adds a Set-Cookie, ``sleep`` delays the answer, ``purge`` (comma-separated paths)
purges them from the kit's cache first (flaskstack.purge.send; its problems are sent back as
X-Purge-Problems), ``gzip`` compresses the body when
the request's Accept-Encoding names gzip (the header the app saw is sent back as
X-Seen-Accept-Encoding), ``negotiate`` answers JSON to a request whose Accept names JSON (with
no Vary, as careless apps do). The body is the content of the file
``$CACHY_CONTENT`` (or ``v1``), the path and a token unique to this call of the app, so a client
can tell a stored answer from a fresh one; every call is recorded in ``$PROBE_SEEN``.
"""

import gzip
import os
import time
import uuid
from urllib.parse import parse_qs

SEEN = os.environ.get("PROBE_SEEN", "")
CONTENT = os.environ.get("CACHY_CONTENT", "")


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if SEEN:
        with open(SEEN, "a") as f:
            f.write(path + "\n")
    if "sleep" in query:
        time.sleep(float(query["sleep"][0]))
    headers = [("Content-Type", "text/plain")]
    if "purge" in query:
        from flaskstack import purge

        problems = purge.send(query["purge"][0].split(","))
        headers.append(("X-Purge-Problems", "; ".join(problems) or "none"))
    if "cc" in query:
        headers.append(("Cache-Control", query["cc"][0]))
    if "cookie" in query:
        headers.append(("Set-Cookie", "chosen=1; Path=/"))
    version = "v1"
    if CONTENT and os.path.exists(CONTENT):
        with open(CONTENT) as f:
            version = f.read().strip()
    body = f"{version} {path} {uuid.uuid4().hex}".encode()
    if "negotiate" in query and "json" in environ.get("HTTP_ACCEPT", ""):
        headers[0] = ("Content-Type", "application/json")
        body = b'{"answer": "%s"}' % body
    seen = environ.get("HTTP_ACCEPT_ENCODING", "")
    headers.append(("X-Seen-Accept-Encoding", seen))
    if "gzip" in query:
        headers.append(("Vary", "Accept-Encoding"))
        if "gzip" in seen:
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
    start_response("200 OK", headers)
    return [body]
