"""Follow-ups after the retreat: check-ins and surveys, check-in responses (encrypted), integration alerts

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 05:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'follow_ups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=22), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=17), nullable=False),
        sa.Column('outbox_dedupe_key', sa.String(length=200), nullable=False),
        sa.Column('token_nonce', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancelled_reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_follow_ups_enrollment_id_enrollments'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups')),
        sa.UniqueConstraint('enrollment_id', 'kind', name='follow_up_one_per_kind'),
        sa.UniqueConstraint('outbox_dedupe_key', name=op.f('uq_follow_ups_outbox_dedupe_key')),
    )
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_follow_ups_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_follow_ups_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table(
        'checkin_responses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('follow_up_id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('answers_enc', sa.Text(), nullable=False),
        sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_checkin_responses_enrollment_id_enrollments'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['follow_up_id'], ['follow_ups.id'],
                                name=op.f('fk_checkin_responses_follow_up_id_follow_ups'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_responses')),
        sa.UniqueConstraint('follow_up_id', name=op.f('uq_checkin_responses_follow_up_id')),
    )
    with op.batch_alter_table('checkin_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_responses_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table(
        'integration_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('cohort_id', sa.Integer(), nullable=False),
        sa.Column('follow_up_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=23), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'],
                                name=op.f('fk_integration_alerts_acknowledged_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'],
                                name=op.f('fk_integration_alerts_cohort_id_cohorts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_integration_alerts_enrollment_id_enrollments'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['follow_up_id'], ['follow_ups.id'],
                                name=op.f('fk_integration_alerts_follow_up_id_follow_ups'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_integration_alerts')),
        sa.UniqueConstraint('enrollment_id', 'reason', 'follow_up_id',
                            name='integration_alert_once_per_reason'),
    )
    with op.batch_alter_table('integration_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_integration_alerts_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_integration_alerts_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_integration_alerts_follow_up_id'), ['follow_up_id'], unique=False)


def downgrade():
    with op.batch_alter_table('integration_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_integration_alerts_follow_up_id'))
        batch_op.drop_index(batch_op.f('ix_integration_alerts_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_integration_alerts_cohort_id'))
    op.drop_table('integration_alerts')
    with op.batch_alter_table('checkin_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_responses_enrollment_id'))
    op.drop_table('checkin_responses')
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_follow_ups_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_follow_ups_due_at'))
    op.drop_table('follow_ups')
