"""The kit is its own distribution: `pip install .` at the root brings no part of the site."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

HELLO = '''
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from the kit alone"]
'''


@pytest.fixture(scope="module")
def kit_only() -> Iterator[Path]:
    """A fresh venv with `pip install .` of the repository root, and nothing else; where the
    workers' account (www-data when root) can read it, as serve checks (pytest's tmp_path is
    private)."""
    folder = Path(tempfile.mkdtemp(prefix="flaskstack-kit-only-venv-"))
    folder.chmod(0o755)
    env_dir = folder / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    yield env_dir
    shutil.rmtree(folder, ignore_errors=True)


def test_the_kit_installs_alone(kit_only: Path) -> None:
    flaskstack = kit_only / "bin" / "flaskstack"
    assert subprocess.run([str(flaskstack), "--help"], capture_output=True, check=False,
                          timeout=60).returncode == 0
    for module in ("notes", "flask_admin", "openpyxl", "sqlalchemy", "flask"):
        probe = subprocess.run([str(kit_only / "bin" / "python"), "-c", f"import {module}"],
                               capture_output=True, text=True, check=False, timeout=60)
        assert probe.returncode != 0, f"{module} is installed with the kit"


def test_the_default_site_missing_is_one_line_saying_how_to_install_it(
        kit_only: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(kit_only / "bin" / "flaskstack"), "serve", "--run-dir", str(tmp_path / "run"),
         "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "not installed" in result.stderr and "pip install flaskstack-notes" in result.stderr


def test_the_kit_alone_serves_an_app_from_the_current_directory(kit_only: Path) -> None:
    """As gunicorn or `flask run` would: the current directory is the site."""
    # world-readable (pytest's tmp_path is not): workers run as www-data when root
    tmp_path = Path(tempfile.mkdtemp(prefix="flaskstack-kit-only-"))
    tmp_path.chmod(0o755)
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "hello.py").chmod(0o644)
    port = free_port()
    proc = subprocess.Popen(
        [str(kit_only / "bin" / "flaskstack"), "serve", "--app", "hello:app", "--host",
         "127.0.0.1", "--port", str(port), "--run-dir", str(tmp_path / "run"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready: "), proc.stderr.read() if proc.stderr else line
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == \
            "hello from the kit alone"
    finally:
        proc.terminate()
        code = proc.wait(30)
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert code == 0, proc.stderr.read() if proc.stderr else code
