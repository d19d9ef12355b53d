"""Observability: the last run of each scheduled job (job_runs), and the BASE_URL an outbox message
was queued under (outbox_messages.link_origin, nullable), so its links are rebuilt when it is sent.

Expand-only: a new table and a nullable column.

Revision ID: obs01
Revises: dosing01
Create Date: 2026-12-07 07:05:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'obs01'
down_revision = 'dosing01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('runner', sa.String(length=100), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('link_origin', sa.String(length=200), nullable=True))


def downgrade():
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('link_origin')
    op.drop_table('job_runs')
