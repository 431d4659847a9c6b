"""sync state: polling rooms, delta links, leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 17:59:05.004537
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('lease',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_lease'))
    )
    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rooms_synced_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.add_column(sa.Column('polling', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('delta_link', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delta_window_start', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('reconciled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reauthorized_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_column('reauthorized_at')

    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_column('reconciled_at')
        batch_op.drop_column('delta_window_start')
        batch_op.drop_column('delta_link')
        batch_op.drop_column('polling')

    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.drop_column('rooms_synced_at')

    op.drop_table('lease')
