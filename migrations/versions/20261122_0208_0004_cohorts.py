"""cohorts

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-22 02:08:24.471538

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('retreats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.String(length=400), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('included', sa.Text(), nullable=False),
    sa.Column('guide_filename', sa.String(length=200), nullable=True),
    sa.Column('guide_stored_name', sa.String(length=80), nullable=True),
    sa.Column('guide_size', sa.Integer(), nullable=True),
    sa.Column('is_published', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retreats')),
    sa.UniqueConstraint('slug', name=op.f('uq_retreats_slug'))
    )
    op.create_table('cohorts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('retreat_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('seats_taken', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('price_minor', sa.Integer(), nullable=False),
    sa.Column('deposit_minor', sa.Integer(), nullable=False),
    sa.Column('balance_due_on', sa.Date(), nullable=True),
    sa.Column('refund_policy', sa.Text(), nullable=False),
    sa.Column('deposit_timing', sa.String(length=24), nullable=False),
    sa.Column('provider_organization_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=17), nullable=False),
    sa.Column('hold_minutes', sa.Integer(), nullable=False),
    sa.Column('offer_hours', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('capacity > 0', name=op.f('ck_cohorts_capacity_positive')),
    sa.CheckConstraint('deposit_minor >= 0 AND deposit_minor <= price_minor', name=op.f('ck_cohorts_deposit_within_price')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_cohorts_ends_after_start')),
    sa.CheckConstraint('seats_taken >= 0 AND seats_taken <= capacity', name=op.f('ck_cohorts_seats_within_capacity')),
    sa.ForeignKeyConstraint(['provider_organization_id'], ['provider_organizations.id'], name=op.f('fk_cohorts_provider_organization_id_provider_organizations'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['retreat_id'], ['retreats.id'], name=op.f('fk_cohorts_retreat_id_retreats'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cohorts'))
    )
    with op.batch_alter_table('cohorts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cohorts_provider_organization_id'), ['provider_organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cohorts_retreat_id'), ['retreat_id'], unique=False)

    op.create_table('cohort_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=26), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('video_url', sa.String(length=500), nullable=False),
    sa.Column('facilitator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_cohort_sessions_ends_after_start')),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_cohort_sessions_cohort_id_cohorts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['facilitator_id'], ['users.id'], name=op.f('fk_cohort_sessions_facilitator_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cohort_sessions'))
    )
    with op.batch_alter_table('cohort_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cohort_sessions_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cohort_sessions_facilitator_id'), ['facilitator_id'], unique=False)

    op.create_table('consent_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('published_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['published_by_id'], ['users.id'], name=op.f('fk_consent_documents_published_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_documents')),
    sa.UniqueConstraint('kind', 'version', name='one_per_version')
    )
    op.create_table('enrollment_parties',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('invite_email', sa.String(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_enrollment_parties_cohort_id_cohorts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_parties'))
    )
    with op.batch_alter_table('enrollment_parties', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_parties_cohort_id'), ['cohort_id'], unique=False)

    op.create_table('enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=25), nullable=False),
    sa.Column('seat', sa.String(length=17), nullable=False),
    sa.Column('hold_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('holds_taken', sa.Integer(), nullable=False),
    sa.Column('seat_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('waitlist_position', sa.Integer(), nullable=True),
    sa.Column('waitlisted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('offer_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('offers_made', sa.Integer(), nullable=False),
    sa.Column('party_id', sa.Integer(), nullable=True),
    sa.Column('motivation', sa.Text(), nullable=False),
    sa.Column('lodging', sa.String(length=120), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_enrollments_cohort_id_cohorts'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['participant_id'], ['users.id'], name=op.f('fk_enrollments_participant_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['party_id'], ['enrollment_parties.id'], name=op.f('fk_enrollments_party_id_enrollment_parties'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments')),
    sa.UniqueConstraint('cohort_id', 'participant_id', name='one_per_cohort')
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollments_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index('ix_enrollments_cohort_seat', ['cohort_id', 'seat'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_party_id'), ['party_id'], unique=False)

    op.create_table('attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=15), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_attendance_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_attendance_recorded_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['session_id'], ['cohort_sessions.id'], name=op.f('fk_attendance_session_id_cohort_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attendance')),
    sa.UniqueConstraint('session_id', 'enrollment_id', name='one_per_session')
    )
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendance_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_session_id'), ['session_id'], unique=False)

    op.create_table('checklist_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_checklist_items_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checklist_items')),
    sa.UniqueConstraint('enrollment_id', 'key', name='one_per_key')
    )
    with op.batch_alter_table('checklist_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checklist_items_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('consent_signatures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('document_id', sa.Integer(), nullable=False),
    sa.Column('signer_id', sa.Integer(), nullable=False),
    sa.Column('typed_name', sa.String(length=200), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('document_sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['consent_documents.id'], name=op.f('fk_consent_signatures_document_id_consent_documents'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_consent_signatures_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['signer_id'], ['users.id'], name=op.f('fk_consent_signatures_signer_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_signatures')),
    sa.UniqueConstraint('enrollment_id', 'document_id', name='one_per_document')
    )
    with op.batch_alter_table('consent_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_signatures_document_id'), ['document_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_signatures_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('enrollment_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=40), nullable=True),
    sa.Column('to_status', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_enrollment_transitions_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_enrollment_transitions_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_transitions'))
    )
    with op.batch_alter_table('enrollment_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_transitions_enrollment_id'), ['enrollment_id'], unique=False)

    op.create_table('roster_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_roster_notes_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_roster_notes_enrollment_id_enrollments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_notes'))
    )
    with op.batch_alter_table('roster_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roster_notes_enrollment_id'), ['enrollment_id'], unique=False)



def downgrade():
    with op.batch_alter_table('roster_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_roster_notes_enrollment_id'))

    op.drop_table('roster_notes')
    with op.batch_alter_table('enrollment_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_transitions_enrollment_id'))

    op.drop_table('enrollment_transitions')
    with op.batch_alter_table('consent_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_signatures_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_consent_signatures_document_id'))

    op.drop_table('consent_signatures')
    with op.batch_alter_table('checklist_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checklist_items_enrollment_id'))

    op.drop_table('checklist_items')
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attendance_session_id'))
        batch_op.drop_index(batch_op.f('ix_attendance_enrollment_id'))

    op.drop_table('attendance')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollments_party_id'))
        batch_op.drop_index(batch_op.f('ix_enrollments_participant_id'))
        batch_op.drop_index('ix_enrollments_cohort_seat')
        batch_op.drop_index(batch_op.f('ix_enrollments_cohort_id'))

    op.drop_table('enrollments')
    with op.batch_alter_table('enrollment_parties', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_parties_cohort_id'))

    op.drop_table('enrollment_parties')
    op.drop_table('consent_documents')
    with op.batch_alter_table('cohort_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cohort_sessions_facilitator_id'))
        batch_op.drop_index(batch_op.f('ix_cohort_sessions_cohort_id'))

    op.drop_table('cohort_sessions')
    with op.batch_alter_table('cohorts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cohorts_retreat_id'))
        batch_op.drop_index(batch_op.f('ix_cohorts_provider_organization_id'))

    op.drop_table('cohorts')
    op.drop_table('retreats')
