"""privacy: the note a seeker sends with a gift is encrypted at rest

The last free-text column people write about each other that 0010 left in
plaintext: ``gifts.note`` moves to ``note_ct`` (AES-GCM under the key ring,
``key_id`` per row, associated data ``gifts|<id>|note``; ``core.sealed``).
Like 0010, existing notes are encrypted with the key ring ``miaohui
migrate`` passes; without keys the revision refuses (changing nothing) when
some gift has a note.  Downgrading decrypts back.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

from miaohui.core.crypto import KeyRing, field_aad

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _keyring(conn, column: str, test: str) -> KeyRing | None:
    keys = op.get_context().config.attributes.get('message_keys')
    if keys:
        return KeyRing(keys)
    if conn.execute(sa.text(f'SELECT 1 FROM gifts WHERE {test} LIMIT 1')).first():
        raise RuntimeError(f"migration 0011 must move gifts.{column}: run `miaohui migrate` (it passes "
                           "MIAOHUI_MESSAGE_KEYS), or miaohui.migrate.upgrade(url, keys=...)")
    return None


def upgrade() -> None:
    conn = op.get_bind()
    ring = _keyring(conn, 'note', "note IS NOT NULL AND note <> ''")
    op.add_column('gifts', sa.Column('key_id', sa.String(length=16), nullable=True))
    op.add_column('gifts', sa.Column('note_ct', sa.LargeBinary(), nullable=True))
    rows = conn.execute(sa.text("SELECT id, note FROM gifts WHERE note IS NOT NULL AND note <> ''")).all() if ring else []
    if rows:
        conn.execute(sa.text('UPDATE gifts SET key_id = :key_id, note_ct = :ct WHERE id = :id'),
                     [{'id': gid, 'key_id': ring.active_id, 'ct': ring.encrypt(note, field_aad('gifts', gid, 'note'))[1]}
                      for gid, note in rows])
    op.drop_column('gifts', 'note')


def downgrade() -> None:
    conn = op.get_bind()
    ring = _keyring(conn, 'note_ct', 'note_ct IS NOT NULL')
    op.add_column('gifts', sa.Column('note', sa.String(length=100), nullable=False, server_default=''))
    rows = conn.execute(sa.text('SELECT id, key_id, note_ct FROM gifts WHERE note_ct IS NOT NULL')).all() if ring else []
    if rows:
        conn.execute(sa.text('UPDATE gifts SET note = :note WHERE id = :id'),
                     [{'id': gid, 'note': ring.decrypt(kid, bytes(ct), field_aad('gifts', gid, 'note'))}
                      for gid, kid, ct in rows])
    op.drop_column('gifts', 'note_ct')
    op.drop_column('gifts', 'key_id')
