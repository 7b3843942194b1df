"""wellbeing: a seeker's mood before and after a paid sitting

``mood_checks`` holds one score (1–5) per order and phase (before / after),
with the order's seeker and listener, so that a seeker's own trend and a
listener's outcome share are each one query of this table.

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

from miaohui.core.db import UTCDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'mood_checks',
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('phase', sa.String(length=8), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('score', sa.SmallInteger(), nullable=False),
        sa.Column('answered_at', UTCDateTime(), nullable=False),
        sa.CheckConstraint('score BETWEEN 1 AND 5', name=op.f('ck_mood_checks_score_range')),
        sa.CheckConstraint("phase IN ('before', 'after')", name=op.f('ck_mood_checks_phase_known')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_mood_checks_order_id_orders'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['seeker_id'], ['users.id'], name=op.f('fk_mood_checks_seeker_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_mood_checks_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('order_id', 'phase', name=op.f('pk_mood_checks')),
    )
    op.create_index('ix_mood_checks_seeker', 'mood_checks', ['seeker_id', 'answered_at'])
    op.create_index('ix_mood_checks_listener', 'mood_checks', ['listener_id', 'answered_at'])


def downgrade() -> None:
    op.drop_index('ix_mood_checks_listener', table_name='mood_checks')
    op.drop_index('ix_mood_checks_seeker', table_name='mood_checks')
    op.drop_table('mood_checks')
