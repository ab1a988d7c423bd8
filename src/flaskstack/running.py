"""The running stack, as the commands beside ``serve`` find it.

``serve`` holds its run directory's lock (:func:`.rundir.take`) and records there the settings
it was started with, each as the text it was given (``flaskstack.json``). ``config``, ``exec``,
``precompress`` and ``status`` read that record, so a site served with ``--app mysite:app``
needs no ``--app`` again; ``reload``, ``drain``, ``status`` and ``health`` also find the only
stack running on the machine when the current directory's site is not the one serving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .plan import Plan
from .rundir import RunDir, held, read_state
from .settings import BY_NAME, SETTINGS, Setting, SettingError, Settings, load, run_dir_base


def raw(setting: Setting, value: Any) -> str | list[str]:
    """The text that parses back to ``value`` (the inverse of the setting's parser)."""
    if setting.multiple:
        return [_one(item) for item in value]
    return _one(value)


def _one(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):  # a static mapping: (prefix, directory)
        return "=".join(value)
    return str(value)


def state(plan: Plan) -> dict[str, Any]:
    """What ``serve`` records for the other commands: its pid and address, every setting as
    text with its source, and the site's declarations as the stack uses them."""
    s = plan.settings
    return {
        "pid": os.getpid(),
        "url": plan.probe.url,
        "started": time.time(),
        "settings": {d.name: raw(d, s.values[d.name]) for d in SETTINGS},
        "sources": dict(s.sources),
        "site": str(plan.site.path or ""),
        "prestart": list(plan.prestart),
        "writable": list(plan.writable),
    }


class Ambiguous(SettingError):
    """Several stacks run and nothing says which one is meant."""


def candidates() -> list[RunDir]:
    """Every run directory under this user's default base whose stack is running."""
    base = Path(run_dir_base())
    try:
        folders = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return []
    return [RunDir(p) for p in folders if held(RunDir(p))]


def find(settings: Settings, anywhere: bool = False) -> RunDir | None:
    """The running stack whose run directory the settings name; with ``anywhere`` and a run
    directory left to its default, else the only stack this user runs on the machine."""
    run = RunDir(Path(settings.run_dir))
    if held(run):
        return run
    if not anywhere or settings.sources["run_dir"] != "default":
        return None
    found = candidates()
    if len(found) > 1:
        listed = ", ".join(f"{r} (pid {read_state(r).get('pid', '?')})" for r in found)
        raise Ambiguous(f"several stacks are running: {listed}; name one with --run-dir")
    return found[0] if found else None


def settings_of(run: RunDir, flags: Mapping[str, Any],
                env: Mapping[str, str] | None = None) -> Settings:
    """The running stack's settings, with this command's own environment (``FLASKSTACK_*``
    variables, e.g. ``podman exec -e``) and ``flags`` on top, in that order."""
    env = os.environ if env is None else env
    recorded = read_state(run)
    texts = recorded.get("settings")
    if not isinstance(texts, dict):
        raise SettingError(f"{run.state}: not a flaskstack state file (restart the stack)")
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    kept = {k: v for k, v in texts.items() if k in BY_NAME and BY_NAME[k].env not in env}
    settings = load(env=env, flags=kept | given)
    sources = recorded.get("sources", {})
    for name in kept:
        if name not in given:
            settings.sources[name] = sources.get(name, "default")  # as it was at the start
    return settings
