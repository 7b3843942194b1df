"""Reviews over the live server, on SQLite and PostgreSQL: only the seeker of
a served, finished order reviews it, once; the listener replies once;
anyone signed in can report an abusive review, which an admin hides (it
leaves the rating); the public profile shows the rating, tags and replies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import Api
from tests.test_orders import buy, fund, say, wait_for
from tests.test_web_pages import signed_in, text_of

# The scheduler ticks every 50 ms, so a step of the fake clock is acted on at once.
pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


def review(server, who: Api, order_id: str, **body) -> httpx.Response:
    body = {"stars": 5, "tags": ["耐心"], "text": "", **body}
    return httpx.post(f"{server.url}/api/orders/{order_id}/review", json=body, headers=who.headers)


def served_order(server, seeker: Api, listener: Api, clock, *, listener_speaks: bool = True) -> dict:
    order = buy(server, seeker, listener).json()["order"]
    say(server, seeker, order["conversation_id"], "我失恋了，晚上一直睡不着")
    if listener_speaks:
        clock.advance(3)
        say(server, listener, order["conversation_id"], "我在，慢慢说")
    clock.advance(minutes=31)
    return wait_for(server, seeker, order["id"], lambda o: o["status"] == "ended")


def test_review_rules(server, seeker, seeker2, listener, admin, clock):
    fund(server, seeker, 500)
    fund(server, seeker2, 500)
    # No review without an order, or for someone else's order, or before it ends.
    assert review(server, seeker, "0" * 32).status_code == 404
    live = buy(server, seeker, listener).json()["order"]
    r = review(server, seeker, live["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_reviewable"
    say(server, listener, live["conversation_id"], "你好，我在")
    clock.advance(minutes=31)
    order = wait_for(server, seeker, live["id"], lambda o: o["status"] == "ended")
    assert review(server, seeker2, order["id"]).status_code == 404  # not theirs: looks like nothing
    assert review(server, listener, order["id"]).status_code == 403  # listeners do not review
    assert review(server, seeker, order["id"], stars=6).status_code == 422
    r = review(server, seeker, order["id"], tags=["很好"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_tags"

    # Once per served order — also when the same review is submitted twice at once.
    text = "她很耐心，没有说教。加我微信 abc_12345 聊"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: review(server, seeker, order["id"], stars=4, tags=["耐心", "有边界感"],
                                                 text=text), range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409, 409, 409], [r.text for r in results]
    (created,) = [r.json() for r in results if r.status_code == 201]
    assert "abc_12345" not in created["text"] and "她很耐心" in created["text"]  # contact details masked
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} == {"already_reviewed"}

    # The listener replies, once; nobody else can.
    rid = created["id"]
    other = Api(server, "zhouyan")
    put = lambda who, t: httpx.put(f"{server.url}/api/reviews/{rid}/reply", json={"text": t}, headers=who.headers)  # noqa: E731
    assert put(other, "谢谢").status_code == 404
    assert put(seeker, "谢谢").status_code == 403
    r = put(listener, "谢谢你愿意说出来，照顾好自己。")
    assert r.status_code == 200 and r.json()["reply"].startswith("谢谢你")
    assert put(listener, "再回一次").status_code == 409

    # Public: rating with count, tags, the reply; the seeker shown by one character.
    summary = httpx.get(f"{server.url}/api/listeners/{listener.id}/reviews").json()
    assert summary["rating"] == 4.0 and summary["review_count"] == 1
    assert summary["tags"] == {"耐心": 1, "有边界感": 1}
    (pub,) = summary["reviews"]
    assert pub["author"] == "小**" and pub["reply"] and "seeker_id" not in pub
    card = httpx.get(f"{server.url}/api/listeners").json()
    (lin,) = [c for c in card if c["user_id"] == listener.id]
    assert (lin["rating"], lin["review_count"]) == (4.0, 1)
    page = text_of(httpx.get(f"{server.url}/listeners/{listener.id}").text)
    assert "4.0 分（1 条）" in page and "谢谢你愿意说出来" in page and "小** ·" in page
    assert "4.0（1 条评价）" in text_of(httpx.get(f"{server.url}/listeners").text)

    # Reports: the author cannot, others can once; the admin hides it and it leaves the rating.
    rep = lambda who: httpx.post(f"{server.url}/api/reviews/{rid}/report", json={"reason": "含有骚扰内容"},  # noqa: E731
                                 headers=who.headers)
    assert rep(seeker).status_code == 400
    assert rep(listener).status_code == 201
    assert rep(listener).status_code == 409
    assert rep(seeker2).status_code == 201
    queue = httpx.get(f"{server.url}/api/admin/review-queue", headers=admin.headers).json()
    reports = [x for x in queue["reports"] if x["target_id"] == rid]
    assert len(reports) == 2
    text = text_of(signed_in(server, "admin").get("/admin/review").text)
    assert "评价被举报" in text and "含有骚扰内容" in text and "她很耐心" in text
    r = httpx.post(f"{server.url}/api/admin/reports/{reports[0]['id']}/decide", json={"action": "hide"},
                   headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "upheld"
    # One decision settles every open report of that review.
    queue = httpx.get(f"{server.url}/api/admin/review-queue", headers=admin.headers).json()
    assert not [x for x in queue["reports"] if x["target_id"] == rid]
    summary = httpx.get(f"{server.url}/api/listeners/{listener.id}/reviews").json()
    assert summary == {"rating": None, "review_count": 0, "tags": {}, "reviews": []}
    assert "她很耐心" not in httpx.get(f"{server.url}/listeners/{listener.id}").text
    assert put(listener, "x").status_code == 404  # a hidden review takes no replies


def test_no_show_is_not_reviewable_and_the_review_page(server, seeker, listener, clock):
    fund(server, seeker, 500)
    order = buy(server, seeker, listener).json()["order"]
    clock.advance(minutes=6)  # the listener never came
    o = wait_for(server, seeker, order["id"], lambda o: o["status"] == "refunded")
    assert o["end_reason"] == "no_show"
    assert review(server, seeker, order["id"]).status_code == 409
    browser = signed_in(server, "xiaoyu")
    assert "服务结束后才能评价" in browser.get(f"/orders/{order['id']}/review").text

    served = served_order(server, seeker, listener, clock)
    receipt = browser.get(f"/orders/{served['id']}")
    assert f"/orders/{served['id']}/review" in receipt.text
    page = browser.get(f"/orders/{served['id']}/review")
    assert page.status_code == 200 and 'id="review-form"' in page.text and "有边界感" in page.text
    assert review(server, seeker, served["id"], stars=5).status_code == 201
    assert "你已经评价过这笔订单" in browser.get(f"/orders/{served['id']}/review").text
    assert signed_in(server, "linqing").get(f"/orders/{served['id']}/review").status_code == 403


def test_served_topics_feed_the_profile_and_matching(server, seeker, listener, clock):
    fund(server, seeker, 500)
    served_order(server, seeker, listener, clock)
    # The first matching request indexes finished orders (labels only, never text); one
    # order's topics are not shown: comparing the card before and after would reveal them.
    r = httpx.post(f"{server.url}/api/match", json={"text": "失恋了"}, headers=seeker.headers)
    assert r.status_code == 200
    assert httpx.get(f"{server.url}/api/listeners/{listener.id}").json()["served_topics"] == {}
    assert "服务过的话题" not in text_of(httpx.get(f"{server.url}/listeners/{listener.id}").text)
    for _ in range(2):
        served_order(server, seeker, listener, clock)
    httpx.post(f"{server.url}/api/match", json={"text": "失恋了"}, headers=seeker.headers)
    card = httpx.get(f"{server.url}/api/listeners/{listener.id}").json()
    assert card["served_topics"].get("失恋/情感") == 3 and card["served_topics"].get("失眠") == 3
    assert "服务过的话题" in text_of(httpx.get(f"{server.url}/listeners/{listener.id}").text)

    # Indexed once: asking again does not count the same order twice.
    httpx.post(f"{server.url}/api/match", json={"text": "睡不着"}, headers=seeker.headers)
    assert httpx.get(f"{server.url}/api/listeners/{listener.id}").json()["served_topics"]["失恋/情感"] == 3
