"""SMS for guests: a phone number may belong to a consult booking made without an account.

Revision ID: sms02
Revises: sms01
Create Date: 2026-12-07 11:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = "sms02"
down_revision = "sms01"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("phone_numbers") as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("consultation_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f("fk_phone_numbers_consultation_id_consultations"), "consultations",
                                 ["consultation_id"], ["id"], ondelete="CASCADE")
        batch.create_unique_constraint(batch.f("uq_phone_numbers_consultation_id"), ["consultation_id"])
        batch.create_check_constraint(batch.f("ck_phone_numbers_one_owner"), "(user_id IS NULL) <> (consultation_id IS NULL)")


def downgrade():
    op.execute("DELETE FROM phone_numbers WHERE user_id IS NULL")
    with op.batch_alter_table("phone_numbers") as batch:
        batch.drop_constraint(batch.f("ck_phone_numbers_one_owner"), type_="check")
        batch.drop_constraint(batch.f("uq_phone_numbers_consultation_id"), type_="unique")
        batch.drop_constraint(batch.f("fk_phone_numbers_consultation_id_consultations"), type_="foreignkey")
        batch.drop_column("consultation_id")
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
