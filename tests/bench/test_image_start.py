"""bench.image_start's arguments (the run itself is tested with the image: tests/image)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bad_arguments_are_one_line_errors() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.image_start", "--rounds", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--rounds" in proc.stderr.splitlines()[-1] and "'0'" in proc.stderr.splitlines()[-1]
