"""programme_reminder: which reminder of an opt-in programme went out (once per programme and
days before the deadline)

Revision ID: h14_g1
Revises: h14_a1
Create Date: 2026-12-07 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h14_g1'
down_revision = 'h14_a1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('programme_reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('mailing_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mailing_id'], ['mailing.id'], name=op.f('fk_programme_reminder_mailing_id_mailing')),
    sa.ForeignKeyConstraint(['programme_id'], ['programme.id'], name=op.f('fk_programme_reminder_programme_id_programme')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programme_reminder')),
    sa.UniqueConstraint('programme_id', 'days', name=op.f('uq_programme_reminder_programme_id'))
    )


def downgrade():
    op.drop_table('programme_reminder')
