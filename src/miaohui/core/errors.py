"""Errors that reach users: always a 4xx with a Chinese message first and an
English one beside it, and a stable machine-readable ``code``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_req: Request, exc: AppError):
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError):
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
    async def _http(_req: Request, exc: StarletteHTTPException):
        zh, en = _STATUS_TEXT.get(exc.status_code, ("请求失败", "request failed"))
        return JSONResponse(
            {"error": {"code": f"http_{exc.status_code}", "message": zh, "message_en": en}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
