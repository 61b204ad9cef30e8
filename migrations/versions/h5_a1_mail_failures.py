"""mail failures: a mailing's pause reason; case replies retried with back-off and recovered

Revision ID: h5_a1
Revises: h6_a1
Create Date: 2026-12-01 21:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h5_a1'
down_revision = 'h6_a1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mailing') as batch:
        batch.add_column(sa.Column('pause_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('case_note') as batch:
        batch.add_column(sa.Column('mail_attempts', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('case_note') as batch:
        batch.drop_column('claimed_at')
        batch.drop_column('next_attempt_at')
        batch.drop_column('mail_attempts')
    with op.batch_alter_table('mailing') as batch:
        batch.drop_column('pause_reason')
