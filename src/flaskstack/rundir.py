"""The run directory's layout: every file the stack keeps there, named once; and the lock
that keeps it to one stack."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from typing import Any

NGINX_TEMP = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
PIPE_BUF = 4096  # Linux: writes up to this size to a pipe are atomic
# The access log's FIFO: room for 1 MiB (F_SETPIPE_SZ), and one worker's buffer of 64 KiB: Linux
# copies a larger write whole too while the pipe has room for it (an old worker flushing at a
# reload beside the new one). Several workers: PIPE_BUF, atomic whatever the pipe holds.
LOG_FIFO_SIZE = 1 << 20
LONE_LOG_BUFFER = 65536


class RunDir:
    """Paths in the run directory; templates, supervisor and CLI all use these.

    A plain class rather than a dataclass: the supervisor's process holds one and never loads
    :mod:`dataclasses` (1.4 MB with :mod:`inspect`, docs/benchmarks/memory-and-cpu.md).
    """

    __slots__ = ("path",)
    path: Path

    def __init__(self, path: Path | str) -> None:
        object.__setattr__(self, "path", Path(path))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"RunDir is read-only: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def __reduce__(self) -> tuple[type[RunDir], tuple[Path]]:
        return RunDir, (self.path,)

    def __str__(self) -> str:
        return str(self.path)

    # -- the supervisor
    @property
    def pid(self) -> Path:
        return self.path / "flaskstack.pid"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one ``serve`` that uses this run directory, for its whole life."""
        return self.path / "flaskstack.lock"

    @property
    def state(self) -> Path:
        """What the running stack was started with (:mod:`.running` reads it)."""
        return self.path / "flaskstack.json"

    @property
    def reload_status(self) -> Path:
        """How the last reload ended (JSON), for `flaskstack reload` to report."""
        return self.path / "reload.json"

    @property
    def drain(self) -> Path:
        """Upstream addresses `flaskstack drain` took out of rotation (role proxy)."""
        return self.path / "drain"

    # -- uWSGI
    @property
    def uwsgi_ini(self) -> Path:
        return self.path / "uwsgi.ini"

    def generation(self, number: int) -> Path:
        """An app generation's folder: its socket, FIFO, stats socket (see generation.py)."""
        return self.path / f"gen-{number}"

    # the serving generation's, through symbolic links into its folder
    @property
    def uwsgi_socket(self) -> Path:
        return self.path / "uwsgi.sock"

    @property
    def uwsgi_fifo(self) -> Path:
        return self.path / "uwsgi.fifo"

    @property
    def uwsgi_stats(self) -> Path:
        return self.path / "uwsgi-stats.sock"

    # -- Nginx
    @property
    def nginx_conf(self) -> Path:
        return self.path / "nginx.conf"

    @property
    def nginx_pid(self) -> Path:
        return self.path / "nginx.pid"

    @property
    def nginx_status(self) -> Path:
        return self.path / "nginx-status.sock"

    @property
    def mime_types(self) -> Path:
        return self.path / "mime.types"

    @property
    def uwsgi_params(self) -> Path:
        return self.path / "uwsgi_params"

    @property
    def access_log(self) -> Path:
        """A FIFO the supervisor relays to its stdout."""
        return self.path / "access.log"

    @property
    def errors(self) -> Path:
        return self.path / "errors"

    @property
    def cache(self) -> Path:
        """Nginx's response cache (unless the setting cache_path names another place)."""
        return self.path / "cache"

    @property
    def purge_socket(self) -> Path:
        """Where the app sends its cache purges (flaskstack.purge), roles all and proxy."""
        return self.path / "purge.sock"

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    def error_page(self, code: int, ext: str) -> Path:
        return self.errors / f"{code}.{ext}"

    def stale(self) -> tuple[Path, ...]:
        """Files a previous run may have left that would mislead this one."""
        return (self.uwsgi_socket, self.uwsgi_fifo, self.uwsgi_stats, self.nginx_pid,
                self.reload_status, *self.path.glob("gen-*"))


class Busy(Exception):
    """Another ``serve`` holds the run directory's lock."""

    def __init__(self, run: RunDir, state: dict[str, Any]) -> None:
        self.run = run
        self.state = state
        pid = state.get("pid", "?")
        where = f", serving {state['url']}" if state.get("url") else ""
        super().__init__(
            f"another flaskstack serve (pid {pid}{where}) runs with run directory {run}: stop "
            "it first, or give this one another --run-dir"
        )


def read_state(run: RunDir) -> dict[str, Any]:
    """The running stack's state file; empty when absent or unreadable."""
    try:
        data = json.loads(run.state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def held(run: RunDir) -> bool:
    """Whether a ``serve`` holds the run directory's lock right now."""
    try:
        fd = os.open(run.lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # closing drops the probe's own shared lock
    return False


def take(run: RunDir) -> int:
    """Make the run directory and take its lock, before anything in it is touched; the lock
    lasts as long as the returned descriptor (the process). Raises :class:`Busy` naming the
    stack that holds it."""
    run.path.mkdir(parents=True, exist_ok=True)
    fd = os.open(run.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise Busy(run, read_state(run)) from None
        raise
    return fd


def write_state(run: RunDir, state: dict[str, Any]) -> None:
    tmp = run.state.with_name(run.state.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(run.state)


def drop_state(run: RunDir) -> None:
    with contextlib.suppress(OSError):
        run.state.unlink()
