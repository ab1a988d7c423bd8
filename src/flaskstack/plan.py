"""The stack plan: everything decided, once, from the settings, the site and the host.

``settings -> plan -> render (pure) / supervisor (starts the plan's services) -> CLI``.
The role (``all`` / ``app`` / ``proxy``) is compared here and nowhere else: the rest of the kit
asks the plan what to run and what to render.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import tls, upstreams
from .host import Account, HostFacts
from .rundir import LONE_LOG_BUFFER, PIPE_BUF, RunDir
from .settings import BY_NAME, SettingError, Settings
from .site import SiteDeclaration

DEFAULT_SITE = "notes"
MIB = 1024 * 1024
# Nginx refuses a request line or header line over HEADER_LINE (414/400) and all of them over
# the buffer_size setting (400). What it passes to uWSGI is then at most about buffer_size plus
# the URL twice more (PATH_INFO, QUERY_STRING) plus the forwarded Host: under 64k for
# buffer_size <= 32k, so uWSGI (at the protocol's maximum) never refuses it with a 502.
HEADER_LINE = 8192
SMALLEST_HEADER_LINE = 4  # "a:\r\n"
UWSGI_PACKET_MAX = 65535
YEAR = 31536000  # seconds: the longest max-age HTTP caches honour
LOADER = str(Path(__file__).with_name("loader.py"))


@dataclass(frozen=True)
class StaticMapping:
    prefix: str
    directory: str
    source: str  # where it was declared: the site's flaskstack.toml, or a setting
    untrusted: bool = False  # people's uploads: served with a sandboxing CSP


@dataclass(frozen=True)
class UWSGIPlan:
    """What ``uwsgi.ini`` says."""

    module: str  # uWSGI's ``module`` syntax: ``pkg:app`` or ``pkg:factory()``
    loader: str  # the file every generation's master loads it with (see loader.py)
    unix_socket: str | None  # None: the socket is inherited as fd 0 (the supervisor opens it)
    backlog: int
    harakiri: int  # uWSGI checks it each whole second: one more, so never before the timeout
    # (for every request but a WebSocket upgrade)
    websocket_ping: int  # seconds between pings on an open WebSocket (below Nginx's timeout)
    buffer_size: int  # the largest uwsgi packet: always holds what Nginx passes
    max_vars: int  # as many variables as the smallest header lines Nginx lets through
    reload_on_rss_mb: int  # 0: off
    add_header: str | None  # "Name: value" on every response, or None
    logging: bool  # uWSGI's own request log (off when Nginx in front already logs)
    json_logs: bool  # uWSGI writes its lines as JSON (access_log_format = json)
    preload: tuple[str, ...]  # modules the master imports before forking (shared-import)
    home: str  # the site's own venv (uWSGI's home), or "" for the kit's environment
    # flaskstack/websocket.py, imported by every worker by its file name (so it loads even when
    # the app's environment does not have the kit): lifts request_timeout after a handshake
    websocket_hook: str = str(Path(__file__).with_name("websocket.py"))


@dataclass(frozen=True)
class CachePlan:
    """Nginx's response cache: what ``uwsgi_cache_path`` and the cache rules say."""

    path: str
    max_size: int  # bytes
    keys_zone_size: int  # bytes of shared memory for the keys (about 8,000 keys per MiB)
    bypass: tuple[str, ...]  # Nginx variables: a request with any of them set skips the cache
    # Seconds a request for a key being fetched waits for that answer before asking the app
    # itself, when the lock is on (0: no lock). Nginx does not remember that a URL's answers
    # are never cacheable, so concurrent requests for such a URL wait on each other this long
    # at most: kept short.
    lock_timeout: int
    purge_socket: str  # flaskstack.purge: the app's purges arrive here ...
    purge_listen: tuple[str, int] | None  # ... and, role proxy, here (from the upstreams only)
    # Seconds an entry not asked for stays on disk. An expired entry is only ever served
    # within the app's own stale-while-revalidate / stale-if-error, so this bounds disk use,
    # not staleness.
    inactive: str = "1h"


