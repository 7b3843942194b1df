"""Server-rendered pages (Jinja2) for browsers.

Thin on purpose: every page asks the domain services (accounts, listeners,
chat) and renders; realtime behaviour lives in the ES modules under
``static/js``.  Forms use the double-submit CSRF token (``mh_csrf`` cookie
echoed in a hidden ``csrf_token`` field); fetch calls echo it in
``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from miaohui.accounts import service as accounts
from miaohui.accounts.deps import DB, SESSION_COOKIE, Ctx, MaybeUser, client_ip, csrf_ok, request_token
from miaohui.accounts.models import User
from miaohui.accounts.routes import ensure_csrf_cookie, start_session
from miaohui.accounts.schemas import SignupIn
from miaohui.chat import service as chat
from miaohui.core.errors import AppError
from miaohui.listeners import service as listeners
from miaohui.matching import profiles
from miaohui.matching.directory import apply as apply_filters
from miaohui.matching.directory import directory_filters, distinct
from miaohui.orders import service as orders
from miaohui.supervision import service as supervision
from miaohui.verification import records as trust
from miaohui.wellbeing import mood

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))


ROLE_LABELS = {"seeker": "倾诉者", "listener": "倾听师", "supervisor": "督导", "admin": "管理员"}
PRESENCE_LABELS = {"online": "在线", "away": "离开", "offline": "离线"}


def _static_version() -> str:
    """Cache-busting token for entry assets: changes whenever a static file does."""
    h = hashlib.sha256()
    for p in sorted((WEB_DIR / "static").rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:10]


STATIC_VERSION = _static_version()


# --------------------------------------------------------------- formatting


def price_label(fen: int) -> str:
    if fen <= 0:
        return "免费"
    yuan = fen // 100 if fen % 100 == 0 else f"{fen / 100:.2f}".rstrip("0").rstrip(".")
    return f"¥{yuan}/小时"


def declared(items: list[str]) -> list[str]:
    """Qualifications as declared; the section label already says （自述）."""
    return [q.removesuffix("（自述）").removesuffix("(自述)").strip() or q for q in items]


templates.env.filters["price"] = price_label
templates.env.filters["declared"] = declared
templates.env.globals["PRESENCE_LABELS"] = PRESENCE_LABELS
# A share of an hour on duty (listeners.duty) as a bar height: none, some, a quarter, half, most.
templates.env.filters["duty_level"] = lambda share: sum(share >= t for t in (0.02, 0.25, 0.5, 0.75))
templates.env.globals["ROLE_LABELS"] = ROLE_LABELS
templates.env.globals["MOOD_SCORES"] = mood.SCORES
templates.env.globals["static_version"] = STATIC_VERSION


# ------------------------------------------------------------------ helpers


def safe_next(value: str | None) -> str | None:
    """A same-site relative path, or None (no open redirects)."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or c == "\\" for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def home_for(user: User) -> str:
    return {"listener": "/console", "admin": "/admin", "supervisor": "/supervision"}.get(user.role, "/listeners")


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _security_headers(request: Request, resp: Response, private: bool) -> None:
    host = request.headers.get("host", "")
    resp.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'; object-src 'none'"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    if private:
        # Conversations and consoles never land in a shared cache or the back/forward cache on disk.
        resp.headers["Cache-Control"] = "no-store"


# Each role's top navigation: (link, its label, the paths that belong to it).
# The link owning the longest matching path is the current one, so a chat
# opened from the console lights 工作台 and an offering lights 资料.
NAV: dict[str | None, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    None: (("/listeners", "找倾听师", ("/listeners", "/match")), ("/login", "登录", ("/login",)),
           ("/signup", "注册", ("/signup",))),
    "listener": (("/console", "工作台", ("/console", "/chat")),
                 ("/console/profile", "资料", ("/console/profile", "/console/offerings")),
                 ("/verification", "认证", ("/verification",)), ("/orders", "订单", ("/orders",)),
                 ("/console/earnings", "收入", ("/console/earnings",))),
    "supervisor": (("/supervision", "督导台", ("/supervision", "/chat")),
                   ("/admin/disputes", "申诉", ("/admin/disputes", "/orders")),
                   ("/listeners", "倾听师", ("/listeners",))),
    "admin": (("/admin", "审核", ("/admin",)), ("/supervision", "督导台", ("/supervision", "/chat")),
              ("/admin/disputes", "申诉", ("/admin/disputes", "/orders")), ("/listeners", "倾听师", ("/listeners",)),
              ("/admin/withdrawals", "提现", ("/admin/withdrawals",))),
    "seeker": (("/listeners", "找倾听师", ("/listeners", "/match")),
               ("/conversations", "我的会话", ("/conversations", "/chat", "/companion")),
               ("/orders", "订单", ("/orders",)), ("/wallet", "钱包", ("/wallet", "/sandbox/pay"))),
}


