"""users.session_version: raising it ends every session, remember-me cookie and API token

Revision ID: 0003_accounts
Revises: 0002
Create Date: 2026-11-30 00:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0003_accounts'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+ has it): a batch rebuild of users would cascade-delete
    # every note
    op.drop_column('users', 'session_version')
