"""money in integer hundredths on SQLite

SQLite has no decimal type: a NUMERIC column kept 0.10 as the binary float 0.1 and SUM added
floats. On SQLite every money column becomes BIGINT holding hundredths (0.10 is 10), which
``portal.money.Money`` converts to and from Decimal. PostgreSQL keeps NUMERIC(14, 2): nothing
to do there.

Rebuilding case_file (SQLite cannot change a column's type in place) would not carry the
expression index over, so it is dropped first and created again afterwards.

Revision ID: h3_a3
Revises: h3_a2
Create Date: 2026-12-01 21:42:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h3_a3'
down_revision = 'h3_a2'
branch_labels = None
depends_on = None

COLUMNS = {
    'case_file': ('amount', 'approved_amount'),
    'case_payment': ('amount',),
    'signoff_threshold': ('amount',),
}
OPEN = "status NOT IN ('closed', 'rejected', 'withdrawn')"
DECIMAL = sa.Numeric(precision=14, scale=2)


def _convert(to_hundredths: bool):
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.drop_index('uq_case_open_per_order', table_name='case_file')
    for table, columns in COLUMNS.items():
        if not to_hundredths:  # BIGINT back to NUMERIC first, then the values
            with op.batch_alter_table(table, schema=None) as batch_op:
                for column in columns:
                    batch_op.alter_column(column, existing_type=sa.BigInteger(), type_=DECIMAL)
        # A stored float is within a millionth of its hundredths; round to the nearest.
        sets = ', '.join(
            f"{c} = CAST(ROUND({c} * 100) AS INTEGER)" if to_hundredths else f"{c} = {c} / 100.0"
            for c in columns)
        op.execute(sa.text(f"UPDATE {table} SET {sets}"))
        if to_hundredths:
            with op.batch_alter_table(table, schema=None) as batch_op:
                for column in columns:
                    batch_op.alter_column(column, existing_type=DECIMAL, type_=sa.BigInteger())
    op.create_index('uq_case_open_per_order', 'case_file',
                    ['customer_id', 'kind', sa.text('lower(trim(order_ref))')], unique=True,
                    sqlite_where=sa.text(OPEN))


def upgrade():
    _convert(to_hundredths=True)


def downgrade():
    _convert(to_hundredths=False)
