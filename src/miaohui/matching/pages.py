"""帮我找人 page: a short form, then ranked results that explain themselves.

The request is POSTed (a form with the CSRF field), never put in a URL, so
what a seeker writes does not end up in browser history or logs; nothing
about it is stored.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from miaohui.accounts.deps import DB, Ctx, csrf_ok
from miaohui.core.errors import AppError
from miaohui.listeners.service import GENDERS
from miaohui.matching import directory, service
from miaohui.web.routes import MaybeUser, _field, form_user, render, templates

router = APIRouter(include_in_schema=False)


def url_with(base: str, query: dict, **changes) -> str:
    """``base`` with the current query string, some keys changed (``None`` drops one)."""
    q = {k: v for k, v in {**query, **changes}.items() if v not in (None, "")}
    return f"{base}?{urlencode(q)}" if q else base


# The directory page (web.routes) renders its filters from these.
templates.env.globals.update(url_with=url_with, sorts=directory.SORTS, qual_kinds=directory.QUAL_KINDS,
                             price_ranges=directory.PRICE_RANGES, window_choices=directory.WINDOW_CHOICES,
                             genders=GENDERS)

BUDGETS = {"": "不限", "5000": "¥50 以内", "8000": "¥80 以内", "12000": "¥120 以内", "20000": "¥200 以内"}
WINDOWS = {"": "不限", **{str(k): v for k, v in service.WINDOW_CHOICES.items()}}


def _page(request: Request, ctx, user, *, values: dict, result: dict | None = None, error: str | None = None,
          status: int = 200) -> Response:
    return render(request, ctx, "match.html", user, status, private=user is not None, values=values, result=result,
                  error=error, tag_choices=service.tag_choices(), budgets=BUDGETS, windows=WINDOWS)


@router.get("/match")
async def match_form(request: Request, ctx: Ctx, user: MaybeUser) -> Response:
    return _page(request, ctx, user, values={"text": "", "tags": [], "budget": "", "window": ""})


@router.post("/match")
async def match_submit(request: Request, ctx: Ctx, db: DB) -> Response:
    form = await request.form()
    user = await form_user(request, ctx, db)
    await db.commit()  # the sign-in read is done; matching opens its own sessions
    values = {
        "text": _field(form, "text", 600).strip(),
        "tags": [t for t in form.getlist("tags") if isinstance(t, str)][:6],
        "budget": _field(form, "budget", 10),
        "window": _field(form, "window", 5),
    }
    if not csrf_ok(request, _field(form, "csrf_token")):
        return _page(request, ctx, user, values=values, error="页面已过期，请刷新后重试", status=403)
    m = service.MatchIn(
        text=values["text"], tags=tuple(values["tags"]),
        budget_fen=int(values["budget"]) if values["budget"].isdigit() else None,
        window_s=int(values["window"]) if values["window"].isdigit() else None,
    )
    try:
        result = await service.recommend(ctx, user, m)
    except AppError as e:
        return _page(request, ctx, user, values=values, error=e.message, status=e.status_code)
    return _page(request, ctx, user, values=values, result=result)
