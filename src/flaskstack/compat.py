"""Sites made for the tiangolo/uwsgi-nginx-flask image, served as that image served them.

That image (deprecated) ran ``/app/main.py``'s ``app`` (or what ``UWSGI_INI`` names) behind
Nginx on port 80, read its settings from variables of its own (``LISTEN_PORT``, ``STATIC_URL``,
``NGINX_MAX_UPLOAD``, ``UWSGI_PROCESSES``...), ran ``/app/prestart.sh`` as root first, and used
a whole ``/app/nginx.conf`` when there was one. Here those become the kit's own settings (their
source says ``tiangolo ...``), so everything else the kit does (graceful stop, non-root workers,
health, the cache, metrics) applies too. How the mode is chosen: the setting ``compat``; with
``auto`` it is on when no app is named (``FLASKSTACK_APP``, ``--app``) and ``/app`` holds such a
site (``main.py``, ``uwsgi.ini``, ``prestart.sh`` or ``nginx.conf``) or ``UWSGI_INI`` /
``PRE_START_PATH`` is set. See docs/start/tiangolo.md.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .logs import log
from .settings import SettingError, Settings, load

APP = Path("/app")
IMAGE_WORKDIR = "/web/web_data"  # the image's working directory (our own layout)
SITE_VENV = Path("/opt/site")  # the image's venv for the site (docs/start/own-app-in-image.md)
SOCKET_LINK = Path("/tmp/uwsgi.sock")  # where their nginx.conf examples find uWSGI
# their variables that are settings here, so never stray ones for uWSGI
READ_HERE = frozenset({"UWSGI_INI", "UWSGI_PROCESSES", "UWSGI_CHEAPER"})
THEIR_PROCESSES = "16"  # their image's UWSGI_PROCESSES, beside a UWSGI_CHEAPER
# uwsgi.ini options the kit renders itself (their values change nothing a client sees)
RENDERED = frozenset({
    "master", "enable-threads", "socket", "chmod-socket", "chown-socket", "vacuum",
    "die-on-term", "need-app", "hook-master-start", "show-config", "uid", "gid", "strict",
    "single-interpreter", "lazy-apps", "plugin", "plugins", "http-socket", "harakiri",
})
USED = frozenset({"module", "callable", "wsgi-file", "chdir", "processes", "workers",
                  "cheaper", "threads"})
_LISTEN = re.compile(r"(?:^|[\s;{])listen\s+(?:\S*:)?(\d+)\b")
_COMMENT = re.compile(r"#[^\n]*")


@dataclass(frozen=True)
class Layout:
    """A tiangolo-style site: the settings it implies and what runs before it."""

    reason: str  # what showed the layout (logged by serve)
    derived: dict[str, tuple[str, str]]  # setting -> (raw value, source)
    prestart: Path | None  # their prestart.sh, run as root before the stack
    environ: dict[str, str] = field(default_factory=dict)  # added when not set
    notes: tuple[str, ...] = ()


def detect(settings: Settings, env: Mapping[str, str]) -> str | None:
    """Why the site is one of tiangolo's image (the mode is then on), or None."""
    if settings.compat == "off":
        return None
    if settings.compat == "tiangolo":
        return f"setting compat = tiangolo ({settings.sources['compat']})"
    if settings.sources["app"] != "default":
        return None
    for name in ("UWSGI_INI", "PRE_START_PATH"):
        if env.get(name):
            return f"{name} is set"
    for name in ("main.py", "uwsgi.ini", "prestart.sh", "nginx.conf"):
        if (APP / name).is_file():
            return f"{APP / name} exists"
    return None