@dataclass(frozen=True)
class NginxPlan:
    """What ``nginx.conf`` says."""

    rlimit_nofile: int
    worker_connections: int
    backlog: int
    tls: bool  # HTTPS (and HTTP/2) on the site's port
    server_names: tuple[str, ...]  # empty: any Host; else others get 421
    header_buffers: int  # large_client_header_buffers: this many lines ...
    header_line: int  # ... of this many bytes at most each
    tls_protocols: str
    tls_ciphers: str
    redirect_port: int  # a plain-HTTP port that redirects to HTTPS (0: none)
    redirect_to: str  # the redirect's target, port included unless 443
    hsts: int  # Strict-Transport-Security max-age (0: no header)
    trusted_proxies: tuple[str, ...]  # set_real_ip_from: X-Forwarded-For believed from these
    snippet_server: str | None  # the site's Nginx lines inside its server block
    snippet_http: str | None  # ... inside the http block
    replica_header: str | None
    static: tuple[StaticMapping, ...]
    servers: tuple[str, ...]  # ``upstream`` lines, with their parameters
    shared_zone: bool  # workers share which upstreams failed (several upstreams)
    connect_timeout: int
    upstream_timeout: int  # sending to and reading from uWSGI: longer than harakiri, so
    # Nginx never gives up (504) on a request that still runs (and may hold a lock)
    busy_buffers_size: int
    next_upstream: str | None  # when to retry a request on another upstream
    next_upstream_tries: int
    # A new request id, as Nginx expressions: cheap (OpenSSL's random numbers behind $request_id
    # cost about 15 % of a static file's throughput) and unique across restarts and machines.
    request_id: str
    access_log: bool
    access_log_static: bool  # False: static files answered without an error go unlogged
    access_log_buffer: int  # bytes: each write to the FIFO is atomic (LONE_LOG_BUFFER)
    cache: CachePlan | None  # None: no response cache
    brotli_static: str | None  # the module to load: static files' .br copies are sent
    static_cache_control: str  # a static file's URL without a query string
    static_versioned_cache_control: str  # with one (?v=hash): its content never changes


@dataclass(frozen=True)
class Probe:
    """How `flaskstack health` and the readiness line reach this stack."""

    protocol: str  # "http", "https" or "uwsgi"
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Plan:
    settings: Settings
    site: SiteDeclaration
    run: RunDir
    account: Account | None  # who the servers' workers and site commands run as (root only)
    uwsgi: UWSGIPlan | None  # None: this role runs no uWSGI
    nginx: NginxPlan | None  # None: this role runs no Nginx
    prestart: tuple[str, ...]  # argv of the site's prestart command, or empty
    app_listen: tuple[str, int] | None  # role app: the TCP address the supervisor opens
    metrics: tuple[str, int] | None  # where the Prometheus endpoint listens, or None (off)
    watch_upstreams: bool  # role proxy: re-resolve upstreams and reload Nginx on change
    writable: tuple[str, ...]  # directories made (and owned by the account) before start
    probe: Probe
    notes: tuple[str, ...] = field(default=())  # adjustments worth telling the user
    venv: str = ""  # the site's own venv: its bin first on the site commands' PATH
    # FLASKSTACK_CACHE_PURGE_TO for the app and site commands: where its purges go
    purge_to: tuple[str, ...] = field(default=())

    @property
    def services(self) -> tuple[str, ...]:
        """The services this plan runs, in start order (stopped in reverse)."""
        names = []
        if self.prestart:
            names.append("prestart")
        if self.nginx is not None and self.nginx.cache is not None:
            names.append("purge")  # before the app: its first writes may purge
        if self.uwsgi is not None:
            names.append("uwsgi")
        if self.watch_upstreams:
            names.append("upstreams")
        if self.nginx is not None:
            names.append("nginx")
        if self.metrics is not None:
            names.append("metrics")
        return tuple(names)


def uwsgi_module(app: str) -> str:
    """uWSGI's ``module`` value: ``pkg`` means ``pkg:app``; factories keep their ``()``."""
    return app if ":" in app else f"{app}:app"


def site_venv(settings: Settings) -> str:
    """The venv setting, except for the default site, which is installed with the kit."""
    return "" if settings.app == BY_NAME["app"].default else settings.venv


