"""data lifecycle: export archives, retention, erasure

Revision ID: 8c3f1a6e2d20
Revises: 5b7e2c9d4a10
Create Date: 2026-11-22 06:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8c3f1a6e2d20'
down_revision = '5b7e2c9d4a10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('retention_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['user_account.id'], name=op.f('fk_retention_policy_updated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_policy'))
    )
    op.create_table('retention_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('days', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('erased_count', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['confirmed_by_id'], ['user_account.id'], name=op.f('fk_retention_run_confirmed_by_id_user_account')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_retention_run_created_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_run'))
    )
    op.create_table('event_archive',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_archive_event_id_event')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_event_archive_requested_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_archive'))
    )
    op.create_index(op.f('ix_event_archive_event_id'), 'event_archive', ['event_id'], unique=False)

    op.add_column('customer', sa.Column('audit_salt', sa.String(length=64), nullable=True))
    op.add_column('customer', sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    # Every existing customer gets its own random key for the audit digests (NULL = erased).
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE customer SET audit_salt = md5(random()::text || clock_timestamp()::text"
                   " || id::text) || md5(random()::text || id::text)")
    else:
        op.execute("UPDATE customer SET audit_salt = lower(hex(randomblob(32)))")


def downgrade():
    op.drop_column('customer', 'erased_at')
    op.drop_column('customer', 'audit_salt')
    op.drop_index(op.f('ix_event_archive_event_id'), table_name='event_archive')
    op.drop_table('event_archive')
    op.drop_table('retention_run')
    op.drop_table('retention_policy')
