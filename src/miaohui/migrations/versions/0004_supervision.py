"""supervision: risk cases (one open per conversation), case event log,
transcript access audit

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)
BigIntId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'risk_cases',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('conversation_id', sa.String(length=32), nullable=False),
        sa.Column('open_key', sa.String(length=32), nullable=True),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('tier', sa.String(length=16), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('signals', sa.JSON(), nullable=False),
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('worried', sa.Boolean(), nullable=False),
        sa.Column('last_seq', sa.Integer(), nullable=False),
        sa.Column('opened_at', UTC, nullable=False),
        sa.Column('last_seen_at', UTC, nullable=False),
        sa.Column('guardian_since', UTC, nullable=True),
        sa.Column('acknowledged_at', UTC, nullable=True),
        sa.Column('acknowledged_by', sa.String(length=32), nullable=True),
        sa.Column('joined_by', sa.String(length=32), nullable=True),
        sa.Column('taken_over_by', sa.String(length=32), nullable=True),
        sa.Column('resolved_at', UTC, nullable=True),
        sa.Column('resolved_by', sa.String(length=32), nullable=True),
        sa.Column('held_order_id', sa.String(length=32), nullable=True),
        sa.Column('held_since', UTC, nullable=True),
        sa.Column('held_seq', sa.Integer(), nullable=True),
        sa.Column('overtime_seconds', sa.Integer(), nullable=False),
        sa.Column('overtime_fen', sa.Integer(), nullable=False),
        sa.Column('overtime_paid_at', UTC, nullable=True),
        sa.Column('debrief', sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_risk_cases_conversation_id_conversations'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_cases')),
        sa.UniqueConstraint('open_key', name=op.f('uq_risk_cases_open_key')),
    )
    op.create_index('ix_risk_cases_queue', 'risk_cases', ['status', 'rank', 'opened_at'])
    op.create_index('ix_risk_cases_conversation', 'risk_cases', ['conversation_id'])
    op.create_index('ix_risk_cases_listener', 'risk_cases', ['listener_id', 'opened_at'])

    op.create_table(
        'case_events',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('case_id', sa.String(length=32), nullable=False),
        sa.Column('at', UTC, nullable=False),
        sa.Column('actor_id', sa.String(length=32), nullable=True),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=True),
        sa.Column('body_ct', sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['risk_cases.id'], name=op.f('fk_case_events_case_id_risk_cases'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events')),
    )
    op.create_index('ix_case_events_case', 'case_events', ['case_id', 'id'])

    op.create_table(
        'transcript_access',
        sa.Column('id', BigIntId, autoincrement=True, nullable=False),
        sa.Column('conversation_id', sa.String(length=32), nullable=False),
        sa.Column('case_id', sa.String(length=32), nullable=True),
        sa.Column('reader_id', sa.String(length=32), nullable=False),
        sa.Column('reader_role', sa.String(length=16), nullable=False),
        sa.Column('at', UTC, nullable=False),
        sa.Column('via', sa.String(length=16), nullable=False),
        sa.Column('upto_seq', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_transcript_access')),
    )
    op.create_index('ix_transcript_access_conversation', 'transcript_access', ['conversation_id', 'at'])
    op.create_index('ix_transcript_access_reader', 'transcript_access', ['reader_id', 'at'])


def downgrade() -> None:
    op.drop_table('transcript_access')
    op.drop_table('case_events')
    op.drop_table('risk_cases')
