"""payments: a seeker's unused balance goes back where it came from

``withdrawals`` also carries refunds of a seeker's wallet balance (退回原支付
账户), reviewed in the same queue and paid out through the same gateway:
``account`` says whose money it is (``earnings`` for a listener's payout,
``wallet`` for a seeker's refund).  Existing rows are payouts.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('withdrawals') as batch:
        batch.add_column(sa.Column('account', sa.String(length=8), nullable=False, server_default='earnings'))


def downgrade() -> None:
    with op.batch_alter_table('withdrawals') as batch:
        batch.drop_column('account')