def static_mappings(settings: Settings, decl: SiteDeclaration) -> tuple[StaticMapping, ...]:
    """The site's mappings, then the settings' (which win for the same prefix); longest prefix
    first, so nested prefixes resolve as expected."""
    merged: dict[str, StaticMapping] = {}
    for prefix, directory in decl.static:
        merged[prefix] = StaticMapping(prefix, directory, str(decl.path),
                                       prefix in decl.untrusted)
    for prefix, directory in settings.static:
        merged[prefix] = StaticMapping(prefix, directory, settings.sources["static"])
    return tuple(sorted(merged.values(), key=lambda m: -len(m.prefix)))


def preload_modules(settings: Settings, decl: SiteDeclaration) -> tuple[str, ...]:
    """The setting when given ('none': nothing), else the site's declaration."""
    chosen = settings.preload if settings.sources["preload"] != "default" else decl.preload
    return tuple(m for m in chosen if m.lower() != "none")


def cache_plan(settings: Settings, run: RunDir) -> CachePlan | None:
    if not settings.cache:
        return None
    return CachePlan(
        path=settings.cache_path or str(run.cache),
        max_size=settings.cache_size,
        # one MiB of keys per 64 MiB of cache (entries of 8 KiB on average), at least 1 MiB
        keys_zone_size=max(MIB, settings.cache_size // 64 // MIB * MIB),
        bypass=("$http_authorization",
                *(f"$cookie_{name}" for name in settings.cache_bypass_cookies)),
        lock_timeout=1 if settings.cache_lock else 0,
        purge_socket=str(run.purge_socket),
        purge_listen=upstreams.split_host_port(settings.cache_purge_listen)
        if settings.cache_purge_listen and settings.role == "proxy" else None,
    )


def prestart_argv(settings: Settings, decl: SiteDeclaration) -> tuple[str, ...]:
    command = settings.prestart or decl.prestart
    if not command or command.strip().lower() == "none":
        return ()
    try:
        return tuple(shlex.split(command))
    except ValueError as e:
        raise SettingError(f"setting prestart: {e}") from None


def make(
    settings: Settings,
    decl: SiteDeclaration,
    facts: HostFacts,
    servers: Sequence[str] = (),
) -> Plan:
    """Decide everything. ``servers``: the proxy role's upstream addresses now in rotation
    (resolved by the caller: see :mod:`.upstreams`)."""
    s = settings
    role = s.role
    run = RunDir(Path(s.run_dir))
    runs_app, runs_proxy = role in {"all", "app"}, role in {"all", "proxy"}
    notes: list[str] = []
    if role == "proxy" and not s.upstreams:
        raise SettingError(
            f"setting upstreams (from {s.sources['upstreams']}): role proxy needs at least "
            "one HOST:PORT upstream"
        )
    if runs_app and not decl.found and s.sources["app"] == "default":
        # (another missing app is reported by uWSGI itself, with Python's import error)
        raise SettingError(
            f"the default site {DEFAULT_SITE!r} is not installed: pip install flaskstack-notes "
            "(from a checkout: pip install ./sites/notes), or name your app with --app"
        )

    backlog = s.backlog
    if backlog > facts.somaxconn:
        notes.append(f"backlog {backlog} capped at net.core.somaxconn = {facts.somaxconn}")
        backlog = facts.somaxconn

    uwsgi = None
    if runs_app:
        uwsgi = UWSGIPlan(
            module=uwsgi_module(s.app),
            loader=LOADER,
            unix_socket=str(run.uwsgi_socket) if role == "all" else None,
            backlog=backlog,
            harakiri=s.request_timeout + 1,
            websocket_ping=min(30, s.request_timeout),
            buffer_size=UWSGI_PACKET_MAX,
            max_vars=s.buffer_size // SMALLEST_HEADER_LINE + 64,
            reload_on_rss_mb=max(1, s.max_rss // MIB) if s.max_rss else 0,
            add_header=f"X-Replica: {s.replica_name}"
            if s.replica_name and role == "app" else None,
            logging=role == "app" and s.access_log,
            json_logs=s.access_log_format == "json",
            preload=preload_modules(s, decl),
            home=site_venv(s),
        )

    nginx = None
    if runs_proxy:
        rlimit_nofile = min(facts.nofile_hard,
                            s.nginx_open_files or 2 * s.nginx_connections + 64)
        worker_connections = min(s.nginx_connections, max(64, rlimit_nofile - 32))
        if worker_connections < s.nginx_connections:
            notes.append(
                f"nginx_connections {s.nginx_connections} lowered to {worker_connections}: "
                f"the open-files limit is {facts.nofile_hard}"
            )
        if role == "proxy":
            lines = tuple(f"{a} max_fails=3 fail_timeout=5s" for a in servers)
        else:
            lines = (f"unix:{run.uwsgi_socket}",)
        nginx = NginxPlan(
            rlimit_nofile=rlimit_nofile,
            worker_connections=worker_connections,
            backlog=backlog,
            tls=bool(s.tls_cert),
            server_names=tuple(s.server_names),
            header_buffers=max(1, s.buffer_size // HEADER_LINE),
            header_line=HEADER_LINE,
            tls_protocols=tls.PROTOCOLS,
            tls_ciphers=tls.CIPHERS,
            redirect_port=s.http_redirect_port,
            redirect_to="https://$host" + ("" if s.port == 443 else f":{s.port}")
            + "$request_uri",
            hsts=s.hsts,
            trusted_proxies=tuple(s.trusted_proxies),
            snippet_server=decl.nginx_server,
            snippet_http=decl.nginx_http,
            replica_header=s.replica_name if s.replica_name and role == "all" else None,
            static=static_mappings(s, decl),
            servers=lines,
            shared_zone=role == "proxy",
            connect_timeout=1 if role == "proxy" else 5,
            upstream_timeout=s.request_timeout + 5,
            busy_buffers_size=2 * s.buffer_size,
            # what says a replica is unreachable or broken; an app's 5xx is its answer to one
            # request: passed on, neither retried nor counted against the replica
            next_upstream="error timeout invalid_header" if role == "proxy" else None,
            next_upstream_tries=len(s.upstreams) + 1,
            request_id=f"{facts.instance}-$pid-$connection-$connection_requests",
            access_log=s.access_log,
            access_log_static=s.access_log_static,
            access_log_buffer=LONE_LOG_BUFFER if s.nginx_workers == 1 else PIPE_BUF,
            cache=cache_plan(s, run),
            brotli_static=facts.brotli_static if s.gzip else None,
            static_cache_control=f"public, max-age={s.static_max_age}, must-revalidate",
            static_versioned_cache_control=f"public, max-age={YEAR}, immutable",
        )

    if role == "app":
        host, port = upstreams.split_host_port(s.app_listen)
        probe = Probe("uwsgi", upstreams.loopback(host), port, decl.health)
    else:
        probe = Probe("https" if s.tls_cert else "http", upstreams.loopback(s.host), s.port,
                      decl.health)
    metrics = upstreams.split_host_port(s.metrics_listen) if s.metrics_listen else None
    if metrics is not None and runs_proxy and metrics[1] == s.port:
        raise SettingError(f"setting metrics_listen (from {s.sources['metrics_listen']}): port "
                           f"{s.port} is the site's own port")
    return Plan(
        settings=s,
        site=decl,
        run=run,
        account=facts.account,
        uwsgi=uwsgi,
        nginx=nginx,
        prestart=prestart_argv(s, decl) if runs_app else (),
        app_listen=upstreams.split_host_port(s.app_listen) if role == "app" else None,
        metrics=metrics,
        watch_upstreams=role == "proxy",
        writable=tuple(decl.writable) if runs_app else (),
        probe=probe,
        notes=tuple(notes),
        venv=site_venv(s) if runs_app else "",
        purge_to=purge_targets(s, nginx),
    )


def purge_targets(settings: Settings, nginx: NginxPlan | None) -> tuple[str, ...]:
    """Role all: the stack's own purge socket (unless the setting names others); role app:
    the setting (the proxies'); role proxy runs no app."""
    if settings.cache_purge_to or settings.role == "app":
        return tuple(settings.cache_purge_to)
    if settings.role == "all" and nginx is not None and nginx.cache is not None:
        return (f"unix:{nginx.cache.purge_socket}",)
    return ()
