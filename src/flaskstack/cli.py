"""The ``flaskstack`` command line. Every setting is an option of every command that needs it.

Each command turns its options into settings, the settings into a plan (:mod:`.plan`), and
hands the plan to the part that acts on it; the exit codes are :mod:`.exits`'.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from . import (
    __version__,
    compat,
    generation,
    host,
    preflight,
    render,
    rundir,
    running,
    runtime,
    site,
    status,
    supervise,
    upstreams,
)
from . import plan as planning
from . import precompress as compressing
from .exits import Exit, describe, fail
from .image import image
from .logs import log
from .plan import Plan
from .rundir import RunDir
from .settings import SECTIONS, SETTINGS, SettingError, Settings, format_value, host_port

EPILOG = describe()


def setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per declared setting (raw strings; parsed by :func:`settings.load`)."""
    for s in reversed(SETTINGS):
        func = click.option(
            s.flag, s.name, default=None, multiple=s.multiple, metavar="VALUE",
            help=f"{s.help} [env {s.env}; default {s.describe_default()}; {s.allowed}]",
        )(func)
    return func


def effective(options: dict[str, Any]) -> Settings:
    return effective_site(options)[0]


def effective_site(options: dict[str, Any]) -> tuple[Settings, compat.Layout | None]:
    """The settings, and the tiangolo-style site they were read from, if any (:mod:`.compat`)."""
    try:
        return compat.load_settings(options)
    except SettingError as e:
        fail(str(e))


def make_plan(settings: Settings, servers: Sequence[str] = ()) -> tuple[Plan, host.HostFacts]:
    """The plan for ``settings`` on this machine; a bad setting or site file exits 2."""
    try:
        facts = host.gather(settings.user)
        decl = site.load(settings.app, settings.app_dir)
        return planning.make(settings, decl, facts, servers), facts
    except SettingError as e:
        fail(str(e))


def run_dir(settings: Settings) -> RunDir:
    return RunDir(Path(settings.run_dir))


def stack(options: dict[str, Any], anywhere: bool = False) -> tuple[Settings, RunDir | None]:
    """The settings of the stack this command acts on: when a ``serve`` runs with this run
    directory (with ``anywhere``, else the only one running), the settings it was started with
    and this command's flags on top; otherwise the flags, environment and defaults."""
    settings = effective(options)
    try:
        run = running.find(settings, anywhere)
        if run is None:
            return settings, None
        return running.settings_of(run, options), run
    except SettingError as e:
        fail(str(e))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flaskstack")
def main() -> None:
    """Nginx + uWSGI + any WSGI app as one supervised stack."""


@main.command(epilog=EPILOG)
@setting_options
def serve(**options: Any) -> None:
    """Run the stack in the foreground until SIGTERM/SIGINT (SIGHUP reloads).

    Prints one line "ready: URL" when the app is loaded and the port accepts.
    """
    settings, tiangolo = effective_site(options)
    run = run_dir(settings)
    try:
        lock = rundir.take(run)  # before anything in the run directory is touched
    except rundir.Busy as e:
        fail(str(e), Exit.START)
    except OSError as e:
        fail(f"run directory {run}: {e.strerror or e}", Exit.ERROR)
    if tiangolo is not None:
        log(f"tiangolo mode ({tiangolo.reason}): see docs/start/tiangolo.md")
        for note in tiangolo.notes:
            log(note)
        if tiangolo.prestart is not None:
            code = compat.run_prestart(tiangolo.prestart)
            if code != 0:
                fail(f"{tiangolo.prestart} failed (exit status {code})", Exit.START)
            settings, tiangolo = effective_site(options)  # with what it exported
    if stray := compat.stray(os.environ, tiangolo):
        log(f"ignoring {', '.join(stray)}: uWSGI reads only the configuration the kit renders "
            "(`flaskstack config` lists the settings)")
    plan, facts = make_plan(settings)
    with supervise.holding(run, lock):  # let go only when the supervisor could not start
        if tiangolo is not None and plan.uwsgi is not None and plan.nginx is not None:
            compat.link_socket(plan.run.uwsgi_socket)
        preflight.check_files(plan)
        if plan.nginx is not None and (plan.nginx.snippet_server or plan.nginx.snippet_http
                                       or plan.settings.nginx_conf):
            preflight.nginx_test(plan, facts)  # the site's own lines, before they can fail
        rundir.write_state(run, running.state(plan))
        supervise.replace_process(plan, facts, lock)  # the supervisor without the CLI


