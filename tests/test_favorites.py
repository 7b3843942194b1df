"""收藏 (matching.favorites) over the live server, on SQLite and PostgreSQL:
a seeker keeps listed listeners (idempotently, up to a limit), the directory
filters to them and marks them, the list follows listings that leave and
come back, nobody else — the listener included — can see who keeps whom,
and bad requests change nothing.  The pages: the profile's star, the
directory's 我收藏的, the home page's list."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from miaohui.matching import favorites
from miaohui.matching.models import Favorite
from tests.conftest import Api
from tests.test_web_pages import browser, signed_in, text_of


def keep(server, who: Api | None, listener_id: str, on: bool = True) -> httpx.Response:
    return httpx.request("PUT" if on else "DELETE", f"{server.url}/api/favorites/{listener_id}",
                         headers=who.headers if who else {})


def kept(server, who: Api) -> list[str]:
    r = httpx.get(f"{server.url}/api/favorites", headers=who.headers)
    assert r.status_code == 200, r.text
    return [c["display_name"] for c in r.json()]


def rows(server) -> int:
    return server.db(lambda db: db.scalar(select(func.count()).select_from(Favorite)))


def directory(server, who: Api | None, **params) -> list[dict]:
    r = httpx.get(f"{server.url}/api/listeners", params=params, headers=who.headers if who else {})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_seeker_keeps_listeners_and_finds_them_again(server, clock, seeker, seeker2, listener):
    ids = {c["display_name"]: c["user_id"] for c in directory(server, None)}
    assert keep(server, seeker, ids["林晴"]).json() == {"favorite": True, "count": 1}
    assert keep(server, seeker, ids["林晴"]).json() == {"favorite": True, "count": 1}  # again: no change
    clock.advance(seconds=5)
    assert keep(server, seeker, ids["阿瑾"]).json() == {"favorite": True, "count": 2}
    assert kept(server, seeker) == ["阿瑾", "林晴"]  # most recently kept first
    assert rows(server) == 2

    # The directory marks them for this seeker and filters to them.
    cards = {c["display_name"]: c["favorite"] for c in directory(server, seeker)}
    assert cards == {"林晴": True, "周言": False, "阿瑾": True, "小白": False}
    assert sorted(c["display_name"] for c in directory(server, seeker, favorites="true")) == ["林晴", "阿瑾"]
    # Private: another seeker, the listener herself and anonymous visitors see nothing of it.
    assert all(c["favorite"] is False for c in directory(server, seeker2))
    assert kept(server, seeker2) == []
    assert all(c["favorite"] is None for c in directory(server, None))
    assert directory(server, None, favorites="true") == []
    lin = Api(server, "linqing")
    mine = httpx.get(f"{server.url}/api/listeners/{ids['林晴']}", headers=lin.headers).json()
    assert mine["favorite"] is None
    assert httpx.get(f"{server.url}/api/listeners/{ids['林晴']}", headers=seeker.headers).json()["favorite"] is True

    assert keep(server, seeker, ids["阿瑾"], on=False).json() == {"favorite": False, "count": 1}
    assert keep(server, seeker, ids["阿瑾"], on=False).json() == {"favorite": False, "count": 1}
    assert kept(server, seeker) == ["林晴"]


def test_only_seekers_keep_only_listed_listeners_and_bad_requests_change_nothing(server, seeker, admin, monkeypatch):
    ids = {c["display_name"]: c["user_id"] for c in directory(server, None)}
    assert keep(server, None, ids["林晴"]).status_code == 401
    r = keep(server, Api(server, "zhouyan"), ids["林晴"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role"
    assert httpx.get(f"{server.url}/api/favorites", headers=admin.headers).status_code == 403
    r = keep(server, seeker, "nobody")
    assert r.status_code == 404 and r.json()["error"]["message"] == "倾听师不存在"
    newcomer = Api(server, "newlistener")  # signed up, not approved: not listed
    assert keep(server, seeker, newcomer.id).status_code == 404
    assert keep(server, seeker, seeker.id).status_code == 404  # a seeker is no listener
    r = keep(server, seeker, "x" * 33)
    assert r.status_code == 422 and r.json()["error"]["message"]
    assert rows(server) == 0

    # The limit: at most MAX_FAVORITES; keeping one already kept is still fine.
    monkeypatch.setattr(favorites, "MAX_FAVORITES", 2)
    assert keep(server, seeker, ids["林晴"]).status_code == 200
    assert keep(server, seeker, ids["周言"]).status_code == 200
    r = keep(server, seeker, ids["阿瑾"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "favorites_full" and "最多收藏 2 位" in r.text
    assert keep(server, seeker, ids["林晴"]).json() == {"favorite": True, "count": 2}
    assert rows(server) == 2


def test_a_listing_that_leaves_drops_out_of_the_list_and_comes_back(server, clock, seeker, admin):
    ids = {c["display_name"]: c["user_id"] for c in directory(server, None)}
    keep(server, seeker, ids["小白"])
    clock.advance(seconds=5)
    keep(server, seeker, ids["林晴"])
    r = httpx.post(f"{server.url}/api/admin/listeners/{ids['小白']}/suspend", json={"reason": "核实投诉"},
                   headers=admin.headers)
    assert r.status_code == 204, r.text
    assert kept(server, seeker) == ["林晴"]
    assert keep(server, seeker, ids["小白"]).status_code == 404  # can't add a listing that is gone
    r = httpx.post(f"{server.url}/api/admin/listeners/{ids['小白']}/reinstate", json={"reason": "投诉不成立"},
                   headers=admin.headers)
    assert r.status_code == 204, r.text
    assert kept(server, seeker) == ["林晴", "小白"]


def test_the_pages_star_filter_and_list_favourites(server, seeker):
    ids = {c["display_name"]: c["user_id"] for c in directory(server, None)}
    c = signed_in(server, "xiaoyu")
    profile = c.get(f"/listeners/{ids['周言']}").text
    assert 'data-testid="favorite-toggle"' in profile and 'aria-pressed="false"' in profile
    empty = text_of(c.get("/listeners?fav=1").text)
    assert "你还没有收藏倾听师" in empty and "我收藏的" in empty
    assert "我收藏的倾听师" not in text_of(c.get("/").text)

    keep(server, seeker, ids["周言"])
    profile = c.get(f"/listeners/{ids['周言']}").text
    assert 'aria-pressed="true"' in profile and "已收藏" in profile
    page = c.get("/listeners?fav=1").text
    assert page.count('data-testid="listener-card"') == 1 and "周言" in page
    assert 'data-testid="favorite-mark"' in page and "我收藏的（1）" in text_of(page)
    assert c.get("/listeners").text.count('data-testid="favorite-mark"') == 1
    home = text_of(c.get("/").text)
    assert "我收藏的倾听师" in home and "周言" in home

    # Nobody else sees a star to press, or a 我收藏的 switch.
    anon = browser(server).get(f"/listeners/{ids['周言']}").text
    assert 'data-testid="favorite-toggle"' not in anon
    listener_page = signed_in(server, "zhouyan").get("/listeners").text
    assert 'data-testid="favorites-toggle"' not in listener_page and "favorite-mark" not in listener_page


def test_the_favourites_limit_counts_per_seeker(server, seeker, seeker2, monkeypatch):
    ids = [c["user_id"] for c in directory(server, None)]
    monkeypatch.setattr(favorites, "MAX_FAVORITES", 1)
    assert keep(server, seeker, ids[0]).status_code == 200
    assert keep(server, seeker2, ids[1]).status_code == 200
    assert keep(server, seeker, ids[1]).status_code == 409
