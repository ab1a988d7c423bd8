"""blocks: the published notes not in the trash counted per block of 1,000 ids (note_blocks,
kept by triggers), so an old ?page=N of /api/notes (in id order) finds its place without
skipping along the list

Revision ID: 0013_words
Revises: 0012_pages
Create Date: 2026-12-05 09:40:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = '0013_words'
down_revision = '0012_pages'
branch_labels = None
depends_on = None

# A note is counted while it is published and not in the trash (scheduled ones too: the API
# takes those still to come away), under its id DIV BLOCK: notes.models.NoteBlock,
# whose BLOCK, which must say the same. The triggers follow every writer.
BLOCK = 1000
COUNTED = "{row}.published AND {row}.deleted_at IS NULL"
DIV = {'sqlite': "{row}.id / %d" % BLOCK, 'postgresql': "{row}.id / %d" % BLOCK,
       'mariadb': "{row}.id DIV %d" % BLOCK}


def _sqlite() -> list[str]:
    new, old = DIV['sqlite'].format(row='new'), DIV['sqlite'].format(row='old')
    add = (f"INSERT INTO note_blocks (block, notes) SELECT {new}, 1 "
           f"WHERE {COUNTED.format(row='new')} "
           "ON CONFLICT (block) DO UPDATE SET notes = notes + 1;")
    remove = (f"UPDATE note_blocks SET notes = notes - 1 WHERE block = {old} "
              f"AND {COUNTED.format(row='old')};")
    return [
        f"CREATE TRIGGER note_blocks_insert AFTER INSERT ON notes BEGIN {add} END",
        f"CREATE TRIGGER note_blocks_delete AFTER DELETE ON notes BEGIN {remove} END",
        "CREATE TRIGGER note_blocks_update AFTER UPDATE OF id, published, deleted_at "
        f"ON notes BEGIN {remove} {add} END",
    ]


def _postgresql() -> list[str]:
    new, old = (DIV['postgresql'].format(row=r) for r in ('NEW', 'OLD'))
    return [
        "CREATE OR REPLACE FUNCTION note_blocks_count() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF TG_OP <> 'INSERT' AND {COUNTED.format(row='OLD')} THEN "
        f"UPDATE note_blocks SET notes = notes - 1 WHERE block = {old}; END IF; "
        f"IF TG_OP <> 'DELETE' AND {COUNTED.format(row='NEW')} THEN "
        f"INSERT INTO note_blocks (block, notes) VALUES ({new}, 1) "
        "ON CONFLICT (block) DO UPDATE SET notes = note_blocks.notes + 1; END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER note_blocks_count AFTER INSERT OR DELETE "
        "OR UPDATE OF id, published, deleted_at ON notes "
        "FOR EACH ROW EXECUTE FUNCTION note_blocks_count()",
    ]


def _mariadb() -> list[str]:
    new, old = (DIV['mariadb'].format(row=r) for r in ('NEW', 'OLD'))
    add = (f"IF {COUNTED.format(row='NEW')} THEN INSERT INTO note_blocks (block, notes) "
           f"VALUES ({new}, 1) ON DUPLICATE KEY UPDATE notes = notes + 1; END IF;")
    remove = (f"IF {COUNTED.format(row='OLD')} THEN UPDATE note_blocks SET notes = notes - 1 "
              f"WHERE block = {old}; END IF;")
    changed = ("IF NOT (OLD.id <=> NEW.id AND OLD.published <=> NEW.published AND "
               f"OLD.deleted_at <=> NEW.deleted_at) THEN {remove} {add} END IF;")
    return [
        f"CREATE TRIGGER note_blocks_insert AFTER INSERT ON notes FOR EACH ROW BEGIN {add} END",
        f"CREATE TRIGGER note_blocks_delete AFTER DELETE ON notes FOR EACH ROW "
        f"BEGIN {remove} END",
        "CREATE TRIGGER note_blocks_update AFTER UPDATE ON notes FOR EACH ROW "
        f"BEGIN {changed} END",
    ]


def _can_make_triggers() -> None:
    """As in 0012_pages: MariaDB is asked for a trigger before anything changes."""
    bind = op.get_bind()
    try:
        bind.exec_driver_sql("CREATE TRIGGER note_blocks_probe BEFORE UPDATE ON "
                             "alembic_version FOR EACH ROW SET @note_blocks_probe = 1")
    except DBAPIError as e:
        raise RuntimeError(
            f"MariaDB refused to create a trigger ({e.orig}): migration 0013_words keeps "
            "note_blocks with triggers; give the site's account the TRIGGER privilege and, "
            "with binary logging on, set log_bin_trust_function_creators=1 on the server, "
            "then upgrade again (nothing was changed)") from None
    bind.exec_driver_sql("DROP TRIGGER note_blocks_probe")


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return name if name in ('sqlite', 'postgresql') else 'mariadb'


def upgrade() -> None:
    dialect = _dialect()
    if dialect == 'mariadb':
        _can_make_triggers()
    op.create_table('note_blocks',
                    sa.Column('block', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('notes', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('block', name=op.f('pk_note_blocks')))
    block = DIV[dialect].format(row='notes')
    op.execute(f"INSERT INTO note_blocks (block, notes) SELECT {block}, count(*) FROM notes "
               f"WHERE {COUNTED.format(row='notes')} GROUP BY {block}")
    for statement in {'sqlite': _sqlite, 'postgresql': _postgresql,
                      'mariadb': _mariadb}[dialect]():
        op.execute(statement)


def downgrade() -> None:
    if _dialect() == 'postgresql':
        op.execute("DROP TRIGGER note_blocks_count ON notes")
        op.execute("DROP FUNCTION note_blocks_count()")
    else:
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER note_blocks_{trigger}")
    op.drop_table('note_blocks')
