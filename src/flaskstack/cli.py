"""The ``flaskstack`` command line. Every setting is an option of every command that needs it.

Exit codes: 0 success; 1 error; 2 bad settings or arguments; 3 the app, the prestart command or
a server failed to start; 4 Nginx or the uWSGI master died while serving; 5 a stop had to force
a process after the grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__, probe, render, site, status
from .image import image
from .settings import (
    SECTIONS,
    SETTINGS,
    SettingError,
    Settings,
    format_value,
    host_port,
    load,
)
from .supervisor import (
    DRAIN_FILE,
    EXIT_ERROR,
    EXIT_SETTINGS,
    Supervisor,
    binary,
    read_lines,
    write_lines,
)

EXIT_CODES = """\b
Exit codes:
  0  success (serve: stopped cleanly)
  1  error (reload/status: the stack is not running or not answering)
  2  bad settings or arguments
  3  the app, the prestart command or a server failed to start
  4  Nginx or the uWSGI master died while serving (the stack was stopped)
  5  a stop had to force a process after the grace period"""


def fail(message: str, code: int = EXIT_SETTINGS) -> NoReturn:
    click.echo(f"flaskstack: error: {message}", err=True)
    sys.exit(code)


def setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per declared setting (raw strings; parsed by :func:`settings.load`)."""
    for s in reversed(SETTINGS):
        func = click.option(
            s.flag, s.name, default=None, multiple=s.multiple, metavar="VALUE",
            help=f"{s.help} [env {s.env}; default {s.describe_default()}]",
        )(func)
    return func


