"""Finance screens: a discount code's per-person limit and the cohorts it applies to; the refund
schedule an enrollment applied under (JSON snapshot); a finance-only internal note on a refund.

Expand-only: one new table and nullable columns.

Revision ID: money01
Revises: feeds02
Create Date: 2026-12-07 08:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'money01'
down_revision = 'feeds02'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('discount_codes', sa.Column('per_person_limit', sa.Integer(), nullable=True))
    op.create_table(
        'discount_code_cohorts',
        sa.Column('code_id', sa.Integer(), sa.ForeignKey('discount_codes.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('cohort_id', sa.Integer(), sa.ForeignKey('cohorts.id', ondelete='CASCADE'),
                  primary_key=True, index=True),
    )
    op.add_column('enrollments', sa.Column('refund_schedule', sa.JSON(), nullable=True))
    op.add_column('refunds', sa.Column('internal_note', sa.Text(), nullable=True))


def downgrade():
    op.drop_column('refunds', 'internal_note')
    op.drop_column('enrollments', 'refund_schedule')
    op.drop_table('discount_code_cohorts')
    op.drop_column('discount_codes', 'per_person_limit')
