"""Index users by role: the slot list's facilitators were found by reading every account

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 08:10:00

"""
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(op.f('ix_users_role'), 'users', ['role'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_users_role'), table_name='users')
