"""Trust over the live server, on SQLite and PostgreSQL: real-name checks
(encrypted, masked, never public), the orders gate (no order before
verification and training), the age rule for buyers, qualification proofs
(type/size limits, encrypted on disk, admin-only, reviewed one by one, badges),
the 心理咨询 wording rule, reports and suspension with a reason."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from sqlalchemy import select

from miaohui.verification import course, identity
from miaohui.verification.models import IdentityAttempt, IdentityCheck, Qualification
from tests.conftest import Api
from tests.test_orders import buy, fund
from tests.test_web_pages import signed_in, text_of

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
ADULT_ID = identity.make_id("310104", date(1995, 6, 18), 235)
TODAY = date(2026, 1, 1)  # FakeClock's day


# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


def call(server, who: Api | None, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", headers=who.headers if who else {}, timeout=10, **kw)


def err(r: httpx.Response) -> str:
    return r.json()["error"]["code"]


def new_listener(server, admin: Api, username: str = "newbie", **profile) -> Api:
    r = httpx.post(f"{server.url}/api/auth/signup", json={
        "username": username, "password": "longenough", "display_name": "新人", "role": "listener"})
    assert r.status_code == 201, r.text
    me = Api(server, username, "longenough")
    body = {"headline": "陪你聊聊", "topics": ["失眠"], "price_per_hour_fen": 4500, **profile}
    assert call(server, me, "PUT", "/api/listener/profile", json=body).status_code == 200
    assert call(server, admin, "POST", f"/api/admin/listeners/{me.id}/approve").status_code == 200
    r = call(server, me, "PUT", "/api/listener/offerings/30m", json={"response_window_s": 30})
    assert r.status_code == 200, r.text
    return me


def verify(server, who: Api, number: str = ADULT_ID, name: str = "王小明") -> httpx.Response:
    return call(server, who, "POST", "/api/verification/identity", json={"legal_name": name, "id_number": number})


def upload(server, who: Api, kind: str, data: bytes = PNG, title: str = "", filename: str = "cert.png"):
    return call(server, who, "POST", "/api/verification/qualifications", data={"kind": kind, "title": title},
                files={"file": (filename, data, "application/octet-stream")})


def test_a_listener_cannot_take_orders_before_verification_and_training(server, seeker, admin):
    fund(server, seeker, 500)
    newbie = new_listener(server, admin)
    # Approved and listed, but neither verified nor trained: no order.
    r = buy(server, seeker, newbie)
    assert r.status_code == 409 and err(r) == "listener_not_ready"
    assert r.json()["error"]["missing"] == ["identity", "training"]
    assert "实名认证" in r.json()["error"]["message"]
    me = call(server, newbie, "GET", "/api/verification/me").json()
    assert me["ready"] is False and [m["key"] for m in me["missing"]] == ["identity", "training"]

    r = verify(server, newbie)
    assert r.status_code == 201, r.text
    assert r.json()["identity"]["number"] == ADULT_ID[:6] + "********" + ADULT_ID[14:]
    assert r.json()["identity"]["name"] == "王**"
    r = buy(server, seeker, newbie)
    assert r.status_code == 409 and r.json()["error"]["missing"] == ["training"]

    # A failed quiz (a crisis question wrong) does not count.
    key = course.answer_key()
    r = call(server, newbie, "POST", "/api/verification/training", json={"answers": {**key, "q5": 0}})
    assert r.status_code == 200 and r.json()["passed"] is False and r.json()["missed_must"] == ["q5"]
    assert r.json()["explanations"]["q5"]
    assert buy(server, seeker, newbie).status_code == 409

    r = call(server, newbie, "POST", "/api/verification/training", json={"answers": key})
    assert r.status_code == 200 and r.json()["passed"] is True and r.json()["expires_at"]
    r = buy(server, seeker, newbie)
    assert r.status_code == 201, r.text

    # Training expires after a year: the gate closes again.
    server.clock.advance(days=366)
    seeker, newbie = Api(server, "xiaoyu"), Api(server, "newbie", "longenough")  # sessions expired meanwhile
    fund(server, seeker, 100)
    r = buy(server, seeker, newbie)
    assert r.status_code == 409 and r.json()["error"]["missing"] == ["training"]
    # Only listeners take the quiz.
    assert call(server, seeker, "POST", "/api/verification/training", json={"answers": key}).status_code == 403


def test_identity_checks_refuse_bad_numbers_and_keep_the_number_secret(server, admin, seeker):
    newbie = new_listener(server, admin)
    cases = [
        (ADULT_ID[:-1] + ("0" if ADULT_ID[-1] != "0" else "1"), "id_checksum", 400),
        ("110105" + "19900230" + "123" + identity.check_char("11010519900230123"), "id_birth_date", 400),
        (identity.make_id("110105", date(2010, 5, 1), 123), "under_18", 400),  # a listener must be 18
        (identity.make_id("110105", date(1990, 5, 1), 999), "identity_mismatch", 400),  # sandbox: no match
    ]
    for number, code, status in cases:
        r = verify(server, newbie, number)
        assert r.status_code == status and err(r) == code, (number, r.text)
    r = verify(server, newbie, ADULT_ID, name="John")
    assert r.status_code == 400 and err(r) == "legal_name"
    # Five failures in a day: even a correct number waits until tomorrow.
    r = verify(server, newbie)
    assert r.status_code == 429 and err(r) == "too_many_attempts"
    server.clock.advance(days=1, seconds=1)
    assert verify(server, newbie).status_code == 201

    # Stored encrypted; the public record and pages never show the name or the number.
    def rows(db):
        return db.execute(select(IdentityCheck.name_ct, IdentityCheck.number_ct, IdentityCheck.id_hash)
                          .where(IdentityCheck.user_id == newbie.id))

    async def fetch(db):
        return list(await rows(db))

    ((name_ct, number_ct, id_hash),) = server.db(fetch)
    assert ADULT_ID.encode() not in number_ct and "王小明".encode() not in name_ct and ADULT_ID not in id_hash
    public = call(server, None, "GET", f"/api/listeners/{newbie.id}/verification").json()
    page = httpx.get(f"{server.url}/listeners/{newbie.id}").text
    for blob in (str(public), page, call(server, None, "GET", f"/api/listeners/{newbie.id}").text):
        assert ADULT_ID not in blob and ADULT_ID[6:14] not in blob and "王小明" not in blob
    assert public["identity"]["live"] and public["identity"]["adult"]
    assert "沙箱" in public["identity"]["provider"]
    # The failed attempts keep only a code, never what was typed.
    codes = server.db(lambda db: _codes(db, newbie.id))
    assert set(codes) >= {"id_checksum", "under_18", "identity_mismatch"}

    # One ID, one listener account.
    other = new_listener(server, admin, username="newbie2")
    r = verify(server, other)
    assert r.status_code == 409 and err(r) == "id_in_use"
    # Staff do not verify.
    assert verify(server, admin).status_code == 403


async def _codes(db, user_id):
    return list(await db.scalars(select(IdentityAttempt.code).where(IdentityAttempt.user_id == user_id)))


def test_a_seeker_with_a_verified_id_under_18_cannot_buy(server, seeker, seeker2, listener):
    fund(server, seeker, 500)
    minor = identity.make_id("440305", date(2009, 3, 1), 402)  # 16 on the fake clock's day
    r = verify(server, seeker, minor, name="李小雨")
    assert r.status_code == 201 and r.json()["identity"]["adult"] is False
    r = buy(server, seeker, listener)
    assert r.status_code == 403 and err(r) == "under_18" and "12356" in r.json()["error"]["message"]
    # Unverified seekers are not asked for an ID; verified adults buy as before.
    fund(server, seeker2, 500)
    assert verify(server, seeker2, identity.make_id("440305", date(1999, 3, 1), 402), name="何禾").status_code == 201
    assert buy(server, seeker2, listener).status_code == 201
    # The minor turns 18: the same account may buy.
    server.clock.set(server.clock.now().replace(year=2027, month=3, day=1, hour=4))
    seeker = Api(server, "xiaoyu")  # the session expired meanwhile
    fund(server, seeker, 10)
    assert buy(server, seeker, listener).status_code == 201


def test_qualification_proofs_are_private_and_reviewed_one_by_one(server, admin, seeker):
    newbie = new_listener(server, admin)
    # Limits: type from the bytes, size, kind, a title where needed, listeners only.
    r = upload(server, newbie, "counselor_3", b"<svg onload=alert(1)>", filename="x.png")
    assert r.status_code == 415 and err(r) == "proof_type"
    big = PNG + b"\0" * server.settings.proof_max_bytes
    r = upload(server, newbie, "counselor_3", big)
    assert r.status_code == 413
    assert err(upload(server, newbie, "nope")) == "bad_kind"
    assert err(upload(server, newbie, "degree")) == "title_required"
    assert upload(server, seeker, "counselor_3").status_code == 403

    r = upload(server, newbie, "counselor_3")
    assert r.status_code == 201, r.text
    q = r.json()
    assert q["status"] == "pending" and q["proof_type"] == "image/png" and q["title"] == "国家三级心理咨询师"
    deg = upload(server, newbie, "degree", title="心理学本科").json()
    # Declared is not verified: no badge, no 心理咨询 wording yet.
    card = call(server, None, "GET", f"/api/listeners/{newbie.id}").json()
    assert card["badges"] == []
    r = call(server, newbie, "PUT", "/api/listener/profile",
             json={"headline": "国家三级心理咨询师陪你聊", "price_per_hour_fen": 4500})
    assert r.status_code == 400 and err(r) == "counseling_claim"

    # On disk: encrypted, under the data dir; no public route serves it.
    stored = (server.settings.data_dir / "proofs" / f"{q['id']}.bin").read_bytes()
    assert PNG not in stored
    for who in (None, seeker, newbie):
        r = call(server, who, "GET", f"/api/admin/qualifications/{q['id']}/proof")
        assert r.status_code in (401, 403)
    assert httpx.get(f"{server.url}/static/../proofs/{q['id']}.bin").status_code == 404
    r = call(server, admin, "GET", f"/api/admin/qualifications/{q['id']}/proof")
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store" and "sandbox" in r.headers["content-security-policy"]

    # The admin queue lists each proof; each is decided once.
    queue = call(server, admin, "GET", "/api/admin/review-queue").json()
    assert {q["id"], deg["id"]} <= {x["id"] for x in queue["qualifications"]}
    assert newbie.id not in [x["user_id"] for x in queue["listeners"]]  # approved already
    r = call(server, admin, "POST", f"/api/admin/qualifications/{q['id']}/review",
             json={"approve": True, "valid_until": "2027-06-30"})
    assert r.status_code == 200 and r.json()["status"] == "verified"
    r = call(server, admin, "POST", f"/api/admin/qualifications/{q['id']}/review", json={"approve": False})
    assert r.status_code == 409 and err(r) == "already_reviewed"
    r = call(server, admin, "POST", f"/api/admin/qualifications/{deg['id']}/review",
             json={"approve": False, "note": "证书照片不清晰"})
    assert r.json()["status"] == "rejected"
    assert call(server, newbie, "POST", f"/api/admin/qualifications/{deg['id']}/review",
                json={"approve": True}).status_code == 403

    # Only the verified one shows, with who approved it and when it expires.
    card = call(server, None, "GET", f"/api/listeners/{newbie.id}").json()
    assert [b["title"] for b in card["badges"]] == ["国家三级心理咨询师"]
    (rec,) = card["record"]["qualifications"]
    assert rec["approved_by"] == "管理员" and rec["expires_at"].startswith("2027-06-30")
    page = text_of(httpx.get(f"{server.url}/listeners/{newbie.id}").text)
    assert "国家三级心理咨询师" in page and "心理学本科" not in page and "2027-06-30" in page
    me = call(server, newbie, "GET", "/api/verification/me").json()
    assert {x["status"] for x in me["qualifications"]} == {"verified", "rejected"}
    # Now the listing may say so.
    r = call(server, newbie, "PUT", "/api/listener/profile",
             json={"headline": "国家三级心理咨询师陪你聊", "price_per_hour_fen": 4500})
    assert r.status_code == 200
    # When the qualification expires, the badge and the wording go.
    server.clock.set(server.clock.now().replace(year=2027, month=7, day=2))
    card = call(server, None, "GET", f"/api/listeners/{newbie.id}").json()
    assert card["badges"] == [] and card["headline"] == ""
    assert "陪你聊" not in text_of(httpx.get(f"{server.url}/listeners").text)

    async def status_of(db):
        return (await db.get(Qualification, q["id"])).status

    assert server.db(status_of) == "verified"  # the record stays; only its validity ended


def test_reports_and_suspension_with_a_reason(server, admin, seeker, listener):
    fund(server, seeker, 500)
    r = call(server, seeker, "POST", "/api/reports",
             json={"target_kind": "listener", "target_id": listener.id, "reason": "要求加微信私下转账"})
    assert r.status_code == 201
    again = call(server, seeker, "POST", "/api/reports",
                 json={"target_kind": "listener", "target_id": listener.id, "reason": "再次举报"})
    assert again.status_code == 409 and err(again) == "already_reported"
    queue = call(server, admin, "GET", "/api/admin/review-queue").json()
    (rep,) = [x for x in queue["reports"] if x["target_id"] == listener.id]
    assert call(server, seeker, "POST", f"/api/admin/reports/{rep['id']}/decide",
                json={"action": "suspend", "note": "x"}).status_code == 403
    r = call(server, admin, "POST", f"/api/admin/reports/{rep['id']}/decide", json={"action": "suspend"})
    assert r.status_code == 400 and err(r) == "reason_required"
    r = call(server, admin, "POST", f"/api/admin/reports/{rep['id']}/decide",
             json={"action": "suspend", "note": "核实有平台外交易"})
    assert r.status_code == 200 and r.json()["status"] == "upheld"
    assert call(server, admin, "POST", f"/api/admin/reports/{rep['id']}/decide",
                json={"action": "dismiss"}).status_code == 409

    # Suspended: out of the directory, the profile and matching; no purchase.
    assert listener.id not in [c["user_id"] for c in call(server, None, "GET", "/api/listeners").json()]
    assert call(server, None, "GET", f"/api/listeners/{listener.id}").status_code == 404
    assert buy(server, seeker, listener).status_code == 404
    match = call(server, seeker, "POST", "/api/match", json={"text": "失恋了睡不着"}).json()
    assert listener.id not in [x["card"]["user_id"] for x in match["results"]]
    # The listener is told why.
    page = signed_in(server, "linqing").get("/verification")
    assert "已暂停展示" in page.text and "核实有平台外交易" in page.text
    assert call(server, admin, "POST", f"/api/admin/listeners/{listener.id}/suspend",
                json={"reason": "again"}).status_code == 409
    admin_page = text_of(signed_in(server, "admin").get("/admin/listeners").text)
    assert "核实有平台外交易" in admin_page and "恢复上架" in admin_page

    r = call(server, admin, "POST", f"/api/admin/listeners/{listener.id}/reinstate", json={"reason": "申诉成立"})
    assert r.status_code == 204
    assert buy(server, seeker, listener).status_code == 201
    # A direct suspension needs a reason too.
    r = call(server, admin, "POST", f"/api/admin/listeners/{listener.id}/suspend", json={"reason": ""})
    assert r.status_code == 422


def test_verification_pages(server):
    listener = signed_in(server, "linqing")
    page = listener.get("/verification")
    assert page.status_code == 200 and "可以接单了" in page.text and "已认证" in page.text
    assert "110105" in page.text and "********" in page.text  # masked for the owner
    training = listener.get("/verification/training")
    assert training.status_code == 200
    text = text_of(training.text)
    for s in ("积极倾听", "边界与移情", "危机信号与应对", "隐私", "不做平台外交易", "12356", "必答对"):
        assert s in text
    pending = signed_in(server, "newlistener")
    text = text_of(pending.get("/verification").text)
    assert "还差：" in text and "实名认证" in text
    assert "还不能接单" in text_of(pending.get("/console").text)
    seeker = signed_in(server, "xiaoyu")
    text = text_of(seeker.get("/verification").text)
    assert "实名认证是可选的" in text and "资质" not in text.split("实名认证是可选的")[1].split("心理援助热线")[0]
    assert seeker.get("/verification/training").status_code == 403
    adm = signed_in(server, "admin")
    text = text_of(adm.get("/admin/review").text)
    assert "朋辈心理辅导员培训证书" in text and "查看证明文件" in text  # the demo's pending proof
    text = text_of(adm.get("/admin").text)
    assert "新倾听师" in text and "实名认证" in text and "未完成" in text
    assert seeker.get("/admin/review").status_code == 403
    assert httpx.get(f"{server.url}/admin/review", follow_redirects=False).status_code == 303


def test_no_contact_details_in_a_public_listing(server, admin):
    """A listing is public: a phone number, a WeChat id, an e-mail or a bank card in
    the headline, bio or tags is refused (clients would be led off the escrow),
    and nothing of the refused edit is kept."""
    me = new_listener(server, admin, "contactless")
    for field, text in (("bio", "有事打我 13812345678"), ("headline", "加我微信 abc_12345 详聊"),
                        ("bio", "邮箱 me.li@example.com"), ("bio", "费用直接转 6222021234567890123"),
                        ("topics", ["失眠", "vx：Miaohui-2024"])):
        r = call(server, me, "PUT", "/api/listener/profile",
                 json={"headline": "陪你聊聊", "price_per_hour_fen": 4500, field: text})
        assert r.status_code == 400 and err(r) == "listing_contact", (field, text, r.text)
        assert "联系方式" in r.json()["error"]["message"]
    card = call(server, None, "GET", f"/api/listeners/{me.id}").json()
    assert card["headline"] == "陪你聊聊" and "138" not in str(card)
    r = call(server, me, "PUT", "/api/listener/profile",
             json={"headline": "陪你聊聊", "price_per_hour_fen": 4500, "bio": "深夜热线 12356 也可以打，我每晚 11 点后在线"})
    assert r.status_code == 200, r.text
