"""delivery ids deduplicated per integration: seen_delivery's key becomes (integration_id, delivery_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:20:00

Existing rows are kept (delivery_id was unique, so (integration_id, delivery_id) is too). The downgrade keeps, for a
delivery id seen by several integrations, the earliest row only (the old key cannot hold the others).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('seen_delivery', schema=None, recreate='auto') as batch_op:
        batch_op.drop_constraint('pk_seen_delivery', type_='primary')
        batch_op.create_primary_key('pk_seen_delivery', ['integration_id', 'delivery_id'])


def downgrade() -> None:
    op.execute(sa.text(
        "DELETE FROM seen_delivery WHERE EXISTS (SELECT 1 FROM seen_delivery AS other "
        "WHERE other.delivery_id = seen_delivery.delivery_id AND (other.seen_at < seen_delivery.seen_at "
        "OR (other.seen_at = seen_delivery.seen_at AND other.integration_id < seen_delivery.integration_id)))"))
    with op.batch_alter_table('seen_delivery', schema=None, recreate='auto') as batch_op:
        batch_op.drop_constraint('pk_seen_delivery', type_='primary')
        batch_op.create_primary_key('pk_seen_delivery', ['delivery_id'])
