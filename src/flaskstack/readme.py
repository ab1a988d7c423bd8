"""The documentation's generated blocks, made from their declarations.

A block is the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
README.md or a page under docs/; everything else on the page is written by hand. The kit makes
its own blocks here (settings, commands, exit codes, metrics, a rendered configuration); an
installed site adds its own through the entry-point group ``flaskstack.docs`` (the notes site:
its ``NOTES_*`` settings and REST API), so the kit never names a site.

``python -m flaskstack.readme`` rewrites every block of README.md and docs/ (run it from the
repository's root; file arguments, as in ``python -m flaskstack.readme README.md``, are
accepted and rewrite everything too). ``tests/docs`` fails while a block is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import exits, settings

if TYPE_CHECKING:
    from prometheus_client.core import Metric

Blocks = dict[str, Callable[[], str]]
_BLOCK = re.compile(r"<!-- generated:([a-z0-9-]+) -->\n.*?<!-- /generated:\1 -->", re.DOTALL)


def settings_reference() -> str:
    """Every setting under its section, one heading each (so pages can link to it)."""
    titles = {"server": "Server", "app": "App", "http": "HTTP", "cache": "Response cache"}
    out: list[str] = []
    for section in settings.SECTIONS:
        out.append(f"## {titles.get(section, section.title())}\n")
        for s in settings.SETTINGS:
            if s.section != section:
                continue
            out.append(
                f"### `{s.name}`\n\n"
                f"`{s.flag}` · `{s.env}` · default: {s.describe_default()}\n\n"
                f"Allowed: {s.allowed}\n\n{s.help}\n"
            )
    return "\n".join(out).rstrip()


def _commands(group: click.Group, prefix: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if command.hidden:
            continue
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def commands_reference() -> str:
    """Each command's usage, what it does and its own options (not the settings' flags)."""
    from .cli import main  # the CLI imports the whole kit: only when asked

    flags = {s.name for s in settings.SETTINGS}
    out: list[str] = []
    for path, command in _commands(main, "flaskstack"):
        ctx = click.Context(command, info_name=path)
        usage = " ".join(command.collect_usage_pieces(ctx))
        text = inspect.cleandoc(command.help or "").replace("\b\n", "")
        out.append(f"## `{path}`\n\n```text\n{path} {usage}\n```\n\n{text}\n")
        rows = []
        takes_settings = False
        for param in command.get_params(ctx):
            if param.name in flags:
                takes_settings = True
                continue
            record = param.get_help_record(ctx)
            if record is not None and "--help" not in record[0]:
                flag, what = (part.replace("|", "\\|") for part in record)
                rows.append(f"| `{flag}` | {what} |")
        if rows:
            out.append("| option | what it does |\n| --- | --- |\n" + "\n".join(rows) + "\n")
        if takes_settings:
            out.append("It also takes every setting's flag ([Settings](settings.md)).\n")
    return "\n".join(out).rstrip()


def metrics_reference() -> str:
    """Every metric family the kit exports, from one scrape of made-up figures."""
    rows = ["| metric | type | labels | what |", "| --- | --- | --- | --- |"]
    for family in exported_metrics():
        suffix = "_total" if family.type == "counter" else ""
        labels = ", ".join(sorted({k for s in family.samples for k in s.labels})) or "—"
        rows.append(f"| `{family.name}{suffix}` | {family.type} | {labels} "
                    f"| {family.documentation} |")
    return "\n".join(rows)


def exported_metrics() -> list[Metric]:
    """The families of a scrape with every source answering (uWSGI caches included)."""
    from . import metrics, status
    from .rundir import RunDir

    stats = {"workers": [{"id": 1, "pid": 1, "requests": 1, "status": "idle"}],
             "listen_queue": 0, "listen_queue_errors": 0,
             "caches": [{"name": "default", "hits": 1, "miss": 1}]}
    nginx = status.NginxStatus(active=1, accepted=1, handled=1, requests=1, reading=0,
                               writing=1, waiting=0)
    # the stack's own families (flaskstack_up says 0: no server answers in this folder)
    own = metrics.Sources(RunDir(Path("/nonexistent/flaskstack-docs")), uwsgi=True, nginx=True)
    families = list(metrics.StackCollector(own).collect())
    families += list(metrics.uwsgi_metrics(stats))
    families += list(metrics.nginx_metrics(nginx))
    return sorted(families, key=lambda f: f.name)


EXAMPLE_SITE = "/srv/mysite"


INSTALLED_KIT = "/opt/flaskstack/lib/python3.13/site-packages/flaskstack"


def rendered_config() -> str:
    """nginx.conf and uwsgi.ini for a typical site, as ``flaskstack config`` prints them."""
    from . import plan, render
    from .host import BROTLI_STATIC, Account, HostFacts
    from .site import SiteDeclaration

    facts = HostFacts(somaxconn=4096, nofile_hard=1 << 20, root=True,
                      account=Account("www-data", 33, 33, "www-data", "/var/www"),
                      instance="3f9a1c2e", brotli_static=str(BROTLI_STATIC))
    decl = SiteDeclaration(
        found=True, path=Path(f"{EXAMPLE_SITE}/flaskstack.toml"), health="/healthz",
        prestart="flask --app mysite db upgrade", writable=["/var/lib/mysite"],
        static=[("/static/", f"{EXAMPLE_SITE}/mysite/static")],
    )
    env = {"FLASKSTACK_APP": "mysite:create_app()", "FLASKSTACK_APP_DIR": EXAMPLE_SITE,
           "FLASKSTACK_RUN_DIR": "/run/flaskstack", "FLASKSTACK_WORKERS": "2"}
    files = render.render(plan.make(settings.load(env=env), decl, facts))
    # the kit's own files (the app loader, the WebSocket hook) as the image installs them, not
    # as this checkout has them: the page reads the same from any clone
    kit = str(Path(__file__).resolve().parent)
    return "\n\n".join(
        f"## `{name}`\n\n```{lang}\n{files[name].rstrip().replace(kit, INSTALLED_KIT)}\n```"
        for name, lang in (("nginx.conf", "nginx"), ("uwsgi.ini", "ini")))


def kit_blocks() -> Blocks:
    return {
        "settings": settings_reference,
        "exit-codes": exits.markdown_table,
        "commands": commands_reference,
        "metrics": metrics_reference,
        "rendered-config": rendered_config,
    }


def blocks() -> Blocks:
    """The kit's blocks and those of every installed site (entry points ``flaskstack.docs``)."""
    found = kit_blocks()
    for point in entry_points(group="flaskstack.docs"):
        found.update(point.load())
    return found


