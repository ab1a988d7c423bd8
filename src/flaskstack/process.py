"""The supervisor's processes: how they are started, reaped, waited for and stopped."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import threading
import time
from collections.abc import Callable

from .logs import log

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def give_back_memory() -> None:
    """Hand back what starting or reloading the stack left unused: the collector's garbage,
    then the C heap's free pages (glibc keeps them for reuse otherwise: about 0.7 MB of the
    supervisor's 10 MB after a start, docs/benchmarks/memory-and-cpu.md)."""
    gc.collect()
    with contextlib.suppress(AttributeError):  # a C library without malloc_trim
        _libc.malloc_trim(0)


def in_child(work: Callable[[], bytes | None]) -> bytes:
    """What ``work()`` returns, run in a forked child: whatever it imports or allocates (Jinja2
    and the templates, the settings' declarations, the plan's classes) is gone with the child
    instead of staying in a long-lived process (the supervisor) for its whole life. Raises
    :class:`OSError` with the child's reason when ``work()`` fails."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the child: never returns
        os.close(read)
        code = 0
        try:
            result = b"\0" + (work() or b"")
        except BaseException as e:  # any failure is reported, then _exit
            result, code = b"\1" + str(e).encode()[:4000], 1
        with contextlib.suppress(OSError):
            view = memoryview(result)
            while view:
                view = view[os.write(write, view):]
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        result = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not result.startswith(b"\0"):
        reason = result[1:].decode(errors="replace")
        raise OSError(reason or f"a child of the supervisor failed (status {status})")
    return result[1:]


def start(argv: list[str], env: dict[str, str], cwd: str | None = None,
          stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
          user: int | None = None, group: int | None = None,
          extra_groups: list[int] | None = None) -> int:
    """Start ``argv`` (found on ``env``'s PATH) and return its pid: in a session of its own,
    with ``stdin``/``stdout``/``stderr`` as given (None: the supervisor's) and no other
    descriptor, as ``user`` (uid, ``group``, ``extra_groups``), signals unblocked and at their
    defaults, dying with the supervisor even if it is killed outright. A command that cannot be
    run raises :class:`OSError` here.

    What :class:`subprocess.Popen` does, without its module: 0.45 MB of the supervisor's memory
    (docs/benchmarks/memory-and-cpu.md). The child runs only ``os`` calls before ``exec``.
    """
    report, told = os.pipe()  # close-on-exec: an exec that works closes it, with nothing said
    pid = os.fork()
    if pid == 0:  # the child: exec or _exit, never return
        try:
            os.close(report)
            os.setsid()
            for fd, given in enumerate((stdin, stdout, stderr)):
                if given is not None and given != fd:
                    os.dup2(given, fd)
            os.closerange(3, told)
            os.closerange(told + 1, os.sysconf("SC_OPEN_MAX"))
            if cwd is not None:
                os.chdir(cwd)
            if extra_groups is not None:
                os.setgroups(extra_groups)
            if group is not None:
                os.setgid(group)
            if user is not None:
                os.setuid(user)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them: not its children
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            # after setuid, which clears it
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            os.execvpe(argv[0], argv, env)
        except BaseException as e:
            what = [str(e)]
            if isinstance(e, OSError) and e.errno:  # as Popen's: "[Errno 2] ...: 'path'"
                named = e.filename if isinstance(e.filename, str) else argv[0]  # (exec: bytes)
                what = [str(e.errno), e.strerror or "", named]
            with contextlib.suppress(BaseException):
                os.write(told, "\0".join(what).encode()[:4000])
        finally:
            os._exit(127)
    os.close(told)
    with os.fdopen(report, "rb") as pipe:
        failed = pipe.read().decode(errors="replace").split("\0")
    if failed != [""]:
        os.waitpid(pid, 0)
        if len(failed) == 3:
            raise OSError(int(failed[0]), failed[1], failed[2])
        raise OSError(failed[0])
    return pid


class Child:
    """A process the supervisor started; reaped by the supervisor's own waitpid loop."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str],
                 **options: object) -> None:
        self.name = name
        self.status: int | None = None
        self.pid = start(argv, env, **options)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        return self.status is None

    def signal(self, sig: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL to every member of its process group (workers outlive a master killed
        outright)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def describe(self) -> str:
        code = self.status if self.status is not None else 0
        if os.WIFSIGNALED(code):
            return f"killed by {signal.Signals(os.WTERMSIG(code)).name}"
        return f"exit status {os.WEXITSTATUS(code)}"

    def exit_code(self) -> int:
        code = self.status or 0
        return os.WEXITSTATUS(code) if os.WIFEXITED(code) else 128 + os.WTERMSIG(code)


POLL = 0.02  # seconds
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD)
STOP = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


class Stopping(Exception):
    """A stop signal arrived while waiting: stop what runs."""


class Processes:
    """The supervisor's children, and waiting on them with signals queued: they are blocked
    and taken one at a time with ``sigtimedwait`` (so a handler never runs in the middle of
    something), and every SIGCHLD reaps with ``waitpid(-1)`` (PID 1 adopts orphans)."""

    def __init__(self, env: dict[str, str], grace: int) -> None:
        self.env = env
        self.grace = grace
        self.children: dict[int, Child] = {}
        self.reload_wanted = False  # a SIGHUP came while waiting: reload once more after

    def spawn(self, name: str, argv: list[str], **kwargs: object) -> Child:
        child = Child(name, argv, env=self.env, **kwargs)
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
                child.kill_group()  # its workers, if any outlived it

    def wait_signal(self, timeout: float) -> int | None:
        info = signal.sigtimedwait(HANDLED, timeout)
        if info is None:
            return None
        if info.si_signo == signal.SIGCHLD:
            self.reap()
        return info.si_signo

    def wait_until(self, done: Callable[[], bool], timeout: float | None) -> None:
        """Wait for ``done()`` or the timeout; a stop signal meanwhile raises :class:`Stopping`,
        a SIGHUP is kept for after."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            # checked every 20 ms: the start waits on files and ports, and each wait's latency
            # adds to the time before the first answer
            left = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if left <= 0:
                return
            sig = self.wait_signal(left)
            if sig in STOP:
                raise Stopping
            if sig == signal.SIGHUP:
                self.reload_wanted = True
            self.reap()

    def in_thread(self, work: Callable[[], object], timeout: float) -> object:
        """``work()``'s result, run in a thread while signals are still taken; None if it
        did not end within ``timeout``."""
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
        thread.start()
        self.wait_until(lambda: not thread.is_alive(), timeout)
        return result[0] if result else None

    def finish(self, child: Child, harder: int) -> bool:
        """Wait out the grace period for ``child`` (a second stop signal cuts it short), then
        insist; True if it had to be forced."""
        with contextlib.suppress(Stopping):
            self.wait_until(lambda: not child.running, self.grace + 1)
        if not child.running:
            return False
        log(f"{child.name} still running after {self.grace}s: forcing")
        child.signal(harder)
        with contextlib.suppress(Stopping):
            self.wait_until(lambda: not child.running, 2)
        if child.running:
            child.kill_group()
            with contextlib.suppress(Stopping):
                self.wait_until(lambda: not child.running, 2)
        return True

    def kill_all(self) -> None:
        """Last resort: nothing the supervisor started outlives it."""
        for child in self.children.values():
            child.kill_group()
        deadline = time.monotonic() + 3
        while any(c.running for c in self.children.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
            self.reap()
