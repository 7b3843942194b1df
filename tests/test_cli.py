"""The console script on a fresh data directory: migrate, seed, print logins."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import unicodedata


def run(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIAOHUI_")}
    env["MIAOHUI_DATA_DIR"] = str(tmp_path / "var")
    return subprocess.run(
        [sys.executable, "-m", "miaohui", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_demo_seeds_and_prints_logins(tmp_path):
    out = run(["demo", "--no-serve"], tmp_path)
    assert out.returncode == 0, out.stderr
    for username in ("xiaoyu", "ahe", "linqing", "zhouyan", "ajin", "xiaobai", "supervisor", "admin"):
        assert username in out.stdout
    # The logins table lines up in a terminal, where a CJK character takes two columns.
    columns = set()
    for line in out.stdout.splitlines():
        for username in ("xiaoyu", "linqing", "newlistener", "ajin"):
            if f" {username} " in line:
                head = line[: line.index(f" {username} ") + 1]
                columns.add(sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in head))
    assert len(columns) == 1, columns
    db = sqlite3.connect(tmp_path / "var" / "miaohui.db")
    roles = dict(db.execute("select role, count(*) from users group by role").fetchall())
    assert roles["seeker"] >= 2 and roles["listener"] >= 4 and roles["supervisor"] == 1 and roles["admin"] == 1
    approved = db.execute("select count(*) from listener_profiles where status='approved'").fetchone()[0]
    prices = db.execute("select count(distinct price_per_hour_fen) from listener_profiles").fetchone()[0]
    assert approved == 4 and prices >= 4
    # Secrets were generated locally, not baked into the code, and are private.
    assert oct((tmp_path / "var" / "secrets.json").stat().st_mode & 0o777) == "0o600"
    # Running again is harmless.
    assert run(["demo", "--no-serve"], tmp_path).returncode == 0
    assert run(["migrate"], tmp_path).returncode == 0


def test_production_refuses_missing_secrets(tmp_path):
    env_run = subprocess.run(
        [sys.executable, "-c", "from miaohui.config import Settings; Settings(env='production').effective_message_keys"],
        capture_output=True,
        text=True,
        env={**os.environ, "MIAOHUI_DATA_DIR": str(tmp_path)},
    )
    assert env_run.returncode != 0 and "MIAOHUI_MESSAGE_KEYS" in env_run.stderr
