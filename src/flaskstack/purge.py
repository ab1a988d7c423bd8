"""Purging the response cache: an app says "these paths changed", every cached answer for them
(any query string, host, scheme, compression or ``Vary`` variant) stops being served.

Open-source Nginx has no purge. What the kit does instead:

* The entries are Nginx's own files (``uwsgi_cache_path``). Each starts with a binary header
  whose first field is the cache format's version, then the line ``KEY: <the cache key>``; the
  kit's key begins ``$scheme://$http_host$request_uri``, so the path of every entry can be read
  back from its file.
* Purging a path overwrites the version field of each of its files with 0. Nginx checks that
  field on every hit: a mismatch is an ordinary miss (logged at ``info`` only), the next request
  goes to the app and its answer replaces the file. Nothing is deleted behind Nginx's back, so
  its cache manager's bookkeeping stays right (deleting a file makes it log ``crit`` later).
* The purger remembers which path each file holds (by inode: Nginx writes a new answer to a new
  file and renames it into place), so a purge reads only the files written since the last one.
* The purger runs in the stack that owns the cache (roles ``all`` and ``proxy``), in the
  supervisor, and listens on a Unix socket in the run directory (mode 0600, the stack's user:
  only the app's processes and root reach it) and, in role ``proxy``, on ``cache_purge_listen``,
  answering only connections from the addresses the ``upstreams`` resolve to (the app replicas).
* A purge is repeated once, :data:`AGAIN` seconds later: an answer the app rendered just before
  its change, still in flight when the first purge ran, is stored after it.

The app side: :func:`send` (``POST /purge`` with one path per line), to every address of every
target in ``FLASKSTACK_CACHE_PURGE_TO`` (which the kit sets for the app in role ``all``).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from typing import Any

ENV = "FLASKSTACK_CACHE_PURGE_TO"
KEY_LINE = b"\nKEY: "
HEADER_READ = 16384  # the binary header (~0x150 bytes) plus a key of the longest URL
NAME = re.compile(r"[0-9a-f]{32}")  # an entry's file (temporary files carry a suffix)
ALL = "*"  # purge every entry
AGAIN = 2.0  # seconds: the second purge
MAX_REQUEST = 1024 * 1024  # bytes of paths in one purge
TIMEOUT = 5.0  # seconds a purge connection may take


def entry_path(key: str) -> str | None:
    """The URL path of a cache key ``scheme://host/path?query variant...``, unquoted."""
    _, sep, rest = key.partition("://")
    if not sep:
        return None
    slash = rest.find("/")
    if slash < 0:
        return None
    uri = rest[slash:].split(" ", 1)[0]
    return normal(uri)


def normal(path: str) -> str:
    """A path as purges compare them: no query string, percent-escapes decoded."""
    return unquote(urlsplit(path).path or "/")


