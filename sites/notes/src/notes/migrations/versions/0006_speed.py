"""notes.tags_text: the names of a note's tags, kept with the note, so pages need no query for them

Revision ID: 0006_speed
Revises: 0005_publishing
Create Date: 2026-11-30 04:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006_speed'
down_revision = '0005_publishing'
branch_labels = None
depends_on = None

notes = sa.table('notes', sa.column('id', sa.Integer), sa.column('tags_text', sa.Text))
tags = sa.table('tags', sa.column('id', sa.Integer), sa.column('name', sa.String))
note_tags = sa.table('note_tags', sa.column('note_id', sa.Integer),
                     sa.column('tag_id', sa.Integer))


def upgrade() -> None:
    # a plain ADD COLUMN, NOT NULL with a default: a batch rebuild of notes on SQLite would
    # cascade-delete every tag link (foreign keys are on)
    op.add_column('notes', sa.Column('tags_text', sa.Text(), server_default=sa.text("''"),
                                     nullable=False))
    conn = op.get_bind()
    last = 0
    while True:  # in batches of notes, so a large site does not hold every tag link in memory
        ids = conn.execute(sa.select(notes.c.id).where(notes.c.id > last)
                           .order_by(notes.c.id).limit(1000)).scalars().all()
        if not ids:
            break
        names: dict[int, list[str]] = {}
        for note_id, name in conn.execute(
                sa.select(note_tags.c.note_id, tags.c.name)
                .join(tags, tags.c.id == note_tags.c.tag_id)
                .where(note_tags.c.note_id.in_(ids))):
            names.setdefault(note_id, []).append(name)
        for note_id, found in names.items():
            # as notes.models.join_tags at this revision: sorted by code point, one per line
            conn.execute(notes.update().where(notes.c.id == note_id)
                         .values(tags_text="\n".join(sorted(set(found)))))
        last = ids[-1]


def downgrade() -> None:
    # a plain DROP COLUMN (SQLite 3.35+): a batch rebuild of notes would cascade-delete tags
    op.drop_column('notes', 'tags_text')
