"""notice PDFs per language; the sign-off settings (how PDFs name the approver)

Until now a version had one PDF, always rendered in Chinese: those rows become the zh_CN ones.
Each gets an English sibling, queued, which the reconciler renders. The unique key now takes
the language.

Revision ID: h12_b1
Revises: h12_a1
Create Date: 2026-12-08 10:00:00.000000

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h12_b1'
down_revision = 'h12_a1'
branch_labels = None
depends_on = None

notice_pdf = sa.table('notice_pdf', sa.column('id', sa.Integer),
                      sa.column('version_id', sa.Integer), sa.column('kind', sa.String),
                      sa.column('locale', sa.String), sa.column('status', sa.String),
                      sa.column('requested_at', sa.DateTime(timezone=True)), sa.column('attempts', sa.Integer))


def upgrade():
    op.create_table(
        'signoff_setting',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('value', sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_signoff_setting')))
    with op.batch_alter_table('notice_pdf', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))
    op.execute(notice_pdf.update().values(locale='zh_CN'))
    with op.batch_alter_table('notice_pdf', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sa.String(length=8), nullable=False)
        batch_op.drop_constraint(batch_op.f('uq_notice_pdf_version_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_notice_pdf_version_id'),
                                          ['version_id', 'kind', 'locale'])
    conn = op.get_bind()
    existing = conn.execute(sa.select(notice_pdf.c.version_id, notice_pdf.c.kind)).all()
    now = datetime.now(timezone.utc)
    if existing:
        op.bulk_insert(notice_pdf, [
            {'version_id': version_id, 'kind': kind, 'locale': 'en', 'status': 'queued',
             'requested_at': now, 'attempts': 0} for version_id, kind in existing])


def downgrade():
    op.execute(notice_pdf.delete().where(notice_pdf.c.locale != 'zh_CN'))
    with op.batch_alter_table('notice_pdf', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_notice_pdf_version_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_notice_pdf_version_id'),
                                          ['version_id', 'kind'])
        batch_op.drop_column('locale')
    op.drop_table('signoff_setting')
