"""Consults join a history only once their email's owner confirms: claim link hash and confirmation time

Existing consults linked by email stay linked (their owner is treated as confirmed at booking).

Revision ID: g16b_consult_owner_confirmation
Revises: g16a_sign_in_counters
Create Date: 2026-12-05 09:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'g16b_consult_owner_confirmation'
down_revision = 'g16a_sign_in_counters'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('owner_confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_consultations_claim_token_hash'), ['claim_token_hash'])
    op.execute("UPDATE consultations SET owner_confirmed_at = created_at WHERE participant_id IS NOT NULL")


def downgrade():
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_consultations_claim_token_hash'), type_='unique')
        batch_op.drop_column('owner_confirmed_at')
        batch_op.drop_column('claim_token_hash')