class Cache:
    """One cache directory and what the purger knows of its files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # folder -> (its mtime when listed, {file: (inode, the path it holds)})
        self.folders: dict[str, tuple[int, dict[str, tuple[int, str | None]]]] = {}
        self.lock = threading.Lock()

    def entries(self) -> Iterable[tuple[str, str | None]]:
        """(file, path) of every entry now in the cache. A folder whose mtime has not changed
        since it was listed is not listed again (Nginx adds an entry by renaming a file into
        it); only files not seen before are read."""
        now = time.time_ns()
        folders = {}
        for folder in self._folders():
            try:
                mtime = os.stat(folder).st_mtime_ns
            except OSError:
                continue
            known = self.folders.get(folder)
            # (a folder changed within the last second may change again with the same mtime:
            # file times have the kernel tick's resolution)
            if known is not None and known[0] == mtime and now - mtime > 1_000_000_000:
                folders[folder] = known
                continue
            files = known[1] if known is not None else {}
            listed: dict[str, tuple[int, str | None]] = {}
            try:
                items = list(os.scandir(folder))
            except OSError:
                continue
            for item in items:
                if len(item.name) != 32 or not NAME.fullmatch(item.name):
                    continue
                inode = item.inode()
                seen = files.get(item.path)
                listed[item.path] = seen if seen is not None and seen[0] == inode else (
                    inode, _read_path(item.path))
            folders[folder] = (mtime, listed)
        self.folders = folders
        return [(name, path) for _, files in folders.values()
                for name, (_, path) in files.items()]

    def _folders(self) -> Iterable[str]:
        stack = [str(self.directory)]
        while stack:
            folder = stack.pop()
            yield folder
            try:
                stack.extend(e.path for e in os.scandir(folder)
                             if e.is_dir(follow_symlinks=False) and len(e.name) <= 2)
            except OSError:
                continue

    def purge(self, paths: Iterable[str]) -> int:
        """Invalidate every entry for ``paths`` (``*``: all); how many were."""
        wanted = {p if p == ALL else normal(p) for p in paths}
        count = 0
        with self.lock:
            for name, path in self.entries():
                if path is not None and (ALL in wanted or path in wanted):
                    count += _invalidate(name)
                    files = self.folders[os.path.dirname(name)][1]
                    files[name] = (files[name][0], None)
        return count


def _read_path(name: str) -> str | None:
    """The path an entry holds (None: unreadable, or already invalidated)."""
    try:
        with open(name, "rb") as f:
            head = f.read(HEADER_READ)
    except OSError:
        return None
    if len(head) < 8 or head[:8] == bytes(8):
        return None
    start = head.find(KEY_LINE)
    end = head.find(b"\n", start + len(KEY_LINE)) if start >= 0 else -1
    if end < 0:
        return None
    return entry_path(head[start + len(KEY_LINE):end].decode("utf-8", "replace"))


def _invalidate(name: str) -> int:
    try:
        fd = os.open(name, os.O_WRONLY)
    except OSError:
        return 0
    try:
        os.pwrite(fd, bytes(8), 0)  # the header's version: Nginx's next read is a miss
    finally:
        os.close(fd)
    return 1


# -- the listener (in the supervisor) -------------------------------------------------------

class Listener:
    """Answers ``POST /purge`` on the sockets given, one connection at a time."""

    def __init__(self, cache: Cache, sockets: Sequence[socket.socket],
                 allowed: Callable[[str], bool]) -> None:
        self.cache = cache
        self.sockets = sockets
        self.allowed = allowed  # a TCP peer's address -> may it purge?
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, name="purge", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for s in self.sockets:
            s.close()

    def serve(self) -> None:
        import selectors

        with selectors.DefaultSelector() as selector:
            for s in self.sockets:
                selector.register(s, selectors.EVENT_READ)
            while not self.stopping.is_set():
                try:
                    events = selector.select(timeout=0.5)
                except (OSError, ValueError):
                    return
                for key, _ in events:
                    try:
                        conn, peer = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    with conn:
                        self.answer(conn, peer)

    def answer(self, conn: socket.socket, peer: object) -> None:
        if isinstance(peer, tuple) and not self.allowed(str(peer[0])):
            _reply(conn, 403, "only the app may purge\n")
            return
        conn.settimeout(TIMEOUT)
        try:
            paths = _read_request(conn)
        except (OSError, ValueError) as e:
            _reply(conn, 400, f"{e}\n")
            return
        count = self.cache.purge(paths)
        _reply(conn, 200, f"{count}\n")
        timer = threading.Timer(AGAIN, self.cache.purge, args=(paths,))
        timer.daemon = True
        timer.start()


def _read_request(conn: socket.socket) -> list[str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("incomplete request")
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too large")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("POST /purge "):
        raise ValueError("expected POST /purge")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_REQUEST:
        raise ValueError("request too large")
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("incomplete request")
        body += chunk
    paths = [p for p in body[:length].decode("utf-8").split("\n") if p]
    if not all(p == ALL or p.startswith("/") for p in paths):
        raise ValueError("each line must be a path starting with / (or *)")
    return paths


def _reply(conn: socket.socket, status: int, text: str) -> None:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden"}[status]
    body = text.encode()
    with contextlib.suppress(OSError):
        conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


# -- the app side ---------------------------------------------------------------------------

def targets(value: str | None = None) -> list[str]:
    """Where purges go: ``unix:PATH`` or ``HOST:PORT`` (every address of HOST), comma
    separated; from ``FLASKSTACK_CACHE_PURGE_TO`` by default."""
    raw = os.environ.get(ENV, "") if value is None else value
    return [t.strip() for t in raw.split(",") if t.strip()]


def send(paths: Iterable[str], to: Sequence[str] | None = None, timeout: float = 3.0
         ) -> list[str]:
    """Purge ``paths`` (``/n/slug``; ``*`` for everything) from every cache the kit told
    this app about. Returns the problems, one line each (empty: every cache purged);
    no target configured means no cache to purge."""
    body = "".join(f"{p}\n" for p in paths).encode()
    if not body:
        return []
    request = (f"POST /purge HTTP/1.1\r\nHost: flaskstack\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    problems = []
    for target in targets(None) if to is None else to:
        for family, address in _addresses(target):
            try:
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.settimeout(timeout)
                    s.connect(address)
                    s.sendall(request)
                    answer = b""
                    while chunk := s.recv(4096):
                        answer += chunk
                if not answer.startswith(b"HTTP/1.1 200 "):
                    status = answer.split(b"\r\n", 1)[0].decode("latin-1")
                    problems.append(f"{target}: {status or 'no answer'}")
            except OSError as e:
                problems.append(f"{target} ({address}): {e.strerror or e}")
    return problems


def _addresses(target: str) -> list[tuple[int, Any]]:
    if target.startswith("unix:"):
        return [(socket.AF_UNIX, target[5:])]
    host, _, port = target.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError):
        return [(socket.AF_INET, (host, 0))]  # fails to connect: reported
    return sorted({(info[0], info[4]) for info in infos}, key=str)

