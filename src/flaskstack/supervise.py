"""The long-running process of ``flaskstack serve``: the supervisor and nothing else.

``serve`` reads the settings and the site, takes the run directory's lock and makes the plan
with the whole command line loaded (click and the other commands' modules); then it replaces
itself with this module (``exec``: the same pid, so still PID 1 in a container), which imports
only what the supervisor uses. What the command line imported would otherwise stay in memory
for the stack's whole life: about 2 MB, measured in docs/benchmarks/memory-and-cpu.md. Nor
does it load the plan's classes: the plan comes as a :mod:`.snapshot` (and pickled whole, for
the children that render it), in an anonymous file. The lock's descriptor is inherited, so the
run directory is never unlocked in between. Signals stay blocked across the ``exec``: one that
arrives meanwhile waits for the supervisor, which takes them all with ``sigtimedwait``.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from . import rundir, snapshot
from .exits import Exit, SettingError, fail
from .process import HANDLED
from .supervisor import Supervisor

TYPE_CHECKING = False  # (this process never loads typing: see exits.py)
if TYPE_CHECKING:
    from typing import NoReturn

    from .host import HostFacts
    from .plan import Plan


@contextmanager
def holding(run: rundir.RunDir, lock: int) -> Iterator[None]:
    """The run directory ``run`` held by ``lock`` while the stack is being started or runs:
    a setting or system error is the command's one-line failure, and the directory's state
    and lock are let go however it ends."""
    try:
        yield
    except SettingError as e:
        fail(str(e))
    except OSError as e:
        fail(str(e), Exit.ERROR)
    finally:
        rundir.drop_state(run)
        os.close(lock)


def replace_process(plan: Plan, facts: HostFacts, lock: int) -> NoReturn:
    """Become ``python -m flaskstack.supervise`` for ``plan``; ``lock`` is the run
    directory's lock. The original command line follows ``--``, for ``ps`` to show."""
    data = os.memfd_create("flaskstack-plan", 0)  # inherited, unlike the default CLOEXEC
    with open(data, "wb", closefd=False) as f:
        f.write(snapshot.pack(plan, facts))
    os.lseek(data, 0, os.SEEK_SET)
    os.set_inheritable(lock, True)
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: the working directory (the site's, perhaps) is not searched for modules
    os.execv(sys.executable, [sys.executable, "-P", "-m", __name__, str(data), str(lock),
                              "--", *sys.argv])


def main() -> NoReturn:
    data, lock = int(sys.argv[1]), int(sys.argv[2])
    with open(data, "rb") as f:
        plan, whole = pickle.load(f)
    os.set_inheritable(lock, False)  # uWSGI and Nginx must not hold the run directory
    with holding(plan.run, lock):
        code = Supervisor(plan, whole).serve()
    sys.exit(code)


if __name__ == "__main__":
    main()