def nav_current(role: str | None, path: str) -> str | None:
    """The link of ``role``'s navigation that ``path`` belongs to."""
    best, depth = None, -1
    for href, _, prefixes in NAV.get(role, NAV["seeker"]):
        for p in prefixes:
            if (path == p or path.startswith(p + "/")) and len(p) > depth:
                best, depth = href, len(p)
    return best


def render(
    request: Request,
    ctx,
    name: str,
    user: User | None,
    status_code: int = 200,
    private: bool = False,
    **context: Any,
) -> Response:
    scratch = Response()
    csrf = ensure_csrf_cookie(request, scratch, ctx.settings)
    resp = templates.TemplateResponse(
        request,
        name,
        # tz: the platform's time zone, for the time filters (orders.pages, ledger.pages).
        {"user": user, "csrf_token": csrf, "path": request.url.path, "tz": ctx.settings.timezone,
         "nav": NAV.get(user.role if user else None, NAV["seeker"]),
         "nav_current": nav_current(user.role if user else None, request.url.path),
         "night_hours": orders.tariff(ctx.settings).night_hours, **context},
        status_code=status_code,
    )
    for key, value in scratch.raw_headers:
        if key == b"set-cookie":
            resp.raw_headers.append((key, value))
    _security_headers(request, resp, private or user is not None)
    return resp


def error_page(
    request: Request, ctx, user: User | None, status_code: int, title: str, message: str
) -> Response:
    return render(request, ctx, "error.html", user, status_code=status_code, title=title, message=message)


async def error_page_for(request: Request, status_code: int, title: str, message: str) -> Response:
    """The error page for a navigation that failed outside a route's own
    handling (a bad link, an unknown page, a crash), with the signed-in
    person's navigation when the session can still be read."""
    ctx = request.app.state.ctx
    user = None
    if token := request_token(request)[0]:
        try:
            async with ctx.sessionmaker() as db:
                user = await accounts.user_for_token(db, ctx.clock, token)
        except Exception:  # the database may be what failed; the page still goes out
            user = None
    return error_page(request, ctx, user, status_code, title, message)


def forbidden_page(
    request: Request, ctx, user: User | None, message: str = "你没有权限查看这个页面。"
) -> Response:
    return error_page(request, ctx, user, 403, "无权访问", message)


def gate(request: Request, ctx, user: User | None, role: str | None = None, message: str = "") -> Response | None:
    """The page a visitor gets instead of this one: sign in first, or 403 for
    the wrong role.  ``None`` when they may see it."""
    if user is None:
        return login_redirect(request)
    if role is not None and user.role != role:
        return forbidden_page(request, ctx, user, message)
    return None


async def form_user(request: Request, ctx, db) -> User | None:
    """The signed-in user for a form POST (the form's own CSRF field is checked by the caller)."""
    token, _ = request_token(request)
    return await accounts.request_user(db, ctx.clock, token) if token else None


def _field(form, name: str, max_len: int = 200) -> str:
    value = form.get(name, "")
    return value[:max_len] if isinstance(value, str) else ""


STALE_FORM = "页面已过期，请刷新后重试"


async def posted_form(request: Request, ctx, db, role: str | None = None):
    """(form, user, refusal) for a plain-HTML form POST: the signed-in user
    (of ``role``, if given) with a valid CSRF field, or the page to show instead."""
    form = await request.form()
    user = await form_user(request, ctx, db)
    if (refused := gate(request, ctx, user, role)) is not None:
        return form, user, refused
    if not csrf_ok(request, _field(form, "csrf_token")):
        return form, user, error_page(request, ctx, user, 403, "页面已过期", STALE_FORM)
    return form, user, None


SERVICE_WORKER = WEB_DIR / "static" / "js" / "sw.js"


