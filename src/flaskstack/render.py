"""Render ``nginx.conf``, ``uwsgi.ini`` and the error pages: a pure function of the plan.

Nothing here reads the host: every number and choice is already in the :class:`~.plan.Plan`,
and the templates only print it (no arithmetic, no role tests).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .plan import Plan
from .rundir import NGINX_TEMP, RunDir

if TYPE_CHECKING:
    from jinja2 import Environment

ERRORS = {
    400: ("Bad request", "The request was malformed or its headers were too large."),
    413: ("Upload too large", "The file or form you sent is larger than this site accepts."),
    502: ("Bad gateway", "The application did not answer properly. Please try again shortly."),
    414: ("Address too long", "The address (URL) of the request is longer than this site "
                               "accepts."),
    503: ("Service unavailable", "The site is busy or restarting. Please try again shortly."),
    504: ("Gateway timeout", "The application took too long to answer. Please try again."),
}


@functools.cache
def _env() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined  # (never in the supervisor)

    return Environment(
        loader=PackageLoader("flaskstack", "templates"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _static_file(name: str) -> str:
    from importlib import resources  # (in the rendering child: not the supervisor's memory)

    return (resources.files("flaskstack") / "templates" / name).read_text()


def render(plan: Plan) -> dict[str, str]:
    """Every file of the plan, by its path relative to the run directory."""
    run = plan.run
    context = {"plan": plan, "s": plan.settings, "run": run, "n": plan.nginx, "u": plan.uwsgi,
               "account": plan.account, "errors": sorted(ERRORS)}
    files: dict[str, str] = {}

    def put(path: Path, content: str) -> None:
        files[str(path.relative_to(run.path))] = content

    if plan.nginx is not None:
        if plan.settings.nginx_conf:
            put(run.nginx_conf, own_nginx_conf(Path(plan.settings.nginx_conf)))
        else:
            put(run.nginx_conf, _env().get_template("nginx.conf.j2").render(context))
        put(run.mime_types, _static_file("mime.types"))
        put(run.uwsgi_params, _static_file("uwsgi_params"))
        page = _env().get_template("error.html.j2")
        for code, (title, message) in ERRORS.items():
            put(run.error_page(code, "html"), page.render(code=code, title=title,
                                                          message=message))
            body = {"error": title, "status": code, "message": message}
            put(run.error_page(code, "json"), json.dumps(body) + "\n")
    if plan.uwsgi is not None:
        put(run.uwsgi_ini, _env().get_template("uwsgi.ini.j2").render(context))
    return files


_FOREGROUND = re.compile(r"^(\s*)((?:daemon|master_process)\s+\w+\s*;)", re.M)


def own_nginx_conf(path: Path) -> str:
    """A whole Nginx configuration of the user's (setting nginx_conf), as Nginx will read it
    from the run directory: unchanged but for ``daemon``/``master_process``, which the
    supervisor sets itself (Nginx refuses them twice)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise OSError(f"setting nginx_conf: cannot read {path}: {e}") from None
    return _FOREGROUND.sub(r"\1# \2  (flaskstack runs Nginx in the foreground)", text)


def write(files: dict[str, str], run: RunDir) -> None:
    """Write the files into the run directory (each atomically) and Nginx's temp folders."""
    for name, content in files.items():
        path = run.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content)
        tmp.replace(path)
    for sub in NGINX_TEMP:
        (run.tmp / sub).mkdir(parents=True, exist_ok=True)


def write_plan(plan: Plan) -> None:
    """Render the plan's files and write them; :class:`OSError` naming the failure."""
    try:
        write(render(plan), plan.run)
    except BaseException as e:
        raise OSError(f"rendering the configuration failed: {e}") from None
