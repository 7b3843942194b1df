"""listeners: measured on-duty minutes; matching: seekers' 收藏

``listener_duty`` holds, per listener and UTC hour, a bitmask of the minutes
they were on duty (one bit per minute, OR-ed in by every server process's
sampler).  ``favorites`` is a seeker's private list of listeners.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

from miaohui.core.db import UTCDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'listener_duty',
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('hour_start', UTCDateTime(), nullable=False),
        sa.Column('minutes', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_listener_duty_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('listener_id', 'hour_start', name=op.f('pk_listener_duty')),
    )
    op.create_table(
        'favorites',
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['seeker_id'], ['users.id'], name=op.f('fk_favorites_seeker_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_favorites_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('seeker_id', 'listener_id', name=op.f('pk_favorites')),
    )
    op.create_index('ix_favorites_listener', 'favorites', ['listener_id'])


def downgrade() -> None:
    op.drop_index('ix_favorites_listener', table_name='favorites')
    op.drop_table('favorites')
    op.drop_table('listener_duty')
