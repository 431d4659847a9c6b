"""rooms import runs: one job per /places page, a run ends when its pages are done

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 16:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'rooms_import',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=True),
        sa.Column('pages_done', sa.Integer(), nullable=False),
        sa.Column('listed', sa.Integer(), nullable=False),
        sa.Column('ignored', sa.Integer(), nullable=False),
        sa.Column('deactivated', sa.Integer(), nullable=False),
        sa.Column('changed', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                                name=op.f('fk_rooms_import_integration_id_integration'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rooms_import')),
    )
    with op.batch_alter_table('rooms_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rooms_import_integration_id'), ['integration_id'], unique=False)
    op.create_table(
        'rooms_import_page',
        sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('page', sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['rooms_import.id'],
                                name=op.f('fk_rooms_import_page_run_id_rooms_import'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('run_id', 'page', name=op.f('pk_rooms_import_page')),
    )


def downgrade() -> None:
    op.drop_table('rooms_import_page')
    with op.batch_alter_table('rooms_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rooms_import_integration_id'))
    op.drop_table('rooms_import')