def effective(options: dict[str, Any]) -> Settings:
    try:
        return load(flags=options)
    except SettingError as e:
        fail(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flaskstack")
def main() -> None:
    """Nginx + uWSGI + any WSGI app as one supervised stack."""


@main.command(epilog=EXIT_CODES)
@setting_options
def serve(**options: Any) -> None:
    """Run the stack in the foreground until SIGTERM/SIGINT (SIGHUP reloads).

    Prints one line "ready: URL" when the app is loaded and the port accepts.
    """
    settings = effective(options)
    try:
        decl = site.load(settings.app, settings.app_dir)
        code = Supervisor(settings, decl).serve()
    except SettingError as e:
        fail(str(e))
    except OSError as e:
        fail(str(e), EXIT_ERROR)
    sys.exit(code)


@main.command(epilog=EXIT_CODES)
@click.option("--check", is_flag=True, help="Validate the rendered nginx.conf with `nginx -t`.")
@setting_options
def config(check: bool, **options: Any) -> None:
    """Print the effective settings with their sources, then the rendered files."""
    settings = effective(options)
    try:
        decl = site.load(settings.app, settings.app_dir)
        rendered = render.render(settings, decl)
    except SettingError as e:
        fail(str(e))
    if decl.path:
        click.echo(f"# site declaration: {decl.path}")
    for section in SECTIONS:
        click.echo(f"# {section}")
        for s in SETTINGS:
            if s.section == section:
                value = format_value(settings.values[s.name])
                click.echo(f"{s.name:<22} {value:<40} ({settings.sources[s.name]})")
    if rendered.static:
        click.echo("# static mappings")
        for prefix, directory, source in rendered.static:
            click.echo(f"{prefix:<22} {directory:<40} ({source})")
    if decl.prestart and not settings.prestart:
        click.echo(f"# prestart (from {decl.path}): {decl.prestart}")
    for note in rendered.notes:
        click.echo(f"# note: {note}")
    for name in ("nginx.conf", "uwsgi.ini"):
        if name in rendered.files:
            click.echo(f"\n# ---- {name} ----")
            click.echo(rendered.files[name], nl=False)
    if check:
        sys.exit(check_nginx(settings, decl))


def check_nginx(settings: Settings, decl: site.SiteDeclaration) -> int:
    """Render into a scratch directory and run ``nginx -t`` on it."""
    if settings.role == "app":
        click.echo("\n# check: role app runs no nginx; uwsgi.ini rendered")
        return 0
    with tempfile.TemporaryDirectory(prefix="flaskstack-check-") as tmp:
        files = render.render(settings, decl, run_dir=tmp)
        render.write(files, tmp)
        result = subprocess.run(
            [binary("nginx"), "-t", "-q", "-p", tmp, "-c", f"{tmp}/nginx.conf", "-e", "stderr"],
            capture_output=True, text=True, check=False,
        )
    if result.returncode != 0:
        message = " ".join(result.stderr.replace(tmp, "<run_dir>").split())
        fail(f"nginx -t rejected the configuration: {message}")
    click.echo("\n# check: nginx -t: configuration ok")
    return 0


def running_pid(settings: Settings) -> int:
    pid_file = Path(settings.run_dir) / "flaskstack.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        fail(f"no running flaskstack serve with run directory {settings.run_dir}", EXIT_ERROR)
    return pid


@main.command(epilog=EXIT_CODES)
@setting_options
def reload(**options: Any) -> None:
    """Reload the app's code (workers one at a time) and Nginx's configuration."""
    settings = effective(options)
    os.kill(running_pid(settings), signal.SIGHUP)
    click.echo("reload requested")


@main.command(epilog=EXIT_CODES)
@setting_options
@click.argument("replicas", nargs=-1)
@click.option("--clear", is_flag=True, help="Put every drained address back in rotation.")
def drain(replicas: tuple[str, ...], clear: bool, **options: Any) -> None:
    """Role proxy: send no new requests to REPLICAS (HOST:PORT, e.g. a replica about to be
    stopped); requests in flight there finish. Returns once Nginx has the new configuration.
    An address is forgotten once its name no longer resolves (the replica is gone)."""
    settings = effective(options)
    if settings.role != "proxy":
        fail("drain: only role proxy balances over upstreams", EXIT_SETTINGS)
    if not replicas and not clear:
        fail("drain: name at least one HOST:PORT upstream, or --clear", EXIT_SETTINGS)
    pid = running_pid(settings)
    addresses: list[str] = []
    for replica in replicas:
        try:
            host_port(replica)
        except ValueError:
            fail(f"drain: {replica!r} is not HOST:PORT", EXIT_SETTINGS)
        found = render.resolve_upstreams([replica])
        if not found:
            fail(f"drain: {replica} does not resolve", EXIT_ERROR)
        addresses += found
    path = Path(settings.run_dir) / DRAIN_FILE
    listed = set() if clear else read_lines(path)
    write_lines(path, sorted(listed | set(addresses)))
    os.kill(pid, signal.SIGHUP)
    config = Path(settings.run_dir) / "nginx.conf"
    deadline = time.monotonic() + 10
    while any(f"server {a} " in config.read_text() for a in addresses):
        if time.monotonic() > deadline:
            fail("drain: the proxy did not apply it within 10 s", EXIT_ERROR)
        time.sleep(0.1)
    time.sleep(0.5)  # Nginx's new workers take over; its old ones finish their requests
    click.echo(f"drained: {', '.join(addresses)}" if addresses else "drain cleared")


@main.command(name="status", epilog=EXIT_CODES)
@setting_options
def status_command(**options: Any) -> None:
    """Show each uWSGI worker (pid, state, requests, RSS) and Nginx's connections."""
    settings = effective(options)
    running_pid(settings)
    text, ok = status.report(Path(settings.run_dir))
    click.echo(text)
    sys.exit(0 if ok else EXIT_ERROR)


@main.command(name="exec", epilog=EXIT_CODES, context_settings={"ignore_unknown_options": True})
@setting_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND in the site directory as the stack's user, e.g.
    `flaskstack exec -- flask --app notes users list`."""
    settings = effective(options)
    try:
        supervisor = Supervisor(settings, site.SiteDeclaration())
    except SettingError as e:
        fail(str(e))
    try:
        result = subprocess.run(
            list(command), cwd=settings.app_dir, env=supervisor.child_env(),
            check=False, **supervisor.as_user(),  # type: ignore[call-overload]
        )
    except OSError as e:
        fail(f"cannot run {command[0]}: {e}", EXIT_ERROR)
    sys.exit(result.returncode)


@main.command(epilog=EXIT_CODES)
@setting_options
@click.option("--live", is_flag=True,
              help="Only check that the stack answers at all (any status), e.g. for a "
              "liveness probe that must not fail while the database is down.")
def health(live: bool, **options: Any) -> None:
    """Exit 0 if this host's stack is healthy (for HEALTHCHECK and probes).

    Asks the site's health path (its flaskstack.toml `health`, default /) and wants a status
    below 500. Roles all and proxy are asked over HTTP on the port; role app over the uwsgi
    protocol on its TCP socket.
    """
    settings = effective(options)
    try:
        path = site.load(settings.app, settings.app_dir).health
    except SettingError as e:
        fail(str(e))
    try:
        if settings.role == "app":
            host, port = render.split_host_port(settings.app_listen)
            code = probe.uwsgi_status(render.loopback(host), port, path)
        else:
            code = probe.http_status(render.loopback(settings.host), settings.port, path,
                                     tls=bool(settings.tls_cert))
    except OSError as e:
        fail(f"unhealthy: {e}", EXIT_ERROR)
    if code >= 500 and not live:
        fail(f"unhealthy: GET {path} answered {code}", EXIT_ERROR)
    click.echo(f"healthy: GET {path} answered {code}")


main.add_command(image)
