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
    def tmp(self) -> Path:
        return self.path / "tmp"

    def error_page(self, code: int, ext: str) -> Path:
        return self.errors / f"{code}.{ext}"

    def stale(self) -> tuple[Path, ...]:
        """Files a previous run may have left that would mislead this one."""
        return (self.uwsgi_socket, self.uwsgi_fifo, self.uwsgi_stats, self.nginx_pid,
                self.reload_status, *self.path.glob("gen-*"))
