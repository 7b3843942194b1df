"""orders: the turn whose listener was warned that the reply clock nears its window

``clock_warned_seq`` holds the ``pending_seq`` of the turn the scheduler
warned about (70 % of the response window, for a listener with no page in
front of them: the push relay sends it), so the warning is said once per
turn, across restarts and processes.  NULL: no turn warned yet.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('clock_warned_seq', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('clock_warned_seq')
