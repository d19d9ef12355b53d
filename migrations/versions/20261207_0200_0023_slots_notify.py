"""Slots notify: consult_settings and facilitator changes NOTIFY retreat_slots (the slot cache's listener)

PostgreSQL only (a no-op elsewhere). The statements are the ones ``retreat.consults.models`` runs
for ``create_all`` (tests/unit/test_slot_changes_ddl.py keeps them the same).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 02:00:00

"""
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

SLOTS_NOTIFY_DDL = (
    "CREATE OR REPLACE FUNCTION retreat_notify_slots() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_notify('retreat_slots', TG_TABLE_NAME); RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER consult_settings_notify_slots "
    "AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON consult_settings "
    "FOR EACH STATEMENT EXECUTE FUNCTION retreat_notify_slots()",
    "CREATE OR REPLACE TRIGGER users_notify_slots AFTER UPDATE OF role, is_active ON users "
    "FOR EACH STATEMENT EXECUTE FUNCTION retreat_notify_slots()",
)
SLOTS_NOTIFY_DROP = (
    "DROP TRIGGER IF EXISTS users_notify_slots ON users",
    "DROP TRIGGER IF EXISTS consult_settings_notify_slots ON consult_settings",
    "DROP FUNCTION IF EXISTS retreat_notify_slots()",
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in SLOTS_NOTIFY_DDL:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in SLOTS_NOTIFY_DROP:
        op.execute(statement)
