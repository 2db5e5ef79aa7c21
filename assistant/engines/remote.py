"""`--engine server`: generation on a llama-server someone else runs, matched to our registry.

The server was started with some LoRA GGUFs (`--lora FILE`, ids in that order); GET /lora-adapters
lists them. Each is matched to a registry adapter version: by the file's sha256 when its path is
readable here (the same machine, or a shared disk), else by the adapter's name and version in
the path (`.../xylandia/v2/adapter.gguf`, as the registry lays adapters out). An adapter the server
lacks is not an error at start: asking it gives a clear one, and the rest keep serving. A server
on another base is refused at start, since its adapters' answers would be another model's.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from assistant.engines import SERVER_KINDS, EngineError
from assistant.fsutil import sha256_file_cached

CONNECT_TIMEOUT = httpx.Timeout(10.0)


def connect(url: str | None, kind: str, base, adapters=(), path_map: str | None = None, api_key: str | None = None):
    """An engine on the server at `url`, its adapters matched to `adapters`; EngineError saying
    what is wrong (no URL, unreachable, another base, a kind we do not speak). `path_map`: vLLM only
    (assistant.engines.vllm), where the server reads this app's adapters. `api_key` (default
    ASSISTANT_SERVER_API_KEY): for a server started with `--api-key`, sent as a Bearer key."""
    from assistant.engines.server import FixedServer, ServerEngine

    if kind not in SERVER_KINDS:
        raise EngineError(f"--server-kind {kind} is not one we speak (choose from: {', '.join(SERVER_KINDS)})")
    if kind == "vllm":
        from assistant.engines import vllm

        return vllm.connect(url, base, adapters, path_map=path_map, api_key=api_key)
    if not url:
        raise EngineError("--engine server needs --server-url (for example http://127.0.0.1:8080)")
    url = url.rstrip("/")
    headers = api_headers(api_key)
    props = get_json(url, "/props", "llama-server", headers)
    _check_base(props, base, url)
    listed = get_json(url, "/lora-adapters", "llama-server", headers)
    lora_ids = match_adapters(listed if isinstance(listed, list) else [], adapters)
    slots = props.get("total_slots") if isinstance(props, dict) else None
    return ServerEngine(FixedServer(url, lora_ids, parallel=slots if isinstance(slots, int) and slots > 0 else 4),
                        prompt_format=base.prompt_format, headers=headers)


def api_headers(api_key: str | None = None) -> dict[str, str]:
    """The Authorization header for a server that wants a key (`api_key`, else ASSISTANT_SERVER_API_KEY)."""
    key = api_key if api_key is not None else os.environ.get("ASSISTANT_SERVER_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def get_json(url: str, path: str, kind: str, headers: dict | None = None):
    """GET `path` from the `kind` server (llama-server, vLLM server) at `url`, as JSON; EngineError
    saying what went wrong: unreachable, a key it wants, another status, not JSON."""
    try:
        response = httpx.get(url + path, headers=headers or {}, timeout=CONNECT_TIMEOUT)
    except httpx.HTTPError as exc:
        raise EngineError(f"the inference server at {url} is unreachable ({type(exc).__name__}: {exc})") from exc
    if response.status_code == 401:
        raise EngineError(f"the {kind} at {url} rejected the API key it was sent; check ASSISTANT_SERVER_API_KEY"
                          if headers else f"the {kind} at {url} wants an API key; set ASSISTANT_SERVER_API_KEY")
    if response.status_code != 200:
        raise EngineError(f"the inference server at {url} answered {path} with {response.status_code}; "
                          f"is it a {kind}?")
    try:
        return response.json()
    except ValueError as exc:
        raise EngineError(f"the inference server at {url} did not answer {path} with JSON; is it a {kind}?") from exc


def _check_base(props: dict, base, url: str) -> None:
    """Refuse a server whose model file is readable here and is not our base."""
    model_path = Path(str(props.get("model_path") or ""))
    if base.gguf_path is None or not model_path.name or not model_path.is_file():
        return  # not readable from here: the operator answers for it (the README says so)
    if sha256_file_cached(model_path) != sha256_file_cached(Path(base.gguf_path)):
        raise EngineError(f"the inference server at {url} serves {model_path.name}, another model than this "
                          f"app's base {Path(base.gguf_path).name}; adapters trained on one base are wrong on another")


def match_adapters(listed: list[dict], adapters) -> dict[str, int]:
    """Registry key -> lora id, for every listed LoRA that is one of `adapters`."""
    by_hash, by_place = {}, {}
    for adapter in adapters:
        path = Path(adapter.gguf_path)
        if path.is_file():
            by_hash.setdefault(sha256_file_cached(path), adapter.key)
        by_place[(adapter.name, f"v{adapter.version}")] = adapter.key
    ids: dict[str, int] = {}
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            continue
        path = Path(str(entry.get("path") or ""))
        if path.is_file():  # readable here: the bytes decide, whatever the path says
            key = by_hash.get(sha256_file_cached(path))
        else:
            key = by_place.get((path.parts[-3], path.parts[-2])) if len(path.parts) >= 3 else None
        if key is not None:
            ids.setdefault(key, entry["id"])
    return ids
