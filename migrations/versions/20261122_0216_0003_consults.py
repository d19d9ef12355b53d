"""consults

Revision ID: 0003
Revises: 0008
Create Date: 2026-11-22 02:16:02.294580

"""
from alembic import op
import sqlalchemy as sa

# Two active consults of one facilitator never overlap, buffers included (btree_gist: 0001).
# Same statement as retreat.consults.models.NO_OVERLAP_DDL (a test keeps them in sync).
NO_OVERLAP_DDL = (
    "ALTER TABLE consultations ADD CONSTRAINT ex_consultations_no_overlap "
    "EXCLUDE USING gist (facilitator_id WITH =, tstzrange(blocked_start, blocked_end, '[)') WITH &&) "
    "WHERE (status <> 'cancelled')"
)


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('availability_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facilitator_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=15), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=True),
    sa.Column('end_minute', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind = 'off' OR (start_minute IS NOT NULL AND end_minute IS NOT NULL AND start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute)", name=op.f('ck_availability_overrides_window_order')),
    sa.ForeignKeyConstraint(['facilitator_id'], ['users.id'], name=op.f('fk_availability_overrides_facilitator_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_overrides'))
    )
    with op.batch_alter_table('availability_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_availability_overrides_facilitator_day', ['facilitator_id', 'day'], unique=False)

    op.create_table('availability_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facilitator_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('start_minute >= 0 AND end_minute <= 1440 AND start_minute < end_minute', name=op.f('ck_availability_rules_window_order')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_availability_rules_weekday_range')),
    sa.ForeignKeyConstraint(['facilitator_id'], ['users.id'], name=op.f('fk_availability_rules_facilitator_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_rules'))
    )
    with op.batch_alter_table('availability_rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_availability_rules_facilitator_id'), ['facilitator_id'], unique=False)

    op.create_table('consult_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facilitator_id', sa.Integer(), nullable=False),
    sa.Column('tz', sa.String(length=64), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_before_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_after_minutes', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('daily_cap', sa.Integer(), nullable=True),
    sa.Column('slot_interval_minutes', sa.Integer(), nullable=False),
    sa.Column('change_cutoff_hours', sa.Integer(), nullable=False),
    sa.Column('video_link', sa.String(length=500), nullable=True),
    sa.Column('accepting_bookings', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('buffer_after_minutes BETWEEN 0 AND 240', name=op.f('ck_consult_settings_buffer_after_range')),
    sa.CheckConstraint('buffer_before_minutes BETWEEN 0 AND 240', name=op.f('ck_consult_settings_buffer_before_range')),
    sa.CheckConstraint('change_cutoff_hours BETWEEN 0 AND 168', name=op.f('ck_consult_settings_cutoff_range')),
    sa.CheckConstraint('daily_cap IS NULL OR daily_cap >= 1', name=op.f('ck_consult_settings_daily_cap_positive')),
    sa.CheckConstraint('duration_minutes BETWEEN 10 AND 240', name=op.f('ck_consult_settings_duration_range')),
    sa.CheckConstraint('horizon_days BETWEEN 1 AND 365', name=op.f('ck_consult_settings_horizon_range')),
    sa.CheckConstraint('min_notice_minutes BETWEEN 0 AND 43200', name=op.f('ck_consult_settings_notice_range')),
    sa.CheckConstraint('slot_interval_minutes BETWEEN 5 AND 240', name=op.f('ck_consult_settings_interval_range')),
    sa.ForeignKeyConstraint(['facilitator_id'], ['users.id'], name=op.f('fk_consult_settings_facilitator_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consult_settings')),
    sa.UniqueConstraint('facilitator_id', name=op.f('uq_consult_settings_facilitator_id'))
    )
    op.create_table('consultations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_uid', sa.String(length=120), nullable=False),
    sa.Column('facilitator_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=17), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('booked_via', sa.String(length=16), nullable=False),
    sa.Column('guest_name', sa.String(length=200), nullable=False),
    sa.Column('guest_email', sa.String(length=254), nullable=False),
    sa.Column('guest_phone', sa.String(length=40), nullable=True),
    sa.Column('guest_tz', sa.String(length=64), nullable=False),
    sa.Column('heard_from', sa.String(length=200), nullable=True),
    sa.Column('reason_encrypted', sa.Text(), nullable=True),
    sa.Column('answers_encrypted', sa.Text(), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('manage_token_hash', sa.String(length=64), nullable=True),
    sa.Column('manage_token_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=16), nullable=True),
    sa.Column('outcome_recorded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome_recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recommended_cohort', sa.String(length=200), nullable=True),
    sa.Column('outcome_notes_encrypted', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('blocked_start <= start_at AND blocked_end >= end_at', name=op.f('ck_consultations_blocked_covers_call')),
    sa.CheckConstraint('end_at > start_at', name=op.f('ck_consultations_ends_after_start')),
    sa.ForeignKeyConstraint(['facilitator_id'], ['users.id'], name=op.f('fk_consultations_facilitator_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['outcome_recorded_by_id'], ['users.id'], name=op.f('fk_consultations_outcome_recorded_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['participant_id'], ['users.id'], name=op.f('fk_consultations_participant_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultations')),
    sa.UniqueConstraint('calendar_uid', name=op.f('uq_consultations_calendar_uid')),
    sa.UniqueConstraint('manage_token_hash', name=op.f('uq_consultations_manage_token_hash'))
    )
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.create_index('ix_consultations_facilitator_blocked', ['facilitator_id', 'blocked_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_guest_email'), ['guest_email'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consultations_status'), ['status'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(NO_OVERLAP_DDL)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE consultations DROP CONSTRAINT IF EXISTS ex_consultations_no_overlap")
    with op.batch_alter_table('consultations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consultations_status'))
        batch_op.drop_index(batch_op.f('ix_consultations_participant_id'))
        batch_op.drop_index(batch_op.f('ix_consultations_guest_email'))
        batch_op.drop_index('ix_consultations_facilitator_blocked')

    op.drop_table('consultations')
    op.drop_table('consult_settings')
    with op.batch_alter_table('availability_rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_availability_rules_facilitator_id'))

    op.drop_table('availability_rules')
    with op.batch_alter_table('availability_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_availability_overrides_facilitator_day')

    op.drop_table('availability_overrides')
