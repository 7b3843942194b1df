"""chat: each side's last sent sequence number on the conversation row

The message writer advanced the sender's participant watermarks with every
message; those now come from ``conversations.seeker_sent_seq`` /
``listener_sent_seq``, written by the UPDATE that advances ``last_seq``.
Existing rows start at 0: the participant rows already hold everything sent
before this revision.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases.  Alembic's batch mode would rebuild
    # the table on SQLite, and dropping the old copy would cascade to every
    # participant and message that references it.
    op.add_column('conversations', sa.Column('seeker_sent_seq', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('conversations', sa.Column('listener_sent_seq', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    # Fold the sides back into the participant rows before the columns go.
    op.execute(
        "UPDATE participants SET"
        " last_read_seq = CASE WHEN last_read_seq < s.seq THEN s.seq ELSE last_read_seq END,"
        " last_delivered_seq = CASE WHEN last_delivered_seq < s.seq THEN s.seq ELSE last_delivered_seq END"
        " FROM (SELECT c.id AS cid, p.user_id AS uid, CASE WHEN p.role = 'seeker' THEN c.seeker_sent_seq"
        " ELSE c.listener_sent_seq END AS seq FROM conversations c JOIN participants p ON p.conversation_id = c.id"
        " WHERE p.role IN ('seeker', 'listener', 'companion')) AS s"
        " WHERE participants.conversation_id = s.cid AND participants.user_id = s.uid"
    )
    op.drop_column('conversations', 'listener_sent_seq')  # SQLite ≥ 3.35: ALTER TABLE … DROP COLUMN, no rebuild
    op.drop_column('conversations', 'seeker_sent_seq')