@main.command(epilog=EPILOG)
@click.option("--check", is_flag=True, help="Validate the rendered nginx.conf with `nginx -t`.")
@setting_options
def config(check: bool, **options: Any) -> None:
    """Print the effective settings with their sources, the site's declarations as they are
    used, then the rendered files.

    Without flags, and while a stack runs with this run directory, that stack's settings and
    the files it runs with; with flags, what these flags would make.
    """
    given = any(v is not None and v != () for k, v in options.items() if k != "run_dir")
    if given:
        settings, run = effective(options), None
    else:
        settings, run = stack({"run_dir": options["run_dir"]})
    servers = upstreams.resolve(settings.upstreams, placeholder=True)
    plan, facts = make_plan(settings, servers)
    if run is not None:
        pid = rundir.read_state(run).get("pid", "?")
        click.echo(f"# running stack: pid {pid}, run directory {run}")
        files = {p.name: p.read_text() for p in (run.nginx_conf, run.uwsgi_ini) if p.exists()}
    else:
        files = render.render(plan)
    if plan.site.path:
        click.echo(f"# site declaration: {plan.site.path}")
    for section in SECTIONS:
        click.echo(f"# {section}")
        for s in SETTINGS:
            if s.section == section:
                value = format_value(settings.values[s.name])
                click.echo(f"{s.name:<22} {value:<40} ({settings.sources[s.name]})")
    if plan.nginx is not None and plan.nginx.static:
        click.echo("# static mappings")
        for m in plan.nginx.static:
            click.echo(f"{m.prefix:<22} {m.directory:<40} ({m.source})")
    if plan.uwsgi is not None:
        origin = (f"setting prestart, {settings.sources['prestart']}" if settings.prestart
                  else f"from {plan.site.path}" if plan.site.prestart else "none declared")
        shown = " ".join(plan.prestart) or "(none)"
        click.echo(f"# prestart: {shown} ({origin})")
        for directory in plan.writable:
            click.echo(f"# writable: {directory} (from {plan.site.path})")
    for note in plan.notes:
        click.echo(f"# note: {note}")
    for path in (plan.run.nginx_conf, plan.run.uwsgi_ini):
        name = path.name
        if name in files:
            click.echo(f"\n# ---- {name} ----")
            click.echo(files[name], nl=False)
    if check:
        check_nginx(plan, facts, servers)


def check_nginx(plan: Plan, facts: host.HostFacts, servers: Sequence[str]) -> None:
    """The files the plan names, then ``nginx -t`` on the plan rendered in a scratch dir."""
    if plan.nginx is None:
        click.echo("\n# check: this role runs no nginx; uwsgi.ini rendered")
        return
    try:
        preflight.check_files(plan)
        preflight.nginx_test(plan, facts, servers)
    except SettingError as e:
        fail(str(e))
    click.echo("\n# check: nginx -t: configuration ok")


def running_pid(run: RunDir) -> int:
    try:
        pid = int(run.pid.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        fail(f"no running flaskstack serve with run directory {run}", Exit.ERROR)
    return pid


@main.command(epilog=EPILOG)
@click.option("--no-wait", is_flag=True,
              help="Return once the reload is asked for, without waiting for its outcome.")
@setting_options
def reload(no_wait: bool, **options: Any) -> None:
    """Load the app's code in a new generation of workers and switch to it once it answers;
    reload Nginx's configuration. Returns when the new generation is the only one serving.

    When the new code cannot be loaded or the reload is refused, exits 6 with the reason (the
    app's own error) and the running generation keeps serving.
    """
    settings, found = stack(options, anywhere=True)
    run = found or run_dir(settings)
    pid = running_pid(run)
    since = time.monotonic()
    os.kill(pid, signal.SIGHUP)
    if no_wait:
        click.echo("reload requested")
        return
    outcome = generation.wait_outcome(run, pid, since)
    if outcome is None:
        fail("reload: flaskstack serve stopped before the reload ended", Exit.ERROR)
    if not outcome.ok:
        error = "".join(f"\n  {line}" for line in outcome.error.splitlines())
        fail(outcome.message + error, Exit.REFUSED)
    click.echo(f"{outcome.message} ({outcome.seconds:.2f} s)")


@main.command(epilog=EPILOG)
@setting_options
@click.argument("replicas", nargs=-1)
@click.option("--clear", is_flag=True, help="Put every drained address back in rotation.")
def drain(replicas: tuple[str, ...], clear: bool, **options: Any) -> None:
    """Role proxy: send no new requests to REPLICAS (HOST:PORT, e.g. a replica about to be
    stopped); requests in flight there finish. Returns once Nginx has the new configuration.
    An address is forgotten once its name no longer resolves (the replica is gone)."""
    settings, _ = stack(options, anywhere=True)
    plan, _ = make_plan(settings)
    if not plan.watch_upstreams:
        fail("drain: only role proxy balances over upstreams")
    if not replicas and not clear:
        fail("drain: name at least one HOST:PORT upstream, or --clear")
    run = plan.run
    pid = running_pid(run)
    addresses: set[str] = set()
    for replica in replicas:
        try:
            host_port(replica)
        except ValueError:
            fail(f"drain: {replica!r} is not HOST:PORT")
        found = upstreams.resolve([replica])
        if not found:
            fail(f"drain: {replica} does not resolve", Exit.ERROR)
        addresses.update(found)
    listed = set() if clear else upstreams.read_drained(run.drain)
    upstreams.write_drained(run.drain, listed | addresses)
    old = nginx_workers(run)
    os.kill(pid, signal.SIGHUP)
    # the supervisor re-renders nginx.conf and reloads Nginx: applied once new workers run and
    # the old ones accept nothing more; then give the old ones up to the grace period to finish
    # the requests they were serving (those may still go to a drained replica)
    deadline = time.monotonic() + 10
    while True:
        now = nginx_workers(run)
        if set(now) - set(old) and not any(now.get(p) == "accepting" for p in old):
            break
        if time.monotonic() > deadline:
            fail("drain: the proxy did not apply it within 10 s", Exit.ERROR)
        time.sleep(0.05)
    finished = time.monotonic() + settings.grace
    while set(nginx_workers(run)) & set(old) and time.monotonic() < finished:
        time.sleep(0.05)
    click.echo(f"drained: {', '.join(sorted(addresses))}" if addresses else "drain cleared")


def nginx_workers(run: RunDir) -> dict[int, str]:
    """Nginx's worker processes: pid -> "accepting", or "shutting down" after a reload."""
    try:
        master = int(run.nginx_pid.read_text())
    except (OSError, ValueError):
        return {}
    workers = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, ValueError, IndexError):
            continue
        if parent == master and title.startswith("nginx: worker process"):
            workers[int(entry.name)] = "shutting down" if "shutting" in title else "accepting"
    return workers


