"""Alembic, driven from code so ``miaohui migrate`` works from an installed package.

``keys`` is the message key ring spec (``MIAOHUI_MESSAGE_KEYS``): revisions
that move text into or out of ciphertext (0010) read it from
``config.attributes["message_keys"]``.  Without it they refuse to touch a
database that has such text.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str, keys: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["message_keys"] = keys
    return cfg


def upgrade(url: str, revision: str = "head", keys: str | None = None) -> None:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url, keys), revision)
