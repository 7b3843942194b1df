"""orders, SLA turns, disputes, gifts, blocks, budgets; evidence chain and
active order on conversations; listener capacity

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('conversations') as b:
        b.add_column(sa.Column('chain_head', sa.LargeBinary(), nullable=True))
        b.add_column(sa.Column('active_order_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('messages') as b:
        b.add_column(sa.Column('chain', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('listener_profiles') as b:
        b.add_column(sa.Column('capacity', sa.Integer(), nullable=False, server_default='2'))

    op.create_table(
        'offerings',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('response_window_s', sa.Integer(), nullable=False),
        sa.Column('daily_start', sa.String(length=5), nullable=False),
        sa.Column('daily_minutes', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_offerings_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_offerings')),
        sa.UniqueConstraint('listener_id', 'kind', name='uq_offerings_listener_kind'),
    )
    op.create_table(
        'orders',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('conversation_id', sa.String(length=32), nullable=False),
        sa.Column('offering_id', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('end_reason', sa.String(length=16), nullable=True),
        sa.Column('price_fen', sa.Integer(), nullable=False),
        sa.Column('response_window_s', sa.Integer(), nullable=False),
        sa.Column('windows', sa.JSON(), nullable=False),
        sa.Column('starts_at', UTC, nullable=False),
        sa.Column('ends_at', UTC, nullable=False),
        sa.Column('contract', sa.JSON(), nullable=False),
        sa.Column('contract_hash', sa.String(length=64), nullable=False),
        sa.Column('extends_order_id', sa.String(length=32), nullable=True),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('activated_at', UTC, nullable=True),
        sa.Column('listener_arrived_at', UTC, nullable=True),
        sa.Column('ended_at', UTC, nullable=True),
        sa.Column('sla_seq', sa.Integer(), nullable=False),
        sa.Column('pending_since', UTC, nullable=True),
        sa.Column('pending_seq', sa.Integer(), nullable=True),
        sa.Column('turns', sa.Integer(), nullable=False),
        sa.Column('breaches', sa.Integer(), nullable=False),
        sa.Column('notice_sent', sa.Boolean(), nullable=False),
        sa.Column('next_due_at', UTC, nullable=True),
        sa.Column('settle_at', UTC, nullable=True),
        sa.Column('compensation_fen', sa.Integer(), nullable=False),
        sa.Column('unserved_fen', sa.Integer(), nullable=False),
        sa.Column('refund_fen', sa.Integer(), nullable=False),
        sa.Column('commission_fen', sa.Integer(), nullable=False),
        sa.Column('listener_net_fen', sa.Integer(), nullable=False),
        sa.Column('closed_at', UTC, nullable=True),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_orders_conversation_id_conversations')),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_orders_listener_id_users')),
        sa.ForeignKeyConstraint(['seeker_id'], ['users.id'], name=op.f('fk_orders_seeker_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    )
    op.create_index('ix_orders_due', 'orders', ['status', 'next_due_at'])
    op.create_index('ix_orders_listener', 'orders', ['listener_id', 'status'])
    op.create_index('ix_orders_seeker', 'orders', ['seeker_id', 'created_at'])
    op.create_index('ix_orders_conversation', 'orders', ['conversation_id'])
    op.create_table(
        'order_turns',
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('first_seq', sa.Integer(), nullable=False),
        sa.Column('reply_seq', sa.Integer(), nullable=True),
        sa.Column('asked_at', UTC, nullable=False),
        sa.Column('replied_at', UTC, nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.Column('breached', sa.Boolean(), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_turns_order_id_orders'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('order_id', 'first_seq', name=op.f('pk_order_turns')),
    )
    op.create_index('ix_order_turns_listener', 'order_turns', ['listener_id'])
    op.create_table(
        'disputes',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('refund_fen', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('decided_by', sa.String(length=32), nullable=True),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('resolved_at', UTC, nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_disputes_order_id_orders'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
        sa.UniqueConstraint('order_id', name=op.f('uq_disputes_order_id')),
    )
    op.create_table(
        'gifts',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('note', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('settle_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_gifts_order_id_orders'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gifts')),
    )
    op.create_index('ix_gifts_due', 'gifts', ['status', 'settle_at'])
    op.create_table(
        'blocks',
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('listener_id', 'seeker_id', name=op.f('pk_blocks')),
    )
    op.create_table(
        'budgets',
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('monthly_limit_fen', sa.Integer(), nullable=False),
        sa.Column('hard_cap', sa.Boolean(), nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_budgets_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_budgets')),
    )


def downgrade() -> None:
    for t in ('budgets', 'blocks', 'gifts', 'disputes', 'order_turns', 'orders', 'offerings'):
        op.drop_table(t)
    with op.batch_alter_table('listener_profiles') as b:
        b.drop_column('capacity')
    with op.batch_alter_table('messages') as b:
        b.drop_column('chain')
    with op.batch_alter_table('conversations') as b:
        b.drop_column('active_order_id')
        b.drop_column('chain_head')
