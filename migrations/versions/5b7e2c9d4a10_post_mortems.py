"""post-mortems (复盘): the six-step review of an event

Revision ID: 5b7e2c9d4a10
Revises: 2fe537ab7000
Create Date: 2026-11-22 06:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b7e2c9d4a10'
down_revision = '2fe537ab7000'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('postmortem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('goals', sa.Text(), nullable=False),
    sa.Column('narrative', sa.Text(), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('causes', sa.Text(), nullable=False),
    sa.Column('lessons', sa.Text(), nullable=False),
    sa.Column('conclusion', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_postmortem_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_postmortem_event_id_event')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_postmortem_updated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postmortem')),
    sa.UniqueConstraint('event_id', name=op.f('uq_postmortem_event_id'))
    )
    op.create_table('postmortem_pdf',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('postmortem_id', sa.Integer(), nullable=False),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('signoff_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_postmortem_pdf_status_known')),
    sa.ForeignKeyConstraint(['postmortem_id'], ['postmortem.id'], name=op.f('fk_postmortem_pdf_postmortem_id_postmortem')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_postmortem_pdf_requested_by_id_user_account')),
    sa.ForeignKeyConstraint(['signoff_id'], ['signoff_request.id'], name=op.f('fk_postmortem_pdf_signoff_id_signoff_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postmortem_pdf'))
    )
    op.create_index(op.f('ix_postmortem_pdf_postmortem_id'), 'postmortem_pdf', ['postmortem_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_postmortem_pdf_postmortem_id'), table_name='postmortem_pdf')
    op.drop_table('postmortem_pdf')
    op.drop_table('postmortem')
