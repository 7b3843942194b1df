"""Accounts over the real HTTP API: sign-up, login, sessions, CSRF, rate limit, roles."""

from __future__ import annotations

import httpx
import pytest

from miaohui.clock import FakeClock
from miaohui.config import Settings
from miaohui.demo import PASSWORD
from tests.conftest import LiveServer, make_settings


def test_signup_login_me_logout(server):
    with httpx.Client(base_url=server.url) as c:
        r = c.post(
            "/api/auth/signup",
            json={"username": "night_owl", "password": "s3cret-pass", "display_name": "夜猫", "role": "seeker"},
        )
        assert r.status_code == 201, r.text
        assert "mh_session" in r.cookies and "mh_csrf" in r.cookies
        set_cookie = r.headers.get_list("set-cookie")
        session_cookie = next(h for h in set_cookie if h.startswith("mh_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
        assert "Secure" not in session_cookie and "strict-transport-security" not in r.headers  # plain http here
        me = c.get("/api/auth/me").json()
        assert me["display_name"] == "夜猫" and me["role"] == "seeker"
        # Logging out through the cookie needs the CSRF header.
        assert c.post("/api/auth/logout").status_code == 403
        r = c.post("/api/auth/logout", headers={"x-csrf-token": c.cookies["mh_csrf"]})
        assert r.status_code == 204
        assert c.get("/api/auth/me").status_code == 401


def test_password_is_argon2_and_wrong_password_rejected(server):
    r = httpx.post(server.url + "/api/auth/login", json={"username": "xiaoyu", "password": "wrong-password"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "bad_credentials" and err["message"] and err["message_en"]

    from sqlalchemy import select

    from miaohui.accounts.models import User

    stored = server.db(lambda db: db.scalar(select(User.password_hash).where(User.username == "xiaoyu")))
    assert stored.startswith("$argon2id$")


def test_login_rate_limit(server, clock):
    url = server.url + "/api/auth/login"
    for _ in range(server.settings.login_max_failures):
        assert httpx.post(url, json={"username": "ahe", "password": "nope-nope"}).status_code == 401
    r = httpx.post(url, json={"username": "ahe", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
    clock.advance(server.settings.login_window_seconds + 1)
    assert httpx.post(url, json={"username": "ahe", "password": PASSWORD}).status_code == 200


def test_signup_validation_and_duplicates(server):
    url = server.url + "/api/auth/signup"
    bad = [
        {"username": "ab", "password": "longenough", "display_name": "x"},
        {"username": "okname", "password": "short", "display_name": "x"},
        {"username": "okname", "password": "longenough", "display_name": ""},
        {"username": "bad name!", "password": "longenough", "display_name": "x"},
        {"username": "okname", "password": "longenough", "display_name": "x", "role": "admin"},
    ]
    for body in bad:
        r = httpx.post(url, json=body)
        assert r.status_code == 422, body
        assert r.json()["error"]["message"]
    r = httpx.post(url, json={"username": "XiaoYu", "password": "longenough", "display_name": "x"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "username_taken"
    assert httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_session_expiry(server, clock):
    r = httpx.post(server.url + "/api/auth/login", json={"username": "xiaoyu", "password": PASSWORD})
    token = r.json()["token"]
    h = {"authorization": f"Bearer {token}"}
    assert httpx.get(server.url + "/api/auth/me", headers=h).status_code == 200
    clock.advance(days=server.settings.session_days + 1)
    assert httpx.get(server.url + "/api/auth/me", headers=h).status_code == 401


def test_listener_signup_is_pending_until_admin_approves(server, admin, seeker):
    with httpx.Client(base_url=server.url) as c:
        r = c.post(
            "/api/auth/signup",
            json={"username": "newbie", "password": "longenough", "display_name": "新人", "role": "listener"},
        )
        assert r.status_code == 201
        token = r.json()["token"]
        lid = r.json()["user"]["id"]
    h = {"authorization": f"Bearer {token}"}
    r = httpx.put(
        server.url + "/api/listener/profile",
        headers=h,
        json={"headline": "陪你聊聊", "topics": ["失眠"], "price_per_hour_fen": 4500},
    )
    assert r.status_code == 200 and r.json()["status"] == "pending"
    ids = [c["user_id"] for c in httpx.get(server.url + "/api/listeners").json()]
    assert lid not in ids
    assert httpx.get(server.url + f"/api/listeners/{lid}").status_code == 404
    # Seekers cannot open a conversation with an unlisted listener.
    r = httpx.post(server.url + "/api/conversations", json={"listener_id": lid}, headers=seeker.headers)
    assert r.status_code == 404
    # Only an admin approves.
    assert httpx.post(server.url + f"/api/admin/listeners/{lid}/approve", headers=seeker.headers).status_code == 403
    pending = httpx.get(server.url + "/api/admin/listeners/pending", headers=admin.headers).json()
    assert lid in [p["user_id"] for p in pending]
    r = httpx.post(server.url + f"/api/admin/listeners/{lid}/approve", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["qualifications_declared"] == []
    ids = [c["user_id"] for c in httpx.get(server.url + "/api/listeners").json()]
    assert lid in ids
    # Approving twice is a no-op, not an error.
    assert httpx.post(server.url + f"/api/admin/listeners/{lid}/approve", headers=admin.headers).status_code == 200


def test_directory_cards_and_filters(server):
    cards = httpx.get(server.url + "/api/listeners").json()
    assert len(cards) == 4
    prices = {c["price_per_hour_fen"] for c in cards}
    assert len(prices) == 4
    for c in cards:
        assert set(c) >= {
            "display_name", "topics", "languages", "qualifications_declared", "price_per_hour_fen", "online_now"
        }
        assert c["online_now"] is False
    assert [c["display_name"] for c in httpx.get(server.url + "/api/listeners", params={"topic": "失恋"}).json()] == [
        "林晴"
    ]
    assert httpx.get(server.url + "/api/listeners", params={"online": "true"}).json() == []
    assert httpx.get(server.url + "/api/listeners", params={"topic": "x" * 50}).status_code == 422


def test_openapi_and_healthz(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/api/conversations/{conversation_id}/messages" in spec["paths"]
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("cookie_secure, secure", [(None, True), (False, False)])
def test_production_cookies_are_https_only_with_hsts(sqlite_url, tmp_path, cookie_secure, secure):
    """Production runs behind HTTPS: its cookies carry Secure and every
    response HSTS, unless MIAOHUI_COOKIE_SECURE says otherwise."""
    settings = make_settings(sqlite_url, tmp_path, env="production", cookie_secure=cookie_secure)
    server = LiveServer(settings, FakeClock()).start()
    try:
        r = httpx.post(server.url + "/api/auth/login", json={"username": "xiaoyu", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookies = r.headers.get_list("set-cookie")
        assert cookies and all(("; Secure" in h or h.endswith("Secure")) == secure for h in cookies), cookies
        for path in ("/", "/healthz", "/static/css/app.css"):
            hsts = httpx.get(server.url + path).headers.get("strict-transport-security")
            assert hsts == ("max-age=31536000" if secure else None), path
    finally:
        server.stop()


def test_secure_cookies_default_follows_the_environment():
    assert Settings(env="development").secure_cookies is False
    assert Settings(env="production").secure_cookies is True
    assert Settings(env="development", cookie_secure=True).secure_cookies is True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_signed_in_write_waits_for_another_writer_instead_of_failing(server, listener):
    """SQLite: the sign-in lookup's read transaction is over before the route
    writes, so a write that has to wait for another connection's commit waits
    (busy_timeout) instead of failing with "database is locked" — which a
    transaction that read before that commit does at once."""
    import sqlite3
    import threading
    import time

    other = sqlite3.connect(server.settings.resolved_database_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (the message writer, the duty sampler) holds the lock
    other.execute("UPDATE listener_profiles SET headline = headline || '。' WHERE user_id != ?", (listener.id,))
    out = {}

    def toggle():
        out["r"] = httpx.put(f"{server.url}/api/listener/availability", json={"accepting": False},
                             headers=listener.headers, timeout=30)

    t = threading.Thread(target=toggle)
    t.start()
    time.sleep(0.5)  # the request has read who is asking and now waits to write
    other.execute("COMMIT")
    t.join(30)
    other.close()
    assert out["r"].status_code == 204, out["r"].text
    me = httpx.get(f"{server.url}/api/listener/profile", headers=listener.headers).json()
    assert me["accepting"] is False
