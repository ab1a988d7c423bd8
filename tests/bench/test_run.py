"""The benchmark script runs end to end and prints its tables (timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_bench_prints_every_target_as_a_ratio_of_the_ceiling() -> None:
    proc = bench("--duration", "1", "--rounds", "1", "--burst-seconds", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("| target (32 connections, median of 1) | req/s | ratio of ceiling")
    rows: dict[str, list[str]] = {}
    for line in lines:  # the first table's row, when a name comes again (1024 connections)
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].lstrip("| "), line.split(" | "))
    assert rows["nginx alone: return 200 (the ceiling)"][2] == "1.000"
    for name in ("static file /static/style.css (notes)", "home / anonymous, cache on",
                 "home / anonymous, cache off", "note page anonymous, cache on",
                 "note page anonymous, cache off", "note page signed in (cache on)",
                 "hello app through flaskstack", "hello app, the original configuration"):
        assert float(rows[name][2]) > 0, name
    # the cache's verdict is shown: a signed-in reader always goes to the app
    assert rows["note page signed in (cache on)"][5].startswith("BYPASS")
    assert rows["home / anonymous, cache off"][5].startswith("—")
    assert any(line.startswith("hello app: flaskstack / the original configuration = ")
               for line in lines)
    assert rows["PSS notes, 2 workers, idle"][1].endswith("MB |")
    assert rows["start notes: serve -> first 200 (migrated database)"][1].endswith("s |")


def test_bad_arguments_are_one_line_errors() -> None:
    proc = bench("--rounds", "many", timeout=30)
    assert proc.returncode == 2
    assert "--rounds" in proc.stderr.splitlines()[-1]
    assert "many" in proc.stderr.splitlines()[-1]
