"""Stripe reconciliation: saved runs and their items (matched, missing, mismatch, dispute)

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-05 05:23:28.889664

"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reconciliation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=15), nullable=False),
    sa.Column('active_slot', sa.Boolean(), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cursor', sa.DateTime(timezone=True), nullable=True),
    sa.Column('objects_seen', sa.Integer(), nullable=False),
    sa.Column('matched_count', sa.Integer(), nullable=False),
    sa.Column('missing_in_ledger_count', sa.Integer(), nullable=False),
    sa.Column('missing_in_stripe_count', sa.Integer(), nullable=False),
    sa.Column('mismatch_count', sa.Integer(), nullable=False),
    sa.Column('dispute_count', sa.Integer(), nullable=False),
    sa.Column('payouts_count', sa.Integer(), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=40), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_reconciliation_runs_requested_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_runs')),
    sa.UniqueConstraint('active_slot', name=op.f('uq_reconciliation_runs_active_slot'))
    )
    op.create_table('reconciliation_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=25), nullable=False),
    sa.Column('kind', sa.String(length=15), nullable=False),
    sa.Column('match_key', sa.String(length=100), nullable=False),
    sa.Column('stripe_object_id', sa.String(length=80), nullable=False),
    sa.Column('stripe_type', sa.String(length=40), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=80), nullable=True),
    sa.Column('stripe_created', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stripe_amount_minor', sa.Integer(), nullable=True),
    sa.Column('stripe_currency', sa.String(length=3), nullable=True),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
    sa.Column('ledger_amount_minor', sa.Integer(), nullable=True),
    sa.Column('ledger_currency', sa.String(length=3), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('cohort_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('repairable', sa.Boolean(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('repaired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('repaired_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_reconciliation_items_cohort_id_cohorts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_reconciliation_items_enrollment_id_enrollments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_reconciliation_items_ledger_entry_id_ledger_entries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['repaired_by_id'], ['users.id'], name=op.f('fk_reconciliation_items_repaired_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['reconciliation_runs.id'], name=op.f('fk_reconciliation_items_run_id_reconciliation_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_items'))
    )
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.create_index('ix_reconciliation_items_run_category', ['run_id', 'category'], unique=False)
        batch_op.create_index('ix_reconciliation_items_run_key', ['run_id', 'match_key'], unique=False)
        batch_op.create_index('ix_reconciliation_items_run_ledger', ['run_id', 'ledger_entry_id'], unique=False)



def downgrade():
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index('ix_reconciliation_items_run_ledger')
        batch_op.drop_index('ix_reconciliation_items_run_key')
        batch_op.drop_index('ix_reconciliation_items_run_category')

    op.drop_table('reconciliation_items')
    op.drop_table('reconciliation_runs')
