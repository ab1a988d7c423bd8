"""Every setting of the kit, declared once.

A :class:`Setting` carries the name, environment variable, command-line flag, parser,
default, allowed values and help of one setting. The CLI options, the validation, ``flaskstack
config`` and the README table are all made from :data:`SETTINGS`. Precedence: defaults <
environment < flags.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .exits import SettingError as SettingError  # (declared with the exit codes)

ENV_PREFIX = "FLASKSTACK_"


class Parser:
    """Turns one raw string into a value; knows how to describe what it accepts.

    ``allowed`` is the one description of the valid values: the README table, ``--help`` and
    every error message show it.
    """

    description = ""

    @property
    def allowed(self) -> str:
        return self.description

    def __call__(self, raw: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting."""

    name: str
    section: str
    parse: Parser
    default: Any
    help: str
    multiple: bool = False  # several values (flag repeated; env comma-separated)
    default_doc: str | None = None  # how the README shows a computed default

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def allowed(self) -> str:
        several = ", several (repeat the flag, or separate with commas)" if self.multiple else ""
        return self.parse.allowed + several

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def describe_default(self) -> str:
        if self.default_doc is not None:
            return self.default_doc
        return format_value(self.default_value())


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value) or "(none)"
    if value is None or value == "":
        return "(none)"
    return str(value)


def _size_text(value: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


# -- parsers: each raises ValueError; the caller adds the parser's ``allowed`` text ------------


@dataclass(frozen=True)
class Integer(Parser):
    lo: int
    hi: int
    unit: str = ""

    @property
    def allowed(self) -> str:
        span = f"{self.lo} or more" if self.hi >= 10**9 else f"{self.lo}-{self.hi}"
        return f"{span} {self.unit}".strip()

    def __call__(self, raw: str) -> int:
        value = int(raw.strip())
        if not self.lo <= value <= self.hi:
            raise ValueError
        return value


@dataclass(frozen=True)
class Seconds(Integer):
    """Whole seconds, optionally written with an ``s`` suffix."""

    unit: str = "seconds"

    def __call__(self, raw: str) -> int:
        return super().__call__(raw.strip().removesuffix("s"))


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class Size(Parser):
    """A byte size such as ``10m``, ``64k`` or ``1048576``."""

    lo: int
    hi: int
    zero: str = ""  # what 0 means, when it is allowed

    @property
    def allowed(self) -> str:
        text = f"a size {_size_text(self.lo)}-{_size_text(self.hi)} (bytes, or with k, m, g)"
        return f"{text}; 0 = {self.zero}" if self.zero else text

    def __call__(self, raw: str) -> int:
        match = _SIZE.match(raw)
        if not match:
            raise ValueError
        value = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if not self.lo <= value <= self.hi:
            raise ValueError
        return value


class Boolean(Parser):
    description = "on/off (also true/false, yes/no, 1/0)"

    def __call__(self, raw: str) -> bool:
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise ValueError


class Choice(Parser):
    def __init__(self, *options: str) -> None:
        self.options = options
        self.description = ", ".join(options)

    def __call__(self, raw: str) -> str:
        value = raw.strip().lower()
        if value not in self.options:
            raise ValueError
        return value


class Text(Parser):
    def __init__(self, allowed: str) -> None:
        self.description = allowed

    def __call__(self, raw: str) -> str:
        return raw.strip()


class ReplicaName(Parser):
    """A header-safe name; ``{hostname}`` becomes this machine's (a container's, a pod's)."""

    description = "letters, digits, - _ . : and {hostname}"

    def __call__(self, raw: str) -> str:
        value = raw.strip().replace("{hostname}", socket.gethostname())
        if not all(c.isalnum() or c in "-_.:" for c in value):
            raise ValueError
        return value


class Host(Parser):
    description = "an address or name"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not value or any(c.isspace() for c in value) or "/" in value:
            raise ValueError
        return value


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")  # IDNs in their xn-- form


class ServerName(Parser):
    """A host name as Nginx's ``server_name`` takes it (``*.`` wildcards allowed)."""

    description = "host names, *.example.com wildcards allowed"

    def __call__(self, raw: str) -> str:
        value = raw.strip().lower()
        labels = value.removeprefix("*.").split(".")
        if not value or not all(
            label and len(label) <= 63 and label[0] != "-" and label[-1] != "-"
            and all(c in _NAME_CHARS for c in label) for label in labels
        ):
            raise ValueError
        return value


class HostPort(Parser):
    description = "HOST:PORT"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        name, sep, port = value.rpartition(":")
        if not sep or not name or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError
        return value


class OptionalHostPort(HostPort):
    description = "HOST:PORT, or empty (off)"

    def __call__(self, raw: str) -> str:
        return super().__call__(raw) if raw.strip() else ""


class PurgeTarget(HostPort):
    description = "HOST:PORT or unix:PATH"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if value.startswith("unix:/"):
            return value
        return super().__call__(value)


class Network(Parser):
    """An address or CIDR block, IPv4 or IPv6 (``10.0.0.0/8``, ``fd00::/8``, ``192.0.2.7``)."""

    description = "an address or CIDR block (IPv4 or IPv6)"

    def __call__(self, raw: str) -> str:
        return str(ipaddress.ip_network(raw.strip(), strict=False))


class AbsolutePath(Parser):
    description = "a path"

    def __call__(self, raw: str) -> str:
        value = os.path.expanduser(raw.strip())
        if not value:
            raise ValueError
        return os.path.abspath(value)


class OptionalPath(AbsolutePath):
    description = "a file path, or empty"

    def __call__(self, raw: str) -> str:
        return super().__call__(raw) if raw.strip() else ""


_IMPORT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*(\(\))?)?$")


