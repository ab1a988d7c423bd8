"""Peak memory of exporting 100 000 notes to .xlsx (write-only, streamed).

    .venv/bin/python -m bench.excel_memory [--notes 100000]

Prints the Python heap peak (tracemalloc) and the process's peak RSS growth during the export.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    args = parser.parse_args()
    from flask_migrate import upgrade

    from notes import create_app
    from notes.excel import export
    from notes.extensions import db
    from notes.models import Note, User, utcnow
    from notes.services import notes_query

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/notes.db",
                          "NOTES_DATA_DIR": f"{tmp}/data", "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade()
            user = User(email="bench@example.com", password_hash="x")
            db.session.add(user)
            db.session.commit()
            now = utcnow()
            body = "<p>" + "Some text of a typical note. " * 20 + "</p>"
            rows = [{"author_id": user.id, "title": f"Note {i}", "slug": f"note-{i}",
                     "body": body, "published": i % 2 == 0, "created_at": now,
                     "updated_at": now} for i in range(args.notes)]
            db.session.execute(Note.__table__.insert(), rows)
            db.session.commit()
            del rows
            out = Path(tmp) / "notes.xlsx"
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            started = time.perf_counter()
            with out.open("wb") as f:
                count = export(notes_query({}, everything=True), f)
            seconds = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"exported {count} notes ({out.stat().st_size / 1048576:.1f} MiB .xlsx) "
                  f"in {seconds:.1f} s; Python heap peak {peak / 1048576:.1f} MiB; "
                  f"peak RSS growth {(rss_after - rss_before) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
