"""Stripe payouts and the balance transactions (lines) each one settled

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 05:23:14.853297

"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stripe_payout_id', sa.String(length=80), nullable=False),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('arrival_date', sa.Date(), nullable=False),
    sa.Column('stripe_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('stripe_payout_id', name=op.f('uq_payouts_stripe_payout_id'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payouts_arrival_date'), ['arrival_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_payouts_stripe_created_at'), ['stripe_created_at'], unique=False)

    op.create_table('payout_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payout_id', sa.Integer(), nullable=False),
    sa.Column('balance_transaction_id', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=18), nullable=False),
    sa.Column('stripe_type', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=80), nullable=True),
    sa.Column('gross_minor', sa.Integer(), nullable=False),
    sa.Column('fee_minor', sa.Integer(), nullable=False),
    sa.Column('net_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('stripe_created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('refund_id', sa.Integer(), nullable=True),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
    sa.Column('enrollment_id', sa.Integer(), nullable=True),
    sa.Column('cohort_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['cohort_id'], ['cohorts.id'], name=op.f('fk_payout_lines_cohort_id_cohorts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_payout_lines_enrollment_id_enrollments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_payout_lines_ledger_entry_id_ledger_entries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payout_lines_payment_id_payments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['payout_id'], ['payouts.id'], name=op.f('fk_payout_lines_payout_id_payouts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_payout_lines_refund_id_refunds'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_lines')),
    sa.UniqueConstraint('balance_transaction_id', name=op.f('uq_payout_lines_balance_transaction_id')),
    sa.UniqueConstraint('ledger_entry_id', name=op.f('uq_payout_lines_ledger_entry_id'))
    )
    with op.batch_alter_table('payout_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_lines_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_lines_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_lines_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index('ix_payout_lines_payout_kind', ['payout_id', 'kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_lines_refund_id'), ['refund_id'], unique=False)



def downgrade():
    with op.batch_alter_table('payout_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_lines_refund_id'))
        batch_op.drop_index('ix_payout_lines_payout_kind')
        batch_op.drop_index(batch_op.f('ix_payout_lines_payment_id'))
        batch_op.drop_index(batch_op.f('ix_payout_lines_enrollment_id'))
        batch_op.drop_index(batch_op.f('ix_payout_lines_cohort_id'))

    op.drop_table('payout_lines')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payouts_stripe_created_at'))
        batch_op.drop_index(batch_op.f('ix_payouts_arrival_date'))

    op.drop_table('payouts')
