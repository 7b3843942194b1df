"""Conversations over REST: who may start one, ordering, unread counts, paging."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Api


def test_start_rules(server, seeker, listener):
    url = server.url + "/api/conversations"
    r = httpx.post(url, json={"listener_id": listener.id}, headers=seeker.headers)
    assert r.status_code == 201
    conv = r.json()
    assert conv["peer"]["display_name"] == "林晴" and conv["unread"] == 0
    # Reopening returns the same conversation.
    r2 = httpx.post(url, json={"listener_id": listener.id}, headers=seeker.headers)
    assert r2.status_code == 200 and r2.json()["id"] == conv["id"]
    # Listeners do not start conversations; unknown listeners are not available.
    r = httpx.post(url, json={"listener_id": seeker.id}, headers=listener.headers)
    assert r.status_code == 403 and r.json()["error"]["message"]
    r = httpx.post(url, json={"listener_id": seeker.id}, headers=seeker.headers)
    assert r.status_code == 404
    assert httpx.post(url, json={"listener_id": listener.id}).status_code == 401
    assert httpx.post(url, json={}, headers=seeker.headers).status_code == 422


def test_list_newest_activity_first_with_unread(server, seeker, seeker2, listener):
    convs = {}
    for api in (seeker, seeker2):
        r = httpx.post(server.url + "/api/conversations", json={"listener_id": listener.id}, headers=api.headers)
        convs[api.id] = r.json()["id"]

    def send(api, body, n):
        r = httpx.post(
            f"{server.url}/api/conversations/{convs[api.id]}/messages",
            json={"client_id": f"c-{api.id[:8]}-{n}", "body": body},
            headers=api.headers,
        )
        assert r.status_code == 201, r.text

    send(seeker, "第一位", 1)
    server.clock.advance(5)
    send(seeker2, "第二位", 1)
    send(seeker2, "第二位又说", 2)
    listed = httpx.get(server.url + "/api/conversations", headers=listener.headers).json()
    assert [c["id"] for c in listed] == [convs[seeker2.id], convs[seeker.id]]
    assert [c["unread"] for c in listed] == [2, 1]
    assert listed[0]["peer"]["display_name"] == "阿禾"
    server.clock.advance(5)
    send(seeker, "我又来了", 2)
    listed = httpx.get(server.url + "/api/conversations", headers=listener.headers).json()
    assert listed[0]["id"] == convs[seeker.id] and listed[0]["preview"] == "我又来了"
    r = httpx.post(
        f"{server.url}/api/conversations/{convs[seeker.id]}/read", json={"seq": 2}, headers=listener.headers
    )
    assert r.status_code == 202
    # Each seeker only ever sees their own conversation.
    mine = httpx.get(server.url + "/api/conversations", headers=seeker2.headers).json()
    assert [c["id"] for c in mine] == [convs[seeker2.id]]


def test_history_paging_and_bad_params(server, seeker, conversation):
    for i in range(1, 121):
        r = httpx.post(
            f"{server.url}/api/conversations/{conversation}/messages",
            json={"client_id": f"page-msg-{i:04d}", "body": f"消息{i}"},
            headers=seeker.headers,
        )
        assert r.json()["seq"] == i
    url = f"{server.url}/api/conversations/{conversation}/messages"
    p1 = httpx.get(url, headers=seeker.headers).json()
    assert [m["seq"] for m in p1["messages"]] == list(range(71, 121)) and p1["has_more"]
    p2 = httpx.get(url, params={"before_seq": 71, "limit": 60}, headers=seeker.headers).json()
    assert [m["seq"] for m in p2["messages"]] == list(range(11, 71)) and p2["has_more"]
    p3 = httpx.get(url, params={"before_seq": 11}, headers=seeker.headers).json()
    assert [m["seq"] for m in p3["messages"]] == list(range(1, 11)) and not p3["has_more"]
    fwd = httpx.get(url, params={"after_seq": 115}, headers=seeker.headers).json()
    assert [m["seq"] for m in fwd["messages"]] == [116, 117, 118, 119, 120]
    for params in ({"limit": 0}, {"limit": 1000}, {"before_seq": 0}, {"before_seq": "x"}, {"after_seq": -1}):
        r = httpx.get(url, params=params, headers=seeker.headers)
        assert r.status_code == 422, params
    r = httpx.get(url, params={"before_seq": 5, "after_seq": 1}, headers=seeker.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_paging"
    for body in ({"client_id": "x", "body": "hi"}, {"client_id": "valid-id-1", "body": ""},
                 {"client_id": "valid-id-2", "body": "长" * 4001}):
        r = httpx.post(url, json=body, headers=seeker.headers)
        assert r.status_code == 422
    r = httpx.post(url, json={"client_id": "valid-id-3", "body": "   "}, headers=seeker.headers)
    assert r.status_code == 400 and r.json()["error"]["message"] == "不能发送空消息"


def test_cookie_auth_needs_csrf_for_writes(server, listener):
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/api/auth/login", json={"username": "xiaoyu", "password": "miaohui-demo"})
        assert r.status_code == 200
        r = c.post("/api/conversations", json={"listener_id": listener.id})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = c.post("/api/conversations", json={"listener_id": listener.id}, headers={"x-csrf-token": "forged"})
        assert r.status_code == 403
        r = c.post(
            "/api/conversations", json={"listener_id": listener.id}, headers={"x-csrf-token": c.cookies["mh_csrf"]}
        )
        assert r.status_code == 201
        assert c.get("/api/conversations").status_code == 200


def test_persists_across_restart(server, seeker, listener, conversation):
    httpx.post(
        f"{server.url}/api/conversations/{conversation}/messages",
        json={"client_id": "before-restart", "body": "重启前的话"},
        headers=seeker.headers,
    )
    server.restart()
    again = Api(server, "linqing")
    page = httpx.get(f"{server.url}/api/conversations/{conversation}/messages", headers=again.headers).json()
    assert [m["body"] for m in page["messages"]] == ["重启前的话"]


def test_sending_counts_as_read_and_writes_only_the_conversation_row(server, seeker, listener, conversation):
    """A sender has received and read everything up to their own message.
    For the seeker and the listener that is kept on the conversation row,
    which every message rewrites anyway, not on their participant row (a
    quarter of SQLite's CPU per message): every reader must see it the same."""
    from sqlalchemy import select

    from miaohui.chat.models import Conversation, Participant

    def send(api, n, body):
        r = httpx.post(f"{server.url}/api/conversations/{conversation}/messages",
                       json={"client_id": f"w-{api.id[:8]}-{n}", "body": body}, headers=api.headers)
        assert r.status_code == 201, r.text
        return r.json()["seq"]

    assert [send(seeker, 1, "在吗"), send(seeker, 2, "睡不着")] == [1, 2]

    def listed(api):
        return httpx.get(server.url + "/api/conversations", headers=api.headers).json()[0]

    mine, theirs = listed(seeker), listed(listener)
    assert (mine["unread"], mine["my_read_seq"], mine["peer_read_seq"]) == (0, 2, 0)
    assert (theirs["unread"], theirs["my_read_seq"], theirs["peer_read_seq"], theirs["peer_delivered_seq"]) == (2, 0, 2, 2)
    # The listener answers without sending a read receipt: replying reads what came before.
    assert send(listener, 1, "我在，慢慢说") == 3
    mine, theirs = listed(seeker), listed(listener)
    assert (mine["unread"], mine["my_read_seq"], mine["peer_read_seq"], mine["peer_delivered_seq"]) == (1, 2, 3, 3)
    assert (theirs["unread"], theirs["my_read_seq"], theirs["peer_read_seq"]) == (0, 3, 2)
    one = httpx.get(f"{server.url}/api/conversations/{conversation}", headers=seeker.headers).json()
    assert (one["unread"], one["peer_read_seq"]) == (1, 3)

    async def rows(db):
        parts = {p.user_id: (p.last_delivered_seq, p.last_read_seq)
                 for p in await db.scalars(select(Participant).where(Participant.conversation_id == conversation))}
        conv = await db.get(Conversation, conversation)
        return parts, (conv.last_seq, conv.seeker_sent_seq, conv.listener_sent_seq)

    parts, conv = server.db(rows)
    assert parts == {seeker.id: (0, 0), listener.id: (0, 0)} and conv == (3, 2, 3)
    # A receipt beyond what one sent moves the participant row; the larger of the two counts.
    r = httpx.post(f"{server.url}/api/conversations/{conversation}/read", json={"seq": 3}, headers=seeker.headers)
    assert r.status_code == 202  # accepted: the writer commits it with its next batch
    deadline = time.monotonic() + 5
    while listed(seeker)["my_read_seq"] != 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (listed(seeker)["unread"], listed(seeker)["my_read_seq"], listed(listener)["peer_read_seq"]) == (0, 3, 3)
    parts, conv = server.db(rows)
    assert parts[seeker.id] == (3, 3) and parts[listener.id] == (0, 0)
