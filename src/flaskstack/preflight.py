"""Checks of the files the plan names, before a server reads them: one line per problem.

``serve`` runs them before starting, ``config --check`` too, and the supervisor before every
reload (a reload that would fail is refused; the running configuration keeps serving).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import plan as planning
from . import render, runtime, tls
from .host import Account, HostFacts
from .plan import Plan
from .settings import SettingError, Settings

# nginx: [emerg] unknown directive "foo" in /site/server.conf:3
_NGINX_ERROR = re.compile(r"\[(?:emerg|alert|crit|error)\] (?:\d+#\d+: )?(?P<message>.*?) in "
                          r"(?P<file>\S+):(?P<line>\d+)")


def check_files(plan: Plan) -> None:
    """The TLS certificate and key load as a pair (when the plan serves TLS); the workers'
    account reaches what the app needs; uWSGI runs this environment's Python."""
    if plan.nginx is not None and plan.nginx.tls:
        tls.check(plan.settings.tls_cert, plan.settings.tls_key)
    if plan.uwsgi is not None:
        check_uwsgi_python(runtime.binary("uwsgi"))
        if plan.account is not None:
            check_access(plan.account, needed(plan))


# -- the workers' account ------------------------------------------------------------------

READ, WRITE = "read", "write"


def needed(plan: Plan) -> list[tuple[str, str, str]]:
    """(path, READ or WRITE, what needs it) for everything the workers open after they drop
    to the account: Python's standard library and extension modules, this environment's
    packages, its interpreter (prestart and ``exec`` run it), the site, its writable folders."""
    paths = sysconfig.get_paths()
    wanted = [
        (os.path.realpath(sys.executable), READ, "the Python interpreter"),
        (paths["stdlib"], READ, "Python's standard library"),
        (paths["platstdlib"], READ, "Python's standard library"),
        (os.path.join(paths["stdlib"], "lib-dynload"), READ, "Python's extension modules"),
        (paths["purelib"], READ, f"the virtual environment {sys.prefix}"),
        (paths["platlib"], READ, f"the virtual environment {sys.prefix}"),
        (plan.settings.app_dir, READ, "the site directory (app_dir)"),
    ]
    site = f"the site's writable folder (from {plan.site.path})"
    wanted += [(directory, WRITE, site) for directory in plan.writable]
    unique: dict[str, tuple[str, str, str]] = {}
    for item in wanted:
        unique.setdefault(item[0], item)
    return list(unique.values())


def _steps(path: str) -> Iterator[str]:
    """``path``'s ancestors from / down, then ``path``; a part that does not exist yet (a
    folder serve will make) ends the walk at its nearest existing ancestor."""
    parts = Path(path).parts
    for i in range(1, len(parts) + 1):
        step = os.path.join(*parts[:i])
        if not os.path.exists(step):
            return
        yield step


def _first_refused(wanted: Sequence[tuple[str, str, str]]) -> str:
    """Run as the account: the first path it cannot reach, as one line ("" when none). A
    writable folder itself is made and given to the account by serve (runtime.prepare_site):
    only the way to it is checked."""
    for path, how, what in wanted:
        for step in _steps(path):
            if step != path:
                mode = os.X_OK
            elif how == WRITE:
                continue
            else:
                mode = os.R_OK | (os.X_OK if os.path.isdir(step) else 0)
            if not os.access(step, mode):
                return f"{step}\t{'enter' if mode == os.X_OK else READ}\t{what}"
    return ""


def check_access(account: Account, wanted: Sequence[tuple[str, str, str]]) -> None:
    """Check, in a child that has become ``account`` as uWSGI's workers do, that it can reach
    every path in ``wanted``; a path it cannot is a :class:`SettingError` naming the path, the
    account and the fix (today's alternative is an ImportError from inside a worker)."""
    read, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        code = 0
        try:
            os.setgroups([])
            os.initgroups(account.name, account.gid)
            os.setgid(account.gid)
            os.setuid(account.uid)
            os.write(write_end, _first_refused(wanted).encode(errors="surrogateescape"))
        except BaseException as e:
            os.write(write_end, f"?\tcheck\t{e}".encode(errors="replace")[:4000])
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode(errors="surrogateescape")
    os.waitpid(pid, 0)
    if not answer:
        return
    path, verb, what = answer.split("\t", 2)
    if verb == "check":
        raise SettingError(f"cannot check what user {account.name} can reach: {what}")
    fix = (f"chmod o+{'x' if verb == 'enter' else 'rx'} {path}, or move it where "
           f"{account.name} can read (not under /root or a private home directory)")
    raise SettingError(f"user {account.name}, which runs the workers, cannot {verb} {path} "
                       f"({what} needs it): {fix}")


# -- uWSGI's Python ------------------------------------------------------------------------

_LIBPYTHON = re.compile(r"^\s*(libpython(\d+\.\d+)\S*)\s+=>\s+(\S+)", re.MULTILINE)


def check_uwsgi_python(uwsgi: str) -> None:
    """uWSGI embeds the Python it was built against: a uWSGI built for another Python (another
    version, or another installation's libpython) cannot load this environment's packages."""
    try:
        linked = subprocess.run(["ldd", uwsgi], capture_output=True, text=True, check=False,
                                timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return  # no ldd: nothing to say (a static build embeds its Python anyway)
    found = _LIBPYTHON.search(linked)
    if found is None:
        return  # statically linked
    library, version, where = found.groups()
    ours = sysconfig.get_python_version()
    rebuild = f"rebuild it: bash scripts/install-uwsgi.sh {sys.executable}"
    if version != ours:
        raise SettingError(f"{uwsgi} is built for Python {version} ({library}), this "
                           f"environment runs Python {ours}: {rebuild}")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    expected = os.path.join(libdir, sysconfig.get_config_var("INSTSONAME") or library)
    if where == "not" or (os.path.exists(expected)
                          and os.path.realpath(where) != os.path.realpath(expected)):
        shown = "not found" if where == "not" else os.path.realpath(where)
        raise SettingError(f"{uwsgi} loads {library} from {shown}, not this environment's "
                           f"Python ({expected}): {rebuild}")


def nginx_test(plan: Plan, facts: HostFacts, servers: Sequence[str] = ()) -> None:
    """Render the plan into a scratch directory and run ``nginx -t`` on it; a rejection is a
    :class:`SettingError` naming the site's snippet and line when the fault is there."""
    if plan.nginx is None:
        return
    import tempfile  # (with shutil's compressors: only when there are snippets to test)

    with tempfile.TemporaryDirectory(prefix="flaskstack-check-") as tmp:
        settings = Settings({**plan.settings.values, "run_dir": tmp}, plan.settings.sources)
        scratch = planning.make(settings, plan.site, facts, servers)
        render.write_plan(scratch)  # (called in processes that end soon: no child needed)
        result = subprocess.run(
            [runtime.binary("nginx"), "-t", "-q", "-p", tmp, "-c", str(scratch.run.nginx_conf),
             "-e", "stderr"],
            capture_output=True, text=True, check=False,
        )
    if result.returncode == 0:
        return
    snippets = {plan.nginx.snippet_server: "server", plan.nginx.snippet_http: "http"}
    found = _NGINX_ERROR.search(result.stderr)
    if found and found["file"] in snippets:
        raise SettingError(
            f"{found['file']} line {found['line']}: {found['message']} (the site's [nginx] "
            f"{snippets[found['file']]} snippet, from {plan.site.path})"
        )
    message = " ".join(result.stderr.replace(tmp, "<run_dir>").split())
    raise SettingError(f"nginx -t rejected the configuration: {message}")
