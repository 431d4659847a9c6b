"""retry_limit per integration (SPEC §2): automatic retries of a failing change before it waits for an admin;
empty means the deployment's setting RETRY_LIMIT (default 10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 20:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_limit', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.drop_column('retry_limit')
