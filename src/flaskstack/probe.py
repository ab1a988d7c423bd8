"""One request to a running stack, as `flaskstack health` and container probes make it.

Roles all and proxy answer HTTP; role app answers the uwsgi protocol on its TCP socket, so the
probe speaks that (a 4-byte header, then the request's variables; the answer is plain HTTP).
"""

from __future__ import annotations

import socket
import struct

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    import http.client

USER_AGENT = "flaskstack-health"


def http_status(host: str, port: int, path: str, tls: bool = False, timeout: float = 4) -> int:
    """The status code of ``GET path`` over HTTP(S)."""
    import http.client  # (with ssl: kept out of the supervisor, which probes only uwsgi)
    import ssl

    conn: http.client.HTTPConnection
    if tls:
        context = ssl._create_unverified_context()  # a probe of our own port, not a client
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT})
        return conn.getresponse().status
    finally:
        conn.close()


def uwsgi_packet(path: str, host: str) -> bytes:
    """A uwsgi-protocol ``GET path`` request (modifier 0: a WSGI request)."""
    variables = {
        "REQUEST_METHOD": "GET", "REQUEST_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": host, "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": host, "HTTP_USER_AGENT": USER_AGENT,
    }
    body = b"".join(
        struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
        for k, v in ((k.encode(), v.encode()) for k, v in variables.items())
    )
    return struct.pack("<BHB", 0, len(body), 0) + body


def uwsgi_status(host: str, port: int, path: str, timeout: float = 4) -> int:
    """The status code of ``GET path`` sent to a uWSGI socket speaking the uwsgi protocol."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        return exchange(sock, path, host)


def uwsgi_status_unix(address: str, path: str, host: str = "localhost",
                      timeout: float = 4) -> int:
    """The same on a unix socket (an app generation's own, before it takes requests)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        return exchange(sock, path, host)


def exchange(sock: socket.socket, path: str, host: str) -> int:
    """Send ``GET path`` on a connected uwsgi socket; the answer's status code."""
    sock.sendall(uwsgi_packet(path, host))
    head = b""
    while b"\r\n" not in head and len(head) < 1024:
        chunk = sock.recv(1024)
        if not chunk:
            break
        head += chunk
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {head[:60]!r}")
    return int(parts[1])
