"""`--engine server --server-kind vllm`: generation on a vLLM OpenAI-compatible server.

vLLM serves one base (an HF directory; for a GGUF base, the copy `Base.ensure_hf_dir()` makes) and
many LoRA adapters batched together, each chosen per request by its name in `"model"`. GET
/v1/models lists them: the base's card has no `parent`, each LoRA's card names its base as
`parent` and its directory as `root`. A LoRA is matched to a registry version by its weights'
sha256 when that directory is readable here, else by its name (we name them by registry key,
`xylandia@v2`) or its place (`.../xylandia/v2`). An adapter the server lacks is loaded at run time
(POST /v1/load_lora_adapter, which needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` on the server)
from the path where the server sees the registry: the same path, or one rewritten by
`--server-path-map LOCAL=REMOTE`. Another app instance having loaded it first is not an error.

Token level as for llama-server (assistant.engines.server): the prompt goes as token ids to
/v1/completions, and `return_token_ids` makes every streamed chunk carry the ids of its tokens.
Closing the iterator closes the HTTP stream; vLLM aborts a request whose client has gone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from assistant.engines import EngineError, GenerationSettings
from assistant.engines.remote import api_headers, get_json
from assistant.engines.server import (
    TIMEOUT,
    Truncated,
    hidden_token_ids,
    post_retrying,
    resuming,
    server_message,
)
from assistant.fsutil import sha256_file_cached
from assistant.prompts import get_format

PARALLEL = 16  # answers the app lets through at once: vLLM batches them, and queues the rest itself
WEIGHTS = "adapter_model.safetensors"
_SHA = re.compile(r"[0-9a-f]{64}")


def connect(url: str | None, base, adapters=(), path_map: str | None = None, api_key: str | None = None):
    """A VllmEngine on the server at `url`, its LoRAs matched to `adapters`; EngineError saying what
    is wrong (no URL, unreachable, not a vLLM, another base)."""
    if not url:
        raise EngineError("--engine server needs --server-url (for example http://10.0.0.5:8000)")
    url = url.rstrip("/")
    headers = api_headers(api_key)
    cards = list_models(url, headers)
    bases = [card for card in cards if not card.get("parent")]
    if not bases:
        raise EngineError(f"the vLLM server at {url} lists no base model in /v1/models")
    base_card = bases[0]
    if served_base_matches(Path(str(base_card.get("root") or "")), base) is False:
        raise EngineError(f"the vLLM server at {url} serves {base_card.get('root')}, another model than this app's "
                          f"base {base.name}; adapters trained on one base are wrong on another")
    served = match_loras([card for card in cards if card.get("parent")], adapters)
    return VllmEngine(url, str(base_card["id"]), served, prompt_format=base.prompt_format, headers=headers,
                      path_map=parse_path_map(path_map), gguf_path=base.gguf_path)


def list_models(url: str, headers: dict | None = None) -> list[dict]:
    listing = get_json(url, "/v1/models", "vLLM server", headers)
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise EngineError(f"the inference server at {url} did not list its models as vLLM does")
    return [card for card in data if isinstance(card, dict) and isinstance(card.get("id"), str)]


def served_base_matches(root: Path, base) -> bool | None:
    """Whether the directory vLLM serves is `base`: True, False, or None when nothing here tells."""
    if not root.name:  # a card without a root: Path("") would be read as the app's own directory
        return None
    if base.hf_dir is not None and root.is_dir() and root.resolve() == Path(base.hf_dir).resolve():
        return True
    identity = root / "identity.json"  # written by assistant.gguf.to_hf beside a GGUF's HF copy
    if identity.is_file():
        try:
            return json.loads(identity.read_text()).get("gguf_sha256") == base.sha256
        except (OSError, ValueError):
            return None
    if (root / "config.json").is_file() and base.gguf_path is None:
        from assistant.base import GEMMA3_TEXT_TYPES, BaseError, hf_dir_base

        try:
            if json.loads((root / "config.json").read_text()).get("model_type") not in GEMMA3_TEXT_TYPES:
                return False  # readable, and not a Gemma 3 text model at all
            return hf_dir_base(root, base.cache_dir).sha256 == base.sha256
        except (OSError, ValueError, AttributeError, BaseError):  # half readable: it tells nothing sure
            return None
    if _SHA.fullmatch(root.name):  # the cache lays an HF copy out under the GGUF's sha256
        return root.name == base.sha256
    return None


def match_loras(cards: list[dict], adapters) -> dict[str, str]:
    """Registry key -> the name vLLM serves it under, for every listed LoRA that is one of `adapters`."""
    by_hash, by_name = {}, {}
    for adapter in adapters:
        weights = Path(adapter.path) / WEIGHTS
        if weights.is_file():
            by_hash.setdefault(sha256_file_cached(weights), adapter.key)
        by_name[adapter.key] = by_name[(adapter.name, f"v{adapter.version}")] = adapter.key
    served: dict[str, str] = {}
    for card in cards:
        root = Path(str(card.get("root") or ""))
        if (root / WEIGHTS).is_file():  # readable here: the bytes decide, whatever the name says
            key = by_hash.get(sha256_file_cached(root / WEIGHTS))
        else:
            key = by_name.get(card["id"]) or (by_name.get((root.parts[-2], root.parts[-1]))
                                              if len(root.parts) >= 2 else None)
        if key is not None:
            served.setdefault(key, card["id"])
    return served


def parse_path_map(spec: str | None) -> tuple[str, str] | None:
    """`LOCAL=REMOTE`: an adapter under LOCAL here is read by the server under REMOTE."""
    if not spec:
        return None
    local, sep, remote = spec.partition("=")
    if not sep or not local or not remote:
        raise EngineError(f"--server-path-map must be LOCAL=REMOTE (for example /var/lib/assistant=/mnt/assistant), "
                          f"not {spec!r}")
    return str(Path(local)), remote.rstrip("/")


class VllmEngine:
    name = "server"
    slots = PARALLEL

    def __init__(self, url: str, base_name: str, served: dict[str, str], prompt_format: str = "qa",
                 headers: dict | None = None, path_map: tuple[str, str] | None = None, gguf_path=None):
        self.url, self.base_name, self.served = url.rstrip("/"), base_name, dict(served)
        self.prompt_format = get_format(prompt_format)
        self.path_map, self.gguf_path = path_map, gguf_path
        self._client = httpx.Client(timeout=TIMEOUT, headers=headers or {})
        self._control: frozenset[int] | None = None

    def close(self) -> None:
        self._client.close()  # the server is not ours to stop

    def _post(self, path: str, body: dict) -> httpx.Response:
        return post_retrying(self._client, lambda: self.url + path, body, f"the vLLM server at {self.url}")

    def _json(self, path: str, body: dict) -> dict:
        response = self._post(path, body)
        if response.status_code != 200:
            raise EngineError(f"vLLM refused {path} ({response.status_code}): {server_message(response.text)}")
        return response.json()

    # the engine interface ---------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        # add_special_tokens: the BOS the in-process engine adds too
        return self._json("/tokenize", {"model": self.base_name, "prompt": text, "add_special_tokens": True})["tokens"]

    def detokenize(self, ids: list[int]) -> str:
        hidden = self._control_ids()  # the answer service expects control tokens left out, as in-process
        ids = [i for i in ids if i not in hidden]
        return self._json("/detokenize", {"model": self.base_name, "tokens": ids})["prompt"] if ids else ""

    def _control_ids(self) -> frozenset[int]:
        if self._control is None:
            self._control = hidden_token_ids(self.gguf_path, self.prompt_format)
        return self._control

    def load_adapter(self, adapter) -> None:
        self._model(adapter)

    def unload_adapter(self, key: str) -> None:
        pass  # another app instance may be using it on the same server: requests simply stop naming it

    def _model(self, adapter) -> str:
        if adapter is None:
            return self.base_name
        if adapter.key not in self.served:
            self._push(adapter)
        return self.served[adapter.key]

    def _push(self, adapter) -> None:
        """Load a published adapter into the running server under its registry key."""
        path = str(Path(adapter.path))
        if self.path_map and (path == self.path_map[0] or path.startswith(self.path_map[0] + os.sep)):
            path = self.path_map[1] + path[len(self.path_map[0]):].replace(os.sep, "/")
        response = self._post("/v1/load_lora_adapter", {"lora_name": adapter.key, "lora_path": path})
        if response.status_code == 200 or "already been loaded" in response.text:  # another instance was first
            self.served[adapter.key] = adapter.key
            return
        if response.status_code == 404 and "lora" not in response.text.lower():  # the route itself is missing
            hint = "; start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True to add adapters while it runs"
        elif response.status_code == 404:
            hint = f"; can the server read {path}? (--server-path-map says where it sees this app's adapters)"
        else:
            hint = ""
        raise EngineError(f"vLLM could not load adapter {adapter.key} ({response.status_code}: "
                          f"{server_message(response.text)}){hint}")

    def generate_ids(self, prompt_ids: list[int], adapter, settings: GenerationSettings) -> Iterator[int]:
        if not prompt_ids:
            raise EngineError("an empty prompt has nothing to continue")
        self._model(adapter)  # an adapter the server lacks and cannot load fails now
        return self._stream(list(prompt_ids), adapter, settings)

    def _stream(self, prompt: list[int], adapter, settings: GenerationSettings) -> Iterator[int]:
        return resuming(lambda given: self._request(prompt + given, adapter, settings, len(given)),
                        settings.max_tokens, f"the vLLM server at {self.url}")

    def _body(self, prompt: list[int], model: str, settings: GenerationSettings, given: int) -> dict:
        greedy = settings.temperature <= 0
        return {"model": model, "prompt": prompt, "stream": True, "return_token_ids": True,
                "max_tokens": settings.max_tokens - given, "temperature": 0.0 if greedy else settings.temperature,
                "top_k": settings.top_k if not greedy else -1, "top_p": settings.top_p if not greedy else 1.0,
                "min_p": 0.0, "seed": settings.seed, "stop_token_ids": list(self.prompt_format.stop_token_ids),
                "skip_special_tokens": False}

    def _request(self, prompt: list[int], adapter, settings: GenerationSettings, given: int,
                 reloaded: bool = False) -> Iterator[int]:
        with self._client.stream("POST", self.url + "/v1/completions",
                                 json=self._body(prompt, self._model(adapter), settings, given)) as response:
            if response.status_code == 404 and adapter is not None and not reloaded:
                # A restarted vLLM has forgotten the adapters loaded at run time: load it again, once.
                response.read()
                self.served.pop(adapter.key, None)
                yield from self._request(prompt, adapter, settings, given, reloaded=True)
                return
            if response.status_code != 200:
                text = response.read().decode(errors="replace")
                raise EngineError(f"vLLM refused the request ({response.status_code}): {server_message(text)}")
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    return
                try:
                    chunk = json.loads(line[6:])
                except ValueError as exc:
                    raise EngineError(f"vLLM sent a stream line that is not JSON: {line[:120]!r}") from exc
                if not isinstance(chunk, dict) or "error" in chunk or chunk.get("object") == "error":
                    raise EngineError(f"vLLM failed: {server_message(json.dumps(chunk))}")
                for choice in chunk.get("choices") or []:
                    ids = choice.get("token_ids")
                    if ids is None and choice.get("text"):
                        raise EngineError("this vLLM does not return token ids (`return_token_ids`); "
                                          "the app needs a newer vLLM")
                    yield from ids or []
        raise Truncated("the stream ended before [DONE]")
