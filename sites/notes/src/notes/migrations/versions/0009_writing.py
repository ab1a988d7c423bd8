"""writing: a note's format (html or markdown) and Markdown source, a draft's preview link,
the format of each revision; published notes all have a publication time (public() compares
it with the time: a future one is scheduled)

Revision ID: 0009_writing
Revises: 0008_scale
Create Date: 2026-12-05 03:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0009_writing'
down_revision = '0008_scale'
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column('notes', sa.Column('format', sa.String(10), nullable=False,
                                     server_default='html'))
    op.add_column('notes', sa.Column('source', LongText, nullable=True))
    op.add_column('notes', sa.Column('preview_token', sa.String(64), nullable=True))
    op.create_index('ix_notes_preview_token', 'notes', ['preview_token'], unique=True)
    op.add_column('note_revisions', sa.Column('format', sa.String(10), nullable=False,
                                              server_default='html'))
    # a published note without a time would never be public now: its creation time
    notes = sa.table('notes', sa.column('published', sa.Boolean),
                     sa.column('published_at', sa.DateTime), sa.column('created_at', sa.DateTime))
    op.execute(notes.update().where(notes.c.published == sa.true(),
                                    notes.c.published_at.is_(None))
               .values(published_at=notes.c.created_at))


def downgrade() -> None:
    # a Markdown note keeps its rendered HTML (body): it stays readable as an HTML note
    op.drop_column('note_revisions', 'format')
    op.drop_index('ix_notes_preview_token', table_name='notes')
    op.drop_column('notes', 'preview_token')
    op.drop_column('notes', 'source')
    op.drop_column('notes', 'format')
