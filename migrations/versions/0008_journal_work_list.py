"""the journal as the admin's work list (issue 10): the room and event id a retry re-runs, attempts, last time,
when an admin marked the entry handled

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 17:20:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table('journal_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('room_id', _STR(length=36), nullable=True))
        batch_op.add_column(sa.Column('event_id', _STR(length=1024), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('handled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('journal_entry', schema=None) as batch_op:
        for name in ('handled_at', 'last_at', 'attempts', 'event_id', 'room_id'):
            batch_op.drop_column(name)
