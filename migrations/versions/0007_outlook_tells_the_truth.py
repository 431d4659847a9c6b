"""integration settings of issue 11: refusal feedback, conflict note, subject/showAs/sensitivity of events written
from loans, all-day meetings, sites (room lists, buildings), failure alerts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:10:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_STR = sqlmodel.sql.sqltypes.AutoString
T = 'integration'


def upgrade() -> None:
    # Plain ADD COLUMNs (constant defaults), never a batch table rebuild: on SQLite a rebuild drops the old
    # `integration` table, and its ON DELETE CASCADE foreign keys would delete every room, link and journal entry.
    op.add_column(T, sa.Column('refusal_feedback', _STR(length=16), nullable=False, server_default='decline'))
    op.add_column(T, sa.Column('conflict_note', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column(T, sa.Column('subject_mode', _STR(length=16), nullable=False, server_default='number_name'))
    op.add_column(T, sa.Column('subject_label', _STR(length=255), nullable=True))
    op.add_column(T, sa.Column('show_as', sa.JSON(), nullable=False, server_default='{}'))
    op.add_column(T, sa.Column('event_sensitivity', _STR(length=16), nullable=False, server_default='normal'))
    op.add_column(T, sa.Column('all_day', _STR(length=8), nullable=False, server_default='send'))
    op.add_column(T, sa.Column('room_lists', sa.JSON(), nullable=False, server_default='[]'))
    op.add_column(T, sa.Column('buildings', sa.JSON(), nullable=False, server_default='[]'))
    op.add_column(T, sa.Column('alert_url', _STR(length=500), nullable=True))
    op.add_column(T, sa.Column('alert_secret_enc', sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMNs (SQLite ≥ 3.35), for the same reason as above.
    for name in ('alert_secret_enc', 'alert_url', 'buildings', 'room_lists', 'all_day', 'event_sensitivity',
                 'show_as', 'subject_label', 'subject_mode', 'conflict_note', 'refusal_feedback'):
        op.drop_column('integration', name)
