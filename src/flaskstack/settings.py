"""Every setting of the kit, declared once.

A :class:`Setting` carries the name, environment variable, command-line flag, parser,
default, allowed values and help of one setting. The CLI options, the validation, ``flaskstack
config`` and the README table are all made from :data:`SETTINGS`. Precedence: defaults <
environment < flags.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "FLASKSTACK_"


class SettingError(ValueError):
    """A setting has a bad value; the message is one line naming it and its source."""


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting."""

    name: str
    section: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    allowed: str  # human-readable description of valid values
    multiple: bool = False  # several values (flag repeated; env comma-separated)
    default_doc: str | None = None  # how the README shows a computed default

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def describe_default(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        value = self.default_value()
        return format_value(value)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) or "(none)"
    if value is None or value == "":
        return "(none)"
    return str(value)


# -- parsers: each raises ValueError with the "allowed" text appended by the caller ------------


def integer(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def seconds(lo: int, hi: int) -> Callable[[str], int]:
    """Whole seconds, optionally written with an ``s`` suffix."""
    inner = integer(lo, hi)
    return lambda raw: inner(raw.strip().removesuffix("s"))


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(lo: int, hi: int) -> Callable[[str], int]:
    """A byte size such as ``10m``, ``64k`` or ``1048576``."""

    def parse(raw: str) -> int:
        match = _SIZE.match(raw)
        if not match:
            raise ValueError
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if not lo <= value <= hi:
            raise ValueError
        return value

    return parse


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return parse


def text(raw: str) -> str:
    return raw.strip()


def replica(raw: str) -> str:
    """A header-safe name; ``{hostname}`` becomes this machine's (a container's, a pod's)."""
    value = raw.strip().replace("{hostname}", socket.gethostname())
    if not all(c.isalnum() or c in "-_.:" for c in value):
        raise ValueError
    return value


def host(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise ValueError
    return value


def host_port(raw: str) -> str:
    value = raw.strip()
    name, sep, port = value.rpartition(":")
    if not sep or not name or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError
    return value


def absolute_path(raw: str) -> str:
    value = os.path.expanduser(raw.strip())
    if not value:
        raise ValueError
    return os.path.abspath(value)


def optional_path(raw: str) -> str:
    return absolute_path(raw) if raw.strip() else ""


_IMPORT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*(\(\))?)?$")


def import_string(raw: str) -> str:
    """``pkg.module:app``, ``pkg:create_app()``, or ``pkg`` (meaning ``pkg:app``)."""
    value = raw.strip()
    if not _IMPORT.match(value):
        raise ValueError
    return value


_PREFIX = re.compile(r"^/[\w\-./~]*$")


def static_mapping(raw: str) -> tuple[str, str]:
    """``/prefix/=directory``: the prefix always ends with a slash."""
    prefix, sep, directory = raw.strip().partition("=")
    prefix, directory = prefix.strip(), directory.strip()
    if not sep or not _PREFIX.match(prefix) or not directory or "/." in prefix:
        raise ValueError
    if not prefix.endswith("/"):
        prefix += "/"
    return prefix, os.path.abspath(os.path.expanduser(directory))


def worker_count(raw: str) -> int | str:
    value = raw.strip().lower()
    return "auto" if value == "auto" else integer(1, 64)(value)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_run_dir() -> str:
    if os.geteuid() == 0:
        return "/run/flaskstack"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "flaskstack")
    return f"/tmp/flaskstack-{os.geteuid()}"


# -- the declarations ----------------------------------------------------------------------------

