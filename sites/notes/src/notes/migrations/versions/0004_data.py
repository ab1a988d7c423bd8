"""notes.body and notes.body_text hold 1,000,000 characters on MariaDB/MySQL too

TEXT there holds 65,535 bytes: a long note (the form, the API and the Excel import accept
1,000,000 characters) was refused. MEDIUMTEXT holds 16 MiB. Other databases' TEXT has no such
limit: nothing changes there.

Revision ID: 0004_data
Revises: 0003_accounts
Create Date: 2026-11-30 00:40:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0004_data'
down_revision = '0003_accounts'
branch_labels = None
depends_on = None


def _mysql() -> bool:
    return op.get_bind().dialect.name in ('mysql', 'mariadb')


def upgrade() -> None:
    if _mysql():
        for column in ('body', 'body_text'):
            op.alter_column('notes', column, type_=mysql.MEDIUMTEXT(), existing_type=sa.Text(),
                            existing_nullable=False)


def downgrade() -> None:
    if _mysql():
        for column in ('body', 'body_text'):
            op.alter_column('notes', column, type_=sa.Text(), existing_type=mysql.MEDIUMTEXT(),
                            existing_nullable=False)
