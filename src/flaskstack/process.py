"""The supervisor's processes: how they are started, reaped, waited for and stopped."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import subprocess
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
                child.proc.returncode = child.exit_code()  # keep Popen from polling again
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
