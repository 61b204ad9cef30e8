"""Evidence on cases: files checked by content, stored by SHA-256 outside static/

Revision ID: h13_b1
Revises: h13_d1
Create Date: 2026-12-10 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h13_b1'
down_revision = 'h13_d1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'case_evidence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('uploader_kind', sa.String(length=8), nullable=False),
        sa.Column('uploader_id', sa.Integer(), nullable=False),
        sa.Column('original_name', sa.String(length=160), nullable=False),
        sa.Column('content_type', sa.String(length=32), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('thumbnail_sha256', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("uploader_kind IN ('customer', 'staff')",
                           name=op.f('ck_case_evidence_uploader_known')),
        sa.CheckConstraint("content_type IN ('application/pdf', 'image/jpeg', 'image/png')",
                           name=op.f('ck_case_evidence_content_type_known')),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'],
                                name=op.f('fk_case_evidence_case_id_case_file')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_evidence')),
    )
    with op.batch_alter_table('case_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_evidence_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_evidence_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_evidence_thumbnail_sha256'),
                              ['thumbnail_sha256'], unique=False)


def downgrade():
    with op.batch_alter_table('case_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_evidence_thumbnail_sha256'))
        batch_op.drop_index(batch_op.f('ix_case_evidence_sha256'))
        batch_op.drop_index(batch_op.f('ix_case_evidence_case_id'))
    op.drop_table('case_evidence')
