"""ledger (accounts, transfers), payments, sandbox gateway intents, withdrawals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:38:54.566224
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)
INT64 = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=False),
    sa.Column('debits_pending', INT64, server_default='0', nullable=False),
    sa.Column('debits_posted', INT64, server_default='0', nullable=False),
    sa.Column('credits_pending', INT64, server_default='0', nullable=False),
    sa.Column('credits_posted', INT64, server_default='0', nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint("kind = 'gateway' OR credits_posted - debits_posted - debits_pending >= 0", name=op.f('ck_ledger_accounts_no_overdraft')),
    sa.CheckConstraint('debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0', name=op.f('ck_ledger_accounts_totals_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('kind', 'owner', name='uq_ledger_accounts_kind_owner')
    )
    op.create_table('ledger_transfers',
    sa.Column('id', INT64, autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('debit_account_id', sa.String(length=32), nullable=False),
    sa.Column('credit_account_id', sa.String(length=32), nullable=False),
    sa.Column('amount', INT64, nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('flags', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('pending_id', INT64, nullable=True),
    sa.Column('ref', sa.String(length=80), nullable=False),
    sa.Column('memo', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_transfers_amount_positive')),
    sa.CheckConstraint('debit_account_id <> credit_account_id', name=op.f('ck_ledger_transfers_distinct_accounts')),
    sa.ForeignKeyConstraint(['credit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_credit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['debit_account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_transfers_debit_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['pending_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_transfers_pending_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transfers')),
    sa.UniqueConstraint('key', name=op.f('uq_ledger_transfers_key')),
    sa.UniqueConstraint('pending_id', name=op.f('uq_ledger_transfers_pending_id'))
    )
    with op.batch_alter_table('ledger_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_transfers_credit', ['credit_account_id', 'id'], unique=False)
        batch_op.create_index('ix_ledger_transfers_debit', ['debit_account_id', 'id'], unique=False)
        batch_op.create_index('ix_ledger_transfers_ref', ['ref'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', INT64, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('gateway', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('completed_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_payments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_user_id', ['user_id', 'created_at'], unique=False)

    op.create_table('sandbox_intents',
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', INT64, nullable=False),
    sa.Column('notify_url', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('completed_at', UTC, nullable=True),
    sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_sandbox_intents'))
    )
    op.create_table('withdrawals',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', INT64, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('payout_ref', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('decided_at', UTC, nullable=True),
    sa.Column('decided_by', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_withdrawals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index('ix_withdrawals_status', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_withdrawals_user_id', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('withdrawals')
    op.drop_table('sandbox_intents')
    op.drop_table('payments')
    op.drop_table('ledger_transfers')
    op.drop_table('ledger_accounts')
