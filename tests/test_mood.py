"""心情 (wellbeing.mood): a seeker's mood before and after a paid sitting —
who may answer when, that a listener never sees an answer, the chat's and
the receipt's one-tap asks, a listener's public outcome share from five
sittings on, 我的倾诉习惯's word when talking has stopped helping, and the
download of one's own data."""

from __future__ import annotations

import httpx
import pytest

from miaohui.wellbeing.habits import not_helping, nudges
from tests.conftest import Api
from tests.test_habits import month
from tests.test_orders import buy, fund, say, wait_for

pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)


def put_mood(server, who: Api, order_id: str, phase: str, score) -> httpx.Response:
    return httpx.put(f"{server.url}/api/orders/{order_id}/mood", json={"phase": phase, "score": score},
                     headers=who.headers)


def sitting(server, clock, seeker: Api, listener: Api, before: int | None, after: int | None) -> dict:
    """A 30-minute order the listener came to, with the moods given (None: not answered)."""
    r = buy(server, seeker, listener, "30m")
    assert r.status_code == 201, r.text
    o = r.json()["order"]
    say(server, listener, o["conversation_id"], "我在")
    if before is not None:
        assert put_mood(server, seeker, o["id"], "before", before).status_code == 200
    clock.advance(minutes=31)
    wait_for(server, seeker, o["id"], lambda x: x["status"] == "ended")
    if after is not None:
        assert put_mood(server, seeker, o["id"], "after", after).status_code == 200
    clock.advance(minutes=5)
    return o


def test_who_may_answer_and_when(server, seeker, seeker2, listener, clock):
    fund(server, seeker, 500)
    o = buy(server, seeker, listener, "30m").json()["order"]
    say(server, listener, o["conversation_id"], "我在")

    r = put_mood(server, seeker, o["id"], "before", 2)
    assert r.status_code == 200 and r.json()["before"] == 2 and r.json()["after"] is None
    assert r.json()["labels"]["2"] == "有点低落"
    assert put_mood(server, listener, o["id"], "before", 5).status_code == 403  # seekers only
    r = put_mood(server, seeker2, o["id"], "before", 5)  # not theirs: as if it did not exist
    assert r.status_code == 404
    for phase, score, status, code in (("during", 3, 400, "bad_phase"), ("after", 4, 409, "mood_too_early")):
        r = put_mood(server, seeker, o["id"], phase, score)
        assert r.status_code == status and r.json()["error"]["code"] == code, r.text
        assert r.json()["error"]["message"] and r.json()["error"]["message_en"]
    for bad in (0, 6, "很好", None):
        assert put_mood(server, seeker, o["id"], "before", bad).status_code == 422
    assert httpx.put(f"{server.url}/api/orders/{o['id']}/mood", content=b"{", headers=seeker.headers).status_code == 422

    # Answering again changes it.
    assert put_mood(server, seeker, o["id"], "before", 1).json()["before"] == 1

    # Nothing of it reaches the listener with the order.
    seen = httpx.get(f"{server.url}/api/orders/{o['id']}", headers=listener.headers).json()
    assert "mood" not in str(seen) and "有点低落" not in str(seen)

    clock.advance(minutes=31)
    wait_for(server, seeker, o["id"], lambda x: x["status"] == "ended")
    r = put_mood(server, seeker, o["id"], "before", 3)
    assert r.status_code == 409 and r.json()["error"]["code"] == "mood_too_late"
    assert put_mood(server, seeker, o["id"], "after", 4).json() | {"labels": None} == {
        "before": 1, "after": 4, "labels": None}
    got = httpx.get(f"{server.url}/api/orders/{o['id']}/mood", headers=seeker.headers).json()
    assert (got["before"], got["after"]) == (1, 4)

    export = httpx.get(f"{server.url}/api/account/export", headers=seeker.headers).json()
    assert [(m["phase"], m["score"], m["label"]) for m in export["moods"]] == [("before", 1, "很低落"),
                                                                               ("after", 4, "还可以")]


