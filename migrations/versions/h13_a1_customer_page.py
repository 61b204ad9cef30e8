"""Customer page: personal and one-time links (hashes only), the links' lifetime setting,
the events' "check my case" flag, customers' messages on cases and their notification

Revision ID: h13_a1
Revises: h13_b1
Create Date: 2026-12-07 05:30:00.000000

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = 'h13_a1'
down_revision = 'h13_b1'
branch_labels = None
depends_on = None

NOTIFICATION_KINDS = ("'signoff_requested', 'signoff_decided', 'case_assigned'")


def upgrade():
    op.create_table(
        'customer_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('sent_with', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.Column('mail_status', sa.String(length=8), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                name=op.f('fk_customer_link_customer_id_customer')),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['user_account.id'],
                                name=op.f('fk_customer_link_revoked_by_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_link')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_customer_link_token_hash')),
    )
    op.create_index(op.f('ix_customer_link_customer_id'), 'customer_link', ['customer_id'])
    op.create_table(
        'customer_setting',
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_customer_setting')),
    )
    op.create_index('ix_audit_entry_actor_label', 'audit_entry', ['actor_label', 'id'])
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('self_service', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    with op.batch_alter_table('case_note', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_case_note_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known',
                                         "kind IN ('internal', 'reply', 'customer')")
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_notification_kind_known'), type_='check')
        batch_op.create_check_constraint(
            'kind_known', f"kind IN ({NOTIFICATION_KINDS}, 'customer_message')")


def downgrade():
    op.execute("DELETE FROM notification WHERE kind = 'customer_message'")
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_notification_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', f"kind IN ({NOTIFICATION_KINDS})")
    op.execute("DELETE FROM case_note WHERE kind = 'customer'")
    with op.batch_alter_table('case_note', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_case_note_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', "kind IN ('internal', 'reply')")
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_column('self_service')
    op.drop_index('ix_audit_entry_actor_label', table_name='audit_entry')
    op.drop_table('customer_setting')
    op.drop_index(op.f('ix_customer_link_customer_id'), table_name='customer_link')
    op.drop_table('customer_link')
