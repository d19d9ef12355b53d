"""Data exports: one row per person who asked for their export, locked while it is built so that
two asks at once build it once (``privacy.export.prepare``).

Expand-only: a new table.

Revision ID: rights01
Revises: invoices01
Create Date: 2026-12-08 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'rights01'
down_revision = 'invoices01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'data_exports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('participant_id', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('times_built', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['participant_id'], ['users.id'], name=op.f('fk_data_exports_participant_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports')),
        sa.UniqueConstraint('participant_id', name=op.f('uq_data_exports_participant_id')),
    )


def downgrade():
    op.drop_table('data_exports')
