"""post-mortems (复盘): the six-step review of an event

Revision ID: 5b7e2c9d4a10
Revises: 2fe537ab7000
Create Date: 2026-11-22 06:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b7e2c9d4a10'
down_revision = '2fe537ab7000'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
