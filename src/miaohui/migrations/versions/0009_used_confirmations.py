"""wellbeing: late-night confirmations are single-use

A late-night confirmation token (``orders.service``: over ¥200 between 00:00
and 06:00) now binds the exact quote and pays for one order only: the SHA-256
of each token that paid is stored here, inserted in the purchase's own
transaction, so a second purchase with the same token fails on the primary key.
Tokens live ten minutes; nothing to carry over.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'used_confirmations',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('used_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_used_confirmations_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_used_confirmations')),
    )
    op.create_index('ix_used_confirmations_user', 'used_confirmations', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_used_confirmations_user', table_name='used_confirmations')
    op.drop_table('used_confirmations')
