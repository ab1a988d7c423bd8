"""A fixture WSGI app: records every path it sees, sleeps on /slow, echoes headers (and the CGI
variables), answers /status?CODE with that status, sends its own Strict-Transport-Security and
nosniff on /hsts."""

import json
import os
import time

SEEN = os.environ.get("PROBE_SEEN", "")
VERSION = "v1"
CGI = {"REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "CONTENT_TYPE",
       "CONTENT_LENGTH", "HTTPS", "REQUEST_SCHEME", "DOCUMENT_ROOT"}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if SEEN:
        with open(SEEN, "a") as f:
            f.write(path + "\n")
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
    if path == "/headers":
        body = json.dumps({k: v for k, v in environ.items()
                           if k.startswith("HTTP_") or k in CGI or k == "wsgi.url_scheme"})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body.encode()]
    if path == "/status":  # an application error: /status?503
        code = int(environ.get("QUERY_STRING") or 500)
        start_response(f"{code} Probe", [("Content-Type", "text/plain")])
        return [f"{code} from the app".encode()]
    if path == "/hsts":  # an app with its own opinion of HSTS (a year), and of nosniff
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Strict-Transport-Security", "max-age=31536000"),
                                  ("X-Content-Type-Options", "nosniff")])
        return [b"hsts"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path in ("/lock", "/write"):  # a SQLite write lock held while sleeping, and a writer
        import sqlite3

        db = sqlite3.connect(os.environ["PROBE_DB"], timeout=0.5, isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS t (x)")
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (1)")
            if path == "/lock":
                time.sleep(float(environ.get("QUERY_STRING") or 2))
            db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [str(e).encode()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"written"]
    if path == "/upload":
        size = len(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(size).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{VERSION} {path}".encode()]
