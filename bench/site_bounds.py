"""The site's hostile inputs of issue 23, each timed in a fresh process, with its peak memory.

    .venv/bin/python -m bench.site_bounds [--notes-src DIR] [CASE ...]

``--notes-src``: another copy of ``sites/notes/src`` to measure (e.g. the code before, from
``git archive``), put first on ``sys.path``. Cases: gif, jpeg, sanitiser, search, excel, login.
Sizes (smaller than the findings', so that the code before ends in minutes on a busy machine):
``BOUNDS_LI`` (``<ul><li>`` repeats, 10000 = 80 KB), ``BOUNDS_SCANS`` (JPEG scans, 2000) and
``BOUNDS_JPEG_SIZE`` (its side, 2000 pixels),
``BOUNDS_ROWS`` (empty rows in a sheet declaring A1:XFD<rows+2>, 100000).
Each prints one line: the case, the outcome (status or exception) with the seconds of the work
itself, the process's wall seconds (setup included), and the peak RSS of the process that did
the work (the caller's, and the decoding child's for images).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CASES = ("gif", "jpeg", "sanitiser", "search", "excel", "login")


def growing_gif() -> bytes:
    """The finding's GIF: a 10 x 10 frame, then one claiming 12000 x 12000."""
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.notes.test_security_bounds import growing_gif as made

    return made(12_000, 12_000)


def many_scans(size: int = 6000, scans: int = 10_000) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="JPEG", progressive=True)
    data = out.getvalue()
    last = data.rindex(b"\xff\xda")
    have = data.count(b"\xff\xda")
    return data[:-2] + data[last:-2] * (scans - have) + b"\xff\xd9"


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def app(tmp: str, **extra: Any) -> Any:
    from flask_migrate import upgrade

    from notes import create_app

    made = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/n.db",
                       "NOTES_DATA_DIR": tmp, "SECRET_KEY": "x" * 32, "WTF_CSRF_ENABLED": False,
                       **extra})
    with made.app_context():
        upgrade()
    return made


def run(case: str) -> str:
    if case in ("gif", "jpeg"):
        from notes import images

        data = growing_gif() if case == "gif" else many_scans(
            int(os.environ.get("BOUNDS_JPEG_SIZE", "2000")),
            int(os.environ.get("BOUNDS_SCANS", "2000")))
        start = time.perf_counter()
        try:
            _, ext = images.reencode(data, 40_000_000)
            outcome = f"accepted ({ext})"
        except images.Refused as e:
            outcome = f"{e.status} {e}"
        return f"{outcome}, {len(data) // 1024} KB, {time.perf_counter() - start:.2f} s"
    if case == "sanitiser":
        from notes.services import clean_html

        body = "<ul><li>" * int(os.environ.get("BOUNDS_LI", "10000"))  # 80 KB
        start = time.perf_counter()
        try:
            outcome = f"stored {len(clean_html(body))} characters from {len(body)}"
        except ValueError as e:
            outcome = f"refused: {e}"
        return f"{outcome}, {time.perf_counter() - start:.2f} s"
    with tempfile.TemporaryDirectory() as tmp:
        site = app(tmp)
        from notes.auth import create_user
        from notes.extensions import db
        from notes.models import Note, User, fold

        with site.app_context():
            create_user("a@example.com", "correct horse battery", display_name="A")
        if case == "search":
            with site.app_context():
                author = db.session.get(User, 1)
                text = "a" * 1_000_000
                for n in range(45):
                    note = Note(author=author, title=f"n{n}", slug=f"n{n}", body="",
                                published=True, published_at=author.created_at)
                    db.session.add(note)
                    db.session.flush()
                    note.body_text, note.search_text = text, fold(f"n{n}\n{text}")
                db.session.commit()
            start = time.perf_counter()
            r = site.test_client().get("/", query_string={"q": "a" * 199 + "b"})
            return f"{r.status_code} in {time.perf_counter() - start:.2f} s (timed alone)"
        if case == "excel":
            sys.path.insert(0, str(Path(__file__).parents[1]))
            from tests.notes.test_security_bounds import padded_sheet

            from notes.excel import Limits, import_file

            rows = int(os.environ.get("BOUNDS_ROWS", "100000"))
            data = padded_sheet("a@example.com", rows, f"A1:XFD{rows + 2}")
            with site.app_context():
                start = time.perf_counter()
                try:
                    counts = import_file(io.BytesIO(data),
                                         Limits.from_config(site.config))
                    outcome = f"imported: {counts}"
                except Exception as e:
                    shown = getattr(e, "problems", None) or [e]
                    outcome = f"refused: {str(shown[0])[:80]}"
                return (f"{outcome}; {len(data) // 1024} KB, "
                        f"{time.perf_counter() - start:.2f} s")
        if case == "login":
            site.config["NOTES_LOGIN_ATTEMPTS"] = 5
            clients = [site.test_client() for _ in range(12)]
            for c in clients:
                c.get("/login")
            start_line = threading.Barrier(12)
            statuses: list[int] = []

            def attempt(n: int) -> None:
                start_line.wait()
                r = clients[n].post("/login", data={
                    "email": "a@example.com",
                    "password": "correct horse battery" if n == 11 else f"wrong {n}"})
                statuses.append(r.status_code)

            threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            evaluated = sum(1 for s in statuses if s != 429)
            return (f"{evaluated} of 12 evaluated against a limit of 5 "
                    f"({sorted(statuses)})")
    raise SystemExit(f"unknown case {case}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes-src", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    if args.one:
        if args.notes_src:
            sys.path.insert(0, str(args.notes_src))
        start = time.perf_counter()
        outcome = run(args.one)
        print(json.dumps({"case": args.one, "outcome": outcome,
                          "seconds": round(time.perf_counter() - start, 2),
                          "peak_mb": round(peak_mb())}))
        return
    for case in args.cases:
        argv = [sys.executable, "-m", "bench.site_bounds", "--one", case]
        if args.notes_src:
            argv += ["--notes-src", str(args.notes_src)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              cwd=Path(__file__).parents[1], env={**os.environ})
        line = done.stdout.strip().splitlines()[-1:] or [done.stderr.strip()[-300:]]
        print(line[0], flush=True)


if __name__ == "__main__":
    main()
