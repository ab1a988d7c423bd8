"""The stack's own lines and its servers' messages, in the one format ``access_log_format``
chooses: ``combined`` (plain text, as the servers write it) or ``json`` (one JSON object per line
with ``time``, ``source``, ``level`` and ``message``; Nginx's access lines also carry the request
id). Requests are never relayed line by line in Python here: Nginx's access log has its own
relay, and uWSGI writes its lines as JSON itself; only servers' messages pass through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from typing import IO

_json = False

# 2026/11/30 00:28:20 [error] 21927#21927: *4 upstream prematurely closed connection ...
_NGINX = re.compile(r"^(\d{4})/(\d\d)/(\d\d) (\d\d:\d\d:\d\d) \[(\w+)\] (?:\d+#\d+: )?(.*)$")
LEVELS = {"emerg": "critical", "alert": "critical", "crit": "critical", "error": "error",
          "warn": "warning", "notice": "info", "info": "info", "debug": "debug"}


def configure(json_lines: bool) -> None:
    global _json
    _json = json_lines


def json_lines() -> bool:
    return _json


def now() -> str:
    import datetime  # (JSON lines only: plain ones never load it)

    return datetime.datetime.now(datetime.UTC).astimezone().isoformat(timespec="seconds")


def line(source: str, level: str, message: str, time: str | None = None) -> str:
    return json.dumps({"time": time or now(), "source": source, "level": level,
                       "message": message}, ensure_ascii=False)


def log(message: str, level: str = "info") -> None:
    """One line of the supervisor's own, on stderr."""
    text = line("flaskstack", level, message) if _json else f"flaskstack: {message}"
    print(text, file=sys.stderr, flush=True)


def as_json(source: str, text: str) -> str:
    """A server's message line as a JSON line (lines already JSON pass unchanged)."""
    if text.startswith("{"):
        return text
    found = _NGINX.match(text)
    if found:
        import datetime

        year, month, day, clock, level, message = found.groups()
        stamp = datetime.datetime.fromisoformat(f"{year}-{month}-{day}T{clock}")
        return line(source, LEVELS.get(level, "info"), message,
                    stamp.astimezone().isoformat(timespec="seconds"))
    return line(source, "info", text)


def relay(source: str, out: IO[str] | None = None) -> int:
    """A pipe whose lines reach ``out`` (stderr) as JSON lines; returns its write end, for a
    child's stdout/stderr (the caller closes it once the child has it)."""
    read_fd, write_fd = os.pipe()
    target = out or sys.stderr

    def copy() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as lines:
            for text in lines:
                with contextlib.suppress(OSError, ValueError):
                    target.write(as_json(source, text.rstrip("\n")) + "\n")
                    target.flush()

    threading.Thread(target=copy, name=f"{source}-log", daemon=True).start()
    return write_fd
