"""customer.erasure_reason: why a customer was erased, kept on its row (scrubbable), not in
the append-only audit trail

Revision ID: h7_a1
Revises: h3_a3
Create Date: 2026-12-01 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h7_a1'
down_revision = 'h3_a3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erasure_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_column('erasure_reason')
