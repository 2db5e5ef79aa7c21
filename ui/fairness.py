"""Fair chat queueing: one user's burst must not starve the others.

Each user may have at most `PER_USER` questions waiting or being answered; the next one is refused
at the queue's door with one sentence ("You already have 3 questions waiting; wait for an answer
first."), shown under the question box, and never waits in line ahead of other users. Users are
the logged-in name; without log-in, the client address a trusted proxy names (ui.clients). A local
app with neither has one person on this machine and nobody to be fair to, so no limit applies
there (scripts and benchmarks on the machine may queue as much as they like).

Why at the door and not in the chat handler: Gradio starts the handler only once a chat slot is
free, so a handler-side counter never sees the questions waiting in line, and a burst of 70 would
still be answered one after another ahead of everyone else. The count is read from Gradio's queue
itself (questions waiting for the chat's concurrency id, and those running), not kept by us: a
question leaves the count exactly when Gradio drops it, whether its answer ended, failed, was
cancelled or its browser went away, so nothing can leak. Joins are checked one at a time, so a
burst of parallel joins cannot slip past the count. (`serve` also closes Gradio's direct
`/run/...` route with `api_open=False`, so every chat goes through this door.)
"""

from __future__ import annotations

import asyncio

from assistant.auth import normal_name

PER_USER = 3  # questions one user may have waiting or being answered at once


def message(waiting: int) -> str:
    return f"You already have {waiting} question{'s' if waiting != 1 else ''} waiting; wait for an answer first."


def limit_per_user(demo, concurrency_id: str, clients, per_user: int = PER_USER) -> None:
    """Refuse a user's chat question while `per_user` of theirs are waiting or running. Call after
    `demo.queue(...)` (which makes a new queue)."""
    from gradio import route_utils

    queue = demo._queue
    if not all(hasattr(queue, name) for name in ("push", "event_queue_per_concurrency_id", "active_jobs")):
        raise RuntimeError("this Gradio version's queue is not the one ui.fairness was written for")
    original, lock = queue.push, asyncio.Lock()

    def requester(username, request) -> str | None:
        if username:
            return f"user {normal_name(username)}"
        return f"address {clients.of_request(request)}" if clients.trusted else None

    def pending(key: str) -> int:
        line = queue.event_queue_per_concurrency_id.get(concurrency_id)
        events = [*(line.queue if line is not None else ()),
                  *(event for job in queue.active_jobs if job for event in job)]
        return sum(1 for e in events if e.concurrency_id == concurrency_id and e.alive
                   and requester(e.username, e.request) == key)

    async def push(body, request, username):
        try:
            fn = route_utils.get_fn(queue.blocks, None, body)
        except Exception:  # noqa: BLE001 - an unknown function: Gradio's own push answers it
            return await original(body=body, request=request, username=username)
        key = requester(username, request)
        if fn.concurrency_id != concurrency_id or key is None:
            return await original(body=body, request=request, username=username)
        async with lock:  # count and join as one step
            waiting = pending(key)
            if waiting >= per_user:
                return False, _refusal(fn, message(waiting)), "validator_error"
            return await original(body=body, request=request, username=username)

    queue.push = push


def _refusal(fn, text: str) -> list[dict]:
    """Gradio's validation answer: the message under the first input (the question box)."""
    names = list(getattr(fn, "input_parameter_names", None) or [])
    return [{"__type__": "validate", "is_valid": i != 0, "message": text if i == 0 else "",
             "parameter_name": names[i] if i < len(names) else f"parameter_{i}"}
            for i in range(max(1, len(fn.inputs)))]
