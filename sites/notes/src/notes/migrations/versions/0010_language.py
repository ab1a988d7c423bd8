"""language: users.locale (the interface language an account chose) and notes.language (the
language a note is written in); both empty by default: the browser's, the site's

Revision ID: 0010_language
Revises: 0009_writing
Create Date: 2026-12-05 03:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010_language'
down_revision = '0009_writing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD/DROP COLUMN on every database: a batch rebuild of notes on SQLite would drop the
    # full-text triggers (0008), one of users would cascade-delete the notes
    op.add_column('users', sa.Column('locale', sa.String(length=35), nullable=True))
    op.add_column('notes', sa.Column('language', sa.String(length=35), nullable=True))


def downgrade() -> None:
    op.drop_column('notes', 'language')
    op.drop_column('users', 'locale')
