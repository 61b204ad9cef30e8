"""events: when what the public pages show of an event last changed (its public titles, the
claim form, "Check my case"), so the pages' Last-Modified and ETag move with it

Revision ID: h16_f1
Revises: h16_c1
Create Date: 2026-12-07 22:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h16_f1'
down_revision = 'h16_c1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event') as batch_op:
        batch_op.add_column(sa.Column('public_changed_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('event') as batch_op:
        batch_op.drop_column('public_changed_at')
