"""``flaskstack serve``: run uWSGI and Nginx in order, as a correct PID 1.

The supervisor is small on purpose: uWSGI's master respawns workers and chain-reloads them,
Nginx's master handles its own workers and graceful reload. The supervisor only does what
neither can: start them in order (app loaded before the port accepts), stop them in order
(Nginx drains before uWSGI goes), forward reloads, reap orphans, and exit with a clear code.
See docs/design.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import render, site
from .settings import SettingError, Settings

DRAIN_FILE = "drain"  # in the run dir: upstream addresses taken out of rotation

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_SETTINGS = 2
EXIT_START = 3  # the app, the prestart command or a server failed to start
EXIT_DIED = 4  # Nginx or the uWSGI master died while serving
EXIT_FORCED = 5  # the stop had to kill something after the grace period

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD)
STOP = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def log(message: str) -> None:
    print(f"flaskstack: {message}", file=sys.stderr, flush=True)


def binary(name: str) -> str:
    """``uwsgi`` from this Python's environment first; ``nginx`` from PATH or /usr/sbin."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise SettingError(f"{name} is not installed (not on PATH, not in /usr/sbin)")
    return found


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    """Unblock signals, and die with the supervisor even if it is killed outright."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A process the supervisor started; reaped by the supervisor's own waitpid loop."""

    def __init__(self, name: str, argv: list[str], **kwargs: object) -> None:
        self.name = name
        self.status: int | None = None
        self.proc = subprocess.Popen(
            argv, start_new_session=True, preexec_fn=_child_setup, **kwargs  # type: ignore[call-overload]
        )
        self.pid = self.proc.pid

    @property
    def running(self) -> bool:
        return self.status is None

    def signal(self, sig: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def describe(self) -> str:
        code = self.status if self.status is not None else 0
        if os.WIFSIGNALED(code):
            return f"killed by {signal.Signals(os.WTERMSIG(code)).name}"
        return f"exit status {os.WEXITSTATUS(code)}"

    def exit_code(self) -> int:
        code = self.status or 0
        return os.WEXITSTATUS(code) if os.WIFEXITED(code) else 128 + os.WTERMSIG(code)


class Supervisor:
    def __init__(self, settings: Settings, decl: site.SiteDeclaration) -> None:
        self.s = settings
        self.decl = decl
        self.run = Path(settings.run_dir)
        self.children: dict[int, Child] = {}
        self.uwsgi: Child | None = None
        self.nginx: Child | None = None
        self.listener: socket.socket | None = None  # role app: uWSGI's socket, shared
        self.backlog = 100
        self.servers: list[str] = []  # the proxy role's resolved upstream addresses
        self.resolved_at = 0.0
        self.root = os.geteuid() == 0
        self.uid, self.gid = -1, -1
        if self.root:
            self.uid, self.gid, _ = render.user_group(settings.user)

    # -- processes -------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], **kwargs: object) -> Child:
        child = Child(name, argv, **kwargs)
        self.children[child.pid] = child
        return child

    def reap(self) -> None:
        """Collect every exited child, ours or orphans handed to PID 1."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.get(pid)
            if child is not None:
                child.status = status
                child.proc.returncode = child.exit_code()  # keep Popen from polling again
                # its workers, if any outlived it (a master killed outright leaves them)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

    def wait_signal(self, timeout: float) -> int | None:
        info = signal.sigtimedwait(HANDLED, timeout)
        if info is None:
            return None
        if info.si_signo == signal.SIGCHLD:
            self.reap()
        return info.si_signo

    def wait_until(self, done: Callable[[], bool], timeout: float | None) -> int | None:
        """Wait for ``done()``; return a stop signal if one arrives first, else ``None``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return None
            sig = self.wait_signal(left)
            if sig in STOP:
                return sig
            self.reap()
        return None

    # -- start -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the run dir (and the site's writable dirs), render and write the configs."""
        self.run.mkdir(parents=True, exist_ok=True)
        for stale in ("uwsgi.ready", "uwsgi.sock", "uwsgi.fifo", "nginx.pid"):
            (self.run / stale).unlink(missing_ok=True)
        rendered = render.render(self.s, self.decl, servers=self.servers)
        for note in rendered.notes:
            log(note)
        self.backlog = rendered.backlog
        render.write(rendered, str(self.run))
        if self.s.role != "proxy":
            app_dir = Path(self.s.app_dir)
            if not app_dir.is_dir():
                try:
                    app_dir.mkdir(parents=True)
                except OSError as e:
                    raise SettingError(f"setting app_dir: cannot create {app_dir}: {e}") from None
        if self.root:
            for path in [self.run, *self.run.rglob("*")]:
                os.chown(path, self.uid, self.gid)
        for directory in self.decl.writable if self.s.role != "proxy" else []:
            Path(directory).mkdir(parents=True, exist_ok=True)
            if self.root:
                os.chown(directory, self.uid, self.gid)
        (self.run / "flaskstack.pid").write_text(f"{os.getpid()}\n")

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        if self.root:
            import pwd

            entry = pwd.getpwuid(self.uid)
            env.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
        return env

    def as_user(self) -> dict[str, object]:
        """Popen arguments that run a command as the unprivileged user (when root)."""
        if not self.root:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def prestart(self) -> int | None:
        command = self.s.prestart or self.decl.prestart
        if not command or command.strip().lower() == "none":
            return None
        log(f"prestart: {command}")
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise SettingError(f"setting prestart: {e}") from None
        cwd = self.s.app_dir
        try:
            child = self.spawn("prestart", argv, cwd=cwd, env=self.child_env(), **self.as_user())
        except OSError as e:
            log(f"prestart failed to run: {e}")
            return EXIT_START
        sig = self.wait_until(lambda: not child.running, None)
        if sig is not None:
            child.signal(signal.SIGTERM)
            self.wait_until(lambda: not child.running, self.s.grace)
            child.signal(signal.SIGKILL)
            return EXIT_OK
        if child.exit_code() != 0:
            log(f"prestart failed ({child.describe()}): {command}")
            return EXIT_START
        return None

    def listen(self) -> socket.socket | None:
        """Role app: open APP_LISTEN here and hand it to uWSGI as fd 0 (see :meth:`stop`)."""
        host, port = render.split_host_port(self.s.app_listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            return socket.create_server((host, port), family=family, backlog=self.backlog)
        except OSError as e:
            log(f"cannot listen on {self.s.app_listen}: {e.strerror or e}")
            return None

    def start_uwsgi(self) -> int | None:
        stdin: int | None = None
        if self.s.role == "app":
            self.listener = self.listen()
            if self.listener is None:
                return EXIT_START
            stdin = self.listener.fileno()
        self.uwsgi = self.spawn(
            "uwsgi", [binary("uwsgi"), "--ini", str(self.run / "uwsgi.ini")],
            cwd=self.s.app_dir, env=self.child_env(), stdout=sys.stderr, stdin=stdin,
        )
        ready = self.run / "uwsgi.ready"
        uwsgi = self.uwsgi
        sig = self.wait_until(lambda: ready.exists() or not uwsgi.running, None)
        if sig is not None:
            return self.stop()
        if not uwsgi.running:
            log(
                f"the app failed to start (uWSGI {uwsgi.describe()}): see uWSGI's messages above"
            )
            return EXIT_START
        return None

    def resolve(self) -> bool:
        """Resolve the upstreams again; True when the set of addresses changed.

        Addresses that do not accept connections (a replica still starting, or gone) are left
        out, unless none does: Nginx then answers 502 until one comes back.
        """
        self.resolved_at = time.monotonic()
        resolved = render.resolve_upstreams(self.s.upstreams)
        drained = self.drained(resolved)
        candidates = [a for a in resolved if a not in drained] or resolved
        servers = [a for a in candidates if accepts(*render.split_host_port(a))] or candidates
        if servers and servers != self.servers:
            self.servers = servers
            return True
        return False

    def drained(self, resolved: list[str]) -> set[str]:
        """Addresses `flaskstack drain` took out of rotation; those that no longer resolve (the
        replica is gone, its address may come back for a new one) are forgotten."""
        path = self.run / DRAIN_FILE
        listed = read_lines(path)
        kept = listed & set(resolved)
        if kept != listed:
            write_lines(path, sorted(kept))
        return kept

    def wait_for_upstreams(self) -> int | None:
        """Proxy role: wait until at least one upstream name resolves (apps start later)."""
        if self.resolve():
            return None
        log(f"waiting for the upstreams to resolve: {', '.join(self.s.upstreams)}")
        sig = self.wait_until(lambda: self.resolve() or bool(self.servers), None)
        return self.stop() if sig is not None else None

    def relay_access_log(self) -> None:
        """Copy what Nginx writes into the access-log FIFO to our stdout, in a thread."""
        fifo = self.run / "access.log"
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo, 0o600)
        if self.root:
            os.chown(fifo, self.uid, self.gid)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.open(fifo, os.O_WRONLY)  # kept open: the reader never sees end-of-file
        os.set_blocking(reader, True)

        def copy() -> None:
            out = sys.stdout.buffer
            while data := os.read(reader, 65536):
                with contextlib.suppress(OSError, ValueError):
                    out.write(data)
                    out.flush()

        threading.Thread(target=copy, name="access-log", daemon=True).start()

    def start_nginx(self) -> int | None:
        if self.s.access_log:
            self.relay_access_log()
        nginx = self.nginx = self.spawn(
            "nginx",
            [binary("nginx"), "-p", str(self.run), "-c", str(self.run / "nginx.conf"),
             "-e", "stderr", "-g", "daemon off; master_process on;"],
        )
        address = render.loopback(self.s.host)
        sig = self.wait_until(lambda: not nginx.running or accepts(address, self.s.port), None)
        if sig is not None:
            return self.stop()
        if not nginx.running:
            log(f"nginx failed to start ({nginx.describe()}): see its messages above")
            self.stop()
            return EXIT_START
        return None

    def ready_url(self) -> str:
        if self.s.role == "app":
            return f"uwsgi://{self.s.app_listen}"
        scheme = "https" if self.s.tls_cert else "http"
        return f"{scheme}://{self.s.host}:{self.s.port}"

    # -- running ---------------------------------------------------------------------------

    def serve(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        self.prepare()
        try:
            if self.s.role != "proxy":
                for step in (self.prestart, self.start_uwsgi):
                    code = step()
                    if code is not None:
                        self.stop()
                        return code
            if self.s.role == "proxy":
                code = self.wait_for_upstreams()
                if code is not None:
                    return code
            if self.s.role != "app":
                render.write(render.render(self.s, self.decl, servers=self.servers),
                             str(self.run))
                code = self.start_nginx()
                if code is not None:
                    return code
            print(f"ready: {self.ready_url()}", flush=True)
            return self.loop()
        finally:
            self.kill_all()
            (self.run / "flaskstack.pid").unlink(missing_ok=True)

    def loop(self) -> int:
        while True:
            sig = self.wait_signal(1.0)
            self.reap()
            if sig in STOP:
                log(f"{signal.Signals(sig).name} received: stopping gracefully")
                return self.stop()
            if sig == signal.SIGHUP:
                if self.s.role == "proxy":
                    self.resolve()  # a reload also picks up replicas that came or went
                self.reload()
            elif (self.s.role == "proxy" and time.monotonic() - self.resolved_at > 5
                  and self.resolve()):
                log(f"upstreams now resolve to {', '.join(self.servers)}: reloading nginx")
                self.reload()
            for child in (self.nginx, self.uwsgi):
                if child is not None and not child.running:
                    log(f"{child.name} died ({child.describe()}): stopping the stack")
                    self.stop()
                    return EXIT_DIED

    def reload(self) -> None:
        """Re-render the configs, then reload Nginx and chain-reload the uWSGI workers."""
        log("reload: nginx configuration and app workers (one at a time)")
        render.write(render.render(self.s, self.decl, servers=self.servers), str(self.run))
        if self.nginx is not None:
            self.nginx.signal(signal.SIGHUP)
        if self.uwsgi is not None:
            self.fifo(b"c")

    def fifo(self, command: bytes) -> bool:
        try:
            fd = os.open(self.run / "uwsgi.fifo", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            os.write(fd, command)
        finally:
            os.close(fd)
        return True

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
            forced |= self.finish(self.nginx, signal.SIGTERM)
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RD)
        if self.uwsgi is not None and self.uwsgi.running:
            if not self.fifo(b"q"):
                self.uwsgi.signal(signal.SIGTERM)
            forced |= self.finish(self.uwsgi, signal.SIGINT)
        return EXIT_FORCED if forced else EXIT_OK

    def finish(self, child: Child, harder: int) -> bool:
        """Wait out the grace period for ``child``, then insist; True if it had to be forced."""
        self.wait_until(lambda: not child.running, self.s.grace + 1)
        if not child.running:
            return False
        log(f"{child.name} still running after {self.s.grace}s: forcing")
        child.signal(harder)
        self.wait_until(lambda: not child.running, 2)
        if child.running:
            os.killpg(child.pid, signal.SIGKILL)
            self.wait_until(lambda: not child.running, 2)
        return True

    def kill_all(self) -> None:
        """Last resort: nothing the supervisor started outlives it."""
        for child in self.children.values():
            # every member of its process group: workers can outlive a master killed outright
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 3
        while any(c.running for c in self.children.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
            self.reap()


def read_lines(path: Path) -> set[str]:
    """The lines of a small state file; none when it does not exist."""
    try:
        return set(path.read_text().split())
    except FileNotFoundError:
        return set()


def write_lines(path: Path, lines: list[str]) -> None:
    """Replace a small state file at once (readers never see half of it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    tmp.replace(path)


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def serve(settings: Settings) -> int:
    return Supervisor(settings, site.load(settings.app, settings.app_dir)).serve()
