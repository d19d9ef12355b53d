"""Failed sign-in counters shared by every worker (when REDIS_URL is not set)

Revision ID: g16a_sign_in_counters
Revises: secrets01
Create Date: 2026-12-05 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'g16a_sign_in_counters'
down_revision = 'secrets01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_in_counters',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('window', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', 'window', name=op.f('pk_sign_in_counters')),
    )
    op.create_index(op.f('ix_sign_in_counters_expires_at'), 'sign_in_counters', ['expires_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_sign_in_counters_expires_at'), table_name='sign_in_counters')
    op.drop_table('sign_in_counters')
