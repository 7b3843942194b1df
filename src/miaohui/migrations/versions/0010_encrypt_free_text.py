"""privacy: free text people write about each other is encrypted at rest

Dispute reasons and decision notes, block reasons, report reasons and
decisions, suspension / reinstatement reasons, withdrawal rejections and
admins' notes on qualifications move from plaintext columns to AES-GCM
ciphertext (``<field>_ct``, one ``key_id`` per row; ``core.sealed``), with
the associated data binding each ciphertext to its table, row and field.
``qualifications.title`` stays: it is public text, shown as a badge.

Existing rows are encrypted here, then the plaintext columns are dropped.
That needs the key ring: ``miaohui migrate`` / ``serve`` / ``demo`` pass
``MIAOHUI_MESSAGE_KEYS`` (or ``var/secrets.json``) to Alembic
(``miaohui.migrate.upgrade(url, keys=…)``, ``config.attributes``).  Without
keys the revision still runs on a database with none of this text, and
refuses (changing nothing) on one with some.  Downgrading decrypts back.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

from miaohui.core.crypto import KeyRing, field_aad

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# table: (the primary key columns that name a row in the associated data,
#         {field: its plaintext column type before this revision})
TABLES = {
    'disputes': (('id',), {'reason': sa.Text(), 'note': sa.Text()}),
    'blocks': (('listener_id', 'seeker_id'), {'reason': sa.Text()}),
    'reports': (('id',), {'reason': sa.Text(), 'decision_note': sa.String(length=200)}),
    'moderation_actions': (('id',), {'reason': sa.Text()}),
    'withdrawals': (('id',), {'reason': sa.String(length=200)}),
    'qualifications': (('id',), {'review_note': sa.String(length=200)}),
}


def _keyring(conn, direction: str) -> KeyRing | None:
    """The key ring handed to Alembic, or None; refuses when some row has text to move."""
    keys = op.get_context().config.attributes.get('message_keys')
    if keys:
        return KeyRing(keys)
    for table, (_, fields) in TABLES.items():
        columns = fields if direction == 'up' else [f'{f}_ct' for f in fields]
        test = ' OR '.join(f"({c} IS NOT NULL AND {c} <> '')" if direction == 'up' else f'{c} IS NOT NULL'
                           for c in columns)
        if conn.execute(sa.text(f'SELECT 1 FROM {table} WHERE {test} LIMIT 1')).first():
            raise RuntimeError(
                f"migration 0010 must {'encrypt' if direction == 'up' else 'decrypt'} text in {table}: run "
                "`miaohui migrate` (it passes MIAOHUI_MESSAGE_KEYS), or miaohui.migrate.upgrade(url, keys=...)")
    return None


def _rows(conn, table: str, pk: tuple[str, ...], columns: list[str]):
    return conn.execute(sa.text(f"SELECT {', '.join([*pk, *columns])} FROM {table}")).mappings().all()


def _where(pk: tuple[str, ...]) -> str:
    return ' AND '.join(f'{c} = :pk_{c}' for c in pk)


def upgrade() -> None:
    conn = op.get_bind()
    ring = _keyring(conn, 'up')
    for table, (_, fields) in TABLES.items():
        op.add_column(table, sa.Column('key_id', sa.String(length=16), nullable=True))
        for f in fields:
            op.add_column(table, sa.Column(f'{f}_ct', sa.LargeBinary(), nullable=True))
    for table, (pk, fields) in TABLES.items():
        updates = []
        for row in _rows(conn, table, pk, list(fields)) if ring else ():
            if not any(row[f] for f in fields):
                continue
            key = '|'.join(str(row[c]) for c in pk)
            values = {'key_id': ring.active_id, **{f'pk_{c}': row[c] for c in pk}}
            for f in fields:
                values[f'{f}_ct'] = ring.encrypt(row[f], field_aad(table, key, f))[1] if row[f] else None
            updates.append(values)
        if updates:
            sets = ', '.join(['key_id = :key_id', *(f'{f}_ct = :{f}_ct' for f in fields)])
            conn.execute(sa.text(f'UPDATE {table} SET {sets} WHERE {_where(pk)}'), updates)
        for f in fields:
            # SQLite ≥ 3.35 drops a plain column in place (no table rebuild, no cascade).
            op.drop_column(table, f)


def downgrade() -> None:
    conn = op.get_bind()
    ring = _keyring(conn, 'down')
    for table, (pk, fields) in TABLES.items():
        for f, type_ in fields.items():
            op.add_column(table, sa.Column(f, type_, nullable=False, server_default=''))
        updates = []
        for row in _rows(conn, table, pk, ['key_id', *(f'{f}_ct' for f in fields)]) if ring else ():
            if row['key_id'] is None:
                continue
            key = '|'.join(str(row[c]) for c in pk)
            values = {f'pk_{c}': row[c] for c in pk}
            for f in fields:
                blob = row[f'{f}_ct']
                values[f] = ring.decrypt(row['key_id'], bytes(blob), field_aad(table, key, f)) if blob else ''
            updates.append(values)
        if updates:
            sets = ', '.join(f'{f} = :{f}' for f in fields)
            conn.execute(sa.text(f'UPDATE {table} SET {sets} WHERE {_where(pk)}'), updates)
        for f in fields:
            op.drop_column(table, f'{f}_ct')
        op.drop_column(table, 'key_id')
