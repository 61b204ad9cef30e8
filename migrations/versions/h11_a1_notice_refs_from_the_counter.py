"""ref_counter: notice references are numbered by the counter row, as case references are;
each year's series starts after the highest notice number already given

Revision ID: h11_a1
Revises: h7_a1
Create Date: 2026-12-07 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h11_a1'
down_revision = 'h7_a1'
branch_labels = None
depends_on = None

notice = sa.table('notice', sa.column('ref', sa.String))
ref_counter = sa.table('ref_counter', sa.column('name', sa.String),
                       sa.column('value', sa.Integer))


def upgrade():
    conn = op.get_bind()
    highest = {}
    for (ref,) in conn.execute(sa.select(notice.c.ref)):
        series, _, number = ref.rpartition('-')  # N-2026-0007 → N-2026, 0007
        if series.startswith('N-') and number.isdigit():
            highest[series] = max(highest.get(series, 0), int(number))
    taken = set(conn.execute(sa.select(ref_counter.c.name)).scalars())
    rows = [{'name': name, 'value': value} for name, value in sorted(highest.items())
            if name not in taken]
    if rows:
        op.bulk_insert(ref_counter, rows)


def downgrade():
    op.execute(ref_counter.delete().where(ref_counter.c.name.like('N-%')))
