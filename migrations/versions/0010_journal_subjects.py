"""the meeting's subject in journal entries, as the organiser wrote it, when the integration allows it (issue 10.2):
`integration.journal_subjects` (off by default: subjects are personal data) and `journal_entry.subject`

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 20:05:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite a batch would recreate `integration`, and with foreign keys on,
    # dropping the old table deletes every row that cascades from it (rooms, links, journal).
    op.add_column('integration', sa.Column('journal_subjects', sa.Boolean(), nullable=False,
                                           server_default=sa.false()))
    op.add_column('journal_entry', sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=255),
                                             nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('journal_entry', schema=None) as batch_op:
        batch_op.drop_column('subject')
    with op.batch_alter_table('integration', schema=None) as batch_op:
        batch_op.drop_column('journal_subjects')
