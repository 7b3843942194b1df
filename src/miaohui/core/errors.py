"""Errors that reach users: always a 4xx with a Chinese message first and an
English one beside it, and a stable machine-readable ``code``."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException


class AppError(Exception):
    status_code = 400

    def __init__(self, code: str, message: str, message_en: str, status_code: int | None = None):
        super().__init__(message_en)
        self.code = code
        self.message = message
        self.message_en = message_en
        if status_code is not None:
            self.status_code = status_code
        self.extra: dict = {}  # machine-readable details the client needs to act (e.g. a confirm token)
        self.headers: dict[str, str] | None = None  # HTTP headers of the error response (e.g. Retry-After)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "message_en": self.message_en, **self.extra}


def not_found(what: str = "资源", what_en: str = "resource") -> AppError:
    return AppError("not_found", f"{what}不存在", f"{what_en} not found", 404)


def forbidden() -> AppError:
    return AppError("forbidden", "无权访问", "forbidden", 403)


def unauthenticated() -> AppError:
    return AppError("unauthenticated", "请先登录", "please sign in", 401)


_STATUS_TEXT = {
    400: ("请求有误", "bad request"),
    401: ("请先登录", "please sign in"),
    403: ("无权访问", "forbidden"),
    404: ("页面不存在", "not found"),
    405: ("不支持该方法", "method not allowed"),
    413: ("内容过大", "payload too large"),
    429: ("操作过于频繁，请稍后再试", "too many requests"),
}


# What a person in a browser reads instead of a JSON body: (title, message).
_PAGE_TEXT = {
    404: ("页面不存在", "你要找的页面不存在，可能链接有误或已经失效。"),
    405: ("打不开这个页面", "这个地址不能这样打开，请从页面上的链接进入。"),
    422: ("链接有误", "这个链接缺少或带错了参数，请回到上一页重新进入。"),
    500: ("出了点问题", "服务器处理这个页面时出错了，我们已经记录下来。请稍后再试。"),
}

PageRenderer = Callable[[Request, int, str, str], Awaitable[Response]]
log = logging.getLogger("miaohui.errors")


def wants_page(request: Request) -> bool:
    """A browser navigating to a page, not the API, a socket or a file: it gets
    an HTML page in Chinese rather than the API's JSON error."""
    path = request.url.path
    return (
        request.method in ("GET", "HEAD")
        and not path.startswith(("/api/", "/ws", "/static/", "/healthz", "/openapi", "/docs", "/redoc"))
        and "text/html" in request.headers.get("accept", "")
    )


def install_handlers(app: FastAPI, page: PageRenderer | None = None) -> None:
    """``page`` renders the HTML error page (the web domain's); without it every
    error is JSON."""

    async def as_page(request: Request, status: int) -> Response | None:
        if page is None or not wants_page(request):
            return None
        title, message = _PAGE_TEXT.get(status, _PAGE_TEXT[404])
        return await page(request, status, title, message)

    @app.exception_handler(AppError)
    async def _app_error(_req: Request, exc: AppError):
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(req: Request, exc: RequestValidationError):
        if (html := await as_page(req, 422)) is not None:
            return html
        fields = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()
        ]
        return JSONResponse(
            {
                "error": {
                    "code": "invalid_input",
                    "message": "输入有误，请检查后重试",
                    "message_en": "invalid input",
                    "fields": fields,
                }
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException):
        if exc.status_code in _PAGE_TEXT and (html := await as_page(req, exc.status_code)) is not None:
            return html
        zh, en = _STATUS_TEXT.get(exc.status_code, ("请求失败", "request failed"))
        return JSONResponse(
            {"error": {"code": f"http_{exc.status_code}", "message": zh, "message_en": en}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(PoolTimeout)
    async def _busy(_req: Request, _exc: PoolTimeout):
        # Every database connection stayed busy for the pool's whole timeout: a
        # burst, not a bug.  Nothing was done; the client may retry.  (No HTML
        # page: rendering one would wait for a connection too.)
        log.warning("database pool exhausted; answered 503")
        return JSONResponse(
            {"error": {"code": "busy", "message": "现在请求太多，请稍后重试", "message_en": "server busy, please retry"}},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def crashed(req: Request) -> Response:
        return await as_page(req, 500) or _internal_error()

    app.add_middleware(CrashGuard, respond=crashed)


def _internal_error() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "internal", "message": "服务器出错了，请稍后再试", "message_en": "internal error"}},
        status_code=500,
    )


class CrashGuard:
    """A bug, not bad input: the request gets a whole 500 answer in Chinese and
    English (an HTML page for a browser) and the connection stays usable.

    Starlette's own last-resort handler re-raises after answering, and uvicorn
    then closes the connection under the answer; this one does not re-raise.
    The log names the exception and the route, with the trace of code (never
    the request's body or query, nor the exception's message)."""

    def __init__(self, app, respond: Callable[[Request], Awaitable[Response]]):
        self.app = app
        self.respond = respond

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watch(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # too late for an answer of our own
                raise
            req = Request(scope)
            # The exception's type and the code's frames; not its message, which may quote user data.
            trace = "".join(traceback.format_tb(exc.__traceback__))
            log.error("unhandled %s on %s %s\n%s", type(exc).__name__, req.method, req.url.path, trace)
            try:
                response = await self.respond(req)
            except Exception as again:  # the error page itself failed
                log.error("the error page failed too: %s", type(again).__name__)
                response = _internal_error()
            await response(scope, receive, send)
