"""supervision: supervisors leave the conversations of cases already resolved

Since this revision, resolving a case takes the supervisors who joined it out
of the conversation (``supervision.service.resolve``): joining gives access
for the case, not for every later session of the pair.  Cases resolved before
it left their supervisors in; this takes out every supervisor participant of
a conversation with no open case (``risk_cases.open_key`` is the conversation
id while a case is open).  Nothing to put back on downgrade: the rows were
access that should have ended.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM participants WHERE role = 'supervisor' AND conversation_id NOT IN"
        " (SELECT open_key FROM risk_cases WHERE open_key IS NOT NULL)"
    )


def downgrade() -> None:
    pass