def update(content: str, made: dict[str, str]) -> str:
    """``content`` with each generated block it holds replaced by ``made[name]``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in made:
            return match.group(0)  # a block of a site that is not installed: left alone
        return f"<!-- generated:{name} -->\n{made[name]}\n<!-- /generated:{name} -->"

    return _BLOCK.sub(one, content)


def pages(root: Path) -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def found_blocks(content: str) -> list[str]:
    return [m.group(1) for m in _BLOCK.finditer(content)]


def make_all() -> dict[str, str]:
    return {name: make() for name, make in blocks().items()}


def write_all(root: Path) -> list[Path]:
    """Rewrite every generated block under ``root``; return the files that changed."""
    made = make_all()
    changed = []
    for path in pages(root):
        if not path.exists():
            continue
        content = path.read_text()
        updated = update(content, made)
        if updated != content:
            path.write_text(updated)
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print("usage: python -m flaskstack.readme [README.md]  (from the repository's root: "
              "rewrites every generated block of README.md and docs/)")
        return 0
    root = Path.cwd()
    for arg in argv:  # the old form named README.md: its folder is the root
        root = Path(arg).resolve().parent
    if not (root / "docs").is_dir():
        print(f"flaskstack.readme: no docs/ folder in {root}: run it from the repository's root",
              file=sys.stderr)
        return 2
    for path in write_all(root):
        print(f"regenerated {path.relative_to(root)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
