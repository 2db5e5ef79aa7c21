"""Role checks on the server, for every handler: what the browser hides, the server also refuses.

Gradio hands a handler the logged-in user through a positional `gr.Request` parameter, found by
its type annotation; `functools.partial` hides annotations, so handlers are wrapped here, in
functions that keep the wrapped one's inputs and streaming (a generator stays a generator).
"""

from __future__ import annotations

import inspect

import gradio as gr

from assistant.auth import FARMER, TRAINER, Access, normal_name

__all__ = ["FARMER", "TRAINER", "guard", "username"]


def username(request: gr.Request | None) -> str | None:
    """The logged-in user, spelled as the users file spells it: Gradio keeps the name as typed
    at log-in (`JOSEPH`), and every role check, limit and log must see `joseph`."""
    name = getattr(request, "username", None) if request is not None else None
    return normal_name(name) if name else None


def guard(access: Access, needed: str, action: str, fn):
    """`fn`, run only for users whose role allows `action`; others get a clear error, nothing runs."""

    def check(request) -> None:
        message = access.denial(username(request), needed, action)
        if message:
            raise gr.Error(message, print_exception=False)

    if inspect.isgeneratorfunction(getattr(fn, "func", fn)):
        def handler(request, *args):
            check(request)
            yield from fn(*args)
    else:
        def handler(request, *args):
            check(request)
            return fn(*args)
    # Gradio reads the signature: `request` first, typed, so it is passed in; then the wrapped
    # function's own inputs. The API endpoint keeps the wrapped one's name (/respond, /start…).
    own = list(inspect.signature(fn).parameters.values())
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request), *own])
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = getattr(getattr(fn, "func", fn), "__name__", "handler")
    return handler
