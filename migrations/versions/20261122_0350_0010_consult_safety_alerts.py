"""Safety alerts raised by a consult's pre-screen

Revision ID: 0010
Revises: 0003
Create Date: 2026-11-22 03:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('safety_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consultation_id', sa.Integer(), nullable=True))
        batch_op.alter_column('enrollment_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('cohort_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_safety_alerts_consultation_id_consultations'), 'consultations',
                                    ['consultation_id'], ['id'], ondelete='RESTRICT')
        batch_op.create_check_constraint(batch_op.f('ck_safety_alerts_has_subject'),
                                         'enrollment_id IS NOT NULL OR consultation_id IS NOT NULL')
        batch_op.create_index(batch_op.f('ix_safety_alerts_consultation_id'), ['consultation_id'], unique=False)
        batch_op.create_index('uq_safety_alerts_one_open_consult', ['consultation_id'], unique=True,
                              postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))


def downgrade():
    op.execute("DELETE FROM safety_alerts WHERE enrollment_id IS NULL")
    with op.batch_alter_table('safety_alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_safety_alerts_one_open_consult', postgresql_where=sa.text("status = 'open'"),
                            sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index(batch_op.f('ix_safety_alerts_consultation_id'))
        batch_op.drop_constraint(batch_op.f('ck_safety_alerts_has_subject'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_safety_alerts_consultation_id_consultations'), type_='foreignkey')
        batch_op.alter_column('cohort_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('enrollment_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('consultation_id')
