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


def upgrade() -> None:
    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refusal_feedback', _STR(length=16), nullable=False, server_default='decline'))
        batch_op.add_column(sa.Column('conflict_note', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('subject_mode', _STR(length=16), nullable=False, server_default='number_name'))
        batch_op.add_column(sa.Column('subject_label', _STR(length=255), nullable=True))
        batch_op.add_column(sa.Column('show_as', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('event_sensitivity', _STR(length=16), nullable=False, server_default='normal'))
        batch_op.add_column(sa.Column('all_day', _STR(length=8), nullable=False, server_default='send'))
        batch_op.add_column(sa.Column('room_lists', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('buildings', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('alert_url', _STR(length=500), nullable=True))
        batch_op.add_column(sa.Column('alert_secret_enc', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('integration', schema=None) as batch_op:
        for name in ('alert_secret_enc', 'alert_url', 'buildings', 'room_lists', 'all_day', 'event_sensitivity',
                     'show_as', 'subject_label', 'subject_mode', 'conflict_note', 'refusal_feedback'):
            batch_op.drop_column(name)
