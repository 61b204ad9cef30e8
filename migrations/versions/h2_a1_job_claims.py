"""job claims: claimed_at (a lease) and attempts on every row an RQ job works on

Revision ID: h2_a1
Revises: h5_a1
Create Date: 2026-12-01 21:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h2_a1'
down_revision = 'h5_a1'
branch_labels = None
depends_on = None

TABLES = ('audit_verification', 'customer_import', 'event_archive', 'retention_run',
          'notice_pdf', 'postmortem_pdf')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True),
                                          nullable=True))
            batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0',
                                          nullable=False))


def downgrade():
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('attempts')
            batch_op.drop_column('claimed_at')
