"""Running things as the stack does: its binaries, its user, its environment, its folders.

Shared by ``serve`` (the supervisor) and the commands that act like it (``exec``, ``config
--check``), so that a site command run by hand sees what the app sees.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from . import purge
from .exits import SettingError

TYPE_CHECKING = False  # (the supervisor's process never loads typing: see exits.py)
if TYPE_CHECKING:
    from typing import Any

    from .host import Account
    from .plan import Plan


def binary(name: str) -> str:
    """``uwsgi`` from this Python's environment first; ``nginx`` from PATH or /usr/sbin."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise SettingError(f"{name} is not installed (not on PATH, not in /usr/sbin)")
    return found


def child_env(account: Account | None, venv: str = "", purge_to: Sequence[str] = (),
              ) -> dict[str, str]:
    """The environment of the servers and site commands: the site's venv (setting venv) or
    this venv's bin first on PATH, the account's HOME/USER when running as another user, where
    the app sends cache purges (:mod:`flaskstack.purge`), and no ``UWSGI_*`` variable (nothing
    reaches uWSGI but the rendered configuration)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("UWSGI_")}
    if purge_to:
        env[purge.ENV] = ",".join(purge_to)
    bindir = str(Path(sys.executable).parent)
    first = [str(Path(venv) / "bin"), bindir] if venv else [bindir]
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "/usr/bin:/bin")])
    if venv:
        env["VIRTUAL_ENV"] = venv
    if account is not None:
        env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
    return env


def as_user(account: Account | None) -> dict[str, Any]:
    """Popen arguments that run a command as ``account`` (none: as ourselves)."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def chown(path: Path, account: Account | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid)


def prepare_site(plan: Plan) -> None:
    """The site directory and the site's writable directories (owned by the account)."""
    if plan.uwsgi is None:
        return
    app_dir = Path(plan.settings.app_dir)
    if not app_dir.is_dir():
        try:
            app_dir.mkdir(parents=True)
        except OSError as e:
            raise SettingError(f"setting app_dir: cannot create {app_dir}: {e}") from None
    for directory in map(Path, plan.writable):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SettingError(f"{plan.site.path}: cannot create {directory}: {e}") from None
        chown(directory, plan.account)
