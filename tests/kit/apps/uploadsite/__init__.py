"""A fixture site whose /media/ holds people's uploads (declared untrusted)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"uploadsite"]
