"""Addresses: where this machine reaches a listen address, the proxy's upstreams, the drain list."""

from __future__ import annotations

import socket
from pathlib import Path


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def loopback(host: str) -> str:
    """Where this machine reaches a listen address: a wildcard means its loopback."""
    host = host.strip("[]")
    if host in {"0.0.0.0", "*", ""}:
        return "127.0.0.1"
    return "::1" if host == "::" else host


def resolve(upstreams: list[str], placeholder: bool = False) -> list[str]:
    """Every address of every ``HOST:PORT`` upstream, sorted, so a change is easy to see.

    A name that does not resolve is left out (or, with ``placeholder``, stands as
    ``127.0.0.1:PORT`` so the configuration can still be checked).
    """
    servers: set[str] = set()
    for upstream in upstreams:
        host, port = split_host_port(upstream)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            if placeholder:
                servers.add(f"127.0.0.1:{port}")
            continue
        for info in infos:
            address = str(info[4][0])
            servers.add(f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
    return sorted(servers)


def accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_drained(path: Path) -> set[str]:
    """The addresses in the drain file; none when it does not exist."""
    try:
        return set(path.read_text().split())
    except FileNotFoundError:
        return set()


def write_drained(path: Path, addresses: set[str]) -> None:
    """Replace the drain file at once (readers never see half of it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{a}\n" for a in sorted(addresses)))
    tmp.replace(path)


def in_rotation(upstreams: list[str], drain_file: Path) -> list[str]:
    """The addresses the proxy should balance over now.

    Drained addresses are left out; so are addresses that do not accept connections (a replica
    still starting, or gone) — unless that leaves none: Nginx then answers 502 until one comes
    back. Drained addresses that no longer resolve are forgotten (the replica is gone; its
    address may come back for a new one).
    """
    resolved = resolve(upstreams)
    listed = read_drained(drain_file)
    drained = listed & set(resolved)
    if drained != listed:
        write_drained(drain_file, drained)
    candidates = [a for a in resolved if a not in drained] or resolved
    return [a for a in candidates if accepts(*split_host_port(a))] or candidates
