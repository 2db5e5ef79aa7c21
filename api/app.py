"""The API as an app of its own, and the dispatch that serves it beside Gradio on one port.

Why a dispatch in Gradio's middleware list, not `gr.mount_gradio_app` under a FastAPI parent:
`serve()` keeps calling `demo.launch(...)`, so Gradio's own server keeps its start-up, its queue,
its SIGTERM path (`ui.app._interrupt_on_sigterm` -> KeyboardInterrupt in launch's wait -> close)
and its `app_kwargs` middleware (the Gate) exactly as they were; mounting would hand all of that
to a uvicorn we start ourselves. `Dispatch` is first in the list, so `/v1/...` never reaches the
Gate (whose refusals are in Gradio's shape) nor Gradio; everything else passes through untouched.
"""

from __future__ import annotations

import sys

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.errors import ApiError, internal, send_error
from api.routes import MAX_BODY, build_router, too_large
from api.streaming import Door

PREFIX = "/v1"
QUEUE_SIZE = 64  # answers that may wait for an engine slot beyond those decoding (as the app's queue)
PER_USER = 3  # answers one key's user may have in flight at once (as the chat tab's ui.fairness)


def create_api(assistant, access, clients, per_user: int = PER_USER, queue_size: int = QUEUE_SIZE) -> FastAPI:
    api = FastAPI(title="Field assistant API", docs_url=None, redoc_url=None, openapi_url=None)
    slots = int(getattr(assistant.engine, "slots", 1) or 1)
    api.state.door = Door(most=slots + queue_size, per_user=per_user)
    api.include_router(build_router(assistant, access, clients, api.state.door))

    @api.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException):  # unknown route, wrong method
        message = {404: "no such endpoint", 405: "this endpoint does not take that method"}.get(
            exc.status_code, str(exc.detail))
        error = ApiError(exc.status_code, f"{message} (see GET {PREFIX}/models and POST {PREFIX}/chat/completions)",
                         None, "not_found" if exc.status_code == 404 else None)
        return JSONResponse(error.body(), status_code=exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        return JSONResponse(ApiError(400, "the request is malformed", None, "invalid_value").body(), status_code=400)

    return api


class Dispatch:
    """ASGI middleware: `/v1/...` to the API app, everything else to the app it wraps (Gradio)."""

    def __init__(self, app, api: FastAPI):
        self.app, self.api = app, api

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            # Refused before a byte of the body is read: a client that sent `Expect: 100-continue`
            # (curl does for large bodies) gets this answer instead of permission to send.
            return await send_error(send, too_large() if length.isdigit() else
                                    ApiError(400, "Content-Length is not a number", None, "invalid_value"))
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.api(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - never a traceback to the client, never a crash
            error = internal(exc)
            if not started:
                await send_error(send, error)
            else:
                print(f"api: {PREFIX} response cut short: {exc!r}", file=sys.stderr, flush=True)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None
