"""My work: staff e-mail notifications (rows, and the profile's opt-out), canned case replies,
and which CSV import created and last wrote each customer

Revision ID: h12_d1
Revises: h12_c1
Create Date: 2026-12-07 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h12_d1'
down_revision = 'h12_c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_by_email', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_by_import_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_import_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_customer_created_by_import_id_customer_import',
                                    'customer_import', ['created_by_import_id'], ['id'])
        batch_op.create_foreign_key('fk_customer_last_import_id_customer_import',
                                    'customer_import', ['last_import_id'], ['id'])
    op.create_table(
        'canned_reply',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=120), nullable=False),
        sa.Column('body_zh', sa.Text(), nullable=False),
        sa.Column('body_en', sa.Text(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'],
                                name=op.f('fk_canned_reply_created_by_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_reply')),
    )
    op.create_table(
        'notification',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recipient_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('subject_id', sa.Integer(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('message_id', sa.String(length=200), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('signoff_requested', 'signoff_decided', 'case_assigned')",
                           name=op.f('ck_notification_kind_known')),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')",
                           name=op.f('ck_notification_status_known')),
        sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'],
                                name=op.f('fk_notification_actor_id_user_account')),
        sa.ForeignKeyConstraint(['recipient_id'], ['user_account.id'],
                                name=op.f('fk_notification_recipient_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification')),
    )
    op.create_index('ix_notification_status_recipient', 'notification',
                    ['status', 'recipient_id'], unique=False)


def downgrade():
    op.drop_index('ix_notification_status_recipient', table_name='notification')
    op.drop_table('notification')
    op.drop_table('canned_reply')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_constraint('fk_customer_last_import_id_customer_import',
                                 type_='foreignkey')
        batch_op.drop_constraint('fk_customer_created_by_import_id_customer_import',
                                 type_='foreignkey')
        batch_op.drop_column('last_import_id')
        batch_op.drop_column('created_by_import_id')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('notify_by_email')
