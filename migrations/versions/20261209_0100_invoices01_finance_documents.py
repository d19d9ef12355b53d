"""Finance documents: numbered receipts and credit notes with the practice's legal details as
issued, and the per-series counters their gapless numbers come from (seeded: R and C at 0).

Expand-only: two new tables. The practice's legal details are a site setting (no schema).

Revision ID: invoices01
Revises: obs01
Create Date: 2026-12-09 01:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'invoices01'
down_revision = 'obs01'
branch_labels = None
depends_on = None


def upgrade():
    counters = op.create_table('document_counters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series', sa.String(length=8), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.CheckConstraint('last_number >= 0', name=op.f('ck_document_counters_last_number_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_document_counters')),
    sa.UniqueConstraint('series', name=op.f('uq_document_counters_series'))
    )
    op.bulk_insert(counters, [{'id': 1, 'series': 'R', 'last_number': 0}, {'id': 2, 'series': 'C', 'last_number': 0}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('document_counters', 'id'), 2)")
    op.create_table('finance_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=19), nullable=False),
    sa.Column('series', sa.String(length=8), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=30), nullable=False),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=False),
    sa.Column('enrollment_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('refund_id', sa.Integer(), nullable=True),
    sa.Column('amount_minor', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('legal_address', sa.Text(), nullable=False),
    sa.Column('tax_id', sa.String(length=60), nullable=False),
    sa.Column('footer', sa.Text(), nullable=False),
    sa.CheckConstraint('seq > 0', name=op.f('ck_finance_documents_seq_positive')),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_finance_documents_enrollment_id_enrollments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_finance_documents_ledger_entry_id_ledger_entries'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_finance_documents_payment_id_payments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_finance_documents_refund_id_refunds'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finance_documents')),
    sa.UniqueConstraint('ledger_entry_id', name=op.f('uq_finance_documents_ledger_entry_id')),
    sa.UniqueConstraint('number', name=op.f('uq_finance_documents_number')),
    sa.UniqueConstraint('series', 'seq', name='one_per_number')
    )
    with op.batch_alter_table('finance_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_finance_documents_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_finance_documents_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_finance_documents_refund_id'), ['refund_id'], unique=False)


def downgrade():
    with op.batch_alter_table('finance_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_finance_documents_refund_id'))
        batch_op.drop_index(batch_op.f('ix_finance_documents_payment_id'))
        batch_op.drop_index(batch_op.f('ix_finance_documents_enrollment_id'))
    op.drop_table('finance_documents')
    op.drop_table('document_counters')
