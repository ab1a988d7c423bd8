"""bench.image_start runs end to end on the tests' image, prints every start with its split and
leaves no container or volume behind (timings are not asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.containers import ROOT, podman

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]


def test_the_image_start_bench_prints_each_start_split(built_image, engine) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.image_start", "--rounds", "1",
                           "--image", built_image], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=engine)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
            for line in proc.stdout.splitlines() if line.startswith("| ")}
    for name in ("podman run, new volume", "podman start of that container, stopped",
                 "podman run, migrated volume", "flaskstack serve, new database (native)",
                 "flaskstack serve, migrated database (native)"):
        assert rows[name][1].endswith(" s"), rows
    # every phase of a container's start was seen (PID 1, the prestart, uWSGI, Nginx)
    assert "—" not in " ".join(rows["podman run, migrated volume"]), rows
    left = podman(engine, "ps", "-a", "--format", "{{.Names}}").stdout.split()
    volumes = podman(engine, "volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [n for n in left + volumes if n.startswith("fsbench-")]
