"""Deletion requests: a participant's request with its reason encrypted, its status and who handled it

Requests made before this table existed are only audit events (``privacy.deletion_requested``, without
their reason): each participant who made one gets one open request (first and latest time, how many),
so that the admins' list shows it. Plain SQL, no app models. Downgrade drops the table; the audit
events stay.

Revision ID: 0024dr
Revises: g16b_consult_owner_confirmation
Create Date: 2026-12-08 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0024dr'
down_revision = 'g16b_consult_owner_confirmation'
branch_labels = None
depends_on = None

BACKFILL = sa.text(
    "INSERT INTO deletion_requests (participant_id, status, requested_at, last_requested_at, times_requested) "
    "SELECT u.id, 'open', MIN(a.at), MAX(a.at), COUNT(*) FROM audit_events a "
    "JOIN users u ON CAST(u.id AS VARCHAR(32)) = a.object_id "
    "WHERE a.action = 'privacy.deletion_requested' AND a.object_type = 'user' GROUP BY u.id"
)


def upgrade():
    op.create_table(
        'deletion_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('participant_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('times_requested', sa.Integer(), nullable=False),
        sa.Column('reason_enc', sa.Text(), nullable=True),
        sa.Column('handled_by_id', sa.Integer(), nullable=True),
        sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'],
                                name=op.f('fk_deletion_requests_handled_by_id_users'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['participant_id'], ['users.id'],
                                name=op.f('fk_deletion_requests_participant_id_users'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deletion_requests')),
    )
    with op.batch_alter_table('deletion_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deletion_requests_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index('uq_deletion_requests_one_open', ['participant_id'], unique=True,
                              postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
    op.execute(BACKFILL)


def downgrade():
    with op.batch_alter_table('deletion_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_deletion_requests_one_open', postgresql_where=sa.text("status = 'open'"),
                            sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index(batch_op.f('ix_deletion_requests_participant_id'))
    op.drop_table('deletion_requests')
