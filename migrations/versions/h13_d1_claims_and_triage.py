"""Claims from notices: events accept claims or not, cases know their source, and the claims
of people not on the import list (confirmed by e-mail, then triaged by an agent)

Revision ID: h13_d1
Revises: h13_c1
Create Date: 2026-12-14 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h13_d1'
down_revision = 'h13_c1'
branch_labels = None
depends_on = None


def _money():
    """As ``portal.money.Money`` stores it: integer hundredths on SQLite, NUMERIC elsewhere."""
    return sa.Numeric(14, 2).with_variant(sa.BigInteger(), 'sqlite')


def upgrade():
    op.add_column('event', sa.Column('accepts_claims', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    # A plain ADD COLUMN: a batch (table copy) on SQLite would lose the expression index of
    # one open case per order.
    op.add_column('case_file', sa.Column('source', sa.String(length=10), nullable=False,
                                         server_default='staff'))
    op.create_table(
        'case_claim',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('phone', sa.String(length=40), nullable=False),
        sa.Column('locale', sa.String(length=8), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('order_ref', sa.String(length=64), nullable=False),
        sa.Column('amount', _money(), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('audit_salt', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision', sa.String(length=8), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('mail_kind', sa.String(length=10), nullable=True),
        sa.Column('mail_status', sa.String(length=8), nullable=True),
        sa.Column('mail_attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('mail_claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('mail_error', sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('unconfirmed', 'waiting', 'accepted', 'rejected')",
                           name=op.f('ck_case_claim_status_known')),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'],
                                name=op.f('fk_case_claim_event_id_event')),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                name=op.f('fk_case_claim_customer_id_customer')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'],
                                name=op.f('fk_case_claim_decided_by_id_user_account')),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'],
                                name=op.f('fk_case_claim_case_id_case_file')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_claim')),
    )
    with op.batch_alter_table('case_claim', schema=None) as batch_op:
        batch_op.create_index('ix_case_claim_status_created', ['status', 'created_at'])
        batch_op.create_index(batch_op.f('ix_case_claim_event_id'), ['event_id'])
        batch_op.create_index(batch_op.f('ix_case_claim_customer_id'), ['customer_id'])
        batch_op.create_index(batch_op.f('ix_case_claim_email'), ['email'])


def downgrade():
    op.drop_table('case_claim')
    op.drop_column('case_file', 'source')
    op.drop_column('event', 'accepts_claims')
