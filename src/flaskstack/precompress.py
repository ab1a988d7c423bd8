"""Precompressed copies of static files, which Nginx's ``gzip_static`` (``.gz``) and
``brotli_static`` (``.br``, when its module is installed) send as they are.

Compressing once (at install, at image build) costs nothing per request, and at the highest
levels the copies are smaller than what on-the-fly gzip makes. Nginx serves a copy whatever its
age, so a copy carries its original's modification time, and :func:`drop_stale` (run by
``flaskstack serve`` at start) removes the copies whose original has changed since.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

# Text formats worth compressing (images, fonts and archives are compressed already).
SUFFIXES = frozenset({".css", ".js", ".mjs", ".json", ".map", ".svg", ".html", ".htm", ".txt",
                      ".xml", ".md", ".ico", ".ttf", ".eot", ".otf", ".wasm"})
MIN_SIZE = 256  # smaller files gain nothing (Nginx's gzip_min_length)


def _gzip(data: bytes) -> bytes:
    import gzip  # here, as brotli: the supervisor, which only drops stale copies, never loads it

    return gzip.compress(data, compresslevel=9, mtime=0)


def _brotli(data: bytes) -> bytes:
    import brotli

    return brotli.compress(data, quality=11)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": _gzip,
    ".br": _brotli,
}
COPIES = tuple(ENCODERS)


def candidates(directories: Iterable[str | Path]) -> Iterable[Path]:
    for directory in directories:
        for root, _dirs, files in os.walk(directory):
            for name in files:
                path = Path(root, name)
                if path.suffix.lower() in SUFFIXES:
                    yield path


def compress(path: Path) -> int:
    """Write ``path.gz`` and ``path.br`` unless up-to-date copies exist; the number written."""
    stat = path.stat()
    if stat.st_size < MIN_SIZE:
        return 0
    data: bytes | None = None
    written = 0
    for suffix, encode in ENCODERS.items():
        target = path.with_name(path.name + suffix)
        with contextlib.suppress(OSError):
            if target.stat().st_mtime_ns == stat.st_mtime_ns:
                continue
        data = path.read_bytes() if data is None else data
        packed = encode(data)
        if len(packed) >= stat.st_size:
            target.unlink(missing_ok=True)
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(packed)
        os.chmod(tmp, stat.st_mode & 0o777)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        tmp.replace(target)  # atomic: Nginx never sends half a file
        written += 1
    return written


def precompress(directories: Iterable[str | Path]) -> tuple[int, int]:
    """Compress every text file under ``directories``: (copies written, files seen)."""
    written = seen = 0
    for path in candidates(directories):
        seen += 1
        written += compress(path)
    return written, seen


def drop_stale(directories: Iterable[str | Path]) -> int:
    """Remove ``.gz`` and ``.br`` copies whose original changed or vanished (Nginx would send
    them); the number removed. Unwritable folders are left as they are."""
    removed = 0
    for directory in directories:
        for root, _dirs, files in os.walk(directory):
            for name in files:
                if not name.endswith(COPIES):
                    continue
                copy = Path(root, name)
                original = copy.with_name(name[:-3])
                if original.suffix.lower() not in SUFFIXES:
                    continue  # a .gz or .br file the site serves as such
                try:
                    fresh = original.stat().st_mtime_ns == copy.stat().st_mtime_ns
                except FileNotFoundError:
                    fresh = False
                except OSError:
                    continue
                if not fresh:
                    with contextlib.suppress(OSError):
                        copy.unlink()
                        removed += 1
    return removed
