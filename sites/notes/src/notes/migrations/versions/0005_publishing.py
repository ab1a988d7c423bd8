"""publishing: display names, tags, old slugs kept for redirects, folded search text

Revision ID: 0005_publishing
Revises: 0004_data
Create Date: 2026-11-30 00:30:00

"""
import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0005_publishing'
down_revision = '0004_data'
branch_labels = None
depends_on = None

notes = sa.table('notes', sa.column('id', sa.Integer), sa.column('title', sa.String),
                 sa.column('body_text', sa.Text), sa.column('search_text', sa.Text))


def fold(text: str) -> str:
    # as notes.models.fold at this revision (a migration keeps its own copy)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def utf8mb4() -> None:
    """MariaDB/MySQL: text in any language needs utf8mb4; a database made with the server's
    default (often latin1) refuses Greek, Chinese or emoji. Convert what is not utf8mb4 yet;
    tables made later follow the database's new default. A note's text becomes MEDIUMTEXT
    (a note holds up to a million characters, TEXT 64 KB); other TEXT columns stay TEXT
    (CONVERT would widen them)."""
    conn = op.get_bind()
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    name = conn.exec_driver_sql("SELECT DATABASE()").scalar()
    conn.exec_driver_sql(
        f"ALTER DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    tables = conn.execute(sa.text(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_TYPE = 'BASE TABLE' AND TABLE_COLLATION NOT LIKE 'utf8mb4%'")).scalars().all()
    for table in tables:
        texts = conn.execute(sa.text(
            "SELECT COLUMN_NAME, IS_NULLABLE FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND DATA_TYPE = 'text'"),
            {"t": table}).all()
        conn.exec_driver_sql(
            f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        for column, nullable in texts:
            if table != "notes":
                null = "NULL" if nullable == "YES" else "NOT NULL"
                conn.exec_driver_sql(f"ALTER TABLE `{table}` MODIFY `{column}` TEXT {null}")
    conn.exec_driver_sql("ALTER TABLE notes MODIFY body MEDIUMTEXT NOT NULL, "
                         "MODIFY body_text MEDIUMTEXT NOT NULL")


def upgrade() -> None:
    utf8mb4()
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('name', name=op.f('uq_tags_name'))
    )
    op.create_table('note_tags',
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'], name=op.f('fk_note_tags_note_id_notes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_note_tags_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('note_id', 'tag_id', name=op.f('pk_note_tags'))
    )
    with op.batch_alter_table('note_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_note_tags_tag_id'), ['tag_id'], unique=False)
    op.create_table('note_slugs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=220), nullable=False),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'], name=op.f('fk_note_slugs_note_id_notes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_note_slugs')),
    sa.UniqueConstraint('slug', name=op.f('uq_note_slugs_slug'))
    )
    with op.batch_alter_table('note_slugs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_note_slugs_note_id'), ['note_id'], unique=False)

    # Columns added NOT NULL with a default: on SQLite no table is rebuilt (rebuilding users
    # would cascade-delete every note, foreign keys being on).
    # Existing accounts get no name made from their address (it stays private): they are
    # shown as "author N" until they choose one on their account page.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=80), server_default='',
                                      nullable=False))
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'search_text', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb'),
            server_default=sa.text("''"), nullable=False))
    conn = op.get_bind()
    last = 0
    while True:  # in batches, so a large site does not hold every note in memory
        rows = conn.execute(sa.select(notes.c.id, notes.c.title, notes.c.body_text)
                            .where(notes.c.id > last).order_by(notes.c.id).limit(1000)).all()
        if not rows:
            break
        for note_id, title, body_text in rows:
            conn.execute(notes.update().where(notes.c.id == note_id)
                         .values(search_text=fold(f"{title or ''}\n{body_text or ''}")))
        last = rows[-1][0]


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+ has it): a batch rebuild of users would cascade-delete
    # every note
    op.drop_column('notes', 'search_text')
    op.drop_column('users', 'display_name')
    op.drop_table('note_slugs')  # with its indexes (MariaDB refuses to drop an FK's index)
    op.drop_table('note_tags')
    op.drop_table('tags')
