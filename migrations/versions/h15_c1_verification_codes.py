"""verification codes: notice_publication.verification_code and
mailing_recipient.verification_code, each unique (the /verify lookup); publications made
before get their code here when the app's VERIFICATION_KEY is at hand

Revision ID: h15_c1
Revises: h15_b1
Create Date: 2026-12-07 18:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h15_c1'
down_revision = 'h15_b1'
branch_labels = None
depends_on = None


def _backfill_publications():
    """Versions published before this migration get the code they would have had."""
    from flask import current_app, has_app_context

    if not has_app_context() or not current_app.config.get("VERIFICATION_KEY"):
        return
    from portal import verification

    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT p.id, v.id, v.content_hash FROM notice_publication p "
        "JOIN notice_version v ON v.id = p.version_id "
        "WHERE p.verification_code IS NULL")).all()
    for publication_id, version_id, content_hash in rows:
        bind.execute(sa.text("UPDATE notice_publication SET verification_code = :code "
                             "WHERE id = :id"),
                     {"code": verification.version_code(version_id, content_hash),
                      "id": publication_id})


def upgrade():
    with op.batch_alter_table('notice_publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification_code', sa.String(length=10), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_notice_publication_verification_code'), ['verification_code'])
    with op.batch_alter_table('mailing_recipient', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verification_code', sa.String(length=10), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_mailing_recipient_verification_code'), ['verification_code'])
    _backfill_publications()


def downgrade():
    with op.batch_alter_table('mailing_recipient', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_mailing_recipient_verification_code'), type_='unique')
        batch_op.drop_column('verification_code')
    with op.batch_alter_table('notice_publication', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_notice_publication_verification_code'), type_='unique')
        batch_op.drop_column('verification_code')
