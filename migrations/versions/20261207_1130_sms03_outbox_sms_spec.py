"""SMS twins for reminders queued before a number was verified: the email row keeps its SMS spec.

Revision ID: sms03
Revises: screenfee01
Create Date: 2026-12-07 11:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "sms03"
down_revision = "autopayb01"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("sms_spec", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("sms_spec")
