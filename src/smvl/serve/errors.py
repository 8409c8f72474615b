"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with a 4xx/5xx status."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def install_handlers(app) -> None:
    """Unknown routes, wrong methods and crashes answer in the same shape as our own errors."""
    from starlette.exceptions import HTTPException

    async def http_error(request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    async def api_error(request, exc: APIError):
        return exc.response()

    async def crash(request, exc: Exception):
        return APIError(500, f"internal error: {type(exc).__name__}", code="internal_error").response()

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(Exception, crash)
