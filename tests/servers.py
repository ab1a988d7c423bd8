"""Real database servers for the tests, started on 127.0.0.1 free ports in temporary folders.

A missing server binary is a failure with a clear message, not a skip: `scripts/install.sh test`
installs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port, wait_for_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def need(path: str | Path) -> str:
    found = shutil.which(str(path)) or (str(path) if Path(path).exists() else None)
    if not found:
        raise RuntimeError(f"{path} is not installed: run `bash scripts/install.sh test`")
    return found


class Server:
    def __init__(self, name: str, url: str, proc: subprocess.Popen[bytes], folder: Path,
                 stop_signal: int = signal.SIGTERM, **popen: object) -> None:
        self.name, self.url, self.proc, self.folder = name, url, proc, folder
        self.argv = proc.args
        self.stop_signal = stop_signal
        self.popen = popen
        self.port = int(url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,  # type: ignore[call-overload]
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     **self.popen)
        wait_for_port(self.port, timeout=60)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the server answers a login, not just accepts on its port (PostgreSQL accepts
        while it is still "starting up" and refuses sessions meanwhile)."""
        if self.name not in {"postgresql", "mariadb"}:
            return
        import sqlalchemy as sa

        url = self.url + ("/postgres" if self.name == "postgresql" else "")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with engine.connect():
                        return
                except sa.exc.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            engine.dispose()


@contextlib.contextmanager
def _serving(name: str, url: str, argv: list[str], folder: Path, port: int,
             stop_signal: int = signal.SIGTERM, **popen: object) -> Iterator[Server]:
    """Start ``argv``, wait for ``port``, yield the server; stop it and remove ``folder``."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,  # type: ignore[call-overload]
                            stderr=subprocess.DEVNULL, start_new_session=True, **popen)
    server = Server(name, url, proc, folder, stop_signal, **popen)
    try:
        wait_for_port(port, timeout=60)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mariadb(*options: str, accounts: bool = False) -> Iterator[Server]:
    """A MariaDB server sized for tests; ``options`` (e.g. a larger buffer pool) override.
    ``accounts``: privileges are checked (root from 127.0.0.1 may do anything; accounts made
    by the test, what they are granted) instead of skipped."""
    mariadbd = need("/usr/sbin/mariadbd")
    install = need("mariadb-install-db")
    folder = Path(tempfile.mkdtemp(prefix="notes-mariadb-"))
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run([install, f"--datadir={folder / 'data'}", "--skip-test-db", *user,
                    "--auth-root-authentication-method=normal"],
                   check=True, capture_output=True, timeout=120)
    grants = ["--skip-grant-tables"]
    if accounts:
        (folder / "init.sql").write_text(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';\n"
            "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n")
        grants = [f"--init-file={folder / 'init.sql'}"]
    argv = [mariadbd, "--no-defaults", f"--datadir={folder / 'data'}", f"--port={port}",
            "--bind-address=127.0.0.1", f"--socket={folder / 'sock'}", *grants,
            "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0", f"--pid-file={folder / 'pid'}", *user, *options]
    with _serving("mariadb", f"mysql+pymysql://root@127.0.0.1:{port}", argv, folder,
                  port) as server:
        yield server


@contextlib.contextmanager
def postgresql(*settings: str) -> Iterator[Server]:
    """A PostgreSQL server sized for tests; ``settings`` (``name=value``) are added."""
    initdb, postgres = need(PG_BIN / "initdb"), need(PG_BIN / "postgres")
    folder = Path(tempfile.mkdtemp(prefix="notes-postgres-"))
    port = free_port()
    if os.geteuid() == 0:
        folder.chmod(0o755)
        shutil.chown(folder, "postgres", "postgres")
    as_user = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
    subprocess.run([initdb, "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True, timeout=120, cwd=folder,
                   **as_user)  # type: ignore[call-overload]
    argv = [postgres, "-D", str(folder / "data"), "-p", str(port),
            "-k", str(folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            *(arg for setting in settings for arg in ("-c", setting))]
    # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect
    with _serving("postgresql", f"postgresql+psycopg://postgres@127.0.0.1:{port}", argv,
                  folder, port, signal.SIGINT, cwd=folder, **as_user) as server:
        yield server


@contextlib.contextmanager
def redis() -> Iterator[Server]:
    binary = need("redis-server")
    folder = Path(tempfile.mkdtemp(prefix="notes-redis-"))
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder)]
    with _serving("redis", f"redis://127.0.0.1:{port}/0", argv, folder, port) as server:
        yield server


def create_database(server: Server, name: str) -> str:
    """A fresh empty database on ``server``; returns its SQLAlchemy URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(server.url + ("/postgres" if server.name == "postgresql" else ""),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return f"{server.url}/{name}"
