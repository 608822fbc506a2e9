"""counsellors, shift templates, presence, transfers, alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 11:14:23.745105
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hotline.db.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('site_code', sa.String(length=32), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('state', sa.Enum('open', 'acknowledged', 'resolved', name='alertstate', native_enum=False, length=32), nullable=False),
    sa.Column('raised_at', hotline.db.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', hotline.db.models.UtcDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_by', sa.String(length=200), nullable=True),
    sa.Column('acknowledged_at', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_state_key', ['state', 'key'], unique=False)

    op.create_table('transfer_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_transfer_targets_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_targets')),
    sa.UniqueConstraint('site_id', 'code', name=op.f('uq_transfer_targets_site_id'))
    )
    with op.batch_alter_table('transfer_targets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_targets_site_id'), ['site_id'], unique=False)

    op.create_table('counsellor_presence',
    sa.Column('counsellor_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('presence', sa.Enum('schedule', 'logged_in', 'logged_out', name='presence', native_enum=False, length=32), nullable=False),
    sa.Column('presence_since', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('presence_until', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('pause_reason', sa.Enum('break', 'debrief', 'admin', name='pausereason', native_enum=False, length=32), nullable=True),
    sa.Column('paused_at', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.Column('pause_until', hotline.db.models.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['counsellor_id'], ['counsellors.id'], name=op.f('fk_counsellor_presence_counsellor_id_counsellors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('counsellor_id', name=op.f('pk_counsellor_presence'))
    )
    op.create_table('shift_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('counsellor_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['counsellor_id'], ['counsellors.id'], name=op.f('fk_shift_templates_counsellor_id_counsellors'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shift_templates'))
    )
    with op.batch_alter_table('shift_templates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shift_templates_counsellor_id'), ['counsellor_id'], unique=False)

    with op.batch_alter_table('counsellors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extension', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_counsellors_extension'), ['extension'])
        batch_op.create_unique_constraint(batch_op.f('uq_counsellors_user_id'), ['user_id'])
        batch_op.create_foreign_key(batch_op.f('fk_counsellors_user_id_users'), 'users', ['user_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wrapup_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('widen_after_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('wait_alert_seconds', sa.Integer(), nullable=True))

    with op.batch_alter_table('shifts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.Enum('work', 'off', name='shiftkind', native_enum=False, length=32), nullable=False, server_default='work'))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=False, server_default=''))

    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('debrief_seconds', sa.Integer(), nullable=False, server_default='300'))
        batch_op.add_column(sa.Column('crisis_cap_per_shift', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('short_abandon_seconds', sa.Integer(), nullable=False, server_default='5'))
        batch_op.add_column(sa.Column('backup_number', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('unstaffed_alert_seconds', sa.Integer(), nullable=False, server_default='60'))



def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('unstaffed_alert_seconds')
        batch_op.drop_column('backup_number')
        batch_op.drop_column('short_abandon_seconds')
        batch_op.drop_column('crisis_cap_per_shift')
        batch_op.drop_column('debrief_seconds')

    with op.batch_alter_table('shifts', schema=None) as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('kind')

    with op.batch_alter_table('queues', schema=None) as batch_op:
        batch_op.drop_column('wait_alert_seconds')
        batch_op.drop_column('widen_after_seconds')
        batch_op.drop_column('wrapup_seconds')

    with op.batch_alter_table('counsellors', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_counsellors_user_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_counsellors_user_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_counsellors_extension'), type_='unique')
        batch_op.drop_column('user_id')
        batch_op.drop_column('extension')

    with op.batch_alter_table('shift_templates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shift_templates_counsellor_id'))

    op.drop_table('shift_templates')
    op.drop_table('counsellor_presence')
    with op.batch_alter_table('transfer_targets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_targets_site_id'))

    op.drop_table('transfer_targets')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_state_key')

    op.drop_table('alerts')