def read_ini(path: Path) -> dict[str, str]:
    """The ``[uwsgi]`` section of a uwsgi.ini (the last value of a repeated key)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as e:
        raise SettingError(f"UWSGI_INI {path}: cannot read it: {e}") from None
    if not parser.has_section("uwsgi"):
        raise SettingError(f"UWSGI_INI {path}: no [uwsgi] section")
    return dict(parser.items("uwsgi"))


def app_from_ini(ini: Mapping[str, str]) -> str:
    """``module:callable`` as uWSGI would load it (their default: ``main:app``)."""
    module = ini.get("module", "")
    if not module and ini.get("wsgi-file"):
        module = Path(ini["wsgi-file"]).stem
    module = module or "main"
    if ":" in module:
        return module
    return f"{module}:{ini.get('callable', 'app')}"


def nginx_port(path: Path) -> str | None:
    """The first port a whole nginx.conf listens on (the stack's health check uses it)."""
    try:
        found = _LISTEN.search(_COMMENT.sub("", path.read_text()))
    except (OSError, UnicodeDecodeError) as e:
        raise SettingError(f"{path}: cannot read it: {e}") from None
    return found.group(1) if found else None


def layout(env: Mapping[str, str], cwd: str, reason: str) -> Layout:
    """Their variables and files, as the kit's settings."""
    derived: dict[str, tuple[str, str]] = {}
    notes: list[str] = []

    def put(name: str, raw: str, source: str) -> None:
        derived[name] = (raw, f"tiangolo {source}")

    def from_env(name: str, variable: str, default: str | None = None) -> None:
        if env.get(variable, "").strip():
            put(name, env[variable], variable)
        elif default is not None:
            put(name, default, f"default of {variable}")

    ini_path = Path(env.get("UWSGI_INI") or APP / "uwsgi.ini")
    ini: dict[str, str] = {}
    if ini_path.is_file():
        ini = read_ini(ini_path)
    elif env.get("UWSGI_INI"):
        raise SettingError(f"UWSGI_INI {ini_path}: no such file")
    where = str(ini_path) if ini else "default (main:app)"
    put("app", app_from_ini(ini), where)
    put("app_dir", ini.get("chdir") or (cwd if cwd != IMAGE_WORKDIR else str(APP)),
        f"{ini_path} chdir" if ini.get("chdir") else "working directory")
    processes = ini.get("processes") or ini.get("workers")
    if processes:
        put("workers", processes, f"{ini_path} processes")
    if ini.get("threads"):
        put("threads", ini["threads"], f"{ini_path} threads")
    if ini.get("cheaper"):
        put("cheaper", ini["cheaper"], f"{ini_path} cheaper")
    from_env("workers", "UWSGI_PROCESSES")
    from_env("cheaper", "UWSGI_CHEAPER")
    if "cheaper" in derived and "workers" not in derived:
        put("workers", THEIR_PROCESSES, "default of UWSGI_PROCESSES (with UWSGI_CHEAPER)")
    if unused := sorted(set(ini) - USED - RENDERED):
        notes.append(f"{ini_path}: not used (the kit renders uWSGI's configuration; see "
                     f"docs/start/tiangolo.md): {', '.join(unused)}")

    whole = APP / "nginx.conf"
    if whole.is_file():
        put("nginx_conf", str(whole), str(whole))
        port = nginx_port(whole)
        if port is None:
            raise SettingError(f"{whole}: no `listen PORT;` found (the stack checks its "
                               "health there)")
        put("port", port, f"{whole} listen")
    else:
        from_env("port", "LISTEN_PORT", "80")
    from_env("max_upload", "NGINX_MAX_UPLOAD", "0")
    from_env("nginx_workers", "NGINX_WORKER_PROCESSES")
    from_env("nginx_connections", "NGINX_WORKER_CONNECTIONS")
    from_env("nginx_open_files", "NGINX_WORKER_OPEN_FILES")
    url = (env.get("STATIC_URL") or "/static").rstrip("/") or "/static"
    put("static", f"{url}/={env.get('STATIC_PATH') or APP / 'static'}", "STATIC_URL, STATIC_PATH")
    if env.get("STATIC_INDEX", "").strip() == "1":
        put("root_page", f"{url}/index.html", "STATIC_INDEX")
    if (SITE_VENV / "bin" / "python").exists():
        put("venv", str(SITE_VENV), "the image's site venv")

    prestart = Path(env.get("PRE_START_PATH") or APP / "prestart.sh")
    if not prestart.is_file():
        if env.get("PRE_START_PATH"):
            notes.append(f"PRE_START_PATH {prestart}: no such file, nothing run")
        prestart = None  # type: ignore[assignment]
    return Layout(reason=reason, derived=derived, prestart=prestart,
                  environ={"PYTHONPATH": str(APP)}, notes=tuple(notes))


def load_settings(flags: Mapping[str, str | Sequence[str] | None],
                  env: os._Environ[str] | None = None) -> tuple[Settings, Layout | None]:
    """The effective settings, with a tiangolo site's variables when the mode is on (their
    environment additions are made in ``env``). Raises :class:`SettingError`."""
    env = os.environ if env is None else env
    settings = load(env=env, flags=flags)
    reason = detect(settings, env)
    if reason is None:
        return settings, None
    site = layout(env, os.getcwd(), reason)
    for name, value in site.environ.items():
        env.setdefault(name, value)
    return load(env=env, flags=flags, derived=site.derived), site


def run_prestart(path: Path, env: os._Environ[str] | None = None) -> int:
    """Run their prestart.sh as root, as their image did (sourced by ``sh``: the variables it
    exports reach the app). Its output goes to the logs. Returns its exit status."""
    env = os.environ if env is None else env
    log(f"tiangolo mode: running {path} as root before the app")
    with tempfile.NamedTemporaryFile(prefix="prestart-env.") as dump:
        child = subprocess.Popen(
            ["/bin/sh", "-c", '. "$1" && env -0 > "$2"', "prestart", str(path), dump.name],
            cwd=os.getcwd(), env={k: v for k, v in env.items()
                                  if not k.upper().startswith("UWSGI_") or k in READ_HERE})

        def forward(signum: int, frame: Any) -> None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

        previous = signal.signal(signal.SIGTERM, forward)
        try:
            code = child.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code == 0:
            for entry in Path(dump.name).read_bytes().split(b"\0"):
                name, sep, value = entry.decode(errors="replace").partition("=")
                if sep and env.get(name) != value and name not in {"PWD", "SHLVL", "_"}:
                    env[name] = value
    return code


def link_socket(target: Path) -> None:
    """``/tmp/uwsgi.sock`` (their nginx.conf's ``uwsgi_pass``) leads to the stack's socket."""
    with contextlib.suppress(FileNotFoundError):
        if SOCKET_LINK.is_symlink() or SOCKET_LINK.is_socket():
            SOCKET_LINK.unlink()
    try:
        SOCKET_LINK.symlink_to(target)
    except OSError as e:
        raise SettingError(f"cannot link {SOCKET_LINK} to {target}: {e}") from None


def stray(env: Mapping[str, str], site: Layout | None) -> list[str]:
    """``UWSGI_*`` variables that reach nothing (in tiangolo mode, theirs are settings)."""
    names = sorted(n for n in env if n.upper().startswith("UWSGI_"))
    return [n for n in names if site is None or n not in READ_HERE]
