"""Offers customers must accept (an event's offer terms, each customer's decision) and
customers' payout details (the bank account sealed with a key outside the database)

Revision ID: h13_c1
Revises: h12_d1
Create Date: 2026-12-08 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = 'h13_c1'
down_revision = 'h12_d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'offer_terms',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('required', sa.Boolean(), nullable=False),
        sa.Column('text_zh', sa.Text(), nullable=False),
        sa.Column('text_en', sa.Text(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'],
                                name=op.f('fk_offer_terms_event_id_event')),
        sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'],
                                name=op.f('fk_offer_terms_updated_by_id_user_account')),
        sa.PrimaryKeyConstraint('event_id', name=op.f('pk_offer_terms')),
    )
    op.create_table(
        'offer_decision',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('decision', sa.String(length=10), nullable=False),
        sa.Column('locale', sa.String(length=8), nullable=False),
        sa.Column('amount', sa.String(length=20), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('offer_hash', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('ip_digest', sa.String(length=80), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('void_reason', sa.String(length=20), nullable=True),
        sa.CheckConstraint("decision IN ('accepted', 'declined')",
                           name=op.f('ck_offer_decision_decision_known')),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'],
                                name=op.f('fk_offer_decision_case_id_case_file')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_offer_decision')),
    )
    with op.batch_alter_table('offer_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_offer_decision_case_id'), ['case_id'], unique=False)
        batch_op.create_index('uq_offer_decision_standing', ['case_id'], unique=True,
                              postgresql_where=sa.text('voided_at IS NULL'),
                              sqlite_where=sa.text('voided_at IS NULL'))
    op.create_table(
        'payout_details',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=10), nullable=False),
        sa.Column('sealed', sa.Text(), nullable=True),
        sa.Column('ip_digest', sa.String(length=80), nullable=True),
        sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("method IN ('original', 'bank')",
                           name=op.f('ck_payout_details_method_known')),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                name=op.f('fk_payout_details_customer_id_customer')),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_payout_details')),
    )


def downgrade():
    op.drop_table('payout_details')
    with op.batch_alter_table('offer_decision', schema=None) as batch_op:
        batch_op.drop_index('uq_offer_decision_standing')
        batch_op.drop_index(batch_op.f('ix_offer_decision_case_id'))
    op.drop_table('offer_decision')
    op.drop_table('offer_terms')
