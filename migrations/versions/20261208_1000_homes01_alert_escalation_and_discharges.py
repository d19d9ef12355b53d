"""Alert escalation (``escalated_at`` on safety and integration alerts) and each participant's
discharge from the last dosing session (``followup_discharges``), which the check-ins count from

Revision ID: homes01
Revises: 0024dr
Create Date: 2026-12-08 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'homes01'
down_revision = '0024dr'
branch_labels = None
depends_on = None


def upgrade():
    for table in ('safety_alerts', 'integration_alerts'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_escalated_at'), ['escalated_at'], unique=False)
    op.create_table(
        'followup_discharges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('cohort_session_id', sa.Integer(), nullable=False),
        sa.Column('discharged_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['cohort_session_id'], ['cohort_sessions.id'],
                                name=op.f('fk_followup_discharges_cohort_session_id_cohort_sessions'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_followup_discharges_enrollment_id_enrollments'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_followup_discharges')),
        sa.UniqueConstraint('enrollment_id', name=op.f('uq_followup_discharges_enrollment_id')),
    )
    with op.batch_alter_table('followup_discharges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_discharges_cohort_session_id'), ['cohort_session_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('followup_discharges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_discharges_cohort_session_id'))
    op.drop_table('followup_discharges')
    for table in ('integration_alerts', 'safety_alerts'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_escalated_at'))
            batch_op.drop_column('escalated_at')
