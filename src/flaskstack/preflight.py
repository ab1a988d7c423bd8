"""Checks of the files the plan names, before a server reads them: one line per problem.

``serve`` runs them before starting, ``config --check`` too, and the supervisor before every
reload (a reload that would fail is refused; the running configuration keeps serving).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from . import plan as planning
from . import render, runtime, tls
from .host import HostFacts
from .plan import Plan
from .settings import SettingError, Settings

# nginx: [emerg] unknown directive "foo" in /site/server.conf:3
_NGINX_ERROR = re.compile(r"\[(?:emerg|alert|crit|error)\] (?:\d+#\d+: )?(?P<message>.*?) in "
                          r"(?P<file>\S+):(?P<line>\d+)")


def check_files(plan: Plan) -> None:
    """The TLS certificate and key load as a pair (when the plan serves TLS)."""
    if plan.nginx is not None and plan.nginx.tls:
        tls.check(plan.settings.tls_cert, plan.settings.tls_key)


def nginx_test(plan: Plan, facts: HostFacts, servers: Sequence[str] = ()) -> None:
    """Render the plan into a scratch directory and run ``nginx -t`` on it; a rejection is a
    :class:`SettingError` naming the site's snippet and line when the fault is there."""
    if plan.nginx is None:
        return
    import tempfile  # (with shutil's compressors: only when there are snippets to test)

    with tempfile.TemporaryDirectory(prefix="flaskstack-check-") as tmp:
        settings = Settings({**plan.settings.values, "run_dir": tmp}, plan.settings.sources)
        scratch = planning.make(settings, plan.site, facts, servers)
        render.in_child(scratch)
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
