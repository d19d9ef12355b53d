"""Dosing days: the provider organisation's dosing settings, the clinicians it assigns to a dosing
session, per person a dosing record (state, version) with its append-only encrypted entries; a
retreat's region (state code) and country; licence states stored as codes.

Data steps (plain SQL, no app models): licence states written as full names ("COLORADO",
"Colorado") become their USPS code ("CO"); a retreat whose location names a US state gets that
state's code as its region. Downgrade drops the tables and the columns; licence codes stay codes
(they were valid input before too).

Revision ID: dosing01
Revises: 0024dr
Create Date: 2026-12-07 05:01:11.879074

"""
import sqlalchemy as sa
from alembic import op

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands",
}


# revision identifiers, used by Alembic.
revision = 'dosing01'
down_revision = 'homes01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dosing_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('accepted_license_kinds', sa.String(length=200), nullable=False),
    sa.Column('hold_systolic', sa.Integer(), nullable=False),
    sa.Column('hold_diastolic', sa.Integer(), nullable=False),
    sa.Column('hr_high', sa.Integer(), nullable=False),
    sa.Column('hr_low', sa.Integer(), nullable=False),
    sa.Column('spo2_low', sa.Integer(), nullable=False),
    sa.Column('check_interval_minutes', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('check_interval_minutes BETWEEN 5 AND 120', name=op.f('ck_dosing_settings_interval_range')),
    sa.CheckConstraint('hold_systolic BETWEEN 100 AND 260 AND hold_diastolic BETWEEN 60 AND 160', name=op.f('ck_dosing_settings_bp_range')),
    sa.CheckConstraint('hr_low < hr_high', name=op.f('ck_dosing_settings_hr_order')),
    sa.ForeignKeyConstraint(['organization_id'], ['provider_organizations.id'], name=op.f('fk_dosing_settings_organization_id_provider_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dosing_settings')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_dosing_settings_organization_id'))
    )
    op.create_table('dosing_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('clinician_id', sa.Integer(), nullable=False),
    sa.Column('license_id', sa.Integer(), nullable=True),
    sa.Column('license_kind', sa.String(length=32), nullable=False),
    sa.Column('license_state', sa.String(length=8), nullable=False),
    sa.Column('license_expires_on', sa.Date(), nullable=False),
    sa.Column('assigned_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assigned_by_id'], ['users.id'], name=op.f('fk_dosing_assignments_assigned_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['clinician_id'], ['users.id'], name=op.f('fk_dosing_assignments_clinician_id_users'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['license_id'], ['provider_licenses.id'], name=op.f('fk_dosing_assignments_license_id_provider_licenses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['session_id'], ['cohort_sessions.id'], name=op.f('fk_dosing_assignments_session_id_cohort_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dosing_assignments')),
    sa.UniqueConstraint('session_id', 'clinician_id', name='one_per_clinician')
    )
    with op.batch_alter_table('dosing_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dosing_assignments_clinician_id'), ['clinician_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dosing_assignments_session_id'), ['session_id'], unique=False)

    op.create_table('dosing_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=23), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('dose_held', sa.Boolean(), nullable=False),
    sa.Column('needs_attention', sa.Boolean(), nullable=False),
    sa.Column('overridden', sa.Boolean(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dosed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_check_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('discharged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shared_note_enc', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_dosing_records_enrollment_id_enrollments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['session_id'], ['cohort_sessions.id'], name=op.f('fk_dosing_records_session_id_cohort_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dosing_records')),
    sa.UniqueConstraint('session_id', 'enrollment_id', name='one_per_person')
    )
    with op.batch_alter_table('dosing_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dosing_records_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dosing_records_session_id'), ['session_id'], unique=False)

    op.create_table('dosing_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=22), nullable=False),
    sa.Column('idempotency_key', sa.String(length=80), nullable=False),
    sa.Column('body_enc', sa.Text(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('license_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version_after', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_dosing_entries_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['license_id'], ['provider_licenses.id'], name=op.f('fk_dosing_entries_license_id_provider_licenses'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['record_id'], ['dosing_records.id'], name=op.f('fk_dosing_entries_record_id_dosing_records'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dosing_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_dosing_entries_idempotency_key'))
    )
    with op.batch_alter_table('dosing_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dosing_entries_record_id'), ['record_id'], unique=False)

    with op.batch_alter_table('retreats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region', sa.String(length=8), server_default='', nullable=False))
        batch_op.add_column(sa.Column('country', sa.String(length=2), server_default='US', nullable=False))

    conn = op.get_bind()
    for code, name in US_STATES.items():
        conn.execute(sa.text("UPDATE provider_licenses SET state = :code WHERE UPPER(TRIM(state)) = :name"),
                     {"code": code, "name": name.upper()[:8]})
        conn.execute(sa.text("UPDATE provider_licenses SET state = :code WHERE UPPER(TRIM(state)) = :code"),
                     {"code": code})
        conn.execute(sa.text("UPDATE retreats SET region = :code WHERE region = '' AND UPPER(location) LIKE :pat"),
                     {"code": code, "pat": f"%{name.upper()}%"})


def downgrade():
    with op.batch_alter_table('retreats', schema=None) as batch_op:
        batch_op.drop_column('country')
        batch_op.drop_column('region')

    with op.batch_alter_table('dosing_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dosing_entries_record_id'))

    op.drop_table('dosing_entries')
    with op.batch_alter_table('dosing_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dosing_records_session_id'))
        batch_op.drop_index(batch_op.f('ix_dosing_records_enrollment_id'))

    op.drop_table('dosing_records')
    with op.batch_alter_table('dosing_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dosing_assignments_session_id'))
        batch_op.drop_index(batch_op.f('ix_dosing_assignments_clinician_id'))

    op.drop_table('dosing_assignments')
    op.drop_table('dosing_settings')
