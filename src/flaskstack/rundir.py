"""The run directory's layout: every file the stack keeps there, named once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NGINX_TEMP = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class RunDir:
    """Paths in the run directory; templates, supervisor and CLI all use these."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    # -- the supervisor
    @property
    def pid(self) -> Path:
        return self.path / "flaskstack.pid"

    @property
    def drain(self) -> Path:
        """Upstream addresses `flaskstack drain` took out of rotation (role proxy)."""
        return self.path / "drain"

    # -- uWSGI
    @property
    def uwsgi_ini(self) -> Path:
        return self.path / "uwsgi.ini"

    @property
    def uwsgi_socket(self) -> Path:
        return self.path / "uwsgi.sock"

    @property
    def uwsgi_fifo(self) -> Path:
        return self.path / "uwsgi.fifo"

    @property
    def uwsgi_stats(self) -> Path:
        return self.path / "uwsgi-stats.sock"

    @property
    def uwsgi_ready(self) -> Path:
        """Touched by uWSGI once its first worker has the app loaded and accepts."""
        return self.path / "uwsgi.ready"

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
        return (self.uwsgi_ready, self.uwsgi_socket, self.uwsgi_fifo, self.nginx_pid)
