"""`flaskstack status`: uWSGI workers from its stats socket, Nginx from stub_status."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .rundir import RunDir


def _read_unix(path: Path, request: bytes = b"") -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(str(path))
        if request:
            sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def rss(pid: int) -> int | None:
    """A process's resident memory in bytes, from /proc (uWSGI's own per-worker figure needs
    ``memory-report``, which costs every request a measurement)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def uwsgi_stats(run: RunDir) -> dict[str, Any]:
    return uwsgi_stats_at(run.uwsgi_stats)


def uwsgi_stats_at(path: Path) -> dict[str, Any]:
    """What a uWSGI's stats socket at ``path`` says (the stack's, or any other uWSGI's)."""
    data: dict[str, Any] = json.loads(_read_unix(path))
    return data


@dataclass
class NginxStatus:
    active: int
    accepted: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int


def nginx_status(run: RunDir) -> NginxStatus:
    raw = _read_unix(
        run.nginx_status,
        b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n",
    ).decode()
    body = raw.split("\r\n\r\n", 1)[1].split()
    # Active connections: N / server accepts handled requests / A H R /
    # Reading: r Writing: w Waiting: k
    return NginxStatus(
        active=int(body[2]), accepted=int(body[7]), handled=int(body[8]), requests=int(body[9]),
        reading=int(body[11]), writing=int(body[13]), waiting=int(body[15]),
    )


def report(run: RunDir) -> tuple[str, bool]:
    """A text report and whether every part that should answer did."""
    lines: list[str] = []
    ok = True
    try:
        stats = uwsgi_stats(run)
    except (OSError, ValueError) as e:
        lines.append(f"uwsgi: not answering ({e})")
        ok = False
    else:
        lines.append(f"uwsgi: master pid {stats.get('pid')}, listen queue "
                     f"{stats.get('listen_queue', 0)}/{stats.get('listen_queue_errors', 0)} errors")
        lines.append(f"  {'worker':>6} {'pid':>8} {'state':<10} {'requests':>9} {'rss':>10}")
        for w in stats.get("workers", []):
            size = rss(w["pid"])
            shown = "?" if size is None else f"{size / 1048576:.1f} MiB"
            lines.append(
                f"  {w['id']:>6} {w['pid']:>8} {w['status']:<10} {w['requests']:>9} {shown:>10}"
            )
    if run.nginx_conf.exists():
        try:
            n = nginx_status(run)
        except (OSError, ValueError, IndexError) as e:
            lines.append(f"nginx: not answering ({e})")
            ok = False
        else:
            lines.append(
                f"nginx: {n.active} active connections (reading {n.reading}, writing "
                f"{n.writing}, waiting {n.waiting}); {n.requests} requests served"
            )
    return "\n".join(lines), ok
