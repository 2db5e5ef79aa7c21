"""Every refusal in OpenAI's error shape, with the status a client library acts on.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": null}}

The `openai` package maps statuses to exceptions (400 BadRequestError, 401 AuthenticationError,
403 PermissionDeniedError, 404 NotFoundError, 413/422 ..., 429 RateLimitError, 5xx
InternalServerError) and shows `message`; `param` names the request field at fault so a caller can
fix it without reading our code. Nothing here ever carries a traceback: an unexpected exception
becomes a 500 with one sentence, and the server log keeps the details.
"""

from __future__ import annotations

import json
import sys
import traceback

# The error `type` OpenAI's API uses for each status (clients branch on the status, people read the type).
TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    """A request refused with `status`; `param` is the field at fault, `code` a stable machine word."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param, code)


def from_service(exc: BaseException) -> ApiError:
    """The API's answer to an exception the answer service raised before any token was decoded."""
    from assistant.answer import AnswerRequestError, PromptTooLong
    from assistant.engines import EngineError
    from assistant.registry import AdapterError, UnknownAdapter

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownAdapter):
        models = ", ".join(["base", "auto", *exc.available])
        return ApiError(404, f"the model '{_shown(exc.name)}' does not exist; models: {models}", "model",
                        "model_not_found")
    if isinstance(exc, AdapterError):  # listed but unusable (another base, a corrupt file): not servable
        return ApiError(404, str(exc), "model", "model_not_found")
    if isinstance(exc, AnswerRequestError):
        return ApiError(400, str(exc), exc.field, "invalid_value")
    if isinstance(exc, PromptTooLong):
        return ApiError(400, str(exc), "messages", "context_length_exceeded")
    if isinstance(exc, EngineError):
        return ApiError(503, f"the model could not answer: {exc}", None, "engine_error")
    if isinstance(exc, ValueError):  # GenerationSettings' range checks name the setting first
        text = str(exc)
        return ApiError(400, text, text.split(" ", 1)[0] if text else None, "invalid_value")
    return internal(exc)


def internal(exc: BaseException) -> ApiError:
    """An unexpected failure: logged in full on the server, one sentence to the client."""
    print("api: unexpected error\n" + "".join(traceback.format_exception(exc)), file=sys.stderr, flush=True)
    return ApiError(500, "the server failed to answer this request; the operator's log has the details",
                    None, "internal_error")


def encode(error: ApiError) -> bytes:
    return json.dumps(error.body()).encode()


async def send_error(send, error: ApiError) -> None:
    """Answer a raw ASGI request with `error` (before any routing: too large, throttled...)."""
    body = encode(error)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _shown(name) -> str:
    text = str(name)
    return text if len(text) <= 60 else text[:60] + "…"
