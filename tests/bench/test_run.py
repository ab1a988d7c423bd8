"""The benchmark script runs end to end and prints its table (timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_bench_prints_table() -> None:
    proc = bench("--duration", "1", "--connections", "32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("| target | connections | req/s | ratio of ceiling | p99 latency")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in lines[3:]}
    assert rows["nginx alone (return 200): ceiling"][3] == "1.000"
    assert rows["flaskstack (nginx + uwsgi + Flask)"][1] == "32"
    assert "uwsgi --http alone + Flask" in rows
    assert "original system's config (for comparison)" in rows


def test_bad_connections_is_one_line_error() -> None:
    proc = bench("--connections", "32,many", timeout=30)
    assert proc.returncode == 2
    assert "--connections" in proc.stderr.splitlines()[-1]
    assert "32,many" in proc.stderr.splitlines()[-1]
