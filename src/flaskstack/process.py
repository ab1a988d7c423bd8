"""A process the supervisor started, and how it is started: the one place that forks servers."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess

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
