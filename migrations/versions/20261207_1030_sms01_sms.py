"""SMS reminders: phone numbers (verified by a code, encrypted) and the SMS outbox.

Revision ID: sms01
Revises: apitok01
Create Date: 2026-12-07 10:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "sms01"
down_revision = "apitok01"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number_enc", sa.Text(), nullable=True),
        sa.Column("number_hash", sa.String(64), nullable=True),
        sa.Column("verified_at", TS, nullable=True),
        sa.Column("sms_enabled", sa.Boolean(), nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
        sa.Column("pending_enc", sa.Text(), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_expires_at", TS, nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("code_sent_at", TS, nullable=True),
        sa.Column("codes_window_start", TS, nullable=True),
        sa.Column("codes_in_window", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("user_id", name="uq_phone_numbers_user_id"),
    )
    op.create_index("ix_phone_numbers_number_hash", "phone_numbers", ["number_hash"])
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", sa.String(220), nullable=False),
        sa.Column("group_key", sa.String(120), nullable=True),
        sa.Column("recipient_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
        sa.Column("to_number_enc", sa.Text(), nullable=False),
        sa.Column("to_hash", sa.String(64), nullable=False),
        sa.Column("recipient_tz", sa.String(64), nullable=False),
        sa.Column("template", sa.String(60), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("private_enc", sa.Text(), nullable=True),
        sa.Column("essential", sa.Boolean(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("stale_after", TS, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("status", sa.String(17), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("provider_message_id", sa.String(64), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("dedupe_key", name="uq_sms_messages_dedupe_key"),
    )
    op.create_index("ix_sms_messages_group_key", "sms_messages", ["group_key"])
    op.create_index("ix_sms_messages_recipient_user_id", "sms_messages", ["recipient_user_id"])
    op.create_index("ix_sms_messages_to_hash", "sms_messages", ["to_hash"])
    op.create_index("ix_sms_messages_due", "sms_messages", ["status", "next_attempt_at"])


def downgrade():
    op.drop_table("sms_messages")
    op.drop_table("phone_numbers")
