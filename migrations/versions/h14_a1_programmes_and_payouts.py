"""Remediation programmes (entitlements, their imports, programmes, members) and payouts
(batches, lines, files, bank results); the finance role; a case's programme.

Revision ID: h14_a1
Revises: h13_a1
Create Date: 2026-12-07 07:09:41.794102

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h14_a1'
down_revision = 'h13_a1'
branch_labels = None
depends_on = None


OPEN = "status NOT IN ('closed', 'rejected', 'withdrawn')"


def _money():
    """As ``portal.money.Money`` stores it: integer hundredths on SQLite, NUMERIC elsewhere."""
    return sa.Numeric(14, 2).with_variant(sa.BigInteger(), 'sqlite')


def upgrade():
    op.create_table('entitlement_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('error_rows', sa.Integer(), nullable=False),
    sa.Column('created_count', sa.Integer(), nullable=False),
    sa.Column('updated_count', sa.Integer(), nullable=False),
    sa.Column('first_errors', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_entitlement_import_event_id_event')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_entitlement_import_uploaded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entitlement_import'))
    )
    with op.batch_alter_table('entitlement_import', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entitlement_import_event_id'), ['event_id'], unique=False)

    op.create_table('programme',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('name_zh', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('calculation_date', sa.Date(), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('low_value_threshold', _money(), nullable=True),
    sa.Column('low_value_action', sa.String(length=10), nullable=False),
    sa.Column('budget', _money(), nullable=True),
    sa.Column('terms_zh', sa.Text(), nullable=False),
    sa.Column('terms_en', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('entitlements_sha256', sa.String(length=64), nullable=True),
    sa.Column('amounts_sha256', sa.String(length=64), nullable=True),
    sa.Column('signoff_id', sa.Integer(), nullable=True),
    sa.Column('eligible_count', sa.Integer(), nullable=False),
    sa.Column('generated_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint("kind IN ('refund', 'compensation')", name=op.f('ck_programme_kind_known')),
    sa.CheckConstraint("low_value_action IN ('pay', 'write_off')", name=op.f('ck_programme_low_value_known')),
    sa.CheckConstraint("mode IN ('proactive', 'opt_in')", name=op.f('ck_programme_mode_known')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_programme_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_programme_event_id_event')),
    sa.ForeignKeyConstraint(['signoff_id'], ['signoff_request.id'], name=op.f('fk_programme_signoff_id_signoff_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programme'))
    )
    with op.batch_alter_table('programme', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_programme_event_id'), ['event_id'], unique=False)

    op.create_table('payout_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=20), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('control_sum', _money(), nullable=False),
    sa.Column('prepared_by_id', sa.Integer(), nullable=False),
    sa.Column('prepared_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_by_id', sa.Integer(), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lock_version', sa.Integer(), nullable=False),
    sa.CheckConstraint("method IN ('bank', 'original')", name=op.f('ck_payout_batch_method_known')),
    sa.CheckConstraint('released_by_id IS NULL OR released_by_id <> prepared_by_id', name=op.f('ck_payout_batch_four_eyes')),
    sa.ForeignKeyConstraint(['prepared_by_id'], ['user_account.id'], name=op.f('fk_payout_batch_prepared_by_id_user_account')),
    sa.ForeignKeyConstraint(['programme_id'], ['programme.id'], name=op.f('fk_payout_batch_programme_id_programme')),
    sa.ForeignKeyConstraint(['released_by_id'], ['user_account.id'], name=op.f('fk_payout_batch_released_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_batch')),
    sa.UniqueConstraint('ref', name=op.f('uq_payout_batch_ref'))
    )
    with op.batch_alter_table('payout_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_batch_programme_id'), ['programme_id'], unique=False)

    op.create_table('entitlement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_ref', sa.String(length=64), nullable=False),
    sa.Column('basis_amount', _money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('basis_date', sa.Date(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('payout_sealed', sa.Text(), nullable=True),
    sa.Column('last_import_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('basis_amount > 0', name=op.f('ck_entitlement_basis_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_entitlement_customer_id_customer')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_entitlement_event_id_event')),
    sa.ForeignKeyConstraint(['last_import_id'], ['entitlement_import.id'], name=op.f('fk_entitlement_last_import_id_entitlement_import')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entitlement')),
    sa.UniqueConstraint('event_id', 'customer_id', 'order_ref', name=op.f('uq_entitlement_event_id'))
    )
    with op.batch_alter_table('entitlement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entitlement_customer_id'), ['customer_id'], unique=False)

    op.create_table('payout_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=True),
    sa.Column('control_sum', _money(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batch.id'], name=op.f('fk_payout_file_batch_id_payout_batch')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_payout_file_requested_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_file'))
    )
    with op.batch_alter_table('payout_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_file_batch_id'), ['batch_id'], unique=False)

    op.create_table('payout_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('paid_count', sa.Integer(), nullable=False),
    sa.Column('rejected_count', sa.Integer(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batch.id'], name=op.f('fk_payout_result_batch_id_payout_batch')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_payout_result_uploaded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_result'))
    )
    with op.batch_alter_table('payout_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_result_batch_id'), ['batch_id'], unique=False)

    op.create_table('payout_line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('end_to_end_id', sa.String(length=35), nullable=False),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('payout_sealed', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('bank_ref', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('result_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'paid', 'rejected')", name=op.f('ck_payout_line_status_known')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payout_line_amount_positive')),
    sa.ForeignKeyConstraint(['batch_id'], ['payout_batch.id'], name=op.f('fk_payout_line_batch_id_payout_batch')),
    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], name=op.f('fk_payout_line_case_id_case_file')),
    sa.ForeignKeyConstraint(['result_id'], ['payout_result.id'], name=op.f('fk_payout_line_result_id_payout_result')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_line')),
    sa.UniqueConstraint('end_to_end_id', name=op.f('uq_payout_line_end_to_end_id'))
    )
    with op.batch_alter_table('payout_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_line_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_line_case_id'), ['case_id'], unique=False)
        batch_op.create_index('uq_payout_line_live_case', ['case_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'paid')"), sqlite_where=sa.text("status IN ('pending', 'paid')"))

    op.create_table('programme_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('amount', _money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('unclaimed_reason', sa.String(length=32), nullable=True),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_payouts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_programme_member_amount_not_negative')),
    sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], name=op.f('fk_programme_member_case_id_case_file')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_programme_member_customer_id_customer')),
    sa.ForeignKeyConstraint(['programme_id'], ['programme.id'], name=op.f('fk_programme_member_programme_id_programme')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programme_member')),
    sa.UniqueConstraint('programme_id', 'customer_id', name=op.f('uq_programme_member_programme_id'))
    )
    with op.batch_alter_table('programme_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_programme_member_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_programme_member_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_programme_member_status', ['programme_id', 'status'], unique=False)

    # Added in place (a batch copy of case_file on SQLite would lose its expression index).
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("ALTER TABLE case_file ADD COLUMN programme_id INTEGER CONSTRAINT "
                   "fk_case_file_programme_id_programme REFERENCES programme (id)")
    else:
        op.add_column('case_file', sa.Column('programme_id', sa.Integer(), nullable=True))
        op.create_foreign_key(op.f('fk_case_file_programme_id_programme'), 'case_file',
                              'programme', ['programme_id'], ['id'])
    op.create_index(op.f('ix_case_file_programme_id'), 'case_file', ['programme_id'])

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_user_account_role_known'), type_='check')
        batch_op.create_check_constraint('role_known',
                                         "role IN ('agent', 'legal', 'admin', 'finance')")


def downgrade():
    op.execute("UPDATE user_account SET active = false, role = 'agent' WHERE role = 'finance'")
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_user_account_role_known'), type_='check')
        batch_op.create_check_constraint('role_known', "role IN ('agent', 'legal', 'admin')")
    op.drop_index(op.f('ix_case_file_programme_id'), table_name='case_file')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('fk_case_file_programme_id_programme'), 'case_file',
                           type_='foreignkey')
        op.drop_column('case_file', 'programme_id')
    else:  # a table copy, which drops the expression index: made again
        with op.batch_alter_table('case_file', schema=None) as batch_op:
            batch_op.drop_column('programme_id')
        op.execute("DROP INDEX IF EXISTS uq_case_open_per_order")
        op.create_index('uq_case_open_per_order', 'case_file',
                        ['customer_id', 'kind', sa.text('lower(trim(order_ref))')], unique=True,
                        sqlite_where=sa.text(OPEN))

    with op.batch_alter_table('programme_member', schema=None) as batch_op:
        batch_op.drop_index('ix_programme_member_status')
        batch_op.drop_index(batch_op.f('ix_programme_member_customer_id'))
        batch_op.drop_index(batch_op.f('ix_programme_member_case_id'))

    op.drop_table('programme_member')
    with op.batch_alter_table('payout_line', schema=None) as batch_op:
        batch_op.drop_index('uq_payout_line_live_case', postgresql_where=sa.text("status IN ('pending', 'paid')"), sqlite_where=sa.text("status IN ('pending', 'paid')"))
        batch_op.drop_index(batch_op.f('ix_payout_line_case_id'))
        batch_op.drop_index(batch_op.f('ix_payout_line_batch_id'))

    op.drop_table('payout_line')
    with op.batch_alter_table('payout_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_result_batch_id'))

    op.drop_table('payout_result')
    with op.batch_alter_table('payout_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_file_batch_id'))

    op.drop_table('payout_file')
    with op.batch_alter_table('entitlement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entitlement_customer_id'))

    op.drop_table('entitlement')
    with op.batch_alter_table('payout_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_batch_programme_id'))

    op.drop_table('payout_batch')
    with op.batch_alter_table('programme', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_programme_event_id'))

    op.drop_table('programme')
    with op.batch_alter_table('entitlement_import', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entitlement_import_event_id'))

    op.drop_table('entitlement_import')
