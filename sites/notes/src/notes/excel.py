"""Excel export (streamed, write-only) and all-or-nothing import, in the admin and the CLI."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
from flask import Flask, Response, flash, redirect, request, stream_with_context, url_for
from flask_admin import BaseView, expose
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import select

from .admin import AdminOnly
from .extensions import db
from .models import User
from .services import TITLE_MAX, create_note, notes_query

COLUMNS = ("title", "author", "published", "body", "slug", "created_at", "updated_at")
REQUIRED = ("title", "author", "body")
TRUE = {"true", "yes", "1", "y", "on"}
FALSE = {"false", "no", "0", "n", "off", ""}
CHUNK = 64 * 1024


def export(stmt: Any, out: IO[bytes], progress: Callable[[int], None] | None = None) -> int:
    """Write the notes of ``stmt`` to ``out`` as .xlsx in write-only mode; return the count."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("notes")
    sheet.append(COLUMNS)
    count = 0
    for note in db.session.scalars(stmt.execution_options(yield_per=1000)):
        sheet.append([
            note.title, note.author.email, note.published, note.body, note.slug,
            note.created_at.replace(tzinfo=None), note.updated_at.replace(tzinfo=None),
        ])
        count += 1
        if progress and count % 1000 == 0:
            progress(1000)
    workbook.save(out)
    if progress:
        progress(count % 1000)
    return count


def stream(stmt: Any) -> Iterator[bytes]:
    """The export as chunks, through a temporary file (memory stays bounded)."""
    with tempfile.TemporaryFile() as tmp:
        export(stmt, tmp)
        tmp.seek(0)
        while chunk := tmp.read(CHUNK):
            yield chunk


@dataclass
class Problem:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.message}"


class ImportFailed(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


def _rows(path: Path | IO[bytes]) -> Iterable[tuple[Any, ...]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise ImportFailed([Problem(0, "-", f"not a readable .xlsx file ({e})")]) from None
    sheet = workbook.worksheets[0]
    yield from sheet.iter_rows(values_only=True)
    workbook.close()


def validate(path: Path | IO[bytes]) -> list[dict[str, Any]]:
    """Every row checked before anything is written; ``ImportFailed`` lists every problem."""
    rows = iter(_rows(path))
    header = next(rows, None)
    if header is None:
        raise ImportFailed([Problem(1, "-", "the sheet is empty")])
    names = [str(h).strip().lower() if h is not None else "" for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportFailed([Problem(1, c, "column missing from the header row") for c in missing])
    index = {name: names.index(name) for name in COLUMNS if name in names}
    users = {u.email: u.id for u in db.session.scalars(select(User))}
    problems: list[Problem] = []
    records: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=2):
        if row is None or all(v is None or str(v).strip() == "" for v in row):
            continue

        def cell(name: str, row: tuple[Any, ...] = row) -> Any:
            i = index.get(name)
            return row[i] if i is not None and i < len(row) else None

        title = str(cell("title") or "").strip()
        author = str(cell("author") or "").strip().lower()
        body = cell("body")
        body = "" if body is None else str(body)
        published_raw = cell("published")
        if not title:
            problems.append(Problem(number, "title", "empty"))
        elif len(title) > TITLE_MAX:
            problems.append(Problem(number, "title", f"longer than {TITLE_MAX} characters"))
        if author not in users:
            problems.append(Problem(number, "author", f"no user with the email {author!r}"))
        if isinstance(published_raw, bool):
            published = published_raw
        elif str(published_raw or "").strip().lower() in TRUE | FALSE:
            published = str(published_raw or "").strip().lower() in TRUE
        else:
            problems.append(Problem(number, "published", f"{published_raw!r} is not yes/no"))
            published = False
        records.append({"title": title, "author_id": users.get(author), "body": body,
                        "published": published})
    if problems:
        raise ImportFailed(problems)
    return records


def import_rows(records: list[dict[str, Any]], progress: Callable[[int], None] | None = None
                ) -> int:
    """Write all validated records in one transaction."""
    try:
        for i, record in enumerate(records, start=1):
            author = db.session.get(User, record["author_id"])
            if author is None:  # validated before; deleted since
                raise ImportFailed([Problem(i + 1, "author", "this account no longer exists")])
            create_note(author, record["title"], record["body"], record["published"])
            if progress and i % 100 == 0:
                progress(100)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if progress:
        progress(len(records) % 100)
    return len(records)


# -- admin ---------------------------------------------------------------------------------------


class ImportForm(FlaskForm):
    file = FileField("Excel file (.xlsx)", validators=[FileRequired()])


class ExcelView(AdminOnly, BaseView):
    @expose("/")
    def index(self) -> Any:
        return self.render("admin/excel.html", form=ImportForm(), problems=None)

    @expose("/export")
    def download(self) -> Response:
        query = {
            "author": request.args.get("author") or None,
            "q": request.args.get("q") or None,
            "published": {"yes": True, "no": False}.get(request.args.get("published", "")),
        }
        return Response(
            stream_with_context(stream(notes_query(query, everything=True))),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": "attachment; filename=notes.xlsx"},
        )

    @expose("/import", methods=["POST"])
    def upload(self) -> Any:
        form = ImportForm()
        if not form.validate_on_submit():
            flash("Choose an .xlsx file to import.", "error")
            return redirect(url_for("excel.index"))
        try:
            count = import_rows(validate(form.file.data.stream))
        except ImportFailed as e:
            return self.render("admin/excel.html", form=ImportForm(), problems=e.problems), 422
        flash(f"Imported {count} notes.", "success")
        return redirect(url_for("excel.index"))


# -- CLI -----------------------------------------------------------------------------------------

notes_cli = click.Group("notes", help="Export and import notes as Excel files.")


@notes_cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--author", help="Only this author's notes (email).")
@click.option("--published/--unpublished", default=None, help="Only (un)published notes.")
@click.option("--q", help="Only notes whose title or text contains this.")
def export_command(file: Path, author: str | None, published: bool | None, q: str | None) -> None:
    """Export notes to FILE (.xlsx)."""
    stmt = notes_query({"author": author, "published": published, "q": q}, everything=True)
    tmp = file.with_name(f".{file.name}.tmp")
    with click.progressbar(length=0, label="exporting", show_pos=True) as bar, open(tmp, "wb") as f:
        count = export(stmt, f, progress=bar.update)
    os.replace(tmp, file)
    click.echo(f"exported {count} notes to {file}")


@notes_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(file: Path) -> None:
    """Import notes from FILE (.xlsx): all rows or, if any row is bad, none."""
    try:
        records = validate(file)
    except ImportFailed as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(str(e)) from None
    with click.progressbar(length=len(records), label="importing", show_pos=True) as bar:
        count = import_rows(records, progress=bar.update)
    click.echo(f"imported {count} notes from {file}")


def admin_view() -> ExcelView:
    """The admin's "Export / import" page (given to :func:`notes.admin.init_app`)."""
    return ExcelView(name="Export / import", endpoint="excel", url="/admin/excel")


def init_app(app: Flask) -> None:
    app.cli.add_command(notes_cli)
