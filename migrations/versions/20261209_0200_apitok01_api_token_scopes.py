"""API token scopes: a nullable JSON list on api_tokens. NULL means "the full access of the
token's role" (tokens created before scopes existed, or created without any scope).

Revision ID: apitok01
Revises: money01
Create Date: 2026-12-07 08:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = "apitok01"
down_revision = "money01"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("api_tokens", sa.Column("scopes", sa.JSON(), nullable=True))


def downgrade():
    op.drop_column("api_tokens", "scopes")
