"""The /v1 routes: each one authenticates, parses, calls the answer service, renders the result.

    GET    /v1/models                 every usable adapter, plus `base` and `auto`
    GET    /v1/models/{model}         one of them
    DELETE /v1/models/{model}         trainers: delete every version of a trained adapter
    POST   /v1/chat/completions       an answer, whole or streamed (server-sent events)
    POST   /v1/feedback               a rating or correction of a completion (api/feedback.py)

In a stream, the first chunk carries the role and the product's extras (`x_assistant`: adapter,
version, how it was chosen, sources: all decided before the first token); the last chunk the
`finish_reason` and the extras again, complete (whether the answer was checked against the Q&A,
the label with its trust mark, suggestions: known only at the end), after the answer's last
words and, unless the client turned them off, its trust note (api/notes.py); then (with
stream_options.include_usage) a chunk with the token counts, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api import feedback, notes, schemas
from api.errors import ApiError, from_service, internal
from api.keys import Caller, authenticate, require
from api.streaming import Door, Pump, until_disconnect
from assistant.auth import FARMER, TRAINER

MAX_BODY = 1 * 2**20  # a chat request is text; 1 MB is far beyond any conversation the context holds
SPECIAL_MODELS = ("base", "auto")


def build_router(assistant, access, clients, door: Door) -> APIRouter:
    router = APIRouter(prefix="/v1")
    # The service records who asked a question it could not answer, where it takes a user (a key's
    # user name; None on a local app).
    takes_user = "user" in inspect.signature(assistant.answer).parameters

    def caller_of(request: Request) -> Caller:
        peer = request.client.host if request.client else None
        return authenticate(access, clients.of_request(request), peer, request.headers.get("authorization"))

    @router.get("/models")
    async def list_models(request: Request):
        require(caller_of(request), FARMER, "list models")
        return {"object": "list", "data": await anyio.to_thread.run_sync(_models, assistant)}

    @router.get("/models/{model}")
    async def get_model(model: str, request: Request):
        require(caller_of(request), FARMER, "list models")
        for entry in await anyio.to_thread.run_sync(_models, assistant):
            if entry["id"] == model:
                return entry
        raise from_service(_unknown(assistant, model))

    @router.delete("/models/{model}")
    async def delete_model(model: str, request: Request):
        require(caller_of(request), TRAINER, "delete adapters")
        if model in SPECIAL_MODELS:
            raise ApiError(400, f"'{model}' is not an adapter and cannot be deleted", "model", "invalid_value")
        try:
            removed = await anyio.to_thread.run_sync(_delete, assistant, model)
        except Exception as exc:  # noqa: BLE001 - every refusal in OpenAI's shape
            raise from_service(exc) from None
        return {"id": model, "object": "model", "deleted": True, schemas.EXTRA: {"versions": removed}}

    @router.post("/chat/completions")
    async def chat_completions(request: Request):
        caller = caller_of(request)
        require(caller, FARMER, "chat")
        _require_json(request)
        chat = schemas.parse_chat_request(schemas.parse_json(await read_body(request)))
        door.enter(caller.limit_key)
        entered = True
        try:
            who = {"user": feedback.person_of(caller)} if takes_user else {}
            messages = notes.cleaned(chat.messages)  # an earlier answer's note is not the model's words
            pump = Pump(lambda: assistant.answer(messages, chat.model, chat.settings, chat.ground, chat.stop,
                                                 **who), asyncio.get_running_loop()).start()
            try:
                answer = await pump.started()
            except Exception as exc:  # noqa: BLE001 - refused before any token: a 4xx in OpenAI's shape
                raise from_service(exc) from None
            if chat.stream:
                entered = False  # the stream leaves the door itself, when it ends
                return _EventStream(_events(chat, answer, pump, lambda: feedback.keep(assistant, caller, chat, answer)),
                                    lambda: (pump.leave(), door.leave(caller.limit_key)))
            if not await _whole(pump, request):
                return JSONResponse({"error": None}, status_code=499)  # nobody is left to read it
            await feedback.keep(assistant, caller, chat, answer)  # so that it can be rated by its id
            return JSONResponse(schemas.completion(chat, answer, notes.tail(answer) if chat.notes else ""))
        finally:
            if entered:
                door.leave(caller.limit_key)

    feedback.add_routes(router, assistant, caller_of, read_body, _require_json)
    return router


def _require_json(request: Request) -> None:
    """415 unless the body says it is JSON. Why refuse what would parse anyway: a web page can make
    a browser POST text/plain to a local app without asking first, but not application/json (that
    needs a CORS preflight, which Gradio's middleware refuses for other origins)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"send the request as JSON (Content-Type: application/json, not {kind or 'none'})",
                       None, "unsupported_media_type")


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes MAX_BODY (never read to its end)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def too_large() -> ApiError:
    return ApiError(413, f"the request body is larger than {MAX_BODY // 2**20} MB; a chat request is text",
                    None, "request_too_large")


