"""``flaskstack serve``: start the plan's services in order, watch them, stop them in order.

The supervisor is small on purpose: uWSGI's master respawns its workers, Nginx's master handles
its own workers and graceful reload. The supervisor only does what neither can: start them in
order (app loaded before the port accepts), replace the app's generation at a reload (see
:mod:`.generation`), stop them in order (Nginx drains before uWSGI goes), reap orphans, and
exit with a clear code. Signals are queued (blocked, then taken with ``sigtimedwait``) and
handled one at a time by ``handle_<name>``. What to run is the :class:`~.plan.Plan`'s
decision, not the supervisor's. See docs/design.md and docs/operating/reload.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import logs, precompress, runtime, upstreams
from .exits import Exit, SettingError
from .generation import Generations, Outcome, refused
from .logs import log
from .process import HANDLED, Child, Processes, Stopping, give_back_memory, in_child
from .rundir import LOG_FIFO_SIZE

TYPE_CHECKING = False  # (this process never loads typing, the plan's classes or the settings')
if TYPE_CHECKING:
    from .plan import Plan

RESOLVE_EVERY = 5.0  # seconds between two looks at the proxy's upstream names


class Supervisor:
    """Runs ``plan``: a :class:`~.snapshot.Snapshot` of it, read like the plan; ``whole`` is the
    whole plan pickled, for the children that check and render it (see :mod:`.snapshot`)."""

    def __init__(self, plan: Plan, whole: bytes) -> None:
        self.plan = plan
        self.whole = whole
        self.run = plan.run
        self.processes = Processes(runtime.child_env(plan.account, plan.venv, plan.purge_to),
                                   plan.settings.grace)
        self.app: Generations | None = None  # the app's generations (roles all and app)
        self.nginx: Child | None = None
        self.listener: socket.socket | None = None  # role app: the app's socket, shared
        self.servers: list[str] = []  # upstream addresses in rotation (role proxy)
        self.resolved_at = 0.0
        self.started = time.time()
        self.reloads = 0
        self.stop_metrics: Callable[[], None] | None = None
        self.stop_purge: Callable[[], None] | None = None
        self.checking_static: threading.Thread | None = None
        self.written: Plan | None = None  # the plan the files in the run dir were rendered from
        logs.configure(plan.settings.access_log_format == "json")

    # -- start -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the run dir and the site's directories; render and write the configs."""
        self.run.path.mkdir(parents=True, exist_ok=True)
        for stale in self.run.stale():
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        for note in self.plan.notes:
            log(note)
        if self.plan.nginx is not None and self.plan.nginx.cache is not None:
            # pages a previous run cached (perhaps by the code before an upgrade) are not
            # served stale once more: the response cache starts empty
            empty_folder(Path(self.plan.nginx.cache.path))
        self.write_configs()
        for path in [self.run.path, *self.run.path.rglob("*")]:
            runtime.chown(path, self.plan.account)
        runtime.prepare_site(self.plan)
        if self.plan.nginx is not None and self.plan.settings.gzip:
            # while uWSGI starts: Nginx starts once this is done
            self.checking_static = threading.Thread(target=self.drop_stale_copies,
                                                    name="precompress", daemon=True)
            self.checking_static.start()
        self.run.pid.write_text(f"{os.getpid()}\n")

    def drop_stale_copies(self) -> None:
        """gzip_static and brotli_static would send a copy older than its file: remove those."""
        assert self.plan.nginx is not None
        if dropped := precompress.drop_stale(m.directory for m in self.plan.nginx.static):
            log(f"removed {dropped} outdated .gz/.br copies of static files "
                "(flaskstack precompress makes them again)")

    def write_configs(self) -> None:
        if self.written is not self.plan:
            whole = self.whole
            in_child(lambda: configure(whole))
            self.written = self.plan

    def start_prestart(self) -> Exit | None:
        argv = list(self.plan.prestart)
        log(f"prestart: {' '.join(argv)}")
        try:
            child = self.processes.spawn("prestart", argv, cwd=self.plan.settings.app_dir,
                               **runtime.as_user(self.plan.account))
        except OSError as e:
            log(f"prestart failed to run: {e}")
            return Exit.START
        try:
            self.processes.wait_until(lambda: not child.running, None)
        except Stopping:
            child.signal(signal.SIGTERM)
            with contextlib.suppress(Stopping):
                self.processes.wait_until(lambda: not child.running, self.processes.grace)
            child.signal(signal.SIGKILL)
            raise
        if child.exit_code() != 0:
            log(f"prestart failed ({child.describe()}): {' '.join(argv)}")
            return Exit.START
        return None

    def start_uwsgi(self) -> Exit | None:
        if self.plan.app_listen is not None:
            self.listener = self.listen(*self.plan.app_listen)
            if self.listener is None:
                return Exit.START
        self.app = Generations(self.plan, self.processes, lambda: self.server_output("uwsgi"),
                               self.listener.fileno() if self.listener is not None else None)
        failed = self.app.first()
        if failed is not None:
            log(f"the app failed to start ({failed}): see uWSGI's messages above")
            return Exit.START
        return None

    def listen(self, host: str, port: int) -> socket.socket | None:
        """Role app: bind the app's address here and hand it to uWSGI as fd 0 (see
        :meth:`stop`).

        It is bound, not listening: a connection is refused until the first generation has
        loaded the app and its loader calls ``listen()`` (:mod:`.loader`). A proxy, or any
        load balancer that checks the port, thus sends nothing to a replica still starting.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as socket.create_server: IPv6 only
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((host, port))
        except OSError as e:
            listener.close()
            log(f"cannot listen on {host}:{port}: {e.strerror or e}")
            return None
        return listener

    def start_upstreams(self) -> Exit | None:
        """Role proxy: wait until at least one upstream name resolves (apps start later)."""
        if not self.resolve():
            log("waiting for the upstreams to resolve: "
                + ", ".join(self.plan.settings.upstreams))
            self.processes.wait_until(lambda: self.resolve() or bool(self.servers), None)
        return None

    def resolve(self) -> bool:
        """Look at the upstreams again; True when the addresses in rotation changed (the plan
        is then made again with them)."""
        self.resolved_at = time.monotonic()
        servers = upstreams.in_rotation(self.plan.settings.upstreams, self.run.drain)
        if not servers or servers == self.servers:
            return False
        self.servers = servers
        whole = self.whole
        self.plan, self.whole = pickle.loads(in_child(lambda: replan(whole, servers)))
        return True

    def relay_access_log(self) -> None:
        """Copy what Nginx writes into the access-log FIFO to our stdout, in a thread."""
        fifo = self.run.access_log
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo, 0o600)
        runtime.chown(fifo, self.plan.account)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.open(fifo, os.O_WRONLY)  # kept open: the reader never sees end-of-file
        with contextlib.suppress(OSError):  # (above /proc/sys/fs/pipe-max-size: the default)
            fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, LOG_FIFO_SIZE)
        os.set_blocking(reader, True)

        def copy() -> None:
            out = sys.stdout.buffer
            while data := os.read(reader, 65536):
                with contextlib.suppress(OSError, ValueError):
                    out.write(data)
                    out.flush()

        threading.Thread(target=copy, name="access-log", daemon=True).start()

    def server_output(self, source: str) -> int | None:
        """JSON logs: a pipe that turns the server's message lines into JSON lines (its
        requests are logged as JSON by the server itself); plain logs: None (inherit)."""
        return logs.relay(source) if logs.json_lines() else None

    def start_nginx(self) -> Exit | None:
        assert self.plan.nginx is not None
        self.write_configs()  # again if the upstreams are now known (role proxy)
        if self.checking_static is not None:
            self.checking_static.join()
        if self.plan.nginx.access_log:
            self.relay_access_log()
        output = self.server_output("nginx")
        nginx = self.nginx = self.processes.spawn(
            "nginx",
            [runtime.binary("nginx"), "-p", str(self.run), "-c", str(self.run.nginx_conf),
             "-e", "stderr", "-g", "daemon off; master_process on;"],
            stderr=output,
        )
        if output is not None:
            os.close(output)
        probe = self.plan.probe
        self.processes.wait_until(
            lambda: not nginx.running or upstreams.accepts(probe.host, probe.port), None)
        if not nginx.running:
            log(f"nginx failed to start ({nginx.describe()}): see its messages above")
            return Exit.START
        return None

    def start_metrics(self) -> Exit | None:
        """The Prometheus endpoint, in a thread: every scrape reads the servers' status."""
        from . import metrics  # (prometheus-client: loaded only when metrics are on)

        assert self.plan.metrics is not None
        host, port = self.plan.metrics
        sources = metrics.Sources(self.run, uwsgi=self.plan.uwsgi is not None,
                                  nginx=self.plan.nginx is not None, started=self.started,
                                  reloads=lambda: self.reloads)
        try:
            self.stop_metrics = metrics.serve(host, port, sources)
        except OSError as e:
            log(f"cannot listen on {host}:{port} for metrics: {e.strerror or e}")
            return Exit.START
        shown = f"[{host}]" if ":" in host else host
        print(f"metrics: http://{shown}:{port}/metrics", flush=True)
        return None

    def start_purge(self) -> Exit | None:
        """The cache purger (:mod:`.purge`), in a thread: on the run directory's socket, and
        in role proxy on cache_purge_listen for the upstreams' addresses."""
        from . import purge

        assert self.plan.nginx is not None and self.plan.nginx.cache is not None
        cache = self.plan.nginx.cache
        sockets = []
        try:
            path = Path(cache.purge_socket)
            path.unlink(missing_ok=True)
            local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(local)
            local.bind(str(path))
            path.chmod(0o600)  # the stack's user (the app's workers) and root only
            runtime.chown(path, self.plan.account)
            local.listen(64)
            if cache.purge_listen is not None:
                host, port = cache.purge_listen
                remote = socket.create_server((host, port), backlog=64,
                                              family=socket.AF_INET6 if ":" in host
                                              else socket.AF_INET)
                sockets.append(remote)
        except OSError as e:
            for s in sockets:
                s.close()
            log(f"cannot listen for cache purges: {e.strerror or e}")
            return Exit.START
        names = self.plan.settings.upstreams

        def allowed(address: str) -> bool:
            return any(upstreams.split_host_port(a)[0] == address
                       for a in upstreams.resolve(names))

        listener = purge.Listener(purge.Cache(Path(cache.path)), sockets, allowed).start()
        self.stop_purge = listener.stop
        return None

    # -- running ---------------------------------------------------------------------------

    def serve(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        self.prepare()
        try:
            for service in self.plan.services:
                start: Callable[[], Exit | None] = getattr(self, f"start_{service}")
                try:
                    code = start()
                except Stopping:
                    return self.stop()
                if code is not None:
                    self.stop()
                    return code
            print(f"ready: {self.plan.probe.url}", flush=True)
            give_back_memory()
            try:
                return self.loop()
            except Stopping:
                return self.stop()
        finally:
            if self.stop_metrics is not None:
                self.stop_metrics()
            if self.stop_purge is not None:
                self.stop_purge()
            self.processes.kill_all()
            self.run.pid.unlink(missing_ok=True)

    def loop(self) -> int:
        """Take one signal at a time and hand it to ``handle_<name>``; between signals, look
        at the upstreams (role proxy) and the app's files (autoreload)."""
        while True:
            sig = self.processes.wait_signal(1.0)
            self.processes.reap()
            if sig is not None and sig != signal.SIGCHLD:
                handle: Callable[[], int | None] = getattr(
                    self, f"handle_{signal.Signals(sig).name.lower()}")
                code = handle()
                if code is not None:
                    return int(code)
            elif (self.plan.watch_upstreams
                  and time.monotonic() - self.resolved_at > RESOLVE_EVERY and self.resolve()):
                log(f"upstreams now resolve to {', '.join(self.servers)}: reloading nginx")
                self.reload()
            elif self.app is not None and self.app.files_changed():
                log("autoreload: the app's files changed")
                self.reload()
            while self.processes.reload_wanted:
                self.processes.reload_wanted = False
                self.reload()
            current = self.app.current if self.app is not None else None
            for child in (self.nginx, current.child if current is not None else None):
                if child is not None and not child.running:
                    log(f"{child.name} died ({child.describe()}): stopping the stack")
                    self.stop()
                    return Exit.DIED

    def handle_sigterm(self) -> int:
        log("SIGTERM received: stopping gracefully")
        return self.stop()

    def handle_sigint(self) -> int:
        log("SIGINT received: stopping gracefully")
        return self.stop()

    def handle_sigquit(self) -> int:
        log("SIGQUIT received: stopping gracefully")
        return self.stop()

    def handle_sighup(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Re-render the configs, replace the app's generation once the new one answers, and
        reload Nginx; the outcome goes to the log and to `flaskstack reload`."""
        started = time.monotonic()
        if self.plan.watch_upstreams:
            self.resolve()  # a reload also picks up replicas that came, went or were drained
        current = self.app.current if self.app is not None else None
        whole, servers = self.whole, self.servers
        try:
            in_child(lambda: configure(whole, servers))
            self.written = self.plan
        except (SettingError, OSError) as e:  # OSError: e.g. the run dir is full or read-only
            outcome = refused(started, current, str(e))
        else:
            if self.app is not None:
                outcome = self.app.replace(started, self.reload_nginx)
            else:
                self.reload_nginx()
                outcome = Outcome(started, True, "reload: nginx configuration reloaded")
        outcome.seconds = round(time.monotonic() - started, 3)
        if outcome.ok:
            self.reloads += 1
        log(outcome.message + (f" ({outcome.seconds:.2f} s)" if outcome.ok else ""))
        for line in outcome.error.splitlines():
            log(f"  {line}")
        outcome.write(self.run)
        give_back_memory()

    def reload_nginx(self) -> None:
        if self.nginx is not None:
            self.nginx.signal(signal.SIGHUP)

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> int:
        """Nginx first (it stops accepting and finishes what it is serving), then uWSGI.

        Role app: shutting down the shared listening socket makes every new connection refused
        at once (a proxy retries those on another replica) while the workers finish theirs;
        uWSGI's own graceful stop would keep accepting into the backlog and reset it at exit.
        """
        forced = False
        if self.nginx is not None and self.nginx.running:
            self.nginx.signal(signal.SIGQUIT)
            forced |= self.processes.finish(self.nginx, signal.SIGTERM)
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RD)
        if self.app is not None:
            forced |= self.app.stop()
        return Exit.FORCED if forced else Exit.OK


def empty_folder(folder: Path) -> None:
    """Remove what ``folder`` holds, keeping the folder (it may be a mount point)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def configure(whole: bytes, servers: list[str] | None = None) -> None:
    """In a forked child (:func:`.process.in_child`), with the whole plan: at a reload
    (``servers``: the upstreams in rotation), check what may have changed since the start; then
    render and write the configuration files."""
    from . import preflight, render, snapshot

    plan, facts = snapshot.unpack(whole)
    if servers is not None:
        preflight.check_files(plan)  # e.g. a renewed certificate and key
        if plan.nginx is not None and (plan.nginx.snippet_server or plan.nginx.snippet_http):
            preflight.nginx_test(plan, facts, servers)
    render.write_plan(plan)


def replan(whole: bytes, servers: list[str]) -> bytes:
    """In a forked child: the plan made again with the upstreams' addresses ``servers``, packed
    as the supervisor holds it (:func:`.snapshot.pack`)."""
    from . import plan as planning
    from . import snapshot

    plan, facts = snapshot.unpack(whole)
    return snapshot.pack(planning.make(plan.settings, plan.site, facts, servers), facts)