class ImportString(Parser):
    """``pkg.module:app``, ``pkg:create_app()``, or ``pkg`` (meaning ``pkg:app``)."""

    description = "module[:name] or module:factory()"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not _IMPORT.match(value):
            raise ValueError
        return value


_PREFIX = re.compile(r"^/[\w\-./~]*$")


class StaticMapping(Parser):
    """``/prefix/=directory``: the prefix always ends with a slash."""

    description = "/PREFIX/=DIR"

    def __call__(self, raw: str) -> tuple[str, str]:
        prefix, sep, directory = raw.strip().partition("=")
        prefix, directory = prefix.strip(), directory.strip()
        if not sep or not _PREFIX.match(prefix) or not directory or "/." in prefix:
            raise ValueError
        if not prefix.endswith("/"):
            prefix += "/"
        return prefix, os.path.abspath(os.path.expanduser(directory))


_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class UrlPath(Parser):
    description = "a URL path such as /static/index.html, or empty"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if value and (not _PREFIX.match(value) or "/." in value):
            raise ValueError
        return value


class ModuleName(Parser):
    description = "a module name (pkg.module), or none"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not _MODULE.match(value):
            raise ValueError
        return value


class CookieName(Parser):
    """A cookie name Nginx can read as ``$cookie_NAME``."""

    description = "a cookie name (letters, digits, _)"

    def __call__(self, raw: str) -> str:
        value = raw.strip()
        if not value or not all(c.isascii() and (c.isalnum() or c == "_") for c in value):
            raise ValueError
        return value


class WorkerCount(Parser):
    description = "auto or 1-64"

    def __call__(self, raw: str) -> int | str:
        value = raw.strip().lower()
        return "auto" if value == "auto" else Integer(1, 64)(value)


static_mapping = StaticMapping()
host_port = HostPort()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_dir_base() -> str:
    """Where the default run directories of this user's sites are."""
    if os.geteuid() == 0:
        return "/run/flaskstack"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "flaskstack")
    return f"/tmp/flaskstack-{os.geteuid()}"


def default_run_dir(app_dir: str | None = None) -> str:
    """One run directory per site (its app_dir), so two sites on one machine never share one:
    BASE/NAME-HASH, NAME the site folder's name, HASH eight hex digits of its path."""
    app_dir = os.path.abspath(app_dir or os.getcwd())
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.basename(app_dir)).strip("-.") or "site"
    from hashlib import sha256  # (not at import: it loads OpenSSL into the supervisor)

    digest = sha256(app_dir.encode(errors="surrogateescape")).hexdigest()[:8]
    return os.path.join(run_dir_base(), f"{name[:40]}-{digest}")


# -- the declarations ----------------------------------------------------------------------------

