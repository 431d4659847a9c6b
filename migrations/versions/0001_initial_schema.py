"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 17:42:14.565261
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('integration',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('tenant_domain', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('extra_domains', sa.JSON(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_secret_enc', sa.Text(), nullable=False),
    sa.Column('booking_base_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('booking_api_key_enc', sa.Text(), nullable=False),
    sa.Column('hook_secret_enc', sa.Text(), nullable=False),
    sa.Column('default_store_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('default_user_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('ignore_tags', sa.JSON(), nullable=False),
    sa.Column('block_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('private_events', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('exclude_subjects', sa.JSON(), nullable=False),
    sa.Column('show_pending_as_tentative', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integration'))
    )
    op.create_table('journal_entry',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('ical_uid', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
    sa.Column('loan_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                            name=op.f('fk_journal_entry_integration_id_integration'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entry'))
    )
    with op.batch_alter_table('journal_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_entry_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_entry_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_entry_status'), ['status'], unique=False)

    op.create_table('link',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('ical_uid', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('loan_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('organizer_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('organizer_event_id', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
    sa.Column('synced', sa.JSON(), nullable=False),
    sa.Column('outlook_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('outlook_change_key', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('outlook_modified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('booking_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('booking_version', sa.Integer(), nullable=True),
    sa.Column('booking_updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                            name=op.f('fk_link_integration_id_integration'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link')),
    sa.UniqueConstraint('integration_id', 'ical_uid', name=op.f('uq_link_integration_id'))
    )
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_link_loan_id'), ['loan_id'], unique=False)

    op.create_table('room',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('mailbox_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('place_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                            name=op.f('fk_room_integration_id_integration'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room')),
    sa.UniqueConstraint('integration_id', 'email', name=op.f('uq_room_integration_id'))
    )
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_room_mailbox_id'), ['mailbox_id'], unique=False)

    op.create_table('seen_delivery',
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                            name=op.f('fk_seen_delivery_integration_id_integration'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('delivery_id', name=op.f('pk_seen_delivery'))
    )
    with op.batch_alter_table('seen_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_delivery_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_seen_delivery_seen_at'), ['seen_at'], unique=False)

    op.create_table('event_copy',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('link_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('room_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('change_key', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.ForeignKeyConstraint(['link_id'], ['link.id'], name=op.f('fk_event_copy_link_id_link'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_event_copy_room_id_room'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_copy')),
    sa.UniqueConstraint('room_id', 'event_id', name=op.f('uq_event_copy_room_id'))
    )
    with op.batch_alter_table('event_copy', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_copy_link_id'), ['link_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_copy_room_id'), ['room_id'], unique=False)

    op.create_table('subscription',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('integration_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('room_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('client_state_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('renewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['integration_id'], ['integration.id'],
                            name=op.f('fk_subscription_integration_id_integration'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_subscription_room_id_room'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription'))
    )
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_integration_id'), ['integration_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscription_room_id'), ['room_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_room_id'))
        batch_op.drop_index(batch_op.f('ix_subscription_integration_id'))

    op.drop_table('subscription')
    with op.batch_alter_table('event_copy', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_copy_room_id'))
        batch_op.drop_index(batch_op.f('ix_event_copy_link_id'))

    op.drop_table('event_copy')
    with op.batch_alter_table('seen_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_delivery_seen_at'))
        batch_op.drop_index(batch_op.f('ix_seen_delivery_integration_id'))

    op.drop_table('seen_delivery')
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_mailbox_id'))
        batch_op.drop_index(batch_op.f('ix_room_integration_id'))

    op.drop_table('room')
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_loan_id'))
        batch_op.drop_index(batch_op.f('ix_link_integration_id'))

    op.drop_table('link')
    with op.batch_alter_table('journal_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_entry_status'))
        batch_op.drop_index(batch_op.f('ix_journal_entry_integration_id'))
        batch_op.drop_index(batch_op.f('ix_journal_entry_at'))

    op.drop_table('journal_entry')
    op.drop_table('integration')