@main.command(name="status", epilog=EPILOG)
@setting_options
def status_command(**options: Any) -> None:
    """Show each uWSGI worker (pid, state, requests, RSS) and Nginx's connections."""
    settings, run = stack(options, anywhere=True)
    run = run or run_dir(settings)
    running_pid(run)
    text, ok = status.report(run)
    click.echo(text)
    sys.exit(0 if ok else Exit.ERROR)


@main.command(name="exec", epilog=EPILOG, context_settings={"ignore_unknown_options": True})
@setting_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND in the site directory as the stack's user, with the site's writable
    directories made as `serve` makes them, e.g. `flaskstack exec -- flask --app notes users
    list`."""
    plan, _ = make_plan(stack(options)[0])
    try:
        runtime.prepare_site(plan)
    except SettingError as e:
        fail(str(e))
    try:
        result = subprocess.run(
            list(command), cwd=plan.settings.app_dir,
            env=runtime.child_env(plan.account, plan.venv, plan.purge_to), check=False,
            **runtime.as_user(plan.account),
        )
    except OSError as e:
        fail(f"cannot run {command[0]}: {e}", Exit.ERROR)
    sys.exit(result.returncode)


@main.command(epilog=EPILOG)
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
    from . import probe  # (http.client and ssl: not in the long-running supervisor)

    plan, _ = make_plan(stack(options, anywhere=True)[0])
    p = plan.probe
    try:
        if p.protocol == "uwsgi":
            code = probe.uwsgi_status(p.host, p.port, p.path)
        else:
            code = probe.http_status(p.host, p.port, p.path, tls=p.protocol == "https")
    except OSError as e:
        fail(f"unhealthy: {e}", Exit.ERROR)
    if code >= 500 and not live:
        fail(f"unhealthy: GET {p.path} answered {code}", Exit.ERROR)
    click.echo(f"healthy: GET {p.path} answered {code}")


@main.command(epilog=EPILOG)
@setting_options
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
def precompress(directories: tuple[Path, ...], **options: Any) -> None:
    """Write .gz and .br copies beside each text file (CSS, JS, SVG, ...) of DIRECTORIES, by
    default of every static folder the site and the settings map, for Nginx's gzip_static and
    brotli_static.

    Run it after installing or changing static files (the image build does); `serve` removes
    copies whose original changed since.
    """
    if not directories:
        plan, _ = make_plan(stack(options)[0])
        mappings = planning.static_mappings(plan.settings, plan.site)
        directories = tuple(Path(m.directory) for m in mappings if Path(m.directory).is_dir())
    try:
        written, seen = compressing.precompress(directories)
    except OSError as e:
        fail(f"precompress: {e}", Exit.ERROR)
    click.echo(f"precompress: {written} .gz/.br copies written, {seen} text files in "
               f"{len(directories)} folders")


main.add_command(image)
