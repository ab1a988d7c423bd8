"""revisions, trash and note versions: note_revisions, notes.version, notes.deleted_at

Revision ID: 0007_revisions
Revises: 0006_speed
Create Date: 2026-12-04 23:40:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0007_revisions'
down_revision = '0006_speed'
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')
notes = sa.table('notes', sa.column('id', sa.Integer), sa.column('title', sa.String),
                 sa.column('body', sa.Text), sa.column('tags_text', sa.Text),
                 sa.column('published', sa.Boolean), sa.column('author_id', sa.Integer),
                 sa.column('updated_at', sa.DateTime))
revisions = sa.table('note_revisions', sa.column('note_id', sa.Integer),
                     sa.column('version', sa.Integer), sa.column('title', sa.String),
                     sa.column('body', sa.Text), sa.column('tags_text', sa.Text),
                     sa.column('published', sa.Boolean), sa.column('by_id', sa.Integer),
                     sa.column('by_name', sa.String), sa.column('via', sa.String),
                     sa.column('created_at', sa.DateTime))


def upgrade() -> None:
    # plain ADD COLUMNs (no batch rebuild of notes on SQLite: it would cascade-delete tags)
    op.add_column('notes', sa.Column('version', sa.Integer(), server_default='1',
                                     nullable=False))
    op.add_column('notes', sa.Column('deleted_at', sa.DateTime(), nullable=True))
    op.create_index(op.f('ix_notes_deleted_at'), 'notes', ['deleted_at'], unique=False)
    op.create_table('note_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('note_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', LongText, nullable=False),
    sa.Column('tags_text', sa.Text(), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('by_id', sa.Integer(), nullable=True),
    sa.Column('by_name', sa.String(length=80), nullable=False),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['note_id'], ['notes.id'],
                            name=op.f('fk_note_revisions_note_id_notes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['by_id'], ['users.id'],
                            name=op.f('fk_note_revisions_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_note_revisions'))
    )
    op.create_index(op.f('ix_note_revisions_note_id'), 'note_revisions', ['note_id'],
                    unique=False)
    op.create_index(op.f('ix_note_revisions_by_id'), 'note_revisions', ['by_id'], unique=False)
    # every existing note gets its first revision: its state now (version 1), by its author
    conn = op.get_bind()
    last = 0
    while True:  # in batches, so a large site does not hold every note in memory
        rows = conn.execute(sa.select(notes).where(notes.c.id > last)
                            .order_by(notes.c.id).limit(500)).all()
        if not rows:
            break
        conn.execute(revisions.insert(), [
            {"note_id": r.id, "version": 1, "title": r.title, "body": r.body,
             "tags_text": r.tags_text, "published": r.published, "by_id": r.author_id,
             "by_name": "", "via": "migration", "created_at": r.updated_at} for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table('note_revisions')  # with its indexes
    op.drop_index(op.f('ix_notes_deleted_at'), table_name='notes')
    # plain DROP COLUMNs (SQLite 3.35+): a batch rebuild of notes would cascade-delete tags
    op.drop_column('notes', 'deleted_at')
    op.drop_column('notes', 'version')
