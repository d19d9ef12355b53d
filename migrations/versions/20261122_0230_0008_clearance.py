"""clearance: medical intakes, clearance requests, the information-request thread, safety alerts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 02:30:35.022032

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('intakes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=17), nullable=False),
    sa.Column('answers_enc', sa.Text(), nullable=True),
    sa.Column('screening_enc', sa.Text(), nullable=True),
    sa.Column('screening_level', sa.String(length=32), nullable=True),
    sa.Column('safety_concern', sa.Boolean(), nullable=False),
    sa.Column('last_saved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submissions', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_intakes_enrollment_id_enrollments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['participant_id'], ['users.id'], name=op.f('fk_intakes_participant_id_users'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intakes')),
    sa.UniqueConstraint('enrollment_id', name=op.f('uq_intakes_enrollment_id'))
    )
    with op.batch_alter_table('intakes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intakes_participant_id'), ['participant_id'], unique=False)

    op.create_table('safety_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'], name=op.f('fk_safety_alerts_acknowledged_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_safety_alerts_cohort_id_cohorts'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_safety_alerts_enrollment_id_enrollments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organization_id'], ['provider_organizations.id'], name=op.f('fk_safety_alerts_organization_id_provider_organizations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_safety_alerts'))
    )
    with op.batch_alter_table('safety_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_safety_alerts_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_safety_alerts_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_safety_alerts_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('uq_safety_alerts_one_open', ['enrollment_id'], unique=True, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    op.create_table('clearance_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('intake_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=22), nullable=False),
    sa.Column('renewal', sa.Boolean(), nullable=False),
    sa.Column('referred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('resume_status', sa.String(length=40), nullable=True),
    sa.Column('decision', sa.String(length=40), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('license_id', sa.Integer(), nullable=True),
    sa.Column('license_kind', sa.String(length=32), nullable=True),
    sa.Column('license_number', sa.String(length=64), nullable=True),
    sa.Column('license_state', sa.String(length=8), nullable=True),
    sa.Column('license_expires_on', sa.Date(), nullable=True),
    sa.Column('attestation_name', sa.String(length=200), nullable=True),
    sa.Column('attestation_text', sa.Text(), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('conditions_enc', sa.Text(), nullable=True),
    sa.Column('conditions_shareable', sa.Boolean(), nullable=False),
    sa.Column('rationale_enc', sa.Text(), nullable=True),
    sa.Column('participant_note_enc', sa.Text(), nullable=True),
    sa.Column('absolute_override', sa.Boolean(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_clearance_requests_decided_by_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_clearance_requests_enrollment_id_enrollments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['intake_id'], ['intakes.id'], name=op.f('fk_clearance_requests_intake_id_intakes'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['license_id'], ['provider_licenses.id'], name=op.f('fk_clearance_requests_license_id_provider_licenses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organization_id'], ['provider_organizations.id'], name=op.f('fk_clearance_requests_organization_id_provider_organizations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clearance_requests'))
    )
    with op.batch_alter_table('clearance_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clearance_requests_decided_by_id'), ['decided_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clearance_requests_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clearance_requests_intake_id'), ['intake_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clearance_requests_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('uq_clearance_requests_one_open', ['enrollment_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'info_requested')"), sqlite_where=sa.text("status IN ('pending', 'info_requested')"))

    op.create_table('info_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('clearance_request_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_role', sa.String(length=32), nullable=False),
    sa.Column('body_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_info_requests_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['clearance_request_id'], ['clearance_requests.id'], name=op.f('fk_info_requests_clearance_request_id_clearance_requests'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_info_requests'))
    )
    with op.batch_alter_table('info_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_info_requests_clearance_request_id'), ['clearance_request_id'], unique=False)


def downgrade():
    with op.batch_alter_table('info_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_info_requests_clearance_request_id'))

    op.drop_table('info_requests')
    with op.batch_alter_table('clearance_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_clearance_requests_one_open', postgresql_where=sa.text("status IN ('pending', 'info_requested')"), sqlite_where=sa.text("status IN ('pending', 'info_requested')"))
        batch_op.drop_index(batch_op.f('ix_clearance_requests_organization_id'))
        batch_op.drop_index(batch_op.f('ix_clearance_requests_intake_id'))
        batch_op.drop_index(batch_op.f('ix_clearance_requests_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_clearance_requests_decided_by_id'))

    op.drop_table('clearance_requests')
    with op.batch_alter_table('safety_alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_safety_alerts_one_open', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index(batch_op.f('ix_safety_alerts_organization_id'))
        batch_op.drop_index(batch_op.f('ix_safety_alerts_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_safety_alerts_cohort_id'))

    op.drop_table('safety_alerts')
    with op.batch_alter_table('intakes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intakes_participant_id'))

    op.drop_table('intakes')
