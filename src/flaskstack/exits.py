"""Exit codes of every ``flaskstack`` command, declared once; and the error that means a bad
setting (:class:`SettingError`).

``--help`` epilogs, the README and docs/design.md show :func:`describe`'s text.
"""

from __future__ import annotations

import sys
from enum import IntEnum

# The supervisor's process imports this module: it never loads typing (1.5 MB for its whole
# life, docs/benchmarks/memory-and-cpu.md), which type checkers read all the same.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class SettingError(ValueError):
    """A setting has a bad value; the message is one line naming it and its source."""


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    SETTINGS = 2
    START = 3
    DIED = 4
    FORCED = 5
    REFUSED = 6


MEANING = {
    Exit.OK: "success (serve: stopped cleanly)",
    Exit.ERROR: "error (reload/status/health: the stack is not running, not answering or "
                "unhealthy; a command could not run)",
    Exit.SETTINGS: "bad settings, site declaration or arguments",
    Exit.START: "the app, the prestart command or a server failed to start",
    Exit.DIED: "Nginx or the uWSGI master died while serving (the stack was stopped)",
    Exit.FORCED: "a stop had to force a process after the grace period",
    Exit.REFUSED: "reload: refused (the new code cannot be loaded or does not answer its health "
                  "path, or the new configuration is wrong); the running generation keeps "
                  "serving",
}


def describe() -> str:
    """The exit codes as a click epilog (``\\b`` keeps click from rewrapping it)."""
    return "\b\nExit codes:\n" + "\n".join(f"  {int(c)}  {MEANING[c]}" for c in Exit)


def markdown_table() -> str:
    rows = [f"| {int(c)} | {MEANING[c]} |" for c in Exit]
    return "\n".join(["| exit code | meaning |", "| --- | --- |", *rows])


def fail(message: str, code: Exit = Exit.SETTINGS) -> NoReturn:
    """One line on stderr naming the problem, then exit with ``code``."""
    print(f"flaskstack: error: {message}", file=sys.stderr, flush=True)
    sys.exit(int(code))
