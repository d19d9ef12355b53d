"""Consult settings: slots_version, the key of the slot cache (bumped by every change to free times)

Revision ID: 0020
Revises: 0015
Create Date: 2026-12-05 06:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consult_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slots_version', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('consult_settings', schema=None) as batch_op:
        batch_op.drop_column('slots_version')
