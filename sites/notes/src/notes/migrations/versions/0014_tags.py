"""tags: the published notes not in the trash counted per tag and block of 1,000 ids
(tag_blocks, kept by triggers on note_tags and notes), so an old ?page=N of a tag's page (and
of /api/notes?tag=) finds its place without skipping along the tag's links

Revision ID: 0014_tags
Revises: 0013_words
Create Date: 2026-12-05 21:50:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision = '0014_tags'
down_revision = '0013_words'
branch_labels = None
depends_on = None

# A link (note, tag) is counted while its note is published and not in the trash (scheduled
# ones too, as in note_blocks), under the tag and its note's id DIV BLOCK: notes.models.TagBlock
# and NoteBlock.BLOCK say the same. The triggers follow every writer: a link made or removed
# counts if its note counts; a note published, withdrawn, trashed or restored moves each of its
# tags by one; a note deleted is taken away from each of its tags BEFORE the delete, while its
# links are there. Its links then go, by the writer (the ORM removes them first: the note is
# then counted by none) or by the foreign key's cascade: on SQLite and PostgreSQL the cascade
# fires the links' trigger, which finds the note gone and counts nothing; on MariaDB a cascade
# fires no trigger. So each deletion is counted once, in whatever order it comes.
BLOCK = 1000
COUNTED = "{row}.published AND {row}.deleted_at IS NULL"
DIV = {'sqlite': "{col} / %d" % BLOCK, 'postgresql': "{col} / %d" % BLOCK,
       'mariadb': "{col} DIV %d" % BLOCK}
UPSERT = {'sqlite': "ON CONFLICT (tag_id, block) DO UPDATE SET notes = notes + 1",
          'postgresql': "ON CONFLICT (tag_id, block) DO UPDATE SET notes = tag_blocks.notes + 1",
          'mariadb': "ON DUPLICATE KEY UPDATE notes = tag_blocks.notes + 1"}


def _statements(dialect: str, old: str, new: str) -> dict[str, str]:
    """The four changes, in ``dialect``; ``old``/``new``: how the trigger names its rows."""
    div, upsert = DIV[dialect], UPSERT[dialect]
    note_counted = ("EXISTS (SELECT 1 FROM notes n WHERE n.id = {row}.note_id AND "
                    f"{COUNTED.format(row='n')})")
    return {
        # a link made, or removed, while its note counts
        'link': (f"INSERT INTO tag_blocks (tag_id, block, notes) SELECT {new}.tag_id, "
                 f"{div.format(col=new + '.note_id')}, 1 FROM notes n WHERE n.id = {new}.note_id "
                 f"AND {COUNTED.format(row='n')} {upsert};"),
        'unlink': (f"UPDATE tag_blocks SET notes = notes - 1 WHERE tag_id = {old}.tag_id AND "
                   f"block = {div.format(col=old + '.note_id')} AND "
                   f"{note_counted.format(row=old)};"),
        # a note that comes to count, or stops counting: each of its tags
        'count': (f"INSERT INTO tag_blocks (tag_id, block, notes) SELECT nt.tag_id, "
                  f"{div.format(col=new + '.id')}, 1 FROM note_tags nt WHERE nt.note_id = "
                  f"{new}.id {upsert};"),
        'uncount': (f"UPDATE tag_blocks SET notes = notes - 1 WHERE block = "
                    f"{div.format(col=old + '.id')} AND tag_id IN (SELECT nt.tag_id FROM "
                    f"note_tags nt WHERE nt.note_id = {old}.id);"),
    }


def _sqlite() -> list[str]:
    s = _statements('sqlite', 'old', 'new')
    was, now = COUNTED.format(row='old'), COUNTED.format(row='new')
    # (SQLite's triggers have no IF: the condition goes into each statement)
    count = s['count'].replace(" ON CONFLICT", f" AND {now} AND NOT ({was}) ON CONFLICT")
    uncount = s['uncount'].replace(";", f" AND {was} AND NOT ({now});")
    return [
        f"CREATE TRIGGER tag_blocks_link AFTER INSERT ON note_tags BEGIN {s['link']} END",
        f"CREATE TRIGGER tag_blocks_unlink AFTER DELETE ON note_tags BEGIN {s['unlink']} END",
        "CREATE TRIGGER tag_blocks_relink AFTER UPDATE OF note_id, tag_id ON note_tags "
        f"BEGIN {s['unlink']} {s['link']} END",
        "CREATE TRIGGER tag_blocks_note AFTER UPDATE OF published, deleted_at ON notes "
        f"BEGIN {uncount} {count} END",
        "CREATE TRIGGER tag_blocks_note_delete BEFORE DELETE ON notes "
        f"BEGIN {s['uncount'].replace(';', f' AND {was};')} END",
    ]


def _postgresql() -> list[str]:
    s = _statements('postgresql', 'OLD', 'NEW')
    was, now = COUNTED.format(row='OLD'), COUNTED.format(row='NEW')
    return [
        "CREATE OR REPLACE FUNCTION tag_blocks_link() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP <> 'INSERT' THEN {s['unlink']} END IF; "
        f"IF TG_OP <> 'DELETE' THEN {s['link']} END IF; RETURN NULL; END $$",
        "CREATE TRIGGER tag_blocks_link AFTER INSERT OR DELETE OR UPDATE OF note_id, tag_id "
        "ON note_tags FOR EACH ROW EXECUTE FUNCTION tag_blocks_link()",
        "CREATE OR REPLACE FUNCTION tag_blocks_note() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP = 'DELETE' THEN IF {was} THEN {s['uncount']} END IF; RETURN OLD; "
        f"END IF; IF {was} AND NOT ({now}) THEN {s['uncount']} "
        f"ELSIF {now} AND NOT ({was}) THEN {s['count']} END IF; RETURN NULL; END $$",
        "CREATE TRIGGER tag_blocks_note AFTER UPDATE OF published, deleted_at ON notes "
        "FOR EACH ROW EXECUTE FUNCTION tag_blocks_note()",
        "CREATE TRIGGER tag_blocks_note_delete BEFORE DELETE ON notes "
        "FOR EACH ROW EXECUTE FUNCTION tag_blocks_note()",
    ]


def _mariadb() -> list[str]:
    s = _statements('mariadb', 'OLD', 'NEW')
    was, now = COUNTED.format(row='OLD'), COUNTED.format(row='NEW')
    return [
        f"CREATE TRIGGER tag_blocks_link AFTER INSERT ON note_tags FOR EACH ROW "
        f"BEGIN {s['link']} END",
        f"CREATE TRIGGER tag_blocks_unlink AFTER DELETE ON note_tags FOR EACH ROW "
        f"BEGIN {s['unlink']} END",
        f"CREATE TRIGGER tag_blocks_relink AFTER UPDATE ON note_tags FOR EACH ROW "
        f"BEGIN {s['unlink']} {s['link']} END",
        f"CREATE TRIGGER tag_blocks_note AFTER UPDATE ON notes FOR EACH ROW BEGIN "
        f"IF {was} AND NOT ({now}) THEN {s['uncount']} "
        f"ELSEIF {now} AND NOT ({was}) THEN {s['count']} END IF; END",
        f"CREATE TRIGGER tag_blocks_note_delete BEFORE DELETE ON notes FOR EACH ROW BEGIN "
        f"IF {was} THEN {s['uncount']} END IF; END",
    ]


def _can_make_triggers() -> None:
    """As in 0012_pages: MariaDB is asked for a trigger before anything changes."""
    bind = op.get_bind()
    try:
        bind.exec_driver_sql("CREATE TRIGGER tag_blocks_probe BEFORE UPDATE ON "
                             "alembic_version FOR EACH ROW SET @tag_blocks_probe = 1")
    except DBAPIError as e:
        raise RuntimeError(
            f"MariaDB refused to create a trigger ({e.orig}): migration 0014_tags keeps "
            "tag_blocks with triggers; give the site's account the TRIGGER privilege and, "
            "with binary logging on, set log_bin_trust_function_creators=1 on the server, "
            "then upgrade again (nothing was changed)") from None
    bind.exec_driver_sql("DROP TRIGGER tag_blocks_probe")


def _dialect() -> str:
    name = op.get_bind().dialect.name
    return name if name in ('sqlite', 'postgresql') else 'mariadb'


TRIGGERS = ('link', 'unlink', 'relink', 'note', 'note_delete')  # (SQLite and MariaDB)


def upgrade() -> None:
    dialect = _dialect()
    if dialect == 'mariadb':
        _can_make_triggers()
    op.create_table('tag_blocks',
                    sa.Column('tag_id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('block', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('notes', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'],
                                            name=op.f('fk_tag_blocks_tag_id_tags'),
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tag_id', 'block', name=op.f('pk_tag_blocks')))
    block = DIV[dialect].format(col='nt.note_id')
    op.execute(f"INSERT INTO tag_blocks (tag_id, block, notes) SELECT nt.tag_id, {block}, "
               f"count(*) FROM note_tags nt JOIN notes n ON n.id = nt.note_id "
               f"WHERE {COUNTED.format(row='n')} GROUP BY nt.tag_id, {block}")
    for statement in {'sqlite': _sqlite, 'postgresql': _postgresql,
                      'mariadb': _mariadb}[dialect]():
        op.execute(statement)


def downgrade() -> None:
    dialect = _dialect()
    if dialect == 'postgresql':
        op.execute("DROP TRIGGER tag_blocks_link ON note_tags")
        op.execute("DROP TRIGGER tag_blocks_note ON notes")
        op.execute("DROP TRIGGER tag_blocks_note_delete ON notes")
        op.execute("DROP FUNCTION tag_blocks_link()")
        op.execute("DROP FUNCTION tag_blocks_note()")
    else:
        for trigger in TRIGGERS:
            op.execute(f"DROP TRIGGER tag_blocks_{trigger}")
    op.drop_table('tag_blocks')