async def _whole(pump: Pump, request: Request) -> bool:
    """Read the whole answer (True); if the client goes away meanwhile, stop it, freeing its slot (False)."""
    async def read() -> None:
        async for _ in pump:
            pass

    reading = asyncio.ensure_future(read())
    gone = asyncio.ensure_future(until_disconnect(request.receive))
    try:
        await asyncio.wait({reading, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not reading.done():
            pump.leave()
            reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
    if reading.cancelled():
        return False
    exc = reading.exception()
    if exc is not None:
        raise from_service(exc) if not isinstance(exc, ApiError) else exc
    return True


class _EventStream(StreamingResponse):
    """Server-sent events that always let their answer and the door go, exactly once: also when
    the client is gone before the first byte (then Starlette never starts the body's generator,
    so a `finally` inside it would never run)."""

    def __init__(self, events, done):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._done = done

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


async def _events(chat, answer, pump: Pump, kept=None):
    """The server-sent events of one streamed answer. Starlette cancels this generator when the
    client disconnects; `async for` over the pump then tells its thread to stop and close."""
    def event(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    try:
        yield event(schemas.chunk(chat, {"role": "assistant", "content": ""},
                                  **{schemas.EXTRA: schemas.extras(answer)}))
        try:
            async for piece in pump:
                yield event(schemas.chunk(chat, {"content": piece}))
            tail = notes.tail(answer) if chat.notes else ""
            if tail:  # after the answer: whether it was checked is known at its end
                yield event(schemas.chunk(chat, {"content": tail}))
        except Exception as exc:  # noqa: BLE001 - headers are sent: the error goes in the stream
            yield event((exc if isinstance(exc, ApiError) else _mid_stream(exc)).body())
            yield "data: [DONE]\n\n"
            return
        # The extras again, now complete: whether the answer was checked is known only at its end.
        yield event(schemas.chunk(chat, {}, answer.finish_reason or "stop", **{schemas.EXTRA: schemas.extras(answer)}))
        if kept is not None:
            await kept()  # the finished answer, kept so that it can be rated by its id
        if chat.include_usage:
            yield event(schemas.usage_chunk(chat, answer))
        yield "data: [DONE]\n\n"
    finally:
        pump.leave()  # at once when the client went away mid-stream (the door is left by _EventStream)


def _mid_stream(exc: BaseException) -> ApiError:
    from assistant.engines import EngineError

    return ApiError(503, f"the model stopped answering: {exc}", None, "engine_error") \
        if isinstance(exc, EngineError) else internal(exc)


def _models(assistant) -> list[dict]:
    base = {"name": assistant.base.name, "sha256": getattr(assistant.base, "sha256", None)}
    created = 0
    out = [schemas.model_object("base", created, base, adapter=None, description="the base model, no adapter"),
           schemas.model_object("auto", created, base, adapter=None,
                                description="routed per question to the adapter whose Q&A holds its nearest match")]
    for adapter in assistant.adapters():
        if adapter.usable:
            try:
                created = int(adapter.path.stat().st_mtime)
            except OSError:
                created = 0
            out.append(schemas.model_object(adapter.name, created, base, adapter=adapter.name,
                                            version=adapter.version, source=adapter.source,
                                            description=str(adapter.manifest.get("description", ""))[:300]))
    return out


def _unknown(assistant, model: str):
    from assistant.registry import UnknownAdapter

    return UnknownAdapter(model, assistant.registry.usable_names())


def _delete(assistant, name: str) -> list[int]:
    removed = assistant.registry.delete(name)
    for adapter in removed:  # free the engine's copy once no answer is using it (as the Train tab does)
        assistant.engine.unload_adapter(adapter.key)
    return [a.version for a in removed]
