"""Request bodies into plain values, and the response objects, in OpenAI's chat-completions shapes.

`parse_chat_request` reads the JSON body of `POST /v1/chat/completions` into a `ChatRequest`, or
raises `ApiError(400)` naming the field (`param`) at fault. It checks only the *shape* (types,
ranges a client can see in OpenAI's reference); what the conversation must be (roles, a last user
question) is the answer service's rule, refused there with the field too, so the chat tab, the CLI
and the API refuse the same conversations.

Product extras travel in one namespace, `x_assistant`, in both directions (the `openai` client
sends it with `extra_body={"x_assistant": {...}}` and keeps unknown response fields):
request `{"ground": bool, "notes": bool}` (api/notes.py); response `{adapter, version, chosen_by,
route_reason, label, sources, grounding_note, policy, checked, withheld, replaced, trust_mark,
suggestions}`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from api.errors import ApiError, bad_request
from assistant.engines import GenerationSettings

EXTRA = "x_assistant"  # the namespace of every field this product adds to OpenAI's shapes
MAX_STOPS = 4  # as OpenAI: at most four stop sequences
MAX_STOP_CHARS = 200
MAX_MESSAGES = 512
MAX_MODEL_CHARS = 200
# Accepted and ignored: they change nothing here, and refusing them would break ordinary clients.
IGNORED = {"n", "user", "logit_bias", "presence_penalty", "frequency_penalty", "response_format",
           "logprobs", "top_logprobs", "metadata", "store", "parallel_tool_calls", "service_tier", "tool_choice",
           "function_call"}
KNOWN = {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
         "temperature", "top_p", "top_k", "seed", "stop", "tools", "functions", EXTRA} | IGNORED


@dataclass
class ChatRequest:
    model: str  # "base", "auto" or an adapter name
    messages: list[dict]  # {role, content}; the service checks roles and the last question
    settings: GenerationSettings
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a usage chunk before [DONE]
    stop: tuple[str, ...] = ()
    ground: bool = False  # x_assistant.ground: put the adapter's nearest Q&A pairs into the prompt
    notes: bool = True  # x_assistant.notes: the trust verdict in the content too (api/notes.py)
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))


def parse_json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON ({str(exc)[:120]})", None, "invalid_json") from None
    except RecursionError:  # [[[[... nested beyond Python's stack: refused, not a 500
        raise bad_request("the request body nests too deeply", None, "invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object", None, "invalid_json")
    return data


def parse_chat_request(data: dict) -> ChatRequest:
    unknown = sorted(set(data) - KNOWN)
    if unknown:  # a typo (`max_token`) silently ignored would answer with the wrong settings
        raise bad_request(f"unknown field '{str(unknown[0])[:40]}'", str(unknown[0])[:40], "unknown_parameter")
    if "n" in data and data["n"] not in (None, 1):
        raise bad_request("only n=1 is supported", "n")
    if data.get("tools") or data.get("functions"):
        raise bad_request("tools are not supported by these models", "tools")
    model = _model(data.get("model"))
    messages = _messages(data.get("messages"))
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    max_param = "max_completion_tokens" if "max_completion_tokens" in data else "max_tokens"
    options = {"max_tokens": _int(max_tokens, max_param, 1, 4096, 256),
               "temperature": _number(data.get("temperature"), "temperature", 0.0, 2.0, 0.0),
               "top_p": _number(data.get("top_p"), "top_p", 0.0, 1.0, 1.0, open_low=True),
               "top_k": _int(data.get("top_k"), "top_k", 1, 1000, 64),
               "seed": _int(data.get("seed"), "seed", -2**63, 2**63 - 1, 0)}
    settings = GenerationSettings(**options)
    stream = _bool(data.get("stream"), "stream", False)
    include_usage = False
    options_in = data.get("stream_options")
    if options_in is not None:
        if not isinstance(options_in, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        include_usage = _bool(options_in.get("include_usage"), "stream_options.include_usage", False)
    extra = data.get(EXTRA) or {}
    if not isinstance(extra, dict) or set(extra) - {"ground", "notes"}:
        raise bad_request(f"{EXTRA} must be an object with at most the fields 'ground' and 'notes'", EXTRA)
    return ChatRequest(model, messages, settings, stream, include_usage, _stops(data.get("stop")),
                       _bool(extra.get("ground"), f"{EXTRA}.ground", False),
                       _bool(extra.get("notes"), f"{EXTRA}.notes", True))


def _model(value) -> str:
    if value is None:
        raise bad_request("'model' is required: base, auto or an adapter name (GET /v1/models lists them)",
                          "model", "missing_required_parameter")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_CHARS:
        raise bad_request("'model' must be a model name: base, auto or an adapter name", "model")
    if any(sep in value for sep in ("/", "\\", "\0")) or value.strip() in (".", ".."):
        # A name never becomes a path unchecked (the registry looks names up, it never joins them),
        # but a client that sent one deserves to be told plainly.
        raise ApiError(404, f"the model '{value[:60]}' does not exist: model names have no path separators "
                            "(GET /v1/models lists them)", "model", "model_not_found")
    return value.strip()


def _messages(value) -> list[dict]:
    if value is None:
        raise bad_request("'messages' is required: a list of {role, content} objects", "messages",
                          "missing_required_parameter")
    if not isinstance(value, list) or not value:
        raise bad_request("'messages' must be a non-empty list of {role, content} objects", "messages")
    if len(value) > MAX_MESSAGES:
        raise bad_request(f"at most {MAX_MESSAGES} messages per request", "messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise bad_request("each message must be an object with a role and a content", f"messages[{i}]")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI's content parts: text parts only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise bad_request("only text content parts are supported", f"messages[{i}].content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise bad_request("the content must be text", f"messages[{i}].content")
        if not _is_text(content):
            raise bad_request("the content is not valid Unicode text (a lone surrogate escape)",
                              f"messages[{i}].content")
        if not content.strip() and message.get("role") == "user":
            raise bad_request("a user message must not be empty", f"messages[{i}].content")
        out.append({"role": message.get("role"), "content": content})
    return out


def _stops(value) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and _is_text(s) for s in stops):
        raise bad_request("'stop' must be a string or a list of strings", "stop")
    if len(stops) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise bad_request(f"at most {MAX_STOPS} stop sequences of at most {MAX_STOP_CHARS} characters", "stop")
    return tuple(s for s in stops if s)


def _is_text(text: str) -> bool:
    """JSON may carry "\ud800", which no tokenizer can encode: refused here, not deep in the engine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bool(value, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false", name)
    return value


def _int(value, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"'{name}' must be an integer", name)
    if not low <= value <= high:
        raise bad_request(f"'{name}' must be between {low} and {high}, not {value}", name)
    return value


def _number(value, name: str, low: float, high: float, default: float, open_low: bool = False) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise bad_request(f"'{name}' must be a number", name)
    if not (low < value if open_low else low <= value) or value > high:
        interval = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
        raise bad_request(f"'{name}' must be in {interval}, not {value}", name)
    return float(value)


# responses ---------------------------------------------------------------------------------------

def extras(answer) -> dict:
    """What this product adds to a completion: who answered and how it was chosen, the grounding,
    and whether the answer was checked against the adapter's Q&A (assistant.trust). The verdict and
    the label's trust mark exist once the answer has ended (a stream's last chunk)."""
    out = {"adapter": answer.adapter, "version": answer.version, "chosen_by": answer.chosen_by,
           "route_reason": answer.route_reason, "label": answer.label, "grounding_note": answer.grounding_note,
           "sources": [{"adapter": m.adapter, "version": m.version, "question": m.question, "answer": m.answer,
                        "similarity": round(float(m.similarity), 4)} for m in answer.sources]}
    for name in ("policy", "checked", "withheld", "replaced", "trust_mark"):  # where the service tells
        value = getattr(answer, name, None)
        if isinstance(value, (str, bool)):
            out[name] = value
    suggestions = getattr(answer, "suggestions", None)
    if isinstance(suggestions, list):
        out["suggestions"] = [str(q) for q in suggestions]
    return out


def completion(request: ChatRequest, answer, tail: str = "") -> dict:
    """`tail`: what api/notes.py adds after the answer's text."""
    return {"id": request.id, "object": "chat.completion", "created": request.created, "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text + tail},
                         "logprobs": None, "finish_reason": answer.finish_reason or "stop"}],
            "usage": answer.usage(), "system_fingerprint": None, EXTRA: extras(answer)}


def chunk(request: ChatRequest, delta: dict, finish_reason: str | None = None, **more) -> dict:
    return {"id": request.id, "object": "chat.completion.chunk", "created": request.created,
            "model": request.model, "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}], **more}


def usage_chunk(request: ChatRequest, answer) -> dict:
    """stream_options.include_usage: one last chunk with no choices and the token counts."""
    return {"id": request.id, "object": "chat.completion.chunk", "created": request.created,
            "model": request.model, "system_fingerprint": None, "choices": [], "usage": answer.usage()}


def model_object(model_id: str, created: int, base: dict, **info) -> dict:
    """`base`: {name, sha256} of the base every model here runs on (the sha256 is its identity)."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": "field-assistant",
            EXTRA: {"base": base, **info}}
