"""companion: profiles (encrypted engine state, usage, session clocks) and
memories (encrypted)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'companion_profiles',
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('conversation_id', sa.String(length=32), nullable=True),
        sa.Column('state_key', sa.String(length=16), nullable=True),
        sa.Column('state_ct', sa.LargeBinary(), nullable=True),
        sa.Column('day', sa.String(length=10), nullable=False),
        sa.Column('turns_today', sa.Integer(), nullable=False),
        sa.Column('session_minutes', sa.Integer(), nullable=True),
        sa.Column('session_started_at', UTC, nullable=True),
        sa.Column('wrapped_at', UTC, nullable=True),
        sa.Column('continuous_since', UTC, nullable=True),
        sa.Column('last_turn_at', UTC, nullable=True),
        sa.Column('pause_suggested_at', UTC, nullable=True),
        sa.Column('memory_enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_companion_profiles_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_companion_profiles')),
    )
    op.create_table(
        'companion_memories',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('body_ct', sa.LargeBinary(), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('updated_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_companion_memories_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_companion_memories')),
    )
    op.create_index('ix_companion_memories_user', 'companion_memories', ['user_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_companion_memories_user', table_name='companion_memories')
    op.drop_table('companion_memories')
    op.drop_table('companion_profiles')