def test_the_chat_asks_once_at_the_start_and_the_receipt_asks_after(server, seeker, listener, clock):
    fund(server, seeker, 500)
    o = buy(server, seeker, listener, "30m").json()["order"]
    conv = o["conversation_id"]
    say(server, listener, conv, "我在")
    page = httpx.get(f"{server.url}/chat/{conv}", headers=seeker.headers).text
    assert 'data-testid="mood-before"' in page and f'data-order-id="{o["id"]}"' in page
    assert 'data-testid="mood-before"' not in httpx.get(f"{server.url}/chat/{conv}", headers=listener.headers).text
    started = clock.now()
    clock.advance(minutes=11)  # ten minutes in, "how were you before?" is no longer asked
    assert 'data-testid="mood-before"' not in httpx.get(f"{server.url}/chat/{conv}", headers=seeker.headers).text
    clock.set(started)  # back (the monotonic clock stays where it is)
    say(server, seeker, conv, "我有点难受")  # talking has begun: not asked any more
    assert 'data-testid="mood-before"' not in httpx.get(f"{server.url}/chat/{conv}", headers=seeker.headers).text
    put_mood(server, seeker, o["id"], "before", 2)  # the API still takes it while the order runs
    assert 'data-testid="mood-before"' not in httpx.get(f"{server.url}/chat/{conv}", headers=seeker.headers).text

    receipt = httpx.get(f"{server.url}/orders/{o['id']}", headers=seeker.headers).text
    assert 'data-testid="mood-after"' not in receipt  # still running
    clock.advance(minutes=31)
    wait_for(server, seeker, o["id"], lambda x: x["status"] == "ended")
    receipt = httpx.get(f"{server.url}/orders/{o['id']}", headers=seeker.headers).text
    assert 'data-testid="mood-after"' in receipt and "聊之前你选的是「有点低落」" in receipt
    theirs = httpx.get(f"{server.url}/orders/{o['id']}", headers=listener.headers).text
    assert 'data-testid="mood-after"' not in theirs and "有点低落" not in theirs


def test_a_listeners_outcome_shows_from_five_sittings(server, seeker, listener, clock):
    fund(server, seeker, 1000)
    for before, after in ((2, 4), (1, 3), (3, 3), (2, 5)):
        sitting(server, clock, seeker, listener, before, after)
    sitting(server, clock, seeker, listener, 2, None)  # half-answered: not a pair
    profile = httpx.get(f"{server.url}/listeners/{listener.id}").text
    assert 'data-testid="outcome">暂无' in profile  # four pairs: not yet
    sitting(server, clock, seeker, listener, 3, 4)
    profile = httpx.get(f"{server.url}/listeners/{listener.id}").text
    assert 'data-testid="outcome">80% <span class="small muted">5 次</span>' in profile
    card = httpx.get(f"{server.url}/api/listeners/{listener.id}").json()
    assert card["outcome"] == {"pairs": 5, "better": 4, "better_pct": 80, "shown": True}

    # 我的倾诉习惯 counts the pairs; no word yet, talking has been helping.
    h = httpx.get(f"{server.url}/api/me/habits", headers=seeker.headers).json()
    assert h["mood"] == {"days": 60, "pairs": 5, "better": 4}
    assert "not_helping" not in [n["key"] for n in h["nudges"]]


def test_three_sittings_that_did_not_help_bring_a_word_first(server, seeker, listener, clock):
    fund(server, seeker, 1000)
    sitting(server, clock, seeker, listener, 2, 4)
    for before, after in ((3, 3), (2, 1), (4, 3)):
        sitting(server, clock, seeker, listener, before, after)
    h = httpx.get(f"{server.url}/api/me/habits", headers=seeker.headers).json()
    assert h["nudges"][0]["key"] == "not_helping"
    assert h["nudges"][0]["link"] == {"label": "看看其他倾听师", "href": "/listeners"}
    page = httpx.get(f"{server.url}/orders", headers=seeker.headers).text
    assert "最近 3 次聊完，你的心情都没有比聊之前好" in page and "4 次里有 1 次比聊之前好" in page


def test_not_helping_is_the_last_three_none_better():
    assert not_helping([(2, 2), (3, 1), (2, 2)])
    assert not not_helping([(2, 2), (3, 1)])  # two are not a run
    assert not not_helping([(2, 2), (3, 1), (2, 3)])  # the last one helped
    assert not_helping([(1, 5), (2, 2), (3, 1), (2, 2)])  # an old good one does not cancel a run
    first = nudges(month(sittings=24, late_nights=9, listeners=1, top_share=1.0), month(), has_budget=True,
                   moods=[(3, 3)] * 3)
    assert [n.key for n in first] == ["not_helping", "late_nights"]
