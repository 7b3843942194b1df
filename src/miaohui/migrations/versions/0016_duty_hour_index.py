"""listeners: an index on listener_duty.hour_start for the hourly prune

The prune deletes the hours older than the window for every listener at
once; without an index on ``hour_start`` that was a scan of the whole table
(a month of every listener's hours) under SQLite's write lock, which chat's
message batches wait for.

Revision ID: 0016
Revises: 0015
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_listener_duty_hour_start', 'listener_duty', ['hour_start'])


def downgrade() -> None:
    op.drop_index('ix_listener_duty_hour_start', table_name='listener_duty')
