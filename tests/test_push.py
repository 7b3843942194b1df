"""关闭页面后也提醒 (Web Push): the wire format against RFC 8291's own vector,
subscriptions through the API, and notices from the live server (SQLite and
PostgreSQL) to a push service speaking RFC 8030 over real HTTP
(tests/fake_push_service.py), decrypted with the subscribing browser's keys."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from miaohui.push import relay as push_relay
from miaohui.push import webpush
from miaohui.push.relay import notice_for
from tests.conftest import Api, free_port
from tests.fake_push_service import Device, FakePushService
from tests.test_chat_ws import cid, connect

PUSH_PORT = free_port()
ORIGINS = [f"http://127.0.0.1:{PUSH_PORT}"]
pytestmark = pytest.mark.server_settings(push_extra_origins=ORIGINS)
QUIET = 0.8  # seconds to wait for a push that must not come


@pytest.fixture(scope="module")
def push_service():
    s = FakePushService(PUSH_PORT).start()
    yield s
    s.stop()


@pytest.fixture
def service(push_service, server):
    push_service.received.clear()
    push_service.refused.clear()
    push_service.app_key = webpush.unb64u(httpx.get(f"{server.url}/api/push/key").json()["public_key"])
    return push_service


def subscribe(server, who: Api, device: Device) -> httpx.Response:
    return httpx.put(f"{server.url}/api/push/subscription", json=device.subscription(), headers=who.headers)


def devices(server, who: Api) -> list[dict]:
    r = httpx.get(f"{server.url}/api/push/devices", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def say(api: Api, conversation: str, text: str) -> None:
    ws, _ = await connect(api, conversation)
    try:
        await ws.send(json.dumps({"type": "send", "client_id": cid(), "body": text}))
        while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "ack":
            pass
    finally:
        await ws.close()


# ------------------------------------------------------------- wire format


def test_encryption_reproduces_rfc_8291_appendix_a_and_decrypts():
    u = webpush.unb64u
    body = webpush.encrypt(
        b"When I grow up, I want to be a watermelon",
        u("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
        u("BTBZMqHH6r4Tts7J_aSIgg"),
        salt=u("DGv6ra1nlYgDCS1FRnbzlw"),
        sender=webpush.private_from_bytes(u("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")),
    )
    assert webpush.b64u(body) == (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBr"
        "u3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
    ua = webpush.private_from_bytes(u("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
    assert webpush.decrypt(body, ua, u("BTBZMqHH6r4Tts7J_aSIgg")) == b"When I grow up, I want to be a watermelon"
    # Every real message has its own salt and ephemeral key.
    device = Device(FakePushService(0))
    a, b = (webpush.encrypt(b"x", webpush.public_bytes(device.key), device.auth) for _ in range(2))
    assert a[:16] != b[:16] and a[21:86] != b[21:86]
    assert device.read(webpush.encrypt(b'{"ok":1}', webpush.public_bytes(device.key), device.auth)) == {"ok": 1}
    with pytest.raises(ValueError):
        webpush.encrypt(b"x" * (webpush.MAX_PLAINTEXT + 1), webpush.public_bytes(device.key), device.auth)


def test_vapid_header_verifies_and_a_changed_claim_does_not():
    key = webpush.derive_vapid_key("secret-1")
    assert webpush.public_bytes(key) == webpush.public_bytes(webpush.derive_vapid_key("secret-1"))
    assert webpush.public_bytes(key) != webpush.public_bytes(webpush.derive_vapid_key("secret-2"))
    header = webpush.vapid_header(key, "https://fcm.googleapis.com", "mailto:ops@example.org", 1_900_000_000)
    claims, k = webpush.verify_vapid(header)
    assert claims == {"aud": "https://fcm.googleapis.com", "exp": 1_900_000_000, "sub": "mailto:ops@example.org"}
    assert k == webpush.public_bytes(key)
    t = header.split("t=")[1].split(",")[0]
    h, c, s = t.split(".")
    forged = webpush.b64u(json.dumps({"aud": "https://evil.example", "exp": 1_900_000_000, "sub": "x"}).encode())
    with pytest.raises(ValueError):
        webpush.verify_vapid(header.replace(c, forged))


def test_only_events_for_someone_away_become_notices_and_none_carries_text():
    conv, listener, seeker = "c" * 32, "l" * 32, "s" * 32
    first = notice_for(f"user:{listener}", json.dumps(
        {"type": "activity", "conversation_id": conv, "seq": 1, "sender_id": seeker, "at": "x"}))
    assert json.loads(first.payload("listener")) == {"title": "秒回", "body": "有人找你倾诉，请尽快回复",
                                                    "tag": f"mh-conv-{conv}", "url": f"/chat/{conv}", "urgent": True}
    later = notice_for(f"user:{seeker}", json.dumps({"type": "activity", "conversation_id": conv, "seq": 7}))
    assert json.loads(later.payload("seeker"))["body"] == "你有一条新消息"
    order = {"id": "o" * 32, "conversation_id": conv, "listener_id": listener, "seeker_id": seeker,
             "kind_label": "30分钟", "response_window_s": 10}
    started = {"type": "order", "order": order, "started": True}
    assert "10秒内回复" in json.loads(notice_for(f"user:{listener}", json.dumps(started)).payload("listener"))["body"]
    assert json.loads(notice_for(f"user:{seeker}", json.dumps(started)).payload("seeker"))["body"] == \
        "你预约的30分钟倾诉开始了"
    # The reply clock at 70 % of the window: the listener is told how long is left; the seeker nothing.
    waiting = {**order, "id": "o" * 32, "pending_since": "2026-11-25T12:00:00+00:00", "pending_seq": 4,
               "server_now": "2026-11-25T12:00:07.200000+00:00"}
    warning = {"type": "order", "order": waiting, "started": False, "clock_warning": True}
    told = notice_for(f"user:{listener}", json.dumps(warning))
    assert json.loads(told.payload("listener")) == {"title": "秒回 · 该回复了", "body": "还有 3 秒就超出回复时限",
                                                   "tag": f"mh-conv-{conv}", "url": f"/chat/{conv}", "urgent": True}
    assert told.cooldown_key != first.cooldown_key  # not held back by the message's notice a few seconds before
    assert notice_for(f"user:{seeker}", json.dumps(warning)) is None
    from miaohui.supervision.monitor import SUPERVISION_TOPIC

    assert push_relay.SUPERVISION_TOPIC == SUPERVISION_TOPIC  # named twice (the relay does not load the monitor)
    case = notice_for("supervision", json.dumps({"type": "case", "alarm": True, "case": {"id": "k" * 32}}))
    assert case.role == "supervisor" and case.urgent and case.url == "/supervision"
    for topic, event in [(f"user:{listener}", {"type": "typing", "conversation_id": conv}),
                         (f"user:{listener}", {"type": "order", "order": order, "started": False}),
                         (f"user:{listener}", {"type": "risk", "conversation_id": conv, "tier": "plan"}),
                         ("supervision", {"type": "case", "alarm": False, "case": {"id": "k"}})]:
        assert notice_for(topic, json.dumps(event)) is None


# ------------------------------------------------------------- subscriptions


def test_subscriptions_point_only_at_push_services_and_belong_to_one_sign_in(server, listener, seeker, service):
    key = httpx.get(f"{server.url}/api/push/key").json()
    assert key["enabled"] and len(webpush.unb64u(key["public_key"])) == 65
    device = Device(service)
    good = device.subscription()
    for endpoint in ["http://10.0.0.1/internal", "https://fcm.googleapis.com.evil.example/x",
                     "https://user@fcm.googleapis.com/x", "https://fcm.googleapis.com:8443/x",
                     "http://fcm.googleapis.com/x", "ftp://updates.push.services.mozilla.com/x",
                     f"http://127.0.0.1:{PUSH_PORT + 1}/sub/x"]:
        r = httpx.put(f"{server.url}/api/push/subscription", json={**good, "endpoint": endpoint},
                      headers=listener.headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "push_service_unknown", (endpoint, r.text)
    bad_point = webpush.b64u(b"\x04" + b"\x00" * 64)
    for keys in [{"p256dh": bad_point, "auth": good["keys"]["auth"]},
                 {"p256dh": good["keys"]["p256dh"], "auth": webpush.b64u(b"x" * 17)}]:
        r = httpx.put(f"{server.url}/api/push/subscription", json={**good, "keys": keys}, headers=listener.headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "push_keys_invalid", r.text
    r = httpx.put(f"{server.url}/api/push/subscription", json={**good, "endpoint": "x" * 2000},
                  headers=listener.headers)
    assert r.status_code in (400, 422) and "error" in r.json()
    assert devices(server, listener) == []
    # A vendor's service is accepted (nothing is sent to it here).
    fcm = {**good, "endpoint": "https://fcm.googleapis.com/fcm/send/abc:def"}
    assert httpx.put(f"{server.url}/api/push/subscription", json=fcm, headers=listener.headers).status_code == 200

    assert subscribe(server, listener, device).status_code == 200
    assert subscribe(server, listener, device).status_code == 200  # again: the same device
    mine = devices(server, listener)
    assert len(mine) == 2 and all(d["this_sign_in"] for d in mine)
    assert {d["service"] for d in mine} == {"fcm.googleapis.com", "127.0.0.1"}
    assert all(d["this_sign_in"] is False for d in devices(server, Api(server, "linqing")))
    assert devices(server, seeker) == []
    # Nobody removes another's device; its owner can.
    theirs = mine[0]["id"]
    assert httpx.delete(f"{server.url}/api/push/devices/{theirs}", headers=seeker.headers).status_code == 404
    assert httpx.delete(f"{server.url}/api/push/devices/{theirs}", headers=listener.headers).status_code == 204
    export = httpx.get(f"{server.url}/api/account/export", headers=listener.headers).json()
    assert [d["service"] for d in export["push_devices"]] == ["127.0.0.1"]
    assert device.name not in json.dumps(export)  # the endpoint is a capability: not in the copy
    r = httpx.post(f"{server.url}/api/push/unsubscribe", json={"endpoint": device.endpoint}, headers=listener.headers)
    assert r.status_code == 204 and devices(server, listener) == []
    # The same device subscribed under another account moves to it.
    assert subscribe(server, listener, device).status_code == 200
    assert subscribe(server, seeker, device).status_code == 200
    assert devices(server, listener) == [] and len(devices(server, seeker)) == 1


# ------------------------------------------------------------- notices


async def test_a_listener_with_no_page_open_is_pushed_once_and_never_the_text(
        server, seeker, listener, conversation, service):
    device = Device(service)
    assert subscribe(server, listener, device).status_code == 200
    secret = "我最近睡不着，心里很乱"
    await say(seeker, conversation, secret)
    (notice,) = service.wait_for(device)
    assert notice == {"title": "秒回", "body": "有人找你倾诉，请尽快回复", "tag": f"mh-conv-{conversation}",
                      "url": f"/chat/{conversation}", "urgent": True}
    got = service.for_device(device)[0]
    assert secret.encode() not in got.body and "linqing" not in json.dumps(notice)
    assert got.headers["urgency"] == "high" and got.headers["ttl"] == "3600" and len(got.headers["topic"]) <= 32
    assert got.vapid["sub"] == server.settings.vapid_subject
    # A burst in the same conversation is one notice.
    await say(seeker, conversation, "你在吗")
    await asyncio.sleep(QUIET)
    assert len(service.for_device(device)) == 1
    assert devices(server, listener)[0]["last_sent_at"] is not None


@pytest.mark.server_settings(push_extra_origins=ORIGINS, push_cooldown_seconds=0)
async def test_nobody_is_pushed_while_a_page_is_open_and_a_dead_device_is_forgotten(
        server, seeker, listener, conversation, service, monkeypatch):
    monkeypatch.setattr(push_relay, "RETRIES", (0.05, 0.05))
    device, gone, busy = Device(service), Device(service, kind="gone"), Device(service, kind="busy")
    for d in (device, gone, busy):
        assert subscribe(server, listener, d).status_code == 200
    async with listener.ws("/ws/inbox") as inbox:
        json.loads(await inbox.recv())  # hello: online
        await say(seeker, conversation, "在吗")
        await asyncio.sleep(QUIET)
        assert service.for_device(device) == []
    await asyncio.sleep(0.2)  # the inbox socket's presence cleared
    await say(seeker, conversation, "我还在")
    assert service.wait_for(device)[0]["body"] == "你有一条新消息"
    assert service.wait_for(busy)[0]["tag"] == f"mh-conv-{conversation}"  # a busy service is tried again
    deadline = time.time() + 5
    while len(devices(server, listener)) != 2:  # 410 Gone: the browser dropped it
        assert time.time() < deadline, devices(server, listener)
        await asyncio.sleep(0.05)


async def test_signing_out_stops_pushes_to_that_device(server, seeker, conversation, service):
    other_sign_in = Api(server, "linqing")
    device = Device(service)
    assert subscribe(server, other_sign_in, device).status_code == 200
    r = httpx.post(f"{server.url}/api/auth/logout", headers=other_sign_in.headers)
    assert r.status_code == 204
    assert devices(server, Api(server, "linqing")) == []  # gone with the session
    await say(seeker, conversation, "有人吗")
    await asyncio.sleep(QUIET)
    assert service.for_device(device) == []


@pytest.mark.server_settings(push_extra_origins=ORIGINS, sla_tick_seconds=0.05)
async def test_an_urgent_case_reaches_a_supervisor_with_no_page_open(server, seeker, listener, conversation, service):
    from tests.test_supervision import IMMINENT

    sup = Api(server, "supervisor")
    device = Device(service)
    assert subscribe(server, sup, device).status_code == 200
    await say(seeker, conversation, IMMINENT)
    notices = service.wait_for(device, timeout=15)
    assert notices[0]["title"] == "秒回 · 紧急个案" and notices[0]["url"] == "/supervision"
    assert notices[0]["urgent"] is True and "安眠药" not in json.dumps(notices)


async def test_a_busy_push_service_holds_back_no_one_else(server, seeker, listener, conversation, service):
    """One device's service answers 503 and is retried for seconds; the
    notice to someone else that comes meanwhile goes out at once."""
    busy, seekers = Device(service, kind="busy"), Device(service)
    assert subscribe(server, listener, busy).status_code == 200
    assert subscribe(server, seeker, seekers).status_code == 200
    await say(seeker, conversation, "在吗")  # → the listener's busy service: 503, retried after 1 s and 5 s
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await say(listener, conversation, "我在，慢慢说")  # → the seeker, who has no page open
    assert service.wait_for(seekers, timeout=3)[0]["body"] == "你有一条新消息"
    assert time.monotonic() - started < 2 and service.for_device(busy) == []  # still being retried
    assert service.wait_for(busy, timeout=10)[0]["body"] == "有人找你倾诉，请尽快回复"


@pytest.mark.server_settings(push_extra_origins=ORIGINS, sla_tick_seconds=0.05)
def test_a_listener_with_no_page_open_is_warned_once_a_turn_before_the_reply_window_runs_out(
        server, seeker, listener, clock, service):
    """The open console warns from its own timer; a phone in a pocket hears
    it from the scheduler: at 70 % of the window, once per turn, not after a
    reply, and not once the window is already gone (a scheduler that was down)."""
    from tests.test_orders import buy, fund
    from tests.test_orders import say as post

    phone, seekers = Device(service), Device(service)
    assert subscribe(server, listener, phone).status_code == 200
    assert subscribe(server, seeker, seekers).status_code == 200
    fund(server, seeker, 500)
    order = buy(server, seeker, listener).json()["order"]
    assert order["status"] == "active" and order["response_window_s"] == 10
    conv = order["conversation_id"]
    got = service.wait_for(phone)  # the order began
    assert got[0]["body"] == "新订单开始了：30分钟，10秒内回复"

    def warnings() -> list[dict]:
        return [n for n in (phone.read(r.body) for r in service.for_device(phone)) if n["title"] == "秒回 · 该回复了"]

    post(server, seeker, conv, "在吗，我有点难受")
    clock.advance(6)  # 60 %: not yet
    time.sleep(QUIET)
    assert warnings() == []
    clock.advance(1)  # 70 %
    deadline = time.time() + 5
    while not warnings():
        assert time.time() < deadline, [phone.read(r.body) for r in service.for_device(phone)]
        time.sleep(0.02)
    assert warnings() == [{"title": "秒回 · 该回复了", "body": "还有 3 秒就超出回复时限", "tag": f"mh-conv-{conv}",
                           "url": f"/chat/{conv}", "urgent": True}]
    clock.advance(2)  # 90 %: once a turn
    time.sleep(QUIET)
    assert len(warnings()) == 1

    post(server, listener, conv, "我在，慢慢说")
    post(server, seeker, conv, "今天又被骂了")  # a new turn
    clock.advance(7)
    deadline = time.time() + 5
    while len(warnings()) < 2:
        assert time.time() < deadline, warnings()
        time.sleep(0.02)
    post(server, listener, conv, "被骂的时候一定很委屈")

    # The scheduler sees a turn only after its window is gone: it is marked, and nothing is said.
    post(server, seeker, conv, "嗯")
    clock.advance(12)
    time.sleep(QUIET)
    assert len(warnings()) == 2
    assert all(n["title"] != "秒回 · 该回复了" for n in (seekers.read(r.body) for r in service.for_device(seekers)))
