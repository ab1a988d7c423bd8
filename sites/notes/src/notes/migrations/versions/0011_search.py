"""search: on SQLite, search_words, every index token of notes.search_text (kept by triggers),
so that a query word that is the start of other words is looked up as those whole words: FTS5
reads whole tokens newest first and stops, where a prefix query ("word"*) merges every note
holding the prefix in memory first. Nothing on PostgreSQL and MariaDB (their indexes look
prefixes up along the index).

Revision ID: 0011_search
Revises: 0010_language
Create Date: 2026-12-05 06:20:00

"""
from alembic import op

revision = '0011_search'
down_revision = '0010_language'
branch_labels = None
depends_on = None

# The tokens of search_text are plain letters and digits separated by spaces
# (notes.search.tokens): as a JSON array of strings they are split by SQLite itself. A text that
# is not such (a row restored from before 0008) adds no words rather than failing the write.
WORDS = ("INSERT OR IGNORE INTO search_words(word) SELECT value FROM json_each(CASE WHEN "
         "json_valid('[\"' || replace(new.search_text, ' ', '\",\"') || '\"]') "
         "THEN '[\"' || replace(new.search_text, ' ', '\",\"') || '\"]' ELSE '[]' END) "
         "WHERE value != ''")
SQLITE = (
    "CREATE TABLE search_words (word VARCHAR(80) NOT NULL PRIMARY KEY) WITHOUT ROWID",
    f"CREATE TRIGGER search_words_insert AFTER INSERT ON notes BEGIN {WORDS}; END",
    f"CREATE TRIGGER search_words_update AFTER UPDATE OF search_text ON notes BEGIN {WORDS}; END",
    # the words already indexed, read from the index itself (a word no note holds any more is
    # harmless: it finds nothing)
    "CREATE VIRTUAL TABLE temp.notes_fts_vocabulary USING fts5vocab(main, notes_fts, row)",
    "INSERT INTO search_words(word) SELECT term FROM temp.notes_fts_vocabulary",
    "DROP TABLE temp.notes_fts_vocabulary",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("DROP TRIGGER search_words_update")
        op.execute("DROP TRIGGER search_words_insert")
        op.execute("DROP TABLE search_words")
