"""The WSGI entry point of every app generation, loaded by uWSGI's master (``wsgi-file``).

It imports the site's app once, in the master, before the workers are forked: the workers
share the app's memory copy-on-write (``gc.freeze()`` keeps the collector from writing to, and
so copying, the pages of what was loaded). It is loaded by path and imports nothing of
flaskstack, so it works whichever venv runs the site.

The generation's folder (``FLASKSTACK_GENERATION``) gets ``error.txt`` (the traceback) when
the app cannot be loaded, and ``sources.txt`` (every loaded module's file, for autoreload)
when it can; the supervisor reads both. In role app it then has the shared socket listen (see
:meth:`flaskstack.supervisor.Supervisor.listen`). See docs/operating/reload.md.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import signal
import socket
import sys
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1


def load(target: str) -> Any:
    """``pkg.module:name`` or ``pkg.module:factory()`` (uWSGI's ``module`` syntax)."""
    name, _, attr = target.partition(":")
    module = importlib.import_module(name)
    attr = attr or "application"
    if attr.endswith("()"):
        return getattr(module, attr[:-2])()
    return getattr(module, attr)


def write(name: str, text: str) -> None:
    folder = os.environ.get("FLASKSTACK_GENERATION")
    if folder:
        path = os.path.join(folder, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def sources() -> str:
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    return "".join(f"{f}\n" for f in sorted(f for f in files if isinstance(f, str)))


def app_error(error: BaseException) -> str:
    """The traceback without the loader's and importlib's frames: the app's own error."""
    shown = traceback.TracebackException.from_exception(error)
    here = app_error.__code__.co_filename  # (uWSGI's wsgi-file sets no __file__)
    stack = [f for f in shown.stack
             if f.filename != here and not f.filename.startswith("<frozen ")
             and f"{os.sep}importlib{os.sep}" not in f.filename]
    shown.stack = traceback.StackSummary.from_list(stack)
    return "".join(shown.format())


try:
    application = load(os.environ["FLASKSTACK_APP"])
except BaseException as e:
    write("error.txt", app_error(e))
    raise

# The master dropped root before loading the app (the app never runs as root), which cleared
# the parent-death signal the supervisor set: set it again, so the generation still stops
# when the supervisor is killed outright.
ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
if str(os.getppid()) != os.environ.get("FLASKSTACK_SUPERVISOR", str(os.getppid())):
    os.kill(os.getpid(), signal.SIGTERM)  # it was already gone
gc.freeze()
write("sources.txt", sources())
if backlog := os.environ.get("FLASKSTACK_LISTEN_BACKLOG"):
    # Role app: fd 0 is the supervisor's socket, bound but refusing connections until the first
    # generation gets here (then listening again only sets its backlog): see supervisor.listen
    listener = socket.socket(fileno=0)
    try:
        listener.listen(int(backlog))
    finally:
        listener.detach()  # fd 0 stays open: it is the generation's socket
