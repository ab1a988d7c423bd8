"""scale: list indexes matching each public list's filter and order; full-text search indexes
(SQLite FTS5, PostgreSQL tsvector + GIN, MariaDB FULLTEXT) over notes.search_text, which now
holds a note's words as index tokens

Revision ID: 0008_scale
Revises: 0007_revisions
Create Date: 2026-12-04 23:40:00

"""
import unicodedata

import sqlalchemy as sa
from alembic import op

from notes.search.tokens import index_text

revision = '0008_scale'
down_revision = '0007_revisions'
branch_labels = None
depends_on = None

notes = sa.table('notes', sa.column('id', sa.Integer), sa.column('title', sa.String),
                 sa.column('body_text', sa.Text), sa.column('search_text', sa.Text))

# Written by triggers on SQLite: whatever writes notes (the ORM, bulk statements, plain SQL),
# the full-text index follows. (A batch rebuild of notes in a later migration would drop them:
# create them again after it.)
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE notes_fts USING fts5(search_text, content='notes', "
    "content_rowid='id', tokenize='unicode61')",
    "CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN "
    "INSERT INTO notes_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER notes_fts_update AFTER UPDATE OF search_text ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO notes_fts(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO notes_fts(notes_fts) VALUES ('rebuild')",
)
POSTGRESQL_FTS = (
    "ALTER TABLE notes ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED",
    "CREATE INDEX ix_notes_search_vector ON notes USING gin (search_vector)",
)
MARIADB_FTS = ("ALTER TABLE notes ADD FULLTEXT INDEX ix_notes_search_text (search_text)",)


def fold(text: str) -> str:
    # notes.search_text before this revision (for the downgrade)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def rewrite_search_text(make) -> None:  # type: ignore[no-untyped-def]
    """In batches of notes, so a large site does not hold every note in memory. (The
    tokenizer is the site's own: a later change of it comes with its own migration.)"""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(notes.c.id, notes.c.title, notes.c.body_text)
                            .where(notes.c.id > last).order_by(notes.c.id).limit(1000)).all()
        if not rows:
            break
        conn.execute(notes.update().where(notes.c.id == sa.bindparam('b_id'))
                     .values(search_text=sa.bindparam('b_text')),
                     [{'b_id': r.id, 'b_text': make(r.title, r.body_text)} for r in rows])
        last = rows[-1].id


def upgrade() -> None:
    # every public list reads one of these in its order, and stops after a page
    op.create_index('ix_notes_public_order', 'notes', ['published', 'published_at', 'id'])
    op.create_index('ix_notes_author_order', 'notes',
                    ['author_id', 'published', 'published_at', 'id'])
    op.create_index('ix_note_tags_tag_note', 'note_tags', ['tag_id', 'note_id'])
    rewrite_search_text(index_text)
    dialect = op.get_bind().dialect.name
    fts = {'sqlite': SQLITE_FTS, 'postgresql': POSTGRESQL_FTS}.get(dialect, MARIADB_FTS)
    for statement in fts:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER notes_fts_{trigger}")
        op.execute("DROP TABLE notes_fts")
    elif dialect == 'postgresql':
        op.execute("DROP INDEX ix_notes_search_vector")
        op.execute("ALTER TABLE notes DROP COLUMN search_vector")
    else:
        op.execute("ALTER TABLE notes DROP INDEX ix_notes_search_text")
    rewrite_search_text(lambda title, body_text: fold(f"{title}\n{body_text}"))
    op.drop_index('ix_note_tags_tag_note', table_name='note_tags')
    op.drop_index('ix_notes_author_order', table_name='notes')
    op.drop_index('ix_notes_public_order', table_name='notes')
