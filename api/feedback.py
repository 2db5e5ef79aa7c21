"""Feedback on an API answer by its completion id, and the record that makes it possible.

    POST /v1/feedback   {"completion_id": "chatcmpl-…", "rating": 1 | -1 | 0, "correction": "…"}

Every finished completion is kept in the history (assistant.history) under the caller, owner
`api:NAME` (`api:local` without a users file), apart from their chats in the web app; its id is
the completion's `id`. In the trainers' queue the caller is the same person as in the chat tab
(`user:NAME`), so one farmer asking by both ways is counted once. Only the caller who got an
answer may rate it: another key's completion is "not found", as an unknown id is. A 👎 or a correction puts the question in the trainers' queue,
once per caller however often it is sent. Errors in OpenAI's shape.
"""

from __future__ import annotations

import sys

import anyio
from fastapi import APIRouter, Request

from api import schemas
from api.errors import ApiError, bad_request
from api.keys import require
from assistant import history
from assistant.auth import FARMER
from assistant.history import HistoryError
from assistant.store import StoreError

FIELDS = {"completion_id", "rating", "correction"}


def owner_of(caller) -> str:
    """Whose history an API completion is kept in."""
    return f"api:{caller.name or 'local'}"


def person_of(caller) -> str:
    """Who asked, for the trainers' queue: the chat tab's key for the same user (ui.chats.owner_of)."""
    return f"user:{caller.name}" if caller.name else owner_of(caller)


async def keep(assistant, caller, chat, answer) -> None:
    """Record one finished completion (never costs the client its answer: a failure is logged)."""
    store = getattr(assistant, "store", None)
    if store is None or not hasattr(answer, "describe"):
        return
    d = answer.describe()
    asked = next((m["content"] for m in reversed(chat.messages) if m["role"] == "user"), "")
    meta = {"content": answer.text, "shown": answer.text, "question": getattr(answer, "question", asked),
            "adapter": d.get("adapter"), "version": d.get("version"), "checked": d.get("checked"),
            "withheld": d.get("withheld"), "sources": d.get("sources"), "label": d.get("label", ""),
            "completion_id": chat.id}
    try:
        await anyio.to_thread.run_sync(history.add_turn, store, owner_of(caller), None, asked, meta,
                                     person_of(caller))
    except (HistoryError, StoreError, ValueError) as exc:
        print(f"could not keep completion {chat.id}: {exc}", file=sys.stderr, flush=True)


def add_routes(router: APIRouter, assistant, caller_of, read_body, require_json) -> None:
    @router.post("/feedback")
    async def feedback(request: Request):
        caller = caller_of(request)
        require(caller, FARMER, "rate answers")
        require_json(request)
        data = schemas.parse_json(await read_body(request))
        completion_id, rating, correction = parse(data)
        store = getattr(assistant, "store", None)
        if store is None:
            raise ApiError(503, "this app keeps no history, so answers cannot be rated", None, "no_store")
        try:
            message = await anyio.to_thread.run_sync(_rate, store, caller, completion_id, rating, correction)
        except StoreError as exc:
            raise ApiError(503, str(exc), None, "store_error") from None
        return {"object": "feedback", "completion_id": completion_id, "rating": message.rating,
                "correction": message.correction, "queued": rating < 0 or bool(correction)}


def parse(data: dict) -> tuple[str, int, str]:
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise bad_request(f"unknown field '{str(unknown[0])[:40]}'", str(unknown[0])[:40], "unknown_parameter")
    completion_id = data.get("completion_id")
    if not isinstance(completion_id, str) or not completion_id.strip():
        raise bad_request("'completion_id' is required: the id of a chat completion you received", "completion_id",
                          "missing_required_parameter")
    rating = data.get("rating", 0)
    if isinstance(rating, bool) or rating not in (-1, 0, 1):
        raise bad_request("'rating' must be 1 (good), -1 (bad) or 0 (none)", "rating")
    correction = data.get("correction", "")
    if correction is None:
        correction = ""
    if not isinstance(correction, str):
        raise bad_request("'correction' must be text", "correction")
    if not rating and not correction.strip():
        raise bad_request("send a 'rating' of 1 or -1, a 'correction', or both", "rating")
    return completion_id.strip()[:100], int(rating), correction


def _rate(store, caller, completion_id: str, rating: int, correction: str):
    owner = owner_of(caller)
    found = history.message_of_completion(store, completion_id)
    if found is None or found[0] != owner:
        raise ApiError(404, f"no completion '{completion_id[:60]}' of yours is kept (ids of answers you received "
                       "from this app)", "completion_id", "completion_not_found")
    try:
        return history.rate(store, owner, found[1], rating, correction, person_of(caller))
    except HistoryError as exc:
        raise bad_request(str(exc), "correction" if "correction" in str(exc) else "rating") from None
