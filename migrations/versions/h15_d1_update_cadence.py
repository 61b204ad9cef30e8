"""comms: the update cadence per severity, the reminders sent to an event's communications lead,
and the lead on the event

Revision ID: h15_d1
Revises: h15_c1
Create Date: 2026-12-07 18:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'h15_d1'
down_revision = 'h15_c1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('comms_cadence',
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.CheckConstraint('minutes >= 0', name=op.f('ck_comms_cadence_minutes_not_negative')),
    sa.PrimaryKeyConstraint('severity', name=op.f('pk_comms_cadence'))
    )
    op.create_table('comms_cadence_reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('due_soon', 'overdue')",
                       name=op.f('ck_comms_cadence_reminder_kind_known')),
    sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'skipped')",
                       name=op.f('ck_comms_cadence_reminder_status_known')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_comms_cadence_reminder_event_id_event')),
    sa.ForeignKeyConstraint(['lead_id'], ['user_account.id'], name=op.f('fk_comms_cadence_reminder_lead_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_comms_cadence_reminder')),
    sa.UniqueConstraint('event_id', 'kind', 'due_at', name=op.f('uq_comms_cadence_reminder_event_id'))
    )
    with op.batch_alter_table('comms_cadence_reminder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comms_cadence_reminder_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_comms_cadence_reminder_status'), ['status'], unique=False)

    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('comms_lead_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_event_comms_lead_id_user_account'),
                                    'user_account', ['comms_lead_id'], ['id'])


def downgrade():
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_event_comms_lead_id_user_account'),
                                 type_='foreignkey')
        batch_op.drop_column('comms_lead_id')
    with op.batch_alter_table('comms_cadence_reminder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comms_cadence_reminder_status'))
        batch_op.drop_index(batch_op.f('ix_comms_cadence_reminder_event_id'))
    op.drop_table('comms_cadence_reminder')
    op.drop_table('comms_cadence')