@router.get("/sw.js")
async def service_worker() -> Response:
    """新消息提醒's service worker (static/js/notify.js).  Served from the root
    because a worker's scope is the folder it is served from, and a click on a
    notification must reach any page.  Re-checked on every visit: a stale
    worker would keep old click handling."""
    return Response(
        SERVICE_WORKER.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------- home


HOME_FAVORITES = 4


@router.get("/")
async def home(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    kept = []
    if user is not None and user.role == "seeker":
        # On duty now first; otherwise most recently kept first (sorted() is stable).
        kept = sorted(await profiles.favorite_cards(ctx, db, user), key=lambda c: not c["online_now"])
    return render(request, ctx, "home.html", user, favorites=kept[:HOME_FAVORITES], favorite_count=len(kept))


# ------------------------------------------------------------- login/signup


@router.get("/login")
async def login_form(request: Request, ctx: Ctx, user: MaybeUser, next: str | None = None) -> Response:
    nxt = safe_next(next)
    if user is not None:
        return RedirectResponse(nxt or home_for(user), status_code=303)
    return render(request, ctx, "login.html", None, next=nxt or "", username="", error=None)


@router.post("/login")
async def login_submit(request: Request, ctx: Ctx, db: DB) -> Response:
    form = await request.form()
    username = _field(form, "username", 64).strip()
    password = _field(form, "password", 128)
    nxt = safe_next(_field(form, "next", 512)) or ""

    def again(message: str, status: int) -> Response:
        return render(request, ctx, "login.html", None, status, next=nxt, username=username, error=message)

    if not csrf_ok(request, _field(form, "csrf_token")):
        return again("页面已过期，请刷新后重试", 403)
    if not username or not password:
        return again("请输入用户名和密码", 400)
    try:
        user = await accounts.login(db, ctx.clock, ctx.login_limiter, username, password, client_ip(request))
    except AppError as e:
        return again(e.message, e.status_code)
    resp = RedirectResponse(nxt or home_for(user), status_code=303)
    await start_session(request, resp, ctx, db, user)
    return resp


SIGNUP_FIELD_ERRORS = {
    "username": "用户名需为 3–32 位英文字母、数字、下划线、点或短横线",
    "password": "密码至少 8 位（最多 128 位）",
    "display_name": "昵称需为 1–24 个字",
    "role": "请选择身份：倾诉者或倾听师",
}


@router.get("/signup")
async def signup_form(request: Request, ctx: Ctx, user: MaybeUser, role: str = "seeker") -> Response:
    if user is not None:
        return RedirectResponse(home_for(user), status_code=303)
    values = {"username": "", "display_name": "", "role": "listener" if role == "listener" else "seeker"}
    return render(request, ctx, "signup.html", None, values=values, error=None)


@router.post("/signup")
async def signup_submit(request: Request, ctx: Ctx, db: DB) -> Response:
    form = await request.form()
    values = {
        "username": _field(form, "username", 64).strip(),
        "display_name": _field(form, "display_name", 64).strip(),
        "role": _field(form, "role", 16),
    }
    password = _field(form, "password", 256)

    def again(message: str, status: int) -> Response:
        shown = {**values, "role": values["role"] if values["role"] in ("seeker", "listener") else "seeker"}
        return render(request, ctx, "signup.html", None, status, values=shown, error=message)

    if not csrf_ok(request, _field(form, "csrf_token")):
        return again("页面已过期，请刷新后重试", 403)
    try:
        body = SignupIn(password=password, **values)
    except ValidationError as e:
        bad = [str(err["loc"][0]) for err in e.errors() if err.get("loc")]
        return again("；".join(dict.fromkeys(SIGNUP_FIELD_ERRORS.get(f, "输入有误") for f in bad)), 400)
    try:
        user = await accounts.signup(db, ctx.clock, **body.model_dump())
    except AppError as e:
        await db.rollback()
        return again(e.message, e.status_code)
    resp = RedirectResponse(home_for(user), status_code=303)
    await start_session(request, resp, ctx, db, user)
    return resp


@router.post("/logout")
async def logout(request: Request, ctx: Ctx, db: DB) -> Response:
    form = await request.form()
    if not csrf_ok(request, _field(form, "csrf_token")):
        return error_page(
            request, ctx, await form_user(request, ctx, db), 403, "页面已过期", "页面已过期，请刷新后重试。"
        )
    token, via = request_token(request)
    if token and via == "cookie":
        await accounts.end_session(db, token)
        await db.commit()
    resp = RedirectResponse("/", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


# ---------------------------------------------------------------- directory


@router.get("/listeners")
async def directory(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    f = directory_filters(request.query_params)
    all_cards = await profiles.listed_cards(ctx, db, user)
    return render(
        request,
        ctx,
        "directory.html",
        user,
        cards=apply_filters(all_cards, f),
        topics=distinct(all_cards, "topics"),
        languages=distinct(all_cards, "languages"),
        topic=f.topic,
        online_only=f.online,
        favorite_count=sum(1 for c in all_cards if c.get("favorite")),
        # Nobody matching is online: who usually is at this hour, to leave a message for.
        usually_here=[c for c in all_cards if c["usual_now"] and c["accepting"] and not c["online_now"]],
        f=f,
        query=dict(request.query_params),
    )


@router.get("/listeners/{listener_id}")
async def listener_profile(request: Request, listener_id: str, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    card = await profiles.public_profile(ctx, db, listener_id, user)
    if card is None:
        return error_page(
            request, ctx, user, 404, "找不到这位倾听师", "这位倾听师不存在，或暂时没有公开资料。"
        )
    offers = await orders.offerings_for(db, listener_id)
    return render(
        request, ctx, "profile.html", user, card=card, offerings=offers, stats=card["all_stats"],
        night_price=card["night_price_per_hour_fen"],
    )


# --------------------------------------------------------------------- chat


@router.get("/chat/{conversation_id}")
async def chat_page(request: Request, conversation_id: str, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if user is None:
        return login_redirect(request)
    try:
        view = await chat.get_view(db, user.id, conversation_id)
    except AppError:
        return forbidden_page(request, ctx, user, "这个会话不存在，或者你不是它的参与者。")
    msgs, has_more = await chat.history(db, ctx.keyring, view, limit=50)
    peer_name = view.peer_user.display_name if view.peer_user else ""
    running = await orders.active_in_conversation(db, user, conversation_id)
    boot = {
        "conversation_id": view.conversation.id,
        "me": {"user_id": user.id, "role": view.me.role, "display_name": user.display_name},
        "peer": {
            "user_id": view.peer.user_id,
            "role": view.peer.role,
            "display_name": peer_name,
            "presence": await ctx.presence.status(view.peer.user_id),
        },
        "receipts": {
            "me": chat.receipt_state(view, view.me),
            "peer": chat.receipt_state(view, view.peer),
        },
        "messages": [{**m, "created_at": m["created_at"].isoformat()} for m in msgs],
        "has_more": has_more,
        "limits": {"max_body_chars": ctx.settings.max_message_chars},
        "orders": [orders.summary(o, ctx.clock.now()) for o in running],
        # Guidance, whispers (listener), the hotline card (seeker): see supervision.service.chat_state.
        "safety": await supervision.chat_state(ctx, db, user, view.conversation.id, view.me.role),
        # Why this person may read but not send here (suspended, blocked): the page says so up front.
        "send_refusal": {"code": view.send_refusal.code, "message": view.send_refusal.message}
        if view.send_refusal is not None else None,
    }
    # 心情: at the start of the seeker's paid sitting, one optional tap (wellbeing.mood).
    ask = await mood.ask_before(db, user.id, running, ctx.clock.now()) if view.me.role == "seeker" else None
    return render(
        request, ctx, "chat.html", user, private=True, boot=boot, peer=boot["peer"], body_class="chat-page",
        mood_order=ask,
    )


# ------------------------------------------------------------ conversations


async def _inbox_boot(ctx, db, user: User) -> dict:
    convs = await chat.list_with_presence(db, ctx.keyring, ctx.presence, user.id)
    for c in convs:
        c["last_activity_at"] = c["last_activity_at"].isoformat()
    return {"me": {"user_id": user.id, "role": user.role}, "conversations": convs}


@router.get("/console")
async def console(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "listener", "工作台仅对倾听师开放。")) is not None:
        return refused
    profile = await listeners.get_profile(db, user.id)
    boot = await _inbox_boot(ctx, db, user)
    now = ctx.clock.now()
    live = [orders.summary(o, now) for o in await orders.live_for_listener(db, user)]
    safety = await supervision.listener_state(ctx, db, user)
    duty = (await profiles.usual_hours(ctx, db, [user.id]))[user.id] if profile else None
    return render(request, ctx, "console.html", user, private=True, profile=profile, boot=boot, live_orders=live,
                  safety=safety, readiness=await trust.readiness(db, user.id, now), duty=duty)


@router.get("/console/profile")
async def console_profile(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "listener", "只有倾听师可以编辑倾听师资料。")) is not None:
        return refused
    profile = await listeners.get_profile(db, user.id)
    if profile is None:
        return forbidden_page(request, ctx, user, "你还没有倾听师资料。")
    return render(request, ctx, "console_profile.html", user, private=True, profile=profile,
                  tariff=orders.tariff(ctx.settings))


@router.get("/conversations")
async def my_conversations(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if user is None:
        return login_redirect(request)
    if user.role == "listener":
        return RedirectResponse("/console", status_code=303)
    boot = await _inbox_boot(ctx, db, user)
    return render(request, ctx, "conversations.html", user, private=True, boot=boot)


# -------------------------------------------------------------------- admin


@router.get("/admin")
async def admin(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (refused := gate(request, ctx, user, "admin", "管理后台仅对管理员开放。")) is not None:
        return refused
    rows = await listeners.pending(db)
    ready = await trust.readiness_many(db, [u.id for _, u in rows], ctx.clock.now())
    items = [{**listeners.card(p, u, "offline"), "username": u.username, "readiness": ready[u.id]} for p, u in rows]
    return render(request, ctx, "admin.html", user, private=True, pending=items)
