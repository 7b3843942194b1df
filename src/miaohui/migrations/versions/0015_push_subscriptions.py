"""push: Web Push subscriptions (关闭页面后也提醒)

One row per device that asked for notices while no page is open, hanging
off the session that made it (deleted with it), endpoint and keys sealed.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

from miaohui.core.db import UTCDateTime

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'push_subscriptions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('endpoint_hash', sa.String(length=64), nullable=False),
        sa.Column('service', sa.String(length=64), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=True),
        sa.Column('endpoint_ct', sa.LargeBinary(), nullable=True),
        sa.Column('keys_ct', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_sent_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_push_subscriptions_user_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['session_hash'], ['auth_sessions.token_hash'],
                                name=op.f('fk_push_subscriptions_session_hash_auth_sessions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
        sa.UniqueConstraint('endpoint_hash', name=op.f('uq_push_subscriptions_endpoint_hash')),
    )
    op.create_index('ix_push_subscriptions_user', 'push_subscriptions', ['user_id'])
    op.create_index('ix_push_subscriptions_role', 'push_subscriptions', ['role'])


def downgrade() -> None:
    op.drop_index('ix_push_subscriptions_role', table_name='push_subscriptions')
    op.drop_index('ix_push_subscriptions_user', table_name='push_subscriptions')
    op.drop_table('push_subscriptions')
