"""Cache versions: change counters of data shown on cached pages (the facilitator roster)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 08:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cache_versions',
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_cache_versions')),
    )


def downgrade():
    op.drop_table('cache_versions')
