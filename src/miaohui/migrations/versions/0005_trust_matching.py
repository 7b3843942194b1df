"""trust and matching: identity checks (encrypted), qualification proofs,
training attempts, reports, moderation actions, reviews, served topics;
listener_profiles.gender

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import miaohui.core.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

UTC = miaohui.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('listener_profiles') as b:
        b.add_column(sa.Column('gender', sa.String(length=8), nullable=True))

    op.create_table(
        'identity_checks',
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('name_ct', sa.LargeBinary(), nullable=False),
        sa.Column('number_ct', sa.LargeBinary(), nullable=False),
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('adult_on', sa.Date(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('provider_ref', sa.String(length=64), nullable=False),
        sa.Column('checked_at', UTC, nullable=False),
        sa.Column('expires_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_identity_checks_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_identity_checks')),
    )
    op.create_index('ix_identity_checks_id_hash', 'identity_checks', ['id_hash'])

    op.create_table(
        'identity_attempts',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=24), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_identity_attempts_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_attempts')),
    )
    op.create_index('ix_identity_attempts_user', 'identity_attempts', ['user_id', 'created_at'])

    op.create_table(
        'qualifications',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('title', sa.String(length=60), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('proof_type', sa.String(length=40), nullable=False),
        sa.Column('proof_bytes', sa.Integer(), nullable=False),
        sa.Column('proof_sha256', sa.String(length=64), nullable=False),
        sa.Column('proof_key_id', sa.String(length=16), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('reviewed_at', UTC, nullable=True),
        sa.Column('reviewed_by', sa.String(length=32), nullable=True),
        sa.Column('review_note', sa.String(length=200), nullable=False),
        sa.Column('expires_at', UTC, nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_qualifications_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_qualifications')),
    )
    op.create_index('ix_qualifications_user', 'qualifications', ['user_id', 'status'])
    op.create_index('ix_qualifications_queue', 'qualifications', ['status', 'created_at'])

    op.create_table(
        'training_attempts',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('course_version', sa.String(length=16), nullable=False),
        sa.Column('correct', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('passed', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('expires_at', UTC, nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_training_attempts_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_training_attempts')),
    )
    op.create_index('ix_training_attempts_user', 'training_attempts', ['user_id', 'passed', 'created_at'])

    op.create_table(
        'reports',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('target_kind', sa.String(length=12), nullable=False),
        sa.Column('target_id', sa.String(length=32), nullable=False),
        sa.Column('reporter_id', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('decided_at', UTC, nullable=True),
        sa.Column('decided_by', sa.String(length=32), nullable=True),
        sa.Column('decision_note', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], name=op.f('fk_reports_reporter_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reports')),
        sa.UniqueConstraint('target_kind', 'target_id', 'reporter_id', name='uq_reports_target_reporter'),
    )
    op.create_index('ix_reports_queue', 'reports', ['status', 'created_at'])

    op.create_table(
        'moderation_actions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('action', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor_id', sa.String(length=32), nullable=False),
        sa.Column('report_id', sa.String(length=32), nullable=True),
        sa.Column('created_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_moderation_actions_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_actions')),
    )
    op.create_index('ix_moderation_actions_listener', 'moderation_actions', ['listener_id', 'created_at'])

    op.create_table(
        'reviews',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('seeker_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('stars', sa.Integer(), nullable=False),
        sa.Column('tags', sa.JSON(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.Column('reply', sa.Text(), nullable=True),
        sa.Column('replied_at', UTC, nullable=True),
        sa.Column('hidden', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_reviews_order_id_orders'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['seeker_id'], ['users.id'], name=op.f('fk_reviews_seeker_id_users'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['listener_id'], ['users.id'], name=op.f('fk_reviews_listener_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews')),
        sa.UniqueConstraint('order_id', name=op.f('uq_reviews_order_id')),
    )
    op.create_index('ix_reviews_listener', 'reviews', ['listener_id', 'created_at'])

    op.create_table(
        'served_topics',
        sa.Column('order_id', sa.String(length=32), nullable=False),
        sa.Column('listener_id', sa.String(length=32), nullable=False),
        sa.Column('topics', sa.JSON(), nullable=False),
        sa.Column('indexed_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_served_topics_order_id_orders'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('order_id', name=op.f('pk_served_topics')),
    )
    op.create_index('ix_served_topics_listener', 'served_topics', ['listener_id'])


def downgrade() -> None:
    op.drop_table('served_topics')
    op.drop_table('reviews')
    op.drop_table('moderation_actions')
    op.drop_table('reports')
    op.drop_table('training_attempts')
    op.drop_table('qualifications')
    op.drop_table('identity_attempts')
    op.drop_table('identity_checks')
    with op.batch_alter_table('listener_profiles') as b:
        b.drop_column('gender')
