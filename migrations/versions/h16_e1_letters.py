"""letters: letter runs (one print-ready PDF of personalised letters) and their letters

Revision ID: h16_e1
Revises: h16_d1
Create Date: 2026-12-07 22:10:00.000000

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = 'h16_e1'
down_revision = 'h16_d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('letter_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('programme_id', sa.Integer(), nullable=True),
    sa.Column('signoff_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('with_zip', sa.Boolean(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('zip_sha256', sa.String(length=64), nullable=True),
    sa.Column('zip_size', sa.Integer(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_letter_run_event_id_event')),
    sa.ForeignKeyConstraint(['version_id'], ['notice_version.id'], name=op.f('fk_letter_run_version_id_notice_version')),
    sa.ForeignKeyConstraint(['programme_id'], ['programme.id'], name=op.f('fk_letter_run_programme_id_programme')),
    sa.ForeignKeyConstraint(['signoff_id'], ['signoff_request.id'], name=op.f('fk_letter_run_signoff_id_signoff_request')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_letter_run_requested_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letter_run'))
    )
    with op.batch_alter_table('letter_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letter_run_event_id'), ['event_id'], unique=False)

    op.create_table('letter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('verification_code', sa.String(length=10), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['letter_run.id'], name=op.f('fk_letter_run_id_letter_run')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_letter_customer_id_customer')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letter')),
    sa.UniqueConstraint('run_id', 'customer_id', name=op.f('uq_letter_run_id')),
    sa.UniqueConstraint('verification_code', name=op.f('uq_letter_verification_code'))
    )
    with op.batch_alter_table('letter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letter_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_letter_run_id'), ['run_id'], unique=False)


def downgrade():
    with op.batch_alter_table('letter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letter_run_id'))
        batch_op.drop_index(batch_op.f('ix_letter_customer_id'))
    op.drop_table('letter')
    with op.batch_alter_table('letter_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letter_run_event_id'))
    op.drop_table('letter_run')
