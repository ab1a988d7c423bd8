"""What the supervisor's process holds: a snapshot of the plan, and nothing of the command
line, the settings' declarations, typing, dataclasses or subprocess
(docs/benchmarks/memory-and-cpu.md)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flaskstack import process, snapshot
from flaskstack.rundir import RunDir
from flaskstack.snapshot import Snapshot

from .test_render import FACTS, make

NEVER = ("typing", "dataclasses", "inspect", "subprocess", "datetime", "jinja2",
         "flaskstack.settings", "flaskstack.plan", "flaskstack.host", "flaskstack.site",
         "flaskstack.render", "flaskstack.preflight", "flaskstack.cli", "click")


def test_the_snapshot_reads_like_the_plan() -> None:
    plan = make(static="/s/=/srv/static", server_names="example.com")
    held, whole = pickle.loads(snapshot.pack(plan, FACTS))
    assert snapshot.unpack(whole) == (plan, FACTS)
    assert held.services == plan.services and held.probe.url == plan.probe.url
    assert held.run == plan.run and isinstance(held.run, RunDir)
    assert held.settings.grace == plan.settings.grace
    assert held.settings.server_names == plan.settings.server_names
    assert held.settings.sources == plan.settings.sources
    assert held.nginx.cache.path == plan.nginx.cache.path
    assert [m.directory for m in held.nginx.static] == ["/site/mysite/static", "/srv/static"]
    assert held.site.health == plan.site.health
    with pytest.raises(AttributeError, match="read-only"):
        held.settings.grace = 1
    with pytest.raises(TypeError, match="cannot hold a value of type object"):
        snapshot.take(object())


def test_the_supervisor_process_loads_neither_the_plan_nor_typing(tmp_path: Path) -> None:
    """The supervisor's own modules, the snapshot it is handed, and the children that render
    and check the configuration at a start and a reload: none of them loads into it what the
    command line needed."""
    run = tmp_path / "run"
    packed = tmp_path / "packed"
    packed.write_bytes(snapshot.pack(make(run_dir=str(run)), FACTS))
    code = f"""
import pickle, sys
from flaskstack.supervisor import Supervisor, configure
from flaskstack.process import in_child
plan, whole = pickle.loads(open({str(packed)!r}, "rb").read())
supervisor = Supervisor(plan, whole)
supervisor.write_configs()
in_child(lambda: configure(whole, []))  # a reload's checks
assert plan.services == ("prestart", "purge", "uwsgi", "nginx"), plan.services
print(sorted(m for m in {NEVER!r} if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (run / "nginx.conf").exists() and (run / "uwsgi.ini").exists()


def test_a_child_starts_alone_with_its_signals_at_their_defaults(tmp_path: Path) -> None:
    """process.start (Popen's work without its module): a session of its own, only the
    descriptors it is given, SIGPIPE not ignored (Python ignores it), none blocked."""
    out = tmp_path / "out"
    with open(out, "w") as f:
        keep = os.open(os.devnull, os.O_RDONLY)
        os.set_inheritable(keep, True)  # inheritable, and still not passed on
        try:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                pid = process.start(
                    ["sh", "-c", "ls /proc/self/fd; grep -E '^Sig(Blk|Ign)' /proc/self/status;"
                     " cut -d' ' -f6 /proc/$$/stat"], dict(os.environ), stdout=f.fileno(), cwd="/")
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        finally:
            os.close(keep)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = out.read_text().split()
    fds = lines[:lines.index("SigBlk:")]
    assert set(fds) <= {"0", "1", "2", "3"}  # 3: ls's own directory
    assert lines[lines.index("SigBlk:") + 1] == "0000000000000000"
    assert int(lines[lines.index("SigIgn:") + 1], 16) & (1 << (signal.SIGPIPE - 1)) == 0
    assert int(lines[-1]) == pid  # it leads its own session


def test_a_command_that_cannot_run_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No such file or directory: 'no-such-cmd'"):
        process.start(["no-such-cmd"], dict(os.environ))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "gone")):
        process.start(["true"], dict(os.environ), cwd=str(tmp_path / "gone"))
    with pytest.raises(OSError, match=r"^nothing to see$"):
        process.in_child(lambda: (_ for _ in ()).throw(ValueError("nothing to see")))
    assert process.in_child(lambda: b"made in a child") == b"made in a child"


def test_snapshot_handles_every_value_of_a_plan() -> None:
    held = snapshot.take({"a": (1, 2.5, True, None), "b": {"x"}, "p": Path("/x")})
    assert held == {"a": (1, 2.5, True, None), "b": {"x"}, "p": Path("/x")}
    assert isinstance(snapshot.take(make()), Snapshot)