SETTINGS: tuple[Setting, ...] = (
    # server
    Setting("role", "server", choice("all", "app", "proxy"), "all",
            "What this process runs: all = Nginx + uWSGI; app = uWSGI on APP_LISTEN only; "
            "proxy = Nginx only, in front of UPSTREAMS.", "all, app, proxy"),
    Setting("host", "server", host, "0.0.0.0", "Address Nginx listens on.", "an address or name"),
    Setting("port", "server", integer(1, 65535), 85, "Port Nginx listens on.", "1-65535"),
    Setting("app_listen", "server", host_port, "0.0.0.0:8000",
            "Role app: the TCP address uWSGI listens on (uwsgi protocol).", "HOST:PORT"),
    Setting("upstreams", "server", host_port, [],
            "Role proxy: the app servers (HOST:PORT, uwsgi protocol) Nginx balances over.",
            "HOST:PORT, several (repeat the flag, or separate with commas)", multiple=True),
    Setting("replica_name", "server", replica, "",
            "When set, responses carry the header X-Replica with this name; {hostname} is "
            "replaced by the host (container, pod) name.",
            "letters, digits, - _ . : and {hostname}"),
    Setting("tls_cert", "server", optional_path, "",
            "PEM certificate: when set (with TLS_KEY) Nginx serves HTTPS on PORT.", "a file path"),
    Setting("tls_key", "server", optional_path, "", "PEM private key for TLS_CERT.", "a file path"),
    Setting("run_dir", "server", absolute_path, default_run_dir,
            "Directory for rendered configs, sockets, pid files and temp files.", "a path",
            default_doc="/run/flaskstack as root, else $XDG_RUNTIME_DIR/flaskstack "
            "or /tmp/flaskstack-UID"),
    Setting("user", "server", text, "www-data",
            "Unprivileged user Nginx and uWSGI workers run as when started as root.",
            "a user name"),
    Setting("grace", "server", seconds(1, 3600), 8,
            "Seconds a stop waits for in-flight requests before forcing.", "1-3600 seconds"),
    Setting("backlog", "server", integer(16, 65535), 4096,
            "Listen backlog of Nginx and uWSGI (capped at net.core.somaxconn).", "16-65535"),
    # application
    Setting("app", "app", import_string, "notes:create_app()",
            "WSGI app to serve: module:app, or module:factory() for an app factory.",
            "module[:name] or module:factory()"),
    Setting("app_dir", "app", absolute_path, "/web/web_data",
            "Site directory: uWSGI's working directory, first on the Python path.", "a path"),
    Setting("prestart", "app", text, "",
            "Command run once as the unprivileged user before uWSGI starts (e.g. migrations); "
            "defaults to the site's flaskstack.toml; 'none' runs nothing.", "a command line"),
    Setting("workers", "app", integer(1, 512), cpu_count, "uWSGI worker processes.", "1-512",
            default_doc="number of CPUs"),
    Setting("threads", "app", integer(1, 256), 1, "Threads per uWSGI worker.", "1-256"),
    Setting("request_timeout", "app", seconds(1, 3600), 60,
            "Seconds a request may run before uWSGI kills its worker (harakiri); Nginx waits "
            "a little longer.", "1-3600 seconds"),
    Setting("buffer_size", "app", size(4096, 65535), 32768,
            "Largest request header block uWSGI and Nginx accept.", "4k-64k"),
    Setting("max_requests", "app", integer(0, 10**9), 0,
            "Restart a worker after this many requests (0: never).", "0 or more"),
    Setting("max_rss", "app", size(0, 1 << 40), 0,
            "Restart a worker whose memory (RSS) grows past this (0: never).", "a size, 0 = off"),
    Setting("autoreload", "app", boolean, False,
            "Reload workers when Python files change (development only).", "on/off"),
    # http
    Setting("max_upload", "http", size(0, 1 << 40), 10 * 1024**2,
            "Largest request body (client_max_body_size); larger gets a 413 page.", "a size",
            default_doc="10m"),
    Setting("static", "http", static_mapping, [],
            "URL prefix served by Nginx from a directory (/prefix/=DIR), never by the app; "
            "added to the site's flaskstack.toml mappings.",
            "/PREFIX/=DIR, several (repeat the flag, or separate with commas)", multiple=True),
    Setting("gzip", "http", boolean, True, "Compress text responses.", "on/off"),
    Setting("keepalive_timeout", "http", seconds(0, 3600), 50,
            "Seconds an idle keep-alive connection stays open.", "0-3600 seconds"),
    Setting("client_header_timeout", "http", seconds(1, 3600), 15,
            "Seconds to receive the request headers.", "1-3600 seconds"),
    Setting("client_body_timeout", "http", seconds(1, 3600), 15,
            "Seconds between two reads of the request body.", "1-3600 seconds"),
    Setting("send_timeout", "http", seconds(1, 3600), 15,
            "Seconds between two writes of the response.", "1-3600 seconds"),
    Setting("nginx_workers", "http", worker_count, "auto",
            "Nginx worker processes.", "auto or 1-64"),
    Setting("nginx_connections", "http", integer(64, 65535), 4096,
            "Connections per Nginx worker.", "64-65535"),
    Setting("access_log", "http", boolean, True, "Write an access log line per request.",
            "on/off"),
    Setting("access_log_format", "http", choice("combined", "json"), "combined",
            "Access log format.", "combined, json"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS = ("server", "app", "http")


@dataclass
class Settings:
    """Effective settings: ``values[name]`` and where each came from in ``sources[name]``."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _parse_one(setting: Setting, raw: str, source: str) -> Any:
    try:
        return setting.parse(raw)
    except (ValueError, TypeError):
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise SettingError(
            f"setting {setting.name} (from {source}): {shown!r} is not valid; "
            f"allowed: {setting.allowed}"
        ) from None


def _split(raw: str) -> list[str]:
    return [part for part in (p.strip() for p in raw.split(",")) if part]


def load(
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, str | Sequence[str] | None] | None = None,
) -> Settings:
    """Build the effective settings from the defaults, ``env`` and ``flags``.

    ``flags`` maps setting names to raw strings (a sequence for multiple settings); ``None``
    means "not given".
    """
    env = os.environ if env is None else env
    flags = flags or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower()
                     not in BY_NAME)
    if unknown:
        raise SettingError(f"unknown environment variable {unknown[0]}: see 'flaskstack config'")
    for s in SETTINGS:
        value, source = s.default_value(), "default"
        if s.env in env:
            source = f"env {s.env}"
            raws = _split(env[s.env]) if s.multiple else [env[s.env]]
            parsed = [_parse_one(s, raw, source) for raw in raws]
            value = parsed if s.multiple else parsed[0]
        given = flags.get(s.name)
        if given is not None and given != ():
            source = f"flag {s.flag}"
            raws = [given] if isinstance(given, str) else list(given)
            if s.multiple:
                raws = [part for raw in raws for part in _split(raw)]
            parsed = [_parse_one(s, raw, source) for raw in raws]
            value = parsed if s.multiple else parsed[-1]
        values[s.name] = value
        sources[s.name] = source
    settings = Settings(values, sources)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Rules that involve more than one setting."""
    v, src = settings.values, settings.sources
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        raise SettingError("settings tls_cert and tls_key: give both or neither")
    if v["role"] == "proxy" and not v["upstreams"]:
        raise SettingError(
            f"setting upstreams (from {src['upstreams']}): role proxy needs at least one "
            "HOST:PORT upstream"
        )


def markdown_table() -> str:
    """The README table of all settings."""
    lines = [
        "| setting | env | flag | default | allowed | what it does |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        lines.append(
            f"| {s.name} | `{s.env}` | `{s.flag}` | {s.describe_default()} | {s.allowed} "
            f"| {s.help} |"
        )
    return "\n".join(lines)


README_START = "<!-- section:settings -->"
README_END = "<!-- /section:settings -->"


def readme_block() -> str:
    return (
        f"{README_START}\n## Settings\n\nEvery setting has a default, an environment variable "
        "and a flag of `flaskstack serve` / `flaskstack config`; flags win over the environment, "
        "which wins over the default. `flaskstack config` shows the effective values and where "
        "each came from. This table is generated from `src/flaskstack/settings.py` "
        "(`python -m flaskstack.settings --write-readme README.md`).\n\n"
        f"{markdown_table()}\n{README_END}"
    )


def write_readme(path: Path) -> bool:
    """Replace the settings block in ``path``; return whether it changed."""
    content = path.read_text()
    start, end = content.index(README_START), content.index(README_END) + len(README_END)
    updated = content[:start] + readme_block() + content[end:]
    if updated != content:
        path.write_text(updated)
    return updated != content


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "--write-readme":
        write_readme(Path(sys.argv[2]))
    else:
        print(markdown_table())
