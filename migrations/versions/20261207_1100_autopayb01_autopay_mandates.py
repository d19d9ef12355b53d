"""Automatic installments: saved-card mandates (autopay_mandates) and off-session charge attempts
(autopay_attempts, one per installment and attempt number).

Revision ID: autopayb01
Revises: apitok01
Create Date: 2026-12-07 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "autopayb01"
down_revision = "screenfee01"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "autopay_mandates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=80), nullable=True),
        sa.Column("stripe_setup_intent_id", sa.String(length=80), nullable=True),
        sa.Column("stripe_payment_method_id", sa.String(length=80), nullable=True),
        sa.Column("card_brand", sa.String(length=40), nullable=False),
        sa.Column("card_last4", sa.String(length=4), nullable=False),
        sa.Column("card_exp_month", sa.Integer(), nullable=True),
        sa.Column("card_exp_year", sa.Integer(), nullable=True),
        sa.Column("consent_version", sa.String(length=40), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollments.id"],
                                name=op.f("fk_autopay_mandates_enrollment_id_enrollments"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopay_mandates")),
        sa.UniqueConstraint("stripe_setup_intent_id", name=op.f("uq_autopay_mandates_stripe_setup_intent_id")),
    )
    op.create_index("ix_autopay_mandates_enrollment_id", "autopay_mandates", ["enrollment_id"])
    op.create_index("ix_autopay_mandates_enrollment_status", "autopay_mandates", ["enrollment_id", "status"])
    op.create_table(
        "autopay_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mandate_id", sa.Integer(), nullable=False),
        sa.Column("installment_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=23), nullable=False),
        sa.Column("charge_on", sa.Date(), nullable=False),
        sa.Column("retry_on", sa.Date(), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["mandate_id"], ["autopay_mandates.id"],
                                name=op.f("fk_autopay_attempts_mandate_id_autopay_mandates"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["installment_id"], ["installments.id"],
                                name=op.f("fk_autopay_attempts_installment_id_installments"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"],
                                name=op.f("fk_autopay_attempts_payment_id_payments"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopay_attempts")),
        sa.UniqueConstraint("installment_id", "attempt_no", name="one_per_attempt"),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_autopay_attempts_idempotency_key")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_autopay_attempts_payment_id")),
    )
    op.create_index("ix_autopay_attempts_mandate_id", "autopay_attempts", ["mandate_id"])
    op.create_index("ix_autopay_attempts_installment_id", "autopay_attempts", ["installment_id"])


def downgrade():
    op.drop_table("autopay_attempts")
    op.drop_table("autopay_mandates")
