"""Calendar subscriptions: one private, revocable feed link per person (its token hashed for lookup
and encrypted for display), and tombstones of deleted sessions so feeds publish them cancelled.

Revision ID: feeds01
Revises: rights01
Create Date: 2026-12-07 07:20:00

"""
import sqlalchemy as sa
from alembic import op


revision = "feeds01"
down_revision = "rights01"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("last_fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_calendar_feeds_user_id", "calendar_feeds", ["user_id"])
    op.create_table(
        "calendar_tombstones",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(120), nullable=False, unique=True),
        sa.Column("cohort_id", sa.Integer(), sa.ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("facilitator_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_calendar_tombstones_cohort_id", "calendar_tombstones", ["cohort_id"])


def downgrade():
    op.drop_index("ix_calendar_tombstones_cohort_id", "calendar_tombstones")
    op.drop_table("calendar_tombstones")
    op.drop_index("ix_calendar_feeds_user_id", "calendar_feeds")
    op.drop_table("calendar_feeds")
