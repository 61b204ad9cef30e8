"""subscription, subscription_code, subscription_delivery: public subscribers by e-mail
(double opt-in, one-time codes), and the published versions delivered to them

Revision ID: h15_b1
Revises: h14_h1
Create Date: 2026-12-07 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h15_b1'
down_revision = 'h14_h1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('scope', sa.String(length=24), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=14), nullable=False),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('mail', sa.String(length=10), nullable=True),
    sa.Column('mail_claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('mail_attempts', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'active', 'unsubscribed')", name=op.f('ck_subscription_status_known')),
    sa.CheckConstraint("locale IN ('zh_CN', 'en')", name=op.f('ck_subscription_locale_known')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_subscription_event_id_event'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription')),
    sa.UniqueConstraint('email', 'scope', name=op.f('uq_subscription_email'))
    )
    op.create_index('ix_subscription_scope_status', 'subscription', ['scope', 'status'], unique=False)
    op.create_table('subscription_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('mail', sa.String(length=10), nullable=True),
    sa.Column('mail_claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('mail_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_code')),
    sa.UniqueConstraint('email', name=op.f('uq_subscription_code_email'))
    )
    op.create_table('subscription_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')", name=op.f('ck_subscription_delivery_status_known')),
    sa.ForeignKeyConstraint(['notice_id'], ['notice.id'], name=op.f('fk_subscription_delivery_notice_id_notice')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscription.id'], name=op.f('fk_subscription_delivery_subscription_id_subscription'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['notice_version.id'], name=op.f('fk_subscription_delivery_version_id_notice_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_delivery')),
    sa.UniqueConstraint('subscription_id', 'version_id', name=op.f('uq_subscription_delivery_subscription_id'))
    )
    op.create_index(op.f('ix_subscription_delivery_subscription_id'), 'subscription_delivery', ['subscription_id'], unique=False)
    op.create_index('ix_subscription_delivery_version_status', 'subscription_delivery', ['version_id', 'status'], unique=False)


def downgrade():
    op.drop_index('ix_subscription_delivery_version_status', table_name='subscription_delivery')
    op.drop_index(op.f('ix_subscription_delivery_subscription_id'), table_name='subscription_delivery')
    op.drop_table('subscription_delivery')
    op.drop_table('subscription_code')
    op.drop_index('ix_subscription_scope_status', table_name='subscription')
    op.drop_table('subscription')
