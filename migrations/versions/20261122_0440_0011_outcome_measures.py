"""Outcome measures: PHQ-9 and GAD-7 at baseline, post, 1 and 3 months (encrypted)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 04:40:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outcome_measures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=False),
        sa.Column('participant_id', sa.Integer(), nullable=False),
        sa.Column('cohort_id', sa.Integer(), nullable=False),
        sa.Column('instrument', sa.String(length=12), nullable=False),
        sa.Column('timepoint', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('answers_enc', sa.Text(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_outcome_measures_cohort_id_cohorts'),
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_outcome_measures_enrollment_id_enrollments'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['participant_id'], ['users.id'],
                                name=op.f('fk_outcome_measures_participant_id_users'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outcome_measures')),
        sa.UniqueConstraint('enrollment_id', 'instrument', 'timepoint',
                            name=op.f('uq_outcome_measures_enrollment_id_instrument_timepoint')),
    )
    with op.batch_alter_table('outcome_measures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outcome_measures_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcome_measures_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcome_measures_participant_id'), ['participant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('outcome_measures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outcome_measures_participant_id'))
        batch_op.drop_index(batch_op.f('ix_outcome_measures_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_outcome_measures_cohort_id'))
    op.drop_table('outcome_measures')
