"""Render ``nginx.conf``, ``uwsgi.ini`` and the error pages from the settings."""

from __future__ import annotations

import grp
import json
import os
import pwd
import resource
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from .settings import SettingError, Settings
from .site import SiteDeclaration

ERRORS = {
    413: ("Upload too large", "The file or form you sent is larger than this site accepts."),
    502: ("Bad gateway", "The application did not answer properly. Please try again shortly."),
    503: ("Service unavailable", "The site is busy or restarting. Please try again shortly."),
    504: ("Gateway timeout", "The application took too long to answer. Please try again."),
}

_env = Environment(
    loader=PackageLoader("flaskstack", "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 4096


def as_root() -> bool:
    return os.geteuid() == 0


def user_group(user: str) -> tuple[int, int, str]:
    """uid, gid and group name of ``user``; a missing user is a settings error."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SettingError(f"setting user: no such user {user!r} on this machine") from None
    return entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name


def resolve_upstreams(upstreams: list[str], placeholder: bool = False) -> list[str]:
    """Every address of every ``HOST:PORT`` upstream, sorted, so a change is easy to see.

    A name that does not resolve is left out (or, with ``placeholder``, stands as
    ``127.0.0.1:PORT`` so the configuration can still be checked).
    """
    servers: set[str] = set()
    for upstream in upstreams:
        host, port = split_host_port(upstream)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            if placeholder:
                servers.add(f"127.0.0.1:{port}")
            continue
        for info in infos:
            address = str(info[4][0])
            servers.add(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    return sorted(servers)


def loopback(host: str) -> str:
    """Where this machine reaches a listen address: a wildcard means its loopback."""
    host = host.strip("[]")
    if host in {"0.0.0.0", "*", ""}:
        return "127.0.0.1"
    return "::1" if host == "::" else host


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def uwsgi_module(app: str) -> str:
    """uWSGI's ``module`` value: ``pkg`` means ``pkg:app``; factories keep their ``()``."""
    return app if ":" in app else f"{app}:app"


@dataclass
class Rendered:
    """The rendered files, by name, plus the facts computed while rendering."""

    files: dict[str, str]
    static: list[tuple[str, str, str]] = field(default_factory=list)  # prefix, dir, source
    notes: list[str] = field(default_factory=list)  # adjustments worth telling the user
    backlog: int = 100  # listen backlog, after the somaxconn cap


def static_mappings(
    settings: Settings, decl: SiteDeclaration
) -> list[tuple[str, str, str]]:
    """The site's mappings, then the settings' (which win for the same prefix)."""
    merged: dict[str, tuple[str, str]] = {}
    for prefix, directory in decl.static:
        merged[prefix] = (directory, str(decl.path))
    for prefix, directory in settings.static:
        merged[prefix] = (directory, settings.sources["static"])
    # longest prefix first, so nested prefixes resolve as expected
    return [(p, d, src) for p, (d, src) in sorted(merged.items(), key=lambda i: -len(i[0]))]


def render(
    settings: Settings,
    decl: SiteDeclaration,
    run_dir: str | None = None,
    servers: list[str] | None = None,
) -> Rendered:
    """Render every file for ``settings`` with ``run_dir`` (default: the setting) as paths.

    ``servers`` are the proxy role's resolved upstream addresses (default: resolve now).
    """
    run = run_dir or settings.run_dir
    s = settings
    notes: list[str] = []
    backlog = s.backlog
    limit = somaxconn()
    if backlog > limit:
        notes.append(f"backlog {backlog} capped at net.core.somaxconn = {limit}")
        backlog = limit
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else 1 << 20
    rlimit_nofile = min(ceiling, 2 * s.nginx_connections + 64)
    worker_connections = min(s.nginx_connections, max(64, rlimit_nofile - 32))
    if worker_connections < s.nginx_connections:
        notes.append(
            f"nginx_connections {s.nginx_connections} lowered to {worker_connections}: "
            f"the open-files limit is {hard}"
        )
    root = as_root()
    group = user_group(s.user)[2] if root else ""
    static = static_mappings(settings, decl) if s.role != "app" else []
    context: dict[str, Any] = {
        "s": s,
        "run": run,
        "as_root": root,
        "group": group,
        "backlog": backlog,
        "rlimit_nofile": rlimit_nofile,
        "worker_connections": worker_connections,
        "static": [(p, d) for p, d, _ in static],
        "tls": bool(s.tls_cert),
        "module": uwsgi_module(s.app),
        "servers": servers if servers is not None else resolve_upstreams(s.upstreams, True),
    }
    files: dict[str, str] = {}
    if s.role != "app":
        files["nginx.conf"] = _env.get_template("nginx.conf.j2").render(context)
        base = resources.files("flaskstack") / "templates"
        files["mime.types"] = (base / "mime.types").read_text()
        files["uwsgi_params"] = (base / "uwsgi_params").read_text()
        page = _env.get_template("error.html.j2")
        for code, (title, message) in ERRORS.items():
            files[f"errors/{code}.html"] = page.render(code=code, title=title, message=message)
            files[f"errors/{code}.json"] = json.dumps(
                {"error": title, "status": code, "message": message}
            ) + "\n"
    if s.role != "proxy":
        files["uwsgi.ini"] = _env.get_template("uwsgi.ini.j2").render(context)
    return Rendered(files, static, notes, backlog)


def write(rendered: Rendered, run_dir: str) -> None:
    """Write the files into ``run_dir`` (each atomically) and make nginx's temp folders."""
    base = Path(run_dir)
    for name, content in rendered.files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content)
        tmp.replace(path)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / "tmp" / sub).mkdir(parents=True, exist_ok=True)
