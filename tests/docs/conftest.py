"""The documentation site, built once per test session with Sphinx (warnings are errors)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Build:
    returncode: int
    output: str
    html: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """``sphinx-build -W --keep-going -n`` (nitpicky) into a fresh folder, offline."""
    pytest.importorskip("sphinx", reason="the docs extra: bash scripts/install.sh test")
    out = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         "-d", str(out.parent / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, timeout=240, check=False,
    )
    return Build(result.returncode, result.stdout + result.stderr, out)


def markdown_pages() -> list[Path]:
    """README.md and every page of docs/ (not the build output)."""
    return [ROOT / "README.md",
            *sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)]
