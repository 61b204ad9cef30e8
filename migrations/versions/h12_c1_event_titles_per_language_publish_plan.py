"""event titles per language and public titles; a notice's publish plan "on approval" and why
it was not published then; the notice contact settings (hotline, e-mail)

Revision ID: h12_c1
Revises: h12_b1
Create Date: 2026-12-07 04:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h12_c1'
down_revision = 'h12_b1'
branch_labels = None
depends_on = None

EVENT_TITLES = ('title_zh', 'title_en', 'public_title_zh', 'public_title_en')


def upgrade():
    with op.batch_alter_table('event') as batch:
        for name in EVENT_TITLES:
            batch.add_column(sa.Column(name, sa.String(length=200), nullable=True))
    with op.batch_alter_table('notice') as batch:
        batch.add_column(sa.Column('publish_on_approval', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('publish_refusal', sa.String(length=32), nullable=True))
    # A notice without a time was promised "as soon as it is approved" (its sign-off snapshots
    # say "on approval"): it keeps that plan, now carried out.
    notice = sa.table('notice', sa.column('planned_publish_at', sa.DateTime),
                      sa.column('publish_on_approval', sa.Boolean))
    op.execute(notice.update().where(notice.c.planned_publish_at.is_(None))
               .values(publish_on_approval=True))
    op.create_table(
        'notice_setting',
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_notice_setting')),
    )


def downgrade():
    op.drop_table('notice_setting')
    with op.batch_alter_table('notice') as batch:
        batch.drop_column('publish_refusal')
        batch.drop_column('publish_on_approval')
    with op.batch_alter_table('event') as batch:
        for name in reversed(EVENT_TITLES):
            batch.drop_column(name)
