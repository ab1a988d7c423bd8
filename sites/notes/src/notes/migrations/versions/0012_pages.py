"""pages: the public notes counted per day of publication (note_days, kept by triggers), so an
old ?page=N address finds its place without skipping along the list (notes.lists); the list
indexes hold deleted_at, so what a list skips is read from the index alone

Revision ID: 0012_pages
Revises: 0011_search
Create Date: 2026-12-05 06:30:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = '0012_pages'
down_revision = '0011_search'
branch_labels = None
depends_on = None

# A note is counted while it is published with a time and not in the trash, under the day
# (UTC) of that time: notes.lists.COUNTED, which must say the same. The triggers follow every
# writer (the ORM, bulk statements, restore, plain SQL). (A batch rebuild of notes on SQLite in
# a later migration drops them: create them again after it.)
COUNTED = "{row}.published AND {row}.deleted_at IS NULL AND {row}.published_at IS NOT NULL"
DAY = {'sqlite': "date({row}.published_at)", 'postgresql': "CAST({row}.published_at AS date)",
       'mariadb': "DATE({row}.published_at)"}


def _sqlite() -> list[str]:
    day_new, day_old = DAY['sqlite'].format(row='new'), DAY['sqlite'].format(row='old')
    add = (f"INSERT INTO note_days (day, notes) SELECT {day_new}, 1 "
           f"WHERE {COUNTED.format(row='new')} "
           "ON CONFLICT (day) DO UPDATE SET notes = notes + 1;")
    remove = (f"UPDATE note_days SET notes = notes - 1 WHERE day = {day_old} "
              f"AND {COUNTED.format(row='old')};")
    return [
        f"CREATE TRIGGER note_days_insert AFTER INSERT ON notes BEGIN {add} END",
        f"CREATE TRIGGER note_days_delete AFTER DELETE ON notes BEGIN {remove} END",
        "CREATE TRIGGER note_days_update AFTER UPDATE OF published, published_at, deleted_at "
        f"ON notes BEGIN {remove} {add} END",
    ]


def _postgresql() -> list[str]:
    day_new, day_old = (DAY['postgresql'].format(row=r) for r in ('NEW', 'OLD'))
    return [
        "CREATE OR REPLACE FUNCTION note_days_count() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF TG_OP <> 'INSERT' AND {COUNTED.format(row='OLD')} THEN "
        f"UPDATE note_days SET notes = notes - 1 WHERE day = {day_old}; END IF; "
        f"IF TG_OP <> 'DELETE' AND {COUNTED.format(row='NEW')} THEN "
        f"INSERT INTO note_days (day, notes) VALUES ({day_new}, 1) "
        "ON CONFLICT (day) DO UPDATE SET notes = note_days.notes + 1; END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER note_days_count AFTER INSERT OR DELETE "
        "OR UPDATE OF published, published_at, deleted_at ON notes "
        "FOR EACH ROW EXECUTE FUNCTION note_days_count()",
    ]


def _mariadb() -> list[str]:
    day_new, day_old = (DAY['mariadb'].format(row=r) for r in ('NEW', 'OLD'))
    add = (f"IF {COUNTED.format(row='NEW')} THEN INSERT INTO note_days (day, notes) "
           f"VALUES ({day_new}, 1) ON DUPLICATE KEY UPDATE notes = notes + 1; END IF;")
    remove = (f"IF {COUNTED.format(row='OLD')} THEN UPDATE note_days SET notes = notes - 1 "
              f"WHERE day = {day_old}; END IF;")
    changed = ("IF NOT (OLD.published <=> NEW.published AND OLD.published_at <=> "
               "NEW.published_at AND OLD.deleted_at <=> NEW.deleted_at) THEN "
               f"{remove} {add} END IF;")
    return [
        f"CREATE TRIGGER note_days_insert AFTER INSERT ON notes FOR EACH ROW BEGIN {add} END",
        f"CREATE TRIGGER note_days_delete AFTER DELETE ON notes FOR EACH ROW BEGIN {remove} END",
        f"CREATE TRIGGER note_days_update AFTER UPDATE ON notes FOR EACH ROW BEGIN {changed} END",
    ]


def _can_make_triggers() -> None:
    """MariaDB creates a trigger only for an account with the TRIGGER privilege and, while
    binary logging is on, SUPER unless ``log_bin_trust_function_creators`` is set (error 1419).
    Asked before anything changes: its DDL is not transactional, and a refusal halfway would
    leave the indexes and ``note_days`` made without the revision recorded."""
    bind = op.get_bind()
    try:
        bind.exec_driver_sql("CREATE TRIGGER note_days_probe BEFORE UPDATE ON alembic_version "
                             "FOR EACH ROW SET @note_days_probe = 1")
    except DBAPIError as e:
        raise RuntimeError(
            f"MariaDB refused to create a trigger ({e.orig}): migration 0012_pages keeps "
            "note_days with triggers; give the site's account the TRIGGER privilege and, with "
            "binary logging on, set log_bin_trust_function_creators=1 on the server, then "
            "upgrade again (nothing was changed)") from None
    bind.exec_driver_sql("DROP TRIGGER note_days_probe")


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return name if name in ('sqlite', 'postgresql') else 'mariadb'


def upgrade() -> None:
    if _dialect() == 'mariadb':
        _can_make_triggers()
    # the list indexes again, with deleted_at (live()) last: skipping along them reads no note
    op.drop_index('ix_notes_public_order', table_name='notes')
    op.create_index('ix_notes_public_order', 'notes',
                    ['published', 'published_at', 'id', 'deleted_at'])
    op.drop_index('ix_notes_author_order', table_name='notes')
    op.create_index('ix_notes_author_order', 'notes',
                    ['author_id', 'published', 'published_at', 'id', 'deleted_at'])
    op.create_table('note_days',
                    sa.Column('day', sa.Date(), nullable=False),
                    sa.Column('notes', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('day', name=op.f('pk_note_days')))
    dialect = _dialect()
    day = DAY[dialect].format(row='notes')
    op.execute(f"INSERT INTO note_days (day, notes) SELECT {day}, count(*) FROM notes "
               f"WHERE {COUNTED.format(row='notes')} GROUP BY {day}")
    for statement in {'sqlite': _sqlite, 'postgresql': _postgresql,
                      'mariadb': _mariadb}[dialect]():
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    if dialect == 'postgresql':
        op.execute("DROP TRIGGER note_days_count ON notes")
        op.execute("DROP FUNCTION note_days_count()")
    else:
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER note_days_{trigger}")
    op.drop_table('note_days')
    op.drop_index('ix_notes_author_order', table_name='notes')
    op.create_index('ix_notes_author_order', 'notes',
                    ['author_id', 'published', 'published_at', 'id'])
    op.drop_index('ix_notes_public_order', table_name='notes')
    op.create_index('ix_notes_public_order', 'notes', ['published', 'published_at', 'id'])
