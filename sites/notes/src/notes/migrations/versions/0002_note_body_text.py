"""notes.body_text: the plain text of each note, searched instead of its HTML

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:45:00

"""
import html
import re

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

notes = sa.table('notes', sa.column('id', sa.Integer), sa.column('body', sa.Text),
                 sa.column('body_text', sa.Text))


def plain_text(body: str | None) -> str:
    # as notes.models.plain_text at this revision (a migration keeps its own copy)
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", body or "")).split())


def upgrade() -> None:
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_text', sa.Text(), nullable=True))
    conn = op.get_bind()
    last = 0
    while True:  # in batches, so a large site does not hold every note in memory
        rows = conn.execute(sa.select(notes.c.id, notes.c.body).where(notes.c.id > last)
                            .order_by(notes.c.id).limit(1000)).all()
        if not rows:
            break
        for note_id, body in rows:
            conn.execute(notes.update().where(notes.c.id == note_id)
                         .values(body_text=plain_text(body)))
        last = rows[-1][0]
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.alter_column('body_text', existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('notes', schema=None) as batch_op:
        batch_op.drop_column('body_text')