SETTINGS: tuple[Setting, ...] = (
    # server
    Setting("role", "server", Choice("all", "app", "proxy"), "all",
            "What this process runs: all = Nginx + uWSGI; app = uWSGI on APP_LISTEN only; "
            "proxy = Nginx only, in front of UPSTREAMS."),
    Setting("host", "server", Host(), "0.0.0.0", "Address Nginx listens on."),
    Setting("port", "server", Integer(1, 65535), 85, "Port Nginx listens on."),
    Setting("app_listen", "server", host_port, "0.0.0.0:8000",
            "Role app: the TCP address uWSGI listens on (uwsgi protocol)."),
    Setting("upstreams", "server", host_port, [],
            "Role proxy: the app servers (HOST:PORT, uwsgi protocol) Nginx balances over.",
            multiple=True),
    Setting("replica_name", "server", ReplicaName(), "",
            "When set, responses carry the header X-Replica with this name; {hostname} is "
            "replaced by the host (container, pod) name."),
    Setting("server_names", "server", ServerName(), [],
            "Host names this site answers to (e.g. example.com, www.example.com, "
            "*.example.com); any other Host header gets 421. Empty: any host.",
            multiple=True),
    Setting("tls_cert", "server", OptionalPath(), "",
            "PEM certificate: when set (with TLS_KEY) Nginx serves HTTPS on PORT."),
    Setting("tls_key", "server", OptionalPath(), "", "PEM private key for TLS_CERT."),
    Setting("http_redirect_port", "server", Integer(0, 65535), 0,
            "With TLS: a plain-HTTP port on HOST that redirects every request to HTTPS on PORT "
            "(0: none)."),
    Setting("hsts", "server", Seconds(0, 63072000), 0,
            "With TLS: Strict-Transport-Security max-age (0: no header). Browsers then refuse "
            "plain HTTP to this host for that long: raise it once HTTPS works."),
    Setting("trusted_proxies", "server", Network(), [],
            "Load balancers in front of Nginx: only from these addresses is X-Forwarded-For "
            "believed (the client address in logs, limits and the app) and X-Request-ID kept.",
            multiple=True),
    Setting("metrics_listen", "server", OptionalHostPort(), "",
            "Serve Prometheus metrics (GET /metrics: Nginx connections and requests, uWSGI "
            "workers, reloads, uptime) on this address; keep it off the public network."),
    Setting("run_dir", "server", AbsolutePath(), default_run_dir,
            "Directory for rendered configs, sockets, pid files and temp files.",
            default_doc="one per site: BASE/NAME-HASH, NAME and HASH from app_dir; BASE is "
            "/run/flaskstack as root, else $XDG_RUNTIME_DIR/flaskstack or /tmp/flaskstack-UID"),
    Setting("user", "server", Text("a user name"), "www-data",
            "Unprivileged user Nginx and uWSGI workers run as when started as root."),
    Setting("grace", "server", Seconds(1, 3600), 8,
            "Seconds a stop waits for in-flight requests before forcing."),
    Setting("backlog", "server", Integer(16, 65535), 4096,
            "Listen backlog of Nginx and uWSGI (capped at net.core.somaxconn)."),
    # application
    Setting("app", "app", ImportString(), "notes:create_app()",
            "WSGI app to serve: module:app, or module:factory() for an app factory. The "
            "default is the notes site (the flaskstack-notes distribution)."),
    Setting("compat", "app", Choice("auto", "tiangolo", "off"), "auto",
            "Serve a site laid out for the tiangolo/uwsgi-nginx-flask image as that image did "
            "(its /app/main.py, UWSGI_INI, LISTEN_PORT, STATIC_*, NGINX_*, prestart.sh, "
            "nginx.conf): auto = when no app is named and /app holds such a site; see "
            "docs/start/tiangolo.md."),
    Setting("venv", "app", OptionalPath(), "",
            "The site's own virtual environment: uWSGI's workers (home), the prestart and "
            "`flaskstack exec` run with it, so the site's requirements never touch the kit's. "
            "Empty: the kit's own environment. The default site (notes) is installed with the "
            "kit and always runs in the kit's environment."),
    Setting("app_dir", "app", AbsolutePath(), os.getcwd,
            "Site directory: uWSGI's working directory, first on the Python path.",
            default_doc="the current directory (the image sets /web/web_data)"),
    Setting("prestart", "app", Text("a command line, or none"), "",
            "Command run once as the unprivileged user before uWSGI starts (e.g. migrations); "
            "defaults to the site's flaskstack.toml; 'none' runs nothing."),
    Setting("preload", "app", ModuleName(), [],
            "Library modules imported once by uWSGI's master before it forks the workers: "
            "they start faster and share that memory. The app itself is still loaded by each "
            "worker, so a reload loads new app code (not new libraries). Defaults to the "
            "site's flaskstack.toml preload; 'none' preloads nothing.", multiple=True,
            default_doc="the site's flaskstack.toml preload"),
    Setting("workers", "app", Integer(1, 512), cpu_count, "uWSGI worker processes.",
            default_doc="number of CPUs"),
    Setting("cheaper", "app", Integer(0, 511), 0,
            "Start with this many workers and let uWSGI add more, up to WORKERS, when all are "
            "busy (uWSGI's cheaper; 0: all WORKERS always run). Less than WORKERS."),
    Setting("threads", "app", Integer(1, 256), 1, "Threads per uWSGI worker."),
    Setting("gevent", "app", Integer(0, 100000), 0,
            "Greenlets per uWSGI worker on uWSGI's gevent loop (0: off): many WebSockets, "
            "Flask-SocketIO's uWSGI mode; the site's environment needs the gevent package."),
    Setting("request_timeout", "app", Seconds(1, 3600), 60,
            "Seconds a request may run, body included, before uWSGI kills its worker "
            "(harakiri, checked each second: within a second after); Nginx waits a little "
            "longer."),
    Setting("buffer_size", "app", Size(8192, 32768), 32768,
            "Largest request line + headers Nginx accepts (each line at most 8k); beyond it "
            "Nginx answers 400 or 414, never the app. uWSGI takes the uwsgi protocol's "
            "maximum (64k), which always holds what Nginx passes."),
    Setting("max_requests", "app", Integer(0, 10**9), 0,
            "Restart a worker after this many requests (0: never)."),
    Setting("max_rss", "app", Size(0, 1 << 40, zero="off"), 0,
            "Restart a worker whose memory (RSS) grows past this (0: never)."),
    Setting("autoreload", "app", Boolean(), False,
            "Start a new app generation when a Python file of the app changes (development "
            "only); a version that cannot be loaded is refused and the running one keeps "
            "serving."),
    # http
    Setting("max_upload", "http", Size(0, 1 << 40, zero="no limit"), 10 * 1024**2,
            "Largest request body (client_max_body_size); larger gets a 413 page.",
            default_doc="10m"),
    Setting("static", "http", static_mapping, [],
            "URL prefix served by Nginx from a directory (/prefix/=DIR), never by the app; "
            "added to the site's flaskstack.toml mappings.", multiple=True),
    Setting("root_page", "http", UrlPath(), "",
            "A static file's URL (e.g. /static/index.html) that Nginx sends for / itself, "
            "never asking the app: a single-page app's page."),
    Setting("gzip", "http", Boolean(), True,
            "Compress text responses; static files are sent as their precompressed .gz copy "
            "when there is one (flaskstack precompress)."),
    Setting("static_max_age", "http", Seconds(0, 31536000), 300,
            "How long browsers may keep a static file whose URL has no version (no query "
            "string) before asking again; a versioned URL (?v=...) is kept for a year."),
    Setting("keepalive_timeout", "http", Seconds(0, 3600), 50,
            "Seconds an idle keep-alive connection stays open."),
    Setting("client_header_timeout", "http", Seconds(1, 3600), 15,
            "Seconds to receive the request headers."),
    Setting("client_body_timeout", "http", Seconds(1, 3600), 15,
            "Seconds between two reads of the request body."),
    Setting("send_timeout", "http", Seconds(1, 3600), 15,
            "Seconds between two writes of the response."),
    Setting("nginx_workers", "http", WorkerCount(), 1,
            "Nginx worker processes (auto: one per CPU). One worker proxies far more requests "
            "than the app's Python workers answer, and a second cost 13-14 % more CPU per "
            "request and 8 MB (docs/benchmarks/memory-and-cpu.md); raise it for heavy static or "
            "TLS traffic."),
    Setting("nginx_connections", "http", Integer(64, 65535), 12288,
            "Connections per Nginx worker: a client takes one, a request passed to the app one "
            "more (1,024 clients at once: 2,048), and Nginx closes idle ones once fewer than "
            "1/16 are free. The default holds 10,000 idle or slow clients with 1,520 slots left "
            "for others; Nginx allocates about 430 bytes per slot at start (5.3 MB; 7 MB for "
            "16,384). Its open-files limit is sized with it, within the host's hard limit "
            "(serve says when that caps it)."),
    Setting("nginx_open_files", "http", Integer(0, 10**7), 0,
            "Nginx workers' open-files limit (worker_rlimit_nofile), within the host's hard "
            "limit (0: sized from NGINX_CONNECTIONS).", default_doc="0"),
    Setting("nginx_conf", "http", OptionalPath(), "",
            "A whole Nginx configuration file used instead of the rendered one (its relative "
            "includes find uwsgi_params and mime.types in RUN_DIR; set PORT to the port it "
            "listens on). Everything else of the http settings is then the file's business."),
    Setting("access_log", "http", Boolean(), True, "Write an access log line per request."),
    Setting("access_log_static", "http", Boolean(), False,
            "Also log the static files Nginx answers without an error (200, 206, 304) and give "
            "them an X-Request-ID, as static requests that fail always are. Off by default: a "
            "page pulls many static files, and their lines and ids cost static files about a "
            "tenth of their requests/s."),
    # cache: Nginx's response cache, driven by the app's Cache-Control headers
    Setting("cache", "cache", Boolean(), True,
            "Nginx caches the app's responses that say Cache-Control: public with max-age or "
            "s-maxage (roles all and proxy); see 'The response cache'."),
    Setting("cache_size", "cache", Size(1024**2, 1 << 40), 100 * 1024**2,
            "Most disk space the response cache uses (least recently used goes first).",
            default_doc="100m"),
    Setting("cache_path", "cache", OptionalPath(), "",
            "Directory of the response cache's files.", default_doc="RUN_DIR/cache"),
    Setting("cache_lock", "cache", Boolean(), False,
            "Under a burst on a URL not yet cached, send one request to the app and make the "
            "others wait for its answer (at most 1 s). Nginx polls that lock every 500 ms and "
            "cannot know beforehand that a URL is never cacheable, so with it on, concurrent "
            "requests for such URLs wait too: turn it on when the app's busy URLs are "
            "cacheable. (An expired entry is refreshed by one request either way.)"),
    Setting("cache_bypass_cookies", "cache", CookieName(), ["session", "remember_token"],
            "A request carrying one of these cookies (or an Authorization header) is never "
            "answered from the cache nor stored in it: the app's session and remember-me "
            "cookies (Flask's and Flask-Login's by default).", multiple=True),
    Setting("cache_purge_listen", "cache", OptionalHostPort(), "",
            "Role proxy: also take purges (POST /purge) on this address, from the app replicas "
            "only (the addresses the upstreams resolve to); keep it off the public network. "
            "See 'Purging the cache'."),
    Setting("cache_purge_to", "cache", PurgeTarget(), [],
            "Role app: the proxies' purge addresses (HOST:PORT: every address the name "
            "resolves to), given to the app as FLASKSTACK_CACHE_PURGE_TO. Role all: the "
            "stack's own purge socket (the default).", multiple=True),
    Setting("access_log_format", "http", Choice("combined", "json"), "combined",
            "Access log format."),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS = ("server", "app", "http", "cache")


@dataclass
class Settings:
    """Effective settings: ``values[name]`` and where each came from in ``sources[name]``."""

    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name == "values":  # not set yet (unpickling)
            raise AttributeError(name)
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
    derived: Mapping[str, tuple[str, str]] | None = None,
) -> Settings:
    """Build the effective settings from the defaults, ``derived``, ``env`` and ``flags``.

    ``flags`` maps setting names to raw strings (a sequence for multiple settings); ``None``
    means "not given". ``derived`` maps setting names to ``(raw, source)`` read from elsewhere
    (another image's variables, see :mod:`.compat`): above the defaults, below ``env``.
    """
    derived = derived or {}
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
        if s.name in derived:
            raw, source = derived[s.name]
            raws = _split(raw) if s.multiple else [raw]
            parsed = [_parse_one(s, one, source) for one in raws]
            value = parsed if s.multiple else parsed[0]
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
    if sources["run_dir"] == "default":  # the only default that follows another setting
        values["run_dir"] = default_run_dir(values["app_dir"])
    settings = Settings(values, sources)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Rules that involve more than one setting."""
    v = settings.values
    if bool(v["tls_cert"]) != bool(v["tls_key"]):
        raise SettingError("settings tls_cert and tls_key: give both or neither")
    for name in ("http_redirect_port", "hsts"):
        if v[name] and not v["tls_cert"]:
            raise SettingError(f"setting {name} (from {settings.sources[name]}): needs TLS "
                               "(tls_cert and tls_key)")
    if v["gevent"] and v["threads"] > 1:
        raise SettingError("settings gevent and threads: uWSGI's gevent loop runs one thread per "
                           "worker (set threads to 1)")
    if v["cheaper"] and v["cheaper"] >= v["workers"]:
        raise SettingError(f"setting cheaper (from {settings.sources['cheaper']}): "
                           f"{v['cheaper']} must be less than workers ({v['workers']})")
    if v["http_redirect_port"] and v["http_redirect_port"] == v["port"]:
        raise SettingError("settings http_redirect_port and port: two different ports")


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
