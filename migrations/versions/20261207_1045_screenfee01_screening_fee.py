"""Screening fee: an optional fee per cohort charged with the application (cohorts.screening_fee_minor,
0 = none), its snapshot on the enrollment and when it was paid; payments.kind widened for the new
kind ``screening_fee``.

Revision ID: screenfee01
Revises: apitok01
Create Date: 2026-12-07 10:45:00

"""
import sqlalchemy as sa
from alembic import op

revision = "screenfee01"
down_revision = "sms02"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("cohorts", sa.Column("screening_fee_minor", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("enrollments", sa.Column("screening_fee_minor", sa.Integer(), nullable=True))
    op.add_column("enrollments", sa.Column("screening_fee_paid_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("payments") as batch_op:
        batch_op.alter_column("kind", existing_type=sa.String(length=19), type_=sa.String(length=21),
                              existing_nullable=False)


def downgrade():
    with op.batch_alter_table("payments") as batch_op:
        batch_op.alter_column("kind", existing_type=sa.String(length=21), type_=sa.String(length=19),
                              existing_nullable=False)
    with op.batch_alter_table("enrollments") as batch_op:
        batch_op.drop_column("screening_fee_paid_at")
        batch_op.drop_column("screening_fee_minor")
    with op.batch_alter_table("cohorts") as batch_op:
        batch_op.drop_column("screening_fee_minor")
