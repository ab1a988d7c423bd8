"""How long a backup of N notes takes, and how long a writer waits while it runs.

    .venv/bin/python -m bench.backup [--notes 100000] [--database-url URL] [--keep DIR]

Fills a fresh database (SQLite in a temporary data folder unless ``--database-url`` names an
empty MariaDB/PostgreSQL database) with N published notes of ~150 words, migrated by the site's
own migrations. Then a writer process commits one new note after another (as the editor does)
and records how long each commit took: for as long as the backup takes *before* it (the
baseline), then while ``flask --app notes backup`` runs in its own process. Printed: the
backup's time and size, the writer's commits and its longest and 99th-percentile wait in both
periods (their ratio is what the backup cost the writer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
WORDS = [f"w{i}" for i in range(5000)]


def site_env(data: Path, url: str) -> dict[str, str]:
    return {**os.environ, "NOTES_DATA_DIR": str(data), "NOTES_DATABASE_URL": url,
            "NOTES_SECRET_KEY": "b" * 40}


def fill(count: int) -> None:
    """N notes written straight into the database (one author), in this process's
    ``NOTES_*`` environment."""
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from notes import create_app
    from notes.auth import create_user
    from notes.extensions import db
    from notes.models import Note, fold, plain_text, utcnow

    app = create_app()
    rng = random.Random(1)
    with app.app_context():
        upgrade()
        author = create_user("bench@example.com", "bench-password-1")
        now = utcnow()
        for start in range(0, count, 5000):
            rows = []
            for i in range(start, min(count, start + 5000)):
                body = "<p>" + " ".join(rng.choices(WORDS, k=150)) + "</p>"
                text = plain_text(body)
                rows.append({"author_id": author.id, "title": f"Note {i}", "slug": f"note-{i}",
                             "body": body, "body_text": text, "search_text": fold(text),
                             "published": True, "created_at": now, "updated_at": now,
                             "published_at": now, "tags_text": ""})
            db.session.execute(insert(Note), rows)
            db.session.commit()


WRITER = """
import json, sys, time, os
from notes import create_app
from notes.extensions import db
from notes.models import User
from notes.services import create_note
app = create_app()
out, stop = sys.argv[1], sys.argv[2]
waits = []
with app.app_context():
    author = db.session.scalar(db.select(User))
    while not os.path.exists(stop):
        started = time.monotonic()
        create_note(author, f"Meanwhile {time.time_ns()}", "<p>written during the bench</p>")
        db.session.commit()
        waits.append((started, time.monotonic() - started))
with open(out, "w") as f:
    json.dump(waits, f)
"""


def summary(waits: list[float]) -> str:
    if not waits:
        return "no commits"
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(waits)} commits, longest wait {max(waits) * 1000:.0f} ms, p99 "
            f"{p99 * 1000:.0f} ms, median {statistics.median(waits) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", default="")
    args = parser.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-backup-"))
    data = root / "data"
    url = args.database_url or f"sqlite:///{data / 'notes.db'}"
    env = site_env(data, url)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", f"from bench.backup import fill; fill({args.notes})"],
                   check=True, cwd=Path.cwd(), env=env)
    print(f"filled {args.notes} notes in {time.monotonic() - started:.1f} s ({url.split(':')[0]})")
    stop, out = root / "stop", root / "waits.json"
    stop.unlink(missing_ok=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(stop)], env=env)
    time.sleep(3)  # the writer is up and committing
    path = root / "notes.tar.gz"
    path.unlink(missing_ok=True)
    began = time.monotonic()
    subprocess.run([str(BIN / "flask"), "--app", "notes", "backup", str(path)], env=env,
                   check=True)
    ended = time.monotonic()
    took = ended - began
    time.sleep(min(took, 30))  # a period after it, as long, for the baseline
    stop.touch()
    writer.wait(60)
    waits = json.loads(out.read_text())
    during = [w for s, w in waits if began <= s <= ended]
    baseline = [w for s, w in waits if s > ended + 0.5]
    print(f"backup of {args.notes} notes: {took:.1f} s, {path.stat().st_size / 1e6:.1f} MB")
    print(f"writer during the backup: {summary(during)}")
    print(f"writer after it (baseline): {summary(baseline)}")


if __name__ == "__main__":
    main()
