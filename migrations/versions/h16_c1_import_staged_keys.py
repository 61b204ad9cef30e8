"""imports: the keys of a file being read, staged in the database (the duplicate check within
a file without a set in memory)

Revision ID: h16_c1
Revises: h15_d1
Create Date: 2026-12-07 19:05:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h16_c1'
down_revision = 'h15_d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('import_staged_key',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'import_id', 'key', name=op.f('pk_import_staged_key'))
    )


def downgrade():
    op.drop_table('import_staged_key')
