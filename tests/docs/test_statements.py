"""What the pages state, checked against the code: every command shown in a code block has that
command and those options (its ``--help``), defaults named in the prose are the declared ones,
and every repository path named exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flaskstack import readme
from flaskstack.cli import main
from flaskstack.settings import SETTINGS

from .conftest import ROOT, markdown_pages

FENCE = re.compile(r"^```(sh|bash|console|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
GENERATED = re.compile(r"<!-- generated:([a-z0-9-]+) -->.*?<!-- /generated:\1 -->", re.DOTALL)


def shell_lines() -> Iterator[tuple[str, str]]:
    """(page, command line) of every shell code block, continuation lines joined."""
    for page in markdown_pages():
        for block in FENCE.finditer(GENERATED.sub("", page.read_text())):
            for line in block.group(2).replace("\\\n", " ").splitlines():
                line = re.sub(r"\s#\s.*$", "", line).strip()  # a comment after the command
                if line and not line.startswith("#"):
                    yield page.name, line


def words(segment: str) -> list[str]:
    try:
        return shlex.split(segment, comments=False)
    except ValueError:
        return segment.split()


def invocations(program: re.Pattern[str]) -> Iterator[tuple[str, list[str]]]:
    """The arguments after each call of ``program`` in a shell block, up to ; && | or ``--``."""
    for page, line in shell_lines():
        for match in program.finditer(line):
            rest = re.split(r"\s(?:&&|\|\|?|;)\s|\s--\s|\s--$", line[match.end():])[0]
            yield page, [w.strip("[]") for w in words(rest)]


def options_of(args: list[str]) -> set[str]:
    return {o.split("=")[0] for a in args for o in a.split("/") if o.startswith("--")}


def command_path(group: click.Group, args: list[str]) -> list[str]:
    path: list[str] = []
    command: click.Command = group
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        path.append(arg)
        command = command.commands[arg]
    return path


FLASKSTACK = re.compile(r"(?:^|[\s/])flaskstack(?=\s|$)")


def test_every_flaskstack_command_shown_exists_with_its_options() -> None:
    runner = CliRunner()
    seen = 0
    for page, args in invocations(FLASKSTACK):
        path = command_path(main, args)
        assert path or not args or args[0].startswith("-"), f"{page}: flaskstack {args}"
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, f"{page}: flaskstack {' '.join(path)} --help"
        for option in options_of(args):
            assert re.search(rf"{re.escape(option)}\b", result.output), (
                f"{page}: flaskstack {' '.join(path)} has no option {option}")
        seen += 1
    assert seen > 15


FLASK_NOTES = re.compile(r"(?:^|[\s/])flask --app notes(?=\s)")


def test_every_notes_command_shown_exists_with_its_options(tmp_path: Path) -> None:
    from flask.cli import FlaskGroup

    from notes import create_app

    cli = FlaskGroup(create_app=lambda: create_app({
        "NOTES_DATA_DIR": str(tmp_path), "SECRET_KEY": "docs",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/notes.db"}))
    runner = CliRunner()
    seen = 0
    for page, args in invocations(FLASK_NOTES):
        path = [a for a in args[:2] if not a.startswith("-") and "@" not in a and "." not in a]
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, f"{page}: flask --app notes {' '.join(path)}: {result.output}"
        for option in options_of(args):
            assert option in result.output, (
                f"{page}: flask --app notes {' '.join(path)} has no option {option}")
        seen += 1
    assert seen > 10


BENCH = re.compile(r"python -m (bench\.[a-z_]+)([^`\n]*)")


def bench_calls() -> dict[str, set[str]]:
    """Each benchmark module named in the pages (code or prose), with the options shown."""
    calls: dict[str, set[str]] = {}
    for page in markdown_pages():
        for module, rest in BENCH.findall(page.read_text()):
            calls.setdefault(module, set()).update(
                o for o in options_of(words(rest.split(")")[0])) if o != "--")
    return calls


@pytest.mark.parametrize("module", sorted(bench_calls()))
def test_every_benchmark_shown_has_its_options(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for option in bench_calls()[module]:
        assert option in result.stdout, f"{module} has no option {option}"


def prose(page: Path) -> str:
    """The page without its generated blocks and code blocks."""
    text = GENERATED.sub("", page.read_text())
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def first_word(text: str) -> str:
    return text.strip("`* ").split()[0].strip("`,;.") if text.strip("`* ") else ""


def test_defaults_named_in_the_prose_are_the_declared_ones() -> None:
    from notes import config as site_config

    declared = {s.name: s.describe_default() for s in SETTINGS}
    names = {f"`{s.flag}`": s.name for s in SETTINGS}
    names.update({f"`{s.env}`": s.name for s in SETTINGS})
    names.update({f"[`{s.name}`](": s.name for s in SETTINGS})  # a link to its reference
    for var in site_config.VARS:
        declared[var.env] = str(var.default or "(none)")
        names[f"`{var.env}`"] = var.env
    mention = re.compile(
        "(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")"
        r"(?:[^)\s]*\))?")
    default = re.compile(r"^[^.]{0,40}?\(?default:? (`?[^`,;)\s]+`?)")
    checked = []
    for page in markdown_pages():
        text = prose(page)
        for m in mention.finditer(text):
            found = default.match(text[m.end():])
            if not found:
                continue
            name = names[m.group(1)]
            said, truth = first_word(found.group(1)), first_word(declared[name])
            assert said == truth, f"{page.name}: {m.group(1)} default {said!r}, declared {truth!r}"
            checked.append(name)
    assert len(checked) >= 6, checked


MADE_BY_YOU = {"deploy/.env"}  # files the pages tell you to write
PATH = re.compile(r"`((?:src|sites|deploy|examples|tests|bench|scripts|docs|typings)/[^`\s]*"
                  r"|Dockerfile|pyproject\.toml)`")


def test_every_repository_path_named_exists() -> None:
    missing = []
    for page in markdown_pages():
        for path in PATH.findall(page.read_text()):
            path = path.split("::")[0].rstrip("/")
            if path not in MADE_BY_YOU and not list(ROOT.glob(path)):
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


def test_the_readme_is_short_and_leads_to_hosting_an_app() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "(docs/start/own-app.md)" in text
    assert readme.exits.markdown_table() in text
