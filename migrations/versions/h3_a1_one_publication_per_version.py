"""one publication per notice and version

A version goes public once; two publishers racing each other (a double click, the scheduler
and a manual publish) used to add a row each. The duplicates such a race left are removed
(the first publication of each version stays), then a unique key keeps it so.

Revision ID: h3_a1
Revises: h2_a1
Create Date: 2026-12-01 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h3_a1'
down_revision = 'h2_a1'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text(
        "DELETE FROM notice_publication WHERE id NOT IN "
        "(SELECT MIN(id) FROM notice_publication GROUP BY notice_id, version_id)"))
    with op.batch_alter_table('notice_publication', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_notice_publication_notice_id'), ['notice_id', 'version_id'])


def downgrade():
    with op.batch_alter_table('notice_publication', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_notice_publication_notice_id'), type_='unique')
