"""A supervisor's access to a conversation ends with the case: joining makes
them a participant (and is audited like a transcript read, since the history
is theirs to read from then on); resolving takes them out again, so every
later read of that pair's conversation — every later session, the pair keeps
one conversation — is an audited transcript read, never a participant's.
Over the live server, on SQLite and PostgreSQL, with real WebSockets."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from miaohui.supervision.service import LEAVE_NOTICE
from tests.conftest import Api
from tests.test_chat_ws import cid, connect, drain_sync
from tests.test_orders import history, say
from tests.test_supervision import IDEATION, PLAN, get, post, wait_queue


@pytest.fixture
def sup(server) -> Api:
    return Api(server, "supervisor")


def access_log(server, sup: Api, case_id: str) -> list[dict]:
    r = get(server, sup, f"/api/supervision/cases/{case_id}/access")
    assert r.status_code == 200, r.text
    return r.json()


def event_kinds(server, sup: Api, case_id: str) -> list[str]:
    return [e["kind"] for e in get(server, sup, f"/api/supervision/cases/{case_id}").json()["events"]]


async def refused(who: Api, conversation: str) -> tuple[dict, int]:
    """The first frame and the close code of ``/ws/chat`` for ``who``."""
    async with who.ws(f"/ws/chat/{conversation}?after_seq=0") as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:  # a backlog would come here if the socket were accepted
                await asyncio.wait_for(ws.recv(), 5)
        return first, closed.value.rcvd.code


def assert_forbidden(r) -> None:
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "conversation_forbidden" and err["message"] == "无权访问该会话" and err["message_en"]


def test_joining_is_audited_and_resolving_ends_the_supervisors_access(server, seeker, listener, conversation, sup):
    say(server, seeker, conversation, "在吗")
    say(server, listener, conversation, "我在")
    say(server, seeker, conversation, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert access_log(server, sup, case_id) == []

    # Joining gives the whole history to read: audited at once, up to the last message.
    assert post(server, sup, f"/api/supervision/cases/{case_id}/join").status_code == 200
    (row,) = access_log(server, sup, case_id)
    assert (row["reader_id"], row["reader_role"], row["via"], row["case_id"], row["upto_seq"]) == (
        sup.id, "supervisor", "join", case_id, 3)
    joined = next(e for e in get(server, sup, f"/api/supervision/cases/{case_id}").json()["events"]
                  if e["kind"] == "joined")
    assert joined["data"]["upto_seq"] == 3

    # While the case is open the supervisor is a participant, as designed.
    r = get(server, sup, f"/api/conversations/{conversation}/messages?after_seq=0")
    assert r.status_code == 200 and [m["body"] for m in r.json()["messages"]][:3] == ["在吗", "我在", PLAN]
    r = post(server, sup, f"/api/conversations/{conversation}/messages", {"client_id": cid(), "body": "我是督导，我在。"})
    assert r.status_code == 201

    r = post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已处理"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    say(server, seeker, conversation, "过了几天，我又想来聊聊")  # a later session of the same pair

    # The supervisor is out: no history (before the join or after the resolution), no sending, no socket.
    for q in ("?after_seq=0", "", "?before_seq=100"):
        assert_forbidden(get(server, sup, f"/api/conversations/{conversation}/messages{q}"))
    assert_forbidden(post(server, sup, f"/api/conversations/{conversation}/messages",
                          {"client_id": cid(), "body": "还在吗"}))
    assert_forbidden(get(server, sup, f"/api/conversations/{conversation}"))
    assert_forbidden(get(server, sup, f"/api/supervision/conversations/{conversation}/state"))
    assert conversation not in [c["id"] for c in get(server, sup, "/api/conversations").json()]
    first, code = asyncio.run(refused(sup, conversation))
    assert first["type"] == "error" and code == 4403
    assert len(access_log(server, sup, case_id)) == 1  # nothing was read unaudited meanwhile

    # Both sides were told, and the supervisor's words still say who spoke.
    for who in (seeker, listener):
        msgs = history(server, who, conversation)
        assert [m["sender_role"] for m in msgs] == ["seeker", "listener", "seeker", "system", "supervisor",
                                                    "system", "seeker"]
        assert msgs[5]["body"] == LEAVE_NOTICE and msgs[-1]["body"] == "过了几天，我又想来聊聊"
    assert [k for k in event_kinds(server, sup, case_id) if k in ("joined", "resolved", "left")] == [
        "joined", "resolved", "left"]

    # Reading it now is a transcript read: allowed to staff, and audited.
    r = get(server, sup, f"/api/supervision/cases/{case_id}/transcript")
    assert r.status_code == 200
    assert [m["sender_role"] for m in r.json()["messages"]][4] == "supervisor"
    assert [(a["via"], a["upto_seq"]) for a in access_log(server, sup, case_id)] == [("join", 3), ("api", 7)]

    # A new case can be joined again (a new audit row, a participant again until it is resolved).
    say(server, seeker, conversation, IDEATION)
    case2 = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert case2 != case_id
    assert post(server, sup, f"/api/supervision/cases/{case2}/join").status_code == 200
    assert get(server, sup, f"/api/conversations/{conversation}/messages?after_seq=0").status_code == 200
    assert [a["via"] for a in access_log(server, sup, case2)] == ["join", "api", "join"]
    assert post(server, sup, f"/api/supervision/cases/{case2}/resolve", {"note": "已处理"}).status_code == 200
    assert_forbidden(get(server, sup, f"/api/conversations/{conversation}/messages?after_seq=0"))


def test_resolving_takes_out_every_supervisor_who_joined(server, seeker, listener, conversation, sup, admin):
    say(server, seeker, conversation, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert post(server, sup, f"/api/supervision/cases/{case_id}/join").status_code == 200
    assert post(server, admin, f"/api/supervision/cases/{case_id}/takeover").status_code == 200
    assert [(a["reader_role"], a["via"]) for a in access_log(server, sup, case_id)] == [
        ("supervisor", "join"), ("admin", "join")]
    for who in (sup, admin):
        assert get(server, who, f"/api/conversations/{conversation}/messages").status_code == 200
    # Resolved by the one who did not join: both leave all the same.
    assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已处理"}).status_code == 200
    for who in (sup, admin):
        assert_forbidden(get(server, who, f"/api/conversations/{conversation}/messages?after_seq=0"))
        first, code = asyncio.run(refused(who, conversation))
        assert first["type"] == "error" and code == 4403
    assert event_kinds(server, sup, case_id).count("left") == 2
    notices = [m["body"] for m in history(server, seeker, conversation) if m["sender_role"] == "system"]
    assert notices.count(LEAVE_NOTICE) == 1
    # A case nobody joined closes without a notice.
    say(server, seeker, conversation, IDEATION)
    case2 = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert post(server, sup, f"/api/supervision/cases/{case2}/resolve", {"note": "已处理"}).status_code == 200
    assert "left" not in event_kinds(server, sup, case2)
    notices = [m["body"] for m in history(server, seeker, conversation) if m["sender_role"] == "system"]
    assert notices.count(LEAVE_NOTICE) == 1


def test_whisper_needs_an_open_case(server, seeker, listener, conversation, sup):
    say(server, seeker, conversation, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert post(server, sup, f"/api/supervision/cases/{case_id}/whisper", {"body": "先稳住"}).status_code == 201
    assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已处理"}).status_code == 200
    r = post(server, sup, f"/api/supervision/cases/{case_id}/whisper", {"body": "结案后还能说吗"})
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert (err["code"], err["message"], err["message_en"]) == ("case_resolved", "这个个案已经结案",
                                                                  "the case is resolved")
    assert event_kinds(server, sup, case_id).count("whisper") == 1
    # Like the other actions on a closed case.
    for action in ("join", "takeover", "acknowledge"):
        assert post(server, sup, f"/api/supervision/cases/{case_id}/{action}").status_code == 409


@pytest.mark.asyncio
async def test_an_open_socket_of_the_supervisor_is_closed_on_resolve(server, seeker, listener, conversation, sup):
    say(server, seeker, conversation, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert post(server, sup, f"/api/supervision/cases/{case_id}/join").status_code == 200
    ws, hello = await connect(sup, conversation)
    try:
        assert hello["me"]["role"] == "supervisor"
        await drain_sync(ws)
        assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已处理"}).status_code == 200
        say(server, seeker, conversation, "之后的话")
        seen: list[dict] = []
        code = None
        try:
            while True:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
        except TimeoutError:
            pass  # still open
        assert "之后的话" not in [f.get("body") for f in seen]
        assert code == 4403 and seen[-1]["type"] == "error" and seen[-1]["code"] == "4403"
    finally:
        await ws.close()


@pytest.mark.asyncio
async def test_the_others_open_sockets_stop_counting_the_supervisor(server, seeker, listener, conversation, sup):
    """The seeker's socket, open since before the resolution, no longer sends the
    former supervisor an inbox activity for each message."""
    say(server, seeker, conversation, PLAN)
    case_id = wait_queue(server, sup, lambda q: len(q) == 1)[0]["id"]
    assert post(server, sup, f"/api/supervision/cases/{case_id}/join").status_code == 200
    s_ws, _ = await connect(seeker, conversation)
    inbox = await sup.ws("/ws/inbox")
    try:
        await drain_sync(s_ws)
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "督导还在的时候"}))
        assert await first_activity(inbox) is not None  # a participant: told of the message
        assert post(server, sup, f"/api/supervision/cases/{case_id}/resolve", {"note": "已处理"}).status_code == 200
        await asyncio.sleep(0.3)
        while await first_activity(inbox, 0.3) is not None:  # (the leave notice's own activity, if any)
            pass
        await s_ws.send(json.dumps({"type": "send", "client_id": cid(), "body": "督导走了以后"}))
        assert await first_activity(inbox, 1.5) is None
    finally:
        await s_ws.close()
        await inbox.close()


async def first_activity(ws, timeout: float = 5) -> dict | None:
    try:
        while True:
            f = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if f["type"] == "activity":
                return f
    except TimeoutError:
        return None
