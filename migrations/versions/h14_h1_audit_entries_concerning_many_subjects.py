"""audit entries concerning many subjects: a hashed list of further subjects on an entry and
its index, row by row (one entry records a chunk of payments; each case's history shows it)

Revision ID: h14_h1
Revises: h14_g1
Create Date: 2026-12-07 18:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h14_h1'
down_revision = 'h14_g1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('concerns', sa.JSON(), nullable=True))
    op.create_table('audit_entry_subject',
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['audit_entry.id'],
                            name=op.f('fk_audit_entry_subject_entry_id_audit_entry')),
    sa.PrimaryKeyConstraint('subject_type', 'subject_id', 'entry_id',
                            name=op.f('pk_audit_entry_subject'))
    )
    with op.batch_alter_table('audit_entry_subject', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entry_subject_entry_id'), ['entry_id'],
                              unique=False)
    # Append-only like audit_entry (its function refuses whatever it guards).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER audit_entry_subject_append_only BEFORE UPDATE OR DELETE "
                   "ON audit_entry_subject FOR EACH ROW EXECUTE FUNCTION "
                   "audit_entry_append_only()")
        op.execute("CREATE TRIGGER audit_entry_subject_no_truncate BEFORE TRUNCATE ON "
                   "audit_entry_subject FOR EACH STATEMENT EXECUTE FUNCTION "
                   "audit_entry_append_only()")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_subject_no_truncate ON "
                   "audit_entry_subject")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_subject_append_only ON "
                   "audit_entry_subject")
    with op.batch_alter_table('audit_entry_subject', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_subject_entry_id'))
    op.drop_table('audit_entry_subject')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('concerns')
