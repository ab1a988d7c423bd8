"""authors: the published notes not in the trash counted per author and block of 1,000 ids
(author_blocks, kept by triggers on notes), so an old ?page=N of /api/notes?author= finds its
place without skipping along the author's notes

Revision ID: 0015_authors
Revises: 0014_tags
Create Date: 2026-12-05 22:15:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = '0015_authors'
down_revision = '0014_tags'
branch_labels = None
depends_on = None

# As note_blocks (0013_words), per author: notes.models.AuthorBlock says the same. A user
# deleted takes their counts with them (a foreign key; on MariaDB the notes' cascade fires no
# trigger).
BLOCK = 1000
COUNTED = "{row}.published AND {row}.deleted_at IS NULL"
DIV = {'sqlite': "{row}.id / %d" % BLOCK, 'postgresql': "{row}.id / %d" % BLOCK,
       'mariadb': "{row}.id DIV %d" % BLOCK}
UPSERT = {'sqlite': "ON CONFLICT (author_id, block) DO UPDATE SET notes = notes + 1",
          'postgresql': "ON CONFLICT (author_id, block) DO UPDATE SET "
                        "notes = author_blocks.notes + 1",
          'mariadb': "ON DUPLICATE KEY UPDATE notes = author_blocks.notes + 1"}


def _add(dialect: str, row: str) -> str:
    values = f"{row}.author_id, {DIV[dialect].format(row=row)}, 1"
    if dialect == 'sqlite':
        return (f"INSERT INTO author_blocks (author_id, block, notes) SELECT {values} "
                f"WHERE {COUNTED.format(row=row)} {UPSERT[dialect]};")
    return (f"INSERT INTO author_blocks (author_id, block, notes) VALUES ({values}) "
            f"{UPSERT[dialect]};")


def _remove(dialect: str, row: str) -> str:
    return (f"UPDATE author_blocks SET notes = notes - 1 WHERE author_id = {row}.author_id "
            f"AND block = {DIV[dialect].format(row=row)}")


def _sqlite() -> list[str]:
    add = _add('sqlite', 'new')
    remove = f"{_remove('sqlite', 'old')} AND {COUNTED.format(row='old')};"
    return [
        f"CREATE TRIGGER author_blocks_insert AFTER INSERT ON notes BEGIN {add} END",
        f"CREATE TRIGGER author_blocks_delete AFTER DELETE ON notes BEGIN {remove} END",
        "CREATE TRIGGER author_blocks_update AFTER UPDATE OF id, author_id, published, "
        f"deleted_at ON notes BEGIN {remove} {add} END",
    ]


def _postgresql() -> list[str]:
    return [
        "CREATE OR REPLACE FUNCTION author_blocks_count() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' AND {COUNTED.format(row='OLD')} THEN "
        f"{_remove('postgresql', 'OLD')}; END IF; "
        f"IF TG_OP <> 'DELETE' AND {COUNTED.format(row='NEW')} THEN "
        f"{_add('postgresql', 'NEW')} END IF; RETURN NULL; END $$",
        "CREATE TRIGGER author_blocks_count AFTER INSERT OR DELETE "
        "OR UPDATE OF id, author_id, published, deleted_at ON notes "
        "FOR EACH ROW EXECUTE FUNCTION author_blocks_count()",
    ]


def _mariadb() -> list[str]:
    add = f"IF {COUNTED.format(row='NEW')} THEN {_add('mariadb', 'NEW')} END IF;"
    remove = f"IF {COUNTED.format(row='OLD')} THEN {_remove('mariadb', 'OLD')}; END IF;"
    changed = ("IF NOT (OLD.id <=> NEW.id AND OLD.author_id <=> NEW.author_id AND "
               "OLD.published <=> NEW.published AND OLD.deleted_at <=> NEW.deleted_at) THEN "
               f"{remove} {add} END IF;")
    return [
        f"CREATE TRIGGER author_blocks_insert AFTER INSERT ON notes FOR EACH ROW BEGIN {add} END",
        f"CREATE TRIGGER author_blocks_delete AFTER DELETE ON notes FOR EACH ROW "
        f"BEGIN {remove} END",
        "CREATE TRIGGER author_blocks_update AFTER UPDATE ON notes FOR EACH ROW "
        f"BEGIN {changed} END",
    ]


def _can_make_triggers() -> None:
    """As in 0012_pages: MariaDB is asked for a trigger before anything changes."""
    bind = op.get_bind()
    try:
        bind.exec_driver_sql("CREATE TRIGGER author_blocks_probe BEFORE UPDATE ON "
                             "alembic_version FOR EACH ROW SET @author_blocks_probe = 1")
    except DBAPIError as e:
        raise RuntimeError(
            f"MariaDB refused to create a trigger ({e.orig}): migration 0015_authors keeps "
            "author_blocks with triggers; give the site's account the TRIGGER privilege and, "
            "with binary logging on, set log_bin_trust_function_creators=1 on the server, "
            "then upgrade again (nothing was changed)") from None
    bind.exec_driver_sql("DROP TRIGGER author_blocks_probe")


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return name if name in ('sqlite', 'postgresql') else 'mariadb'


def upgrade() -> None:
    dialect = _dialect()
    if dialect == 'mariadb':
        _can_make_triggers()
    op.create_table('author_blocks',
                    sa.Column('author_id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('block', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('notes', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['author_id'], ['users.id'],
                                            name=op.f('fk_author_blocks_author_id_users'),
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('author_id', 'block', name=op.f('pk_author_blocks')))
    block = DIV[dialect].format(row='notes')
    op.execute(f"INSERT INTO author_blocks (author_id, block, notes) SELECT author_id, {block}, "
               f"count(*) FROM notes WHERE {COUNTED.format(row='notes')} "
               f"GROUP BY author_id, {block}")
    for statement in {'sqlite': _sqlite, 'postgresql': _postgresql,
                      'mariadb': _mariadb}[dialect]():
        op.execute(statement)


def downgrade() -> None:
    if _dialect() == 'postgresql':
        op.execute("DROP TRIGGER author_blocks_count ON notes")
        op.execute("DROP FUNCTION author_blocks_count()")
    else:
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER author_blocks_{trigger}")
    op.drop_table('author_blocks')
