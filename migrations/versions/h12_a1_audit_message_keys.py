"""audit entries keep their message key and parameters (read in each reader's language; NULL
for the entries written before, which keep their hash and show their stored summary), and a
sign-off request its title as a message

Revision ID: h12_a1
Revises: h11_a1
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h12_a1'
down_revision = 'h11_a1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('message_params', sa.JSON(), nullable=True))
    with op.batch_alter_table('signoff_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title_message', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('signoff_request', schema=None) as batch_op:
        batch_op.drop_column('title_message')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('message_params')
        batch_op.drop_column('message_key')
