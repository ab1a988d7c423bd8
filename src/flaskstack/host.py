"""Facts about the machine the stack runs on, gathered in one place.

The plan is computed from these (and the settings); nothing else reads ``/proc``, the user
database or resource limits, so the plan and the rendered files can be made in a test from
facts the test chooses.
"""

from __future__ import annotations

import grp
import os
import pwd
import resource
from dataclasses import dataclass
from pathlib import Path

from .settings import SettingError


@dataclass(frozen=True)
class Account:
    """The unprivileged user the workers run as (when the stack starts as root)."""

    name: str
    uid: int
    gid: int
    group: str
    home: str


@dataclass(frozen=True)
class HostFacts:
    somaxconn: int  # the kernel's cap on a listen backlog
    nofile_hard: int  # the hard open-files limit (what Nginx may raise its workers to)
    root: bool  # started as root: servers drop to ``account``
    account: Account | None  # None unless root
    # random for each start: with Nginx's worker pid and connection counter it makes request
    # ids unique across restarts and machines, without a random number per request
    instance: str = "0"
    # Nginx's brotli_static module (Debian: libnginx-mod-http-brotli-static), when installed
    brotli_static: str | None = None


BROTLI_STATIC = Path("/usr/lib/nginx/modules/ngx_http_brotli_static_module.so")


def somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 4096


def account(user: str) -> Account:
    """The user's ids; a missing user is a settings error."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SettingError(f"setting user: no such user {user!r} on this machine") from None
    return Account(user, entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name,
                   entry.pw_dir)


def gather(user: str) -> HostFacts:
    """Read this machine's facts for a stack whose workers run as ``user``."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    root = os.geteuid() == 0
    return HostFacts(
        somaxconn=somaxconn(),
        nofile_hard=hard if hard != resource.RLIM_INFINITY else 1 << 20,
        root=root,
        account=account(user) if root else None,
        instance=os.urandom(4).hex(),  # (not secrets: it loads OpenSSL into the supervisor)
        brotli_static=str(BROTLI_STATIC) if BROTLI_STATIC.is_file() else None,
    )
