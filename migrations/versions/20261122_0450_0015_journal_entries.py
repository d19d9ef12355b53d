"""Integration journal entries (encrypted text, per-entry sharing with the cohort's facilitators)

Revision ID: 0015
Revises: 0011
Create Date: 2026-11-22 04:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'journal_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('participant_id', sa.Integer(), nullable=False),
        sa.Column('enrollment_id', sa.Integer(), nullable=True),
        sa.Column('realm', sa.String(length=21), nullable=False),
        sa.Column('prompt_key', sa.String(length=40), nullable=True),
        sa.Column('text_enc', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('shared_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'],
                                name=op.f('fk_journal_entries_enrollment_id_enrollments'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['participant_id'], ['users.id'],
                                name=op.f('fk_journal_entries_participant_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries')),
    )
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_entries_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_entries_participant_id'), ['participant_id'], unique=False)


def downgrade():
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_entries_participant_id'))
        batch_op.drop_index(batch_op.f('ix_journal_entries_enrollment_id'))
    op.drop_table('journal_entries')
