"""Integration plans (one per cohort), circle sequence on cohort sessions, circle RSVPs

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05 05:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'integration_plans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('cohort_id', sa.Integer(), nullable=False),
        sa.Column('circle_weeks', sa.Integer(), nullable=False),
        sa.Column('circle_weekday', sa.Integer(), nullable=False),
        sa.Column('circle_local_time', sa.Time(), nullable=False),
        sa.Column('circle_duration_minutes', sa.Integer(), nullable=False),
        sa.Column('circle_location', sa.String(length=200), nullable=False),
        sa.Column('circle_video_url', sa.String(length=500), nullable=False),
        sa.Column('circle_facilitator_id', sa.Integer(), nullable=True),
        sa.Column('checkin_24h', sa.Boolean(), nullable=False),
        sa.Column('checkin_72h', sa.Boolean(), nullable=False),
        sa.Column('survey_post', sa.Boolean(), nullable=False),
        sa.Column('survey_month_1', sa.Boolean(), nullable=False),
        sa.Column('survey_month_3', sa.Boolean(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('circle_weeks >= 1 AND circle_weeks <= 52',
                           name=op.f('ck_integration_plans_circle_weeks_range')),
        sa.CheckConstraint('circle_weekday >= 0 AND circle_weekday <= 6',
                           name=op.f('ck_integration_plans_circle_weekday_range')),
        sa.CheckConstraint('circle_duration_minutes >= 15 AND circle_duration_minutes <= 480',
                           name=op.f('ck_integration_plans_circle_duration_range')),
        sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'],
                                name=op.f('fk_integration_plans_cohort_id_cohorts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['circle_facilitator_id'], ['users.id'],
                                name=op.f('fk_integration_plans_circle_facilitator_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'],
                                name=op.f('fk_integration_plans_updated_by_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_integration_plans')),
        sa.UniqueConstraint('cohort_id', name=op.f('uq_integration_plans_cohort_id')),
    )
    with op.batch_alter_table('integration_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_integration_plans_circle_facilitator_id'), ['circle_facilitator_id'],
                              unique=False)

    with op.batch_alter_table('cohort_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('circle_sequence', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('calendar_sequence', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_unique_constraint('one_circle_per_sequence', ['cohort_id', 'circle_sequence'])

    op.create_table(
        'circle_rsvps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('note', sa.String(length=300), nullable=False),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_circle_rsvps_enrollment_id_enrollments'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['session_id'], ['cohort_sessions.id'],
                                name=op.f('fk_circle_rsvps_session_id_cohort_sessions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_circle_rsvps')),
        sa.UniqueConstraint('session_id', 'enrollment_id', name='one_per_participant'),
    )
    with op.batch_alter_table('circle_rsvps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_circle_rsvps_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_circle_rsvps_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('circle_rsvps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_circle_rsvps_session_id'))
        batch_op.drop_index(batch_op.f('ix_circle_rsvps_enrollment_id'))
    op.drop_table('circle_rsvps')
    with op.batch_alter_table('cohort_sessions', schema=None) as batch_op:
        batch_op.drop_constraint('one_circle_per_sequence', type_='unique')
        batch_op.drop_column('calendar_sequence')
        batch_op.drop_column('circle_sequence')
    with op.batch_alter_table('integration_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_integration_plans_circle_facilitator_id'))
    op.drop_table('integration_plans')
