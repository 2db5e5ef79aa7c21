"""HTTP-level rules in front of Gradio's routes, as ASGI middleware (`launch(app_kwargs=...)`).

Gradio checks only whether someone is logged in; some rules need more, before a handler runs:
- every request's client address is noted (ui.clients) for the log-in callback, which Gradio
  calls with the name and password only; a client that must wait after failed log-ins is told so
  before its form is even read;
- requests that carry files (Gradio's upload route, any multipart body but the log-in form) are
  for roles that may train, and their *total* size is capped (Gradio caps each file only);
- files in Gradio's temp directory (uploads, a trainer's downloads) and in the data directory are
  fetched through Gradio's file route by roles that may train only (the data directory is also in
  Gradio's blocked paths, so nobody gets it there);
- the page served to someone not logged in embeds no API schema: Gradio puts the whole schema
  (every endpoint, every adapter name in its choices) into the log-in page.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote

import anyio
from starlette.requests import HTTPConnection

from assistant.auth import TRAINER, Access, normal_name
from ui import clients as client_addresses

UPLOAD_PATHS = {"/gradio_api/upload"}
FILE_PREFIXES = ("/gradio_api/file=", "/gradio_api/file/")
LOGIN_PATHS = {"/login", "/login/"}
PAGE_PATHS = {"/", ""}
MULTIPART_SLACK = 64 * 1024  # the multipart framing around the file(s) of an upload
_API_INFO = re.compile(rb"<script>window\.gradio_api_info = .*?;</script>", re.DOTALL)
_NO_API_INFO = b"<script>window.gradio_api_info = null;</script>"


def login_callback(users):
    """Gradio's `auth` callable: the password check, for the address this request came from, in a
    worker thread (scrypt takes ~50 ms; Gradio would run a plain function on its event loop)."""

    async def check(name: str, password: str) -> bool:
        client = client_addresses.CURRENT.get()
        return await anyio.to_thread.run_sync(users.check, name, password, client)

    return check


class Gate:
    def __init__(self, app, access: Access, clients: client_addresses.Clients, max_upload_bytes: int,
                 trainer_dirs=()):
        self.app, self.access, self.clients = app, access, clients
        self.max_request_bytes = int(max_upload_bytes) + MULTIPART_SLACK
        self.trainer_dirs = [Path(d).resolve() for d in trainer_dirs]  # besides Gradio's temp dir

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = client_addresses.CURRENT.set(self.clients.of_scope(scope))
        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                return await _send_json(send, *refusal)
            if self.access.enabled and scope["method"] == "GET" and scope["path"] in PAGE_PATHS \
                    and user_of(scope) is None:
                return await self.app(scope, receive, _without_api_info(send))
            return await self.app(scope, receive, send)
        finally:
            client_addresses.CURRENT.reset(token)

    def refusal(self, scope) -> tuple[int, str] | None:
        """(status, one sentence) for a request refused here, or None to pass it on to Gradio."""
        path, method, headers = scope["path"], scope["method"], _headers(scope)
        if path in LOGIN_PATHS:
            if method == "POST" and self.access.enabled:
                wait = self.access.users.throttle.wait_s(client_addresses.CURRENT.get(), time.monotonic())
                if wait > 0:  # 400, as for a wrong password: the log-in page shows nothing for other codes
                    return 400, f"Too many failed log-ins from your address: try again in {math.ceil(wait)} s."
            return None
        if path.startswith(FILE_PREFIXES):
            if self.access.enabled and self._trainers_only(path.split("file", 1)[1][1:]):
                denial = self.access.denial(user_of(scope), TRAINER, "fetch this file")
                if denial:
                    return 403, denial
            return None
        carries_files = path.rstrip("/") in UPLOAD_PATHS or \
            headers.get("content-type", "").lower().startswith("multipart/")
        if not carries_files:
            return None
        user = user_of(scope)
        if self.access.enabled and user is None:
            return 401, "Please log in first."
        denial = self.access.denial(user, TRAINER, "upload files")
        if denial:
            return 403, denial
        length = headers.get("content-length", "")
        if not length.isdigit():
            return 411, "An upload must state its size (Content-Length); send it as one plain request."
        if int(length) > self.max_request_bytes:
            limit_mb = (self.max_request_bytes - MULTIPART_SLACK) / 2 ** 20
            return 413, f"The upload is too large: {limit_mb:.0f} MB at most per request, all files together."
        return None


    def _trainers_only(self, target: str) -> bool:
        from ui.tempfiles import gradio_dir

        candidates = set()
        for spelling in {target, unquote(target)}:  # as Gradio reads it, and decoded once more to be safe
            candidates.add(Path(os.path.abspath(spelling)))
            try:
                candidates.add(Path(spelling).resolve())
            except (OSError, RuntimeError, ValueError):
                pass
        dirs = [gradio_dir(), *self.trainer_dirs]
        return any(c.is_relative_to(d) for c in candidates for d in dirs)


def user_of(scope) -> str | None:
    """The logged-in user of a request, by Gradio's session cookie (None when not logged in)."""
    app = scope.get("app")
    tokens = getattr(app, "tokens", None)
    if not tokens:
        return None
    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(app, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    user = tokens.get(token) if token else None
    return normal_name(user) if user else None


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message, "error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _without_api_info(send):
    """`send`, with the page's embedded API schema replaced by null (the page then asks /info,
    which Gradio answers only after log-in)."""
    start, chunks = None, []

    async def wrapped(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = _API_INFO.sub(_NO_API_INFO, b"".join(chunks))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped
