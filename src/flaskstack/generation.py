"""App generations: one uWSGI master that loads the app once and forks its workers.

A reload starts a new generation beside the running one, in a folder of its own
(``gen-N/``: its socket, master FIFO, stats socket, readiness file). Once it has loaded the
app and answers the site's health path, the run dir's ``uwsgi.sock``, ``uwsgi-stats.sock`` and
``uwsgi.fifo`` are pointed at it (one atomic rename each: Nginx connects to it from then on),
and the old generation drains: it answers what it had already accepted, then stops. A
generation that cannot load is discarded and the running one goes on serving.

Role app: every generation is also handed the supervisor's listening socket as fd 0, so the
proxy in front never sees the address close; its own socket serves only the health probe.

The supervisor drives the steps (:mod:`.supervisor`); :class:`Outcome` is what it tells
``flaskstack reload`` and its log. See docs/operating/reload.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import probe, runtime
from .process import Child, Processes
from .rundir import RunDir

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from .plan import Plan

ERROR_LINES = 6  # of the app's traceback, in a refused reload's message
LOAD_TIMEOUT = 300.0  # seconds a new generation may take to load the app at a reload


class Generation:
    """One uWSGI master and its workers, with its files in ``gen-N/`` of the run dir."""

    def __init__(self, number: int, plan: Plan) -> None:
        self.number = number
        self.plan = plan
        self.run = plan.run
        self.folder = self.run.generation(number)
        self.child: Child | None = None

    def __str__(self) -> str:
        return f"generation {self.number}"

    # -- its files
    @property
    def ini(self) -> Path:
        return self.folder / "uwsgi.ini"

    @property
    def socket(self) -> Path:
        return self.folder / "uwsgi.sock"

    @property
    def fifo(self) -> Path:
        return self.folder / "uwsgi.fifo"

    @property
    def stats(self) -> Path:
        return self.folder / "uwsgi-stats.sock"

    @property
    def ready(self) -> Path:
        """Touched by uWSGI once the first worker (the app loaded before the fork) accepts."""
        return self.folder / "ready"

    @property
    def error(self) -> Path:
        """The app's traceback, written by the loader when the app cannot be loaded."""
        return self.folder / "error.txt"

    @property
    def sources(self) -> Path:
        """Every module file the app loaded (autoreload watches them)."""
        return self.folder / "sources.txt"

    # -- lifecycle
    def argv(self) -> list[str]:
        """Write the generation's own uwsgi.ini (the site's, then what is this generation's)
        in a fresh folder; uWSGI's command line."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(mode=0o755)
        runtime.chown(self.folder, self.plan.account)  # the workers touch `ready` in it
        self.ini.write_text(
            f"; generation {self.number}, written by flaskstack serve: the site's uwsgi.ini, "
            "then this generation's own files\n"
            "[uwsgi]\n"
            f"ini = {self.run.uwsgi_ini}\n"
            f"socket = {self.socket}\n"
            f"master-fifo = {self.fifo}\n"
            f"stats = {self.stats}\n"
            f"env = FLASKSTACK_GENERATION={self.folder}\n"
            f"env = FLASKSTACK_SUPERVISOR={os.getpid()}\n"
            f"hook-accepting1-once = exec:touch {self.ready}\n"
        )
        return [runtime.binary("uwsgi"), "--ini", str(self.ini)]

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    @property
    def loaded(self) -> bool:
        return self.ready.exists()

    def failure(self) -> str:
        """Why it did not load: the last lines of the app's traceback, else uWSGI's end."""
        with contextlib.suppress(OSError):
            lines = self.error.read_text(errors="replace").rstrip().splitlines()
            if lines:
                return "\n".join(lines[-ERROR_LINES:])
        if self.child is not None and not self.child.running:
            return f"uWSGI ended ({self.child.describe()}) before the app was loaded"
        return "the app was not loaded in time"

    def health(self) -> str | None:
        """Ask the site's health path on this generation's own socket; None when it answers
        below 500, else what went wrong."""
        path = self.plan.site.health
        names = self.plan.settings.server_names
        try:
            code = probe.uwsgi_status_unix(str(self.socket), path,
                                           host=names[0] if names else "localhost",
                                           timeout=self.plan.settings.request_timeout + 1)
        except OSError as e:
            return f"GET {path} failed: {e}"
        return f"GET {path} answered {code}" if code >= 500 else None

    def make_current(self) -> None:
        """Point the run dir's socket, stats socket and FIFO at this generation: each an
        atomic rename, so a connection goes to the old generation or to this one, never
        nowhere."""
        for link, target in ((self.run.uwsgi_socket, self.socket),
                             (self.run.uwsgi_stats, self.stats),
                             (self.run.uwsgi_fifo, self.fifo)):
            tmp = link.with_name(link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target.relative_to(self.run.path))
            tmp.replace(link)

    def command(self, letters: bytes) -> bool:
        """Write to the master's FIFO (q: stop gracefully); False if it is not there."""
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            os.write(fd, letters)
        finally:
            os.close(fd)
        return True

    def watched(self) -> dict[str, int]:
        """The app's module files and their modification times (autoreload)."""
        found: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for name in self.sources.read_text().splitlines():
                with contextlib.suppress(OSError):
                    found[name] = os.stat(name).st_mtime_ns
        return found

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Generations:
    """The app's generations: the one serving, and during a reload the one replacing it.

    ``output()`` gives the file descriptor a new uWSGI master writes its messages to (None:
    the supervisor's own stderr); ``listener`` is role app's shared socket (fd 0 of each).
    """

    def __init__(self, plan: Plan, processes: Processes, output: Callable[[], int | None],
                 listener: int | None) -> None:
        self.plan = plan
        self.processes = processes
        self.output = output
        self.listener = listener
        self.current: Generation | None = None  # the one Nginx sends requests to
        self.running: list[Generation] = []  # every one running (two during a reload)
        self.numbered = 0  # one that failed keeps its number
        self.watched: dict[str, int] = {}  # autoreload: the app's files and their mtimes

    def start(self) -> Generation:
        """Start a generation: its uWSGI master loads the app and forks the workers."""
        self.numbered += 1
        generation = Generation(self.numbered, self.plan)
        argv = generation.argv()
        output = self.output()
        generation.child = self.processes.spawn(
            "uwsgi", argv, cwd=self.plan.settings.app_dir, stdout=output or sys.stderr.fileno(),
            stderr=output, stdin=self.listener,
        )
        if output is not None:
            os.close(output)
        self.running.append(generation)
        return generation

    def first(self) -> str | None:
        """Start the first generation and serve with it; None, or why it failed."""
        generation = self.start()
        self.processes.wait_until(lambda: generation.loaded or not generation.running, None)
        if not generation.loaded:
            assert generation.child is not None
            return f"uWSGI {generation.child.describe()}"
        self.serve_with(generation)
        return None

    def serve_with(self, generation: Generation) -> None:
        """Send the app's requests to ``generation`` from now on."""
        generation.make_current()
        self.current = generation
        if self.plan.settings.autoreload:
            self.watched = generation.watched()

    def replace(self, started: float, switched: Callable[[], None]) -> Outcome:
        """A reload's app part: start the next generation, switch to it once it answers its
        health path (``switched()`` is called then), drain and stop the old one."""
        old = self.current
        assert old is not None
        new = self.start()
        self.processes.wait_until(lambda: new.loaded or not new.running, LOAD_TIMEOUT)
        problem, error = None, ""
        if not new.loaded:
            problem, error = "the new code cannot be loaded", new.failure()
        else:
            answer = self.processes.in_thread(lambda: new.health() or "",
                                              self.plan.settings.request_timeout + 2)
            problem = "the health check got no answer" if answer is None else (
                str(answer) or None)
        if problem is not None:
            self.retire(new)
            return refused(started, old, problem, error)
        self.serve_with(new)
        switched()
        if self.listener is None:
            # requests Nginx queued on the old socket before the switch are answered before it
            # stops: the queue is first in, first out, so once a request sent now is answered
            # every one before it was taken
            self.processes.in_thread(old.health,
                                     self.plan.settings.request_timeout + self.plan.settings.grace)
        self.retire(old)
        return Outcome(started, True, f"reload: {new} serving, {old} stopped",
                       generation=new.number)

    def retire(self, generation: Generation) -> bool:
        """Stop a generation gracefully (its requests in flight finish); True if forced."""
        forced = False
        if generation.running:
            assert generation.child is not None
            if not generation.command(b"q"):
                generation.child.signal(signal.SIGTERM)
            forced = self.processes.finish(generation.child, signal.SIGINT)
        if generation in self.running:
            self.running.remove(generation)
        generation.remove()
        return forced

    def stop(self) -> bool:
        """Stop every generation; True if one had to be forced."""
        forced = False
        for generation in list(self.running):
            forced |= self.retire(generation)
        return forced

    def files_changed(self) -> bool:
        """Autoreload: True (once) when a file of the app changed since the last look."""
        if not self.watched or not changed(self.watched):
            return False
        self.watched = self.current.watched() if self.current is not None else {}
        return True


def refused(started: float, running: Generation | None, reason: str,
            error: str = "") -> Outcome:
    still = f"{running} keeps serving" if running is not None else "still serving"
    return Outcome(started, False, f"reload refused, {still}: {reason}", error,
                   running.number if running is not None else 0)


def changed(watched: dict[str, int]) -> bool:
    """True when a watched file changed or went away since ``watched`` was made."""
    for name, mtime in watched.items():
        try:
            if os.stat(name).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


class Outcome:
    """How a reload ended: written to the run dir for ``flaskstack reload``, and logged.

    (A plain class: the supervisor's process does not load :mod:`dataclasses`.)
    """

    def __init__(self, started: float, ok: bool, message: str, error: str = "",
                 generation: int = 0, seconds: float = 0.0) -> None:
        # time.monotonic() when the supervisor began it (the same clock system-wide)
        self.started = started
        self.ok = ok
        self.message = message  # one line: what now serves, or why the reload was refused
        self.error = error  # the app's own error (the last lines of its traceback), if any
        self.generation = generation  # the generation serving now (0: this role runs none)
        self.seconds = seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and vars(other) == vars(self)

    def __repr__(self) -> str:
        return f"Outcome({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def write(self, run: RunDir) -> None:
        path = run.reload_status
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(vars(self)) + "\n")
        tmp.chmod(0o644)
        tmp.replace(path)

    @classmethod
    def read(cls, run: RunDir) -> Outcome | None:
        try:
            return cls(**json.loads(run.reload_status.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def wait_outcome(run: RunDir, pid: int, since: float, poll: float = 0.05) -> Outcome | None:
    """The outcome of the first reload the supervisor ``pid`` began after ``since``; None if
    the supervisor is gone first."""
    while True:
        outcome = Outcome.read(run)
        if outcome is not None and outcome.started >= since:
            return outcome
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        time.sleep(poll)
