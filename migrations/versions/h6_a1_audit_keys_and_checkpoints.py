"""audit keys and checkpoints: an HMAC per audit entry (NULL for the entries written before,
which keep verifying by their plain hash), signed checkpoints of the chain, and a check's
finding as data

Revision ID: h6_a1
Revises: 8c3f1a6e2d20
Create Date: 2026-12-01 21:35:21.563560

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h6_a1'
down_revision = '8c3f1a6e2d20'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('head_id', sa.Integer(), nullable=True),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_checkpoint'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
    with op.batch_alter_table('audit_verification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finding', sa.JSON(), nullable=True))



def downgrade():
    with op.batch_alter_table('audit_verification', schema=None) as batch_op:
        batch_op.drop_column('finding')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('mac')

    op.drop_table('audit_checkpoint')
