"""The README's generated blocks: the settings table and the exit codes, from their declarations.

``python -m flaskstack.readme README.md`` rewrites them; a test keeps README.md in sync.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import exits, settings

INTRO = {
    "settings": (
        "## Settings\n\nEvery setting has a default, an environment variable and a flag of "
        "`flaskstack serve` / `flaskstack config`; flags win over the environment, which wins "
        "over the default. `flaskstack config` shows the effective values and where each came "
        "from; a bad value stops every command with one line naming the setting, where the "
        "value came from and what is allowed. This table is generated from "
        "`src/flaskstack/settings.py` (`python -m flaskstack.readme README.md`)."
    ),
    "exit-codes": (
        "Exit codes of every `flaskstack` command (also in each command's `--help`; generated "
        "from `src/flaskstack/exits.py`):"
    ),
}


def blocks() -> dict[str, str]:
    """Each generated block, with its markers, by name."""
    tables = {"settings": settings.markdown_table(), "exit-codes": exits.markdown_table()}
    return {
        name: f"<!-- section:{name} -->\n{INTRO[name]}\n\n{table}\n<!-- /section:{name} -->"
        for name, table in tables.items()
    }


def write(path: Path) -> bool:
    """Replace every generated block in ``path``; return whether anything changed."""
    content = path.read_text()
    updated = content
    for name, block in blocks().items():
        start = updated.index(f"<!-- section:{name} -->")
        end_marker = f"<!-- /section:{name} -->"
        end = updated.index(end_marker) + len(end_marker)
        updated = updated[:start] + block + updated[end:]
    if updated != content:
        path.write_text(updated)
    return updated != content


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python -m flaskstack.readme README.md")
    write(Path(sys.argv[1]))
