"""order refs compared trimmed and case-folded for the one-open-case rule

``wd-20261201-001`` and ``WD-20261201-001 `` are the same order: the partial unique index
now holds lower(trim(order_ref)). Open cases that already collide under that rule stop the
upgrade with their references, for a person to close or withdraw all but one of each.

Revision ID: h3_a2
Revises: h3_a1
Create Date: 2026-12-01 21:41:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h3_a2'
down_revision = 'h3_a1'
branch_labels = None
depends_on = None

OPEN = "status NOT IN ('closed', 'rejected', 'withdrawn')"


def upgrade():
    clashes = op.get_bind().execute(sa.text(
        f"SELECT c.ref FROM case_file c JOIN (SELECT customer_id, kind, "
        f"lower(trim(order_ref)) AS k FROM case_file WHERE {OPEN} "
        f"GROUP BY customer_id, kind, lower(trim(order_ref)) HAVING COUNT(*) > 1) d "
        f"ON d.customer_id = c.customer_id AND d.kind = c.kind "
        f"AND d.k = lower(trim(c.order_ref)) WHERE c.{OPEN} ORDER BY c.ref")).scalars().all()
    if clashes:
        raise RuntimeError(
            "These open cases are the same order spelt differently (case or spaces): "
            f"{', '.join(clashes)}. Close or withdraw all but one of each, then upgrade again.")
    op.drop_index('uq_case_open_per_order', table_name='case_file')
    op.create_index('uq_case_open_per_order', 'case_file',
                    ['customer_id', 'kind', sa.text('lower(trim(order_ref))')], unique=True,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))


def downgrade():
    op.drop_index('uq_case_open_per_order', table_name='case_file')
    op.create_index('uq_case_open_per_order', 'case_file', ['customer_id', 'kind', 'order_ref'],
                    unique=True, postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
