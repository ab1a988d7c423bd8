"""Cost as content grows: each public page and search at N notes, against its cost at the
smallest N, on one database, in one run.

    .venv/bin/python -m bench.scale [--db sqlite|postgresql|mariadb] [--sizes 1000,100000]
                                    [--via serve|app] [--export]

For each size: a fresh database, migrated; N published notes written straight into it in bulk
(bodies of ~150 words from a Zipf vocabulary of 5,000 words, 2 tags of 50, 20 authors; the
search tokens made as the site makes them); then the app (response cache off: it answers
every request itself) is asked for each page in turn, once to warm up, then ``--rounds``
times; the median is printed, with its growth from the first size. ``--via serve`` (the
default) asks ``flaskstack serve`` over HTTP with ``FLASKSTACK_CACHE=off`` (Nginx, uWSGI and
the app, as a reader meets them); ``--via app`` asks the app in-process (Flask's test client):
its own cost, without the servers' share, which does not grow with N.
See /work/shared/notes/measuring.md ("Cost as content grows").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import pwd
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

VOCABULARY = 5000
WORDS = 150
TAGS = 50
AUTHORS = 20
CHUNK = 5000


def vocabulary(rng: random.Random) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: (len(w), w))


@contextlib.contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":  # in the data folder, which the kit gives to the workers' account
        (folder / "data").mkdir(exist_ok=True)
        yield f"sqlite:///{folder / 'data' / 'notes.db'}"
        return
    from tests import servers

    # sized as a dedicated database server would be (the tests' are small): the buffer
    # pool / shared buffers hold the notes of 100,000 (see docs/benchmarks/scale.md)
    sized = {"mariadb": ("--innodb-buffer-pool-size=1G",),
             "postgresql": ("shared_buffers=1GB",)}[kind]
    with getattr(servers, kind)(*sized) as server:
        for attempt in range(60):  # the server may still be starting up
            try:
                url = servers.create_database(server, "notes_scale")
                break
            except Exception:
                if attempt == 59:
                    raise
                time.sleep(1)
        yield url


def fill(n: int, seed: int = 19) -> dict[str, str]:
    """Write ``n`` notes in bulk; return words to search for."""
    from sqlalchemy import insert

    from notes.extensions import db
    from notes.models import Note, Tag, User, note_tags, plain_text
    from notes.search.tokens import index_text, spell

    rng = random.Random(seed)
    vocab = vocabulary(rng)
    tokens = {w: spell(w) for w in vocab}
    weights = [1 / (rank + 1) for rank in range(VOCABULARY)]
    cumulative = list(__import__("itertools").accumulate(weights))
    searched = {"rare": vocab[int(VOCABULARY * 0.9)], "common": vocab[0], "second": vocab[3],
                "middling": vocab[800], "none": "zzzzqqq"}  # (middling: in ~2 % of notes)
    if not n:
        return searched
    db.session.execute(insert(User), [
        {"email": f"author{i}@example.com", "display_name": f"Author {i}", "password_hash": "x",
         "is_admin": False, "active": True, "created_at": datetime.now(UTC),
         "session_version": 0} for i in range(AUTHORS)])
    db.session.execute(insert(Tag), [{"name": f"tag{i}"} for i in range(TAGS)])
    db.session.commit()
    note_id = 0
    for low in range(0, n, CHUNK):
        notes, links = [], []
        for _ in range(min(CHUNK, n - low)):
            note_id += 1
            words = rng.choices(vocab, cum_weights=cumulative, k=WORDS)
            title_words = rng.choices(vocab, cum_weights=cumulative, k=4)
            text = " ".join(words)
            title = " ".join(title_words).capitalize()
            tags = sorted(rng.sample(range(TAGS), 2))
            at = START + timedelta(minutes=note_id)
            notes.append({
                "id": note_id, "author_id": note_id % AUTHORS + 1, "title": title,
                "slug": f"note-{note_id}", "body": f"<p>{text}</p>", "body_text": text,
                "search_text": " ".join(tokens[w] for w in (*title.lower().split(), *words)),
                "published": True, "created_at": at, "updated_at": at, "published_at": at,
                "tags_text": "\n".join(f"tag{t}" for t in tags)})
            links.extend({"note_id": note_id, "tag_id": t + 1} for t in tags)
        if low == 0:  # the same tokens as the site would make
            first = notes[0]
            assert first["search_text"] == index_text(first["title"], plain_text(first["body"]))
        db.session.execute(insert(Note), notes)
        db.session.execute(insert(note_tags), links)
        db.session.commit()
    return searched


START = datetime(2020, 1, 1, tzinfo=UTC)


def cursor(note_id: int) -> str:
    """The ``?before=`` of a note written by :func:`fill` (see notes.lists.Key)."""
    at = START + timedelta(minutes=note_id)
    return f"{(at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)}-{note_id}"


def pages(n: int, words: dict[str, str], per_page: int) -> dict[str, str]:
    middle = max(1, n // per_page // 2)
    tagged = n * 2 // TAGS  # (about: each note has 2 of the TAGS tags)
    return {
        "home /": "/",
        "/?page=2": "/?page=2",
        "a middle page by its number (?page=N/2)": f"/?page={middle}",
        "the same by its link (?before=)": f"/?before={cursor(n // 2)}",
        "a note /n/<slug>": f"/n/note-{n // 2}",
        "a tag page": "/t/tag7",
        "an author page": "/a/3",
        "a tag's middle page by its number": f"/t/tag7?page={max(1, tagged // per_page // 2)}",
        "an author's middle page by its number":
            f"/a/3?page={max(1, n // AUTHORS // per_page // 2)}",
        "search, a rare word": f"/?q={words['rare']}",
        "search, a word in most notes": f"/?q={words['common']}",
        "search, a word in ~2 % of notes": f"/?q={words['middling']}",
        "search, two words": f"/?q={words['common']}+{words['second']}",
        "search, a common and a rare word": f"/?q={words['common']}+{words['rare']}",
        "search, no match": f"/?q={words['none']}",
        "/feed.xml (latest 20)": "/feed.xml",
        "/sitemap.xml (index)": "/sitemap.xml",
        "a sitemap part (/sitemap-1.xml, 2,500 ids)": "/sitemap-1.xml",
        "/api/notes?per_page=20": "/api/notes?per_page=20",
        "/api/notes?q=<rare word>": f"/api/notes?q={words['rare']}",
        "/api/notes?after=<middle id>": f"/api/notes?after={n // 2}",
        "/api/notes?page=<middle> (an old number)": f"/api/notes?page={max(1, n // 40)}",
        "/api/notes?tag=<tag>&page=<middle>":
            f"/api/notes?tag=tag7&page={max(1, tagged // 20 // 2)}",
        "/api/notes?author=<author>&page=<middle>":
            f"/api/notes?author=3&page={max(1, n // AUTHORS // 20 // 2)}",
    }


def export_peak(url: str, data: str, out: Path) -> tuple[float, float]:
    """Export every note with the site's own command in a process of its own: its peak RSS
    (MiB) and its time (s)."""
    env = {**os.environ, "NOTES_DATABASE_URL": url, "NOTES_DATA_DIR": data,
           "NOTES_SECRET_KEY": "bench"}
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "notes", "notes",
                    "export", str(out)], env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, seconds


def timed(get: Callable[[str], tuple[int, float]], paths: dict[str, str], rounds: int
          ) -> dict[str, float]:
    """Each page once to warm up, then ``rounds`` times: the median, in ms."""
    found: dict[str, float] = {}
    for name, path in paths.items():
        status, _ = get(path)
        assert status == 200, (path, status)
        found[name] = statistics.median(get(path)[1] for _ in range(rounds)) * 1000
    return found


@contextlib.contextmanager
def served(url: str, tmp: str) -> Iterator[Callable[[str], tuple[int, float]]]:
    """``flaskstack serve`` of notes on ``url`` with the response cache off."""
    import requests

    from bench.run import serve

    stack = serve("notes", Path(tmp), "--app-dir", tmp, env={
        "NOTES_DATABASE_URL": url, "NOTES_DATA_DIR": f"{tmp}/data",
        "NOTES_SECRET_KEY": "bench-" + "x" * 32, "FLASKSTACK_CACHE": "off",
        "FLASKSTACK_ACCESS_LOG": "off"})
    log = Path(tmp) / "serve.log"
    try:  # (a kept database may have migrations to run first)
        stack.start(log, timeout=120)
    except (RuntimeError, TimeoutError):
        stack.stop()
        sys.exit(f"flaskstack serve did not answer; its log ends:\n"
                 f"{log.read_text()[-3000:]}")
    http = requests.Session()

    def get(path: str) -> tuple[int, float]:
        started = time.perf_counter()
        response = http.get(stack.url + path, timeout=600)
        return response.status_code, time.perf_counter() - started

    try:
        yield get
    finally:
        stack.stop()


def measure(kind: str, n: int, rounds: int, via: str = "serve", export: bool = False,
            keep: Path | None = None) -> tuple[dict[str, float], float]:
    from flask_migrate import upgrade

    from notes import create_app
    from notes.extensions import db

    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
        else:  # SQLite only: a database of n notes kept between runs (filled once)
            tmp = str(keep / str(n))
            os.makedirs(tmp, exist_ok=True)
        url = stack.enter_context(database(kind, Path(tmp)))
        os.chmod(tmp, 0o755)  # the workers' account reaches the site's folder
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "NOTES_DATA_DIR": f"{tmp}/data",
                          "SECRET_KEY": "bench", "NOTES_CACHE_SECONDS": 0})
        with app.app_context():
            upgrade()
            started = time.perf_counter()
            if keep is not None and db.session.scalar(db.text("SELECT max(id) FROM notes")):
                words = fill(0)  # (the words only: the notes are there)
            else:
                words = fill(n)
            filled = time.perf_counter() - started
            if kind == "postgresql":  # what autovacuum does soon after a bulk load (the
                # visibility map lets index-only scans skip the table)
                with db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            elif kind == "mariadb":
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE TABLE notes, note_tags")
            db.session.remove()
        if os.geteuid() == 0:  # what was written here as root, the workers' account owns
            account = pwd.getpwnam("www-data")
            for path in Path(tmp, "data").rglob("*"):
                os.chown(path, account.pw_uid, account.pw_gid)
        paths = pages(n, words, app.config["NOTES_PER_PAGE"])
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if via == "serve":
            with served(url, tmp) as get:
                found = timed(get, paths, rounds)
        else:
            client = app.test_client()

            def get(path: str) -> tuple[int, float]:
                started = time.perf_counter()
                response = client.get(path)
                response.get_data()  # a streamed body is read to its end
                return response.status_code, time.perf_counter() - started

            found = timed(get, paths, rounds)
        if export:
            peak, seconds = export_peak(url, f"{tmp}/data", Path(tmp) / "all.xlsx")
            size = (Path(tmp) / "all.xlsx").stat().st_size / 1048576
            print(f"# Excel export of all {n:,} notes: {seconds:.0f} s, {size:.0f} MiB, "
                  f"peak RSS of the exporting process {peak:.0f} MiB", flush=True)
        return found, filled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--via", choices=("serve", "app"), default="serve",
                        help="Ask flaskstack serve over HTTP (default) or the app in-process.")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="SQLite: keep each size's database in DIR/N and reuse it.")
    parser.add_argument("--export", action="store_true",
                        help="Also export all notes of the largest size to Excel (peak RSS).")
    args = parser.parse_args()
    if args.keep and args.db != "sqlite":
        parser.error("--keep is for SQLite only")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        results[n], filled = measure(args.db, n, args.rounds, args.via,
                                      args.export and n == sizes[-1], args.keep)
        print(f"# {args.db}: {n:,} notes written in {filled:.1f} s", flush=True)
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, database {args.db}, "
          f"via {args.via}, median of {args.rounds}")
    base = sizes[0]
    head = " | ".join(f"{n:,} notes" for n in sizes)
    print(f"| page | {head} | " + " | ".join(f"growth {n:,}" for n in sizes[1:]) + " |")
    print("| --- |" + " ---: |" * (2 * len(sizes) - 1))
    for name in results[base]:
        cells = " | ".join(f"{results[n][name]:.1f} ms" for n in sizes)
        growth = " | ".join(f"{results[n][name] / results[base][name]:.1f}x" for n in sizes[1:])
        print(f"| {name} | {cells} | {growth} |")


if __name__ == "__main__":
    main()
