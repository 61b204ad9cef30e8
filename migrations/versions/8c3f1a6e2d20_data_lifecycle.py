"""data lifecycle: export archives, retention, erasure

Revision ID: 8c3f1a6e2d20
Revises: 5b7e2c9d4a10
Create Date: 2026-11-22 06:45:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8c3f1a6e2d20'
down_revision = '5b7e2c9d4a10'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
