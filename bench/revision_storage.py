"""Storage one revision costs (issue 18): a note of ``--chars`` characters of text is saved
``--saves`` times (one paragraph changed each time), and the database's size is compared
before and after. SQLite: the file (after VACUUM); PostgreSQL: the note_revisions table with
its indexes and TOAST. Usage:

    python -m bench.revision_storage [--chars 3000] [--saves 500] [--db sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select, text


def size(db: object, dialect: str, path: Path) -> int:
    from notes.extensions import db as sa

    if dialect == "sqlite":
        sa.session.commit()
        with sa.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.exec_driver_sql("VACUUM")
        return path.stat().st_size
    sa.session.commit()
    with sa.engine.connect() as conn:
        conn.execute(text("VACUUM FULL note_revisions"))  # (autocommit below)
        return int(conn.execute(text(
            "SELECT pg_total_relation_size('note_revisions')")).scalar_one())


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'notes.db'}"
        return
    from tests import servers

    with servers.postgresql() as server:
        yield servers.create_database(server, "revision_storage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=3000)
    parser.add_argument("--saves", type=int, default=500)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    from flask_migrate import upgrade

    from notes import create_app
    from notes.auth import create_user
    from notes.extensions import db
    from notes.models import NoteRevision
    from notes.services import create_note, update_note

    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as url:
        options = {"isolation_level": "AUTOCOMMIT"} if args.db == "postgresql" else {}
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "NOTES_DATA_DIR": tmp,
                          "SECRET_KEY": "x" * 32, "NOTES_REVISIONS_KEEP": args.saves + 10,
                          "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, **options}})
        with app.app_context():
            upgrade()
            user = create_user("bench@example.com", "bench password 1")
            rng = random.Random(18)  # words as varied as prose: compression gets no easy win

            def prose(n: int) -> str:
                return "<p>" + " ".join("".join(rng.choices(string.ascii_lowercase,
                                                            k=rng.randint(2, 9)))
                                        for _ in range(n)) + ".</p>"

            paragraphs = [prose(16) for _ in range(max(1, args.chars // 100))]
            note = create_note(user, "Measured", "".join(paragraphs))
            db.session.commit()
            before = size(db, args.db, Path(tmp) / "notes.db")
            for n in range(args.saves):
                paragraphs[n % len(paragraphs)] = prose(16)
                update_note(note, body="".join(paragraphs), by=user)
                db.session.commit()
            after = size(db, args.db, Path(tmp) / "notes.db")
            count = db.session.scalar(select(func.count()).select_from(NoteRevision))
            body = len(note.body.encode())
            print(f"{args.db}: note of {body} bytes of HTML, {args.saves} saves, "
                  f"{count} revisions kept: {(after - before) / args.saves:,.0f} bytes per "
                  f"revision ({(after - before) / args.saves / body:.2f}x the note's HTML)")
            db.session.remove()
            db.engine.dispose()


if __name__ == "__main__":
    main()
