"""Connection capacity: 10,000 idle or slow clients held while others are served (127.0.0.1)."""

from __future__ import annotations

import resource
import select
import socket
import subprocess
import sys
import threading
import time

from flaskstack import status
from flaskstack.rundir import RunDir
from tests.load import Load, wait_for

HELD = 10_000


def open_clients(port: int, count: int) -> list[socket.socket]:
    """``count`` connections; every other one a slow client that never finishes its headers."""
    clients = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 2:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        clients.append(sock)
    return clients


def still_open(clients: list[socket.socket]) -> int:
    """How many connections the server has not closed (closed ones poll as readable with
    end-of-file, or as hung up)."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in clients}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
    closed = 0
    for fd, events in poller.poll(0):
        if events & (select.POLLHUP | select.POLLRDHUP | select.POLLERR) or \
                by_fd[fd].recv(1, socket.MSG_PEEK) == b"":
            closed += 1
    return len(clients) - closed


def test_ten_thousand_idle_and_slow_clients_do_not_stop_others(make_stack) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= HELD + 1000, f"the test needs {HELD + 1000} open files (hard limit {hard})"
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stack = make_stack("--app", "probe:application", "--workers", "2",
                       "--client-header-timeout", "60", "--keepalive-timeout", "60").start()
    assert "lowered" not in stack.output()  # this host's limit does not cap the default
    clients: list[socket.socket] = []
    try:
        clients = open_clients(stack.port, HELD)
        assert wait_for(lambda: status.nginx_status(RunDir(stack.run_dir)).active >= HELD, 30)
        with Load(stack.url + "/served", threads=4, limit_s=8) as load:
            time.sleep(6)
        assert load.failures == []
        assert load.ok > 100
        assert still_open(clients) == HELD
    finally:
        for sock in clients:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_low_host_limit_caps_connections_with_one_startup_line(make_stack) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    stack = make_stack("--app", "probe:application")
    # the stack inherits the lower hard limit (a container's nofile=1024:1024, say)
    stack.args = ["--nginx-connections", "16384", *stack.args]
    stack.proc = subprocess.Popen(
        ["prlimit", "--nofile=1024:1024", "--", sys.executable, "-m", "flaskstack", "serve",
         *stack.args], env=stack.env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    threading.Thread(target=stack._read, args=(stack.proc.stdout, stack.stdout),
                     daemon=True).start()
    threading.Thread(target=stack._read, args=(stack.proc.stderr, stack.stderr),
                     daemon=True).start()
    assert stack.wait_ready()
    lines = [x for x in stack.output().splitlines() if "lowered" in x]
    assert lines == ["flaskstack: nginx_connections 16384 lowered to 992: the open-files "
                     "limit is 1024"]
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
