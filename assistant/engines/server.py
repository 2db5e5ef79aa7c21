"""An engine that sends generation to a llama-server over HTTP, through the same token-level calls.

The prompt travels as token ids (`/completion` takes a list of ids for `prompt`) and the answer
comes back as a stream of token ids (each streamed chunk carries the one token it was made from),
so the answer service renders, stops and labels exactly as with the in-process engine. The adapter
is chosen per request by its lora id (`"lora": [{"id": N, "scale": 1.0}]`); a request that names no
adapter sends every adapter at scale 0, which is the bare base.

Closing the token iterator closes the HTTP stream, and llama-server cancels a task whose client has
gone, so a slot is never held by a reader that left. If the server dies mid-answer and comes back
(assistant.engines.llama_server restarts it), the request is sent again as prompt + the tokens
already given, for what remains: the reader sees one uninterrupted answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing

import httpx

from assistant.engines import EngineError, GenerationSettings
from assistant.prompts import EOS_ID, get_format

BOS_ID = EOS_ID + 1  # <bos> in the Gemma 3 vocabulary

RESUMES = 3  # times one request is sent again after the server died under it
# After a connection fails, give the manager's watchdog time to see the death (it looks every
# 0.25 s); wait_ready() then waits out the restart instead of failing at once.
RETRY_PAUSE_S = 0.6
# Reads wait for the next token, which on a loaded 2-core machine behind a long prompt can take long.
TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=30.0)
# The in-process engine's chain (engines.llama_private.new_sampler): top-k, top-p, temperature, draw.
SAMPLERS = ["top_k", "top_p", "temperature"]


class FixedServer:
    """A server someone else runs: its URL and the lora ids its adapters were started with."""

    def __init__(self, url: str, lora_ids: dict[str, int] | None = None, parallel: int = 4):
        self.url, self.lora_ids, self.parallel = url.rstrip("/"), dict(lora_ids or {}), int(parallel)

    def wait_ready(self, timeout: float | None = None) -> str:
        return self.url


class ServerEngine:
    name = "server"

    def __init__(self, server, prompt_format: str = "qa", cache_prompt: bool = False, owns_server: bool = False,
                 headers: dict | None = None):
        """`server`: a LlamaServer (app-owned, restarted if it dies) or a FixedServer.
        `owns_server`: close() stops it too (the app started it). `headers`: sent with every request
        (an API key for a server started with one)."""
        self.server, self.owns_server = server, owns_server
        self.prompt_format = get_format(prompt_format)
        # cache_prompt would let a slot reuse the KV of a prompt prefix it already holds, saving
        # its evaluation; but the rest is then evaluated in another batch, with other rounding, and
        # a greedy answer drifts: on the real base "Why do farmers rotate crops?" asked again
        # after other questions got other tokens than asked first (and than the in-process engine,
        # which evaluates every prompt afresh for this reason, engines.llama_slot). Off by default
        # so the same question gets the same answer; True trades that for time to first token.
        self.cache_prompt = cache_prompt
        self._client = httpx.Client(timeout=TIMEOUT, headers=headers or {})
        self._control: frozenset[int] | None = None  # read from the GGUF's vocabulary when first needed

    @property
    def slots(self) -> int:
        """Answers the server decodes at once (the app's queue lets this many through)."""
        return int(getattr(self.server, "parallel", 4))

    def close(self) -> None:
        self._client.close()
        if self.owns_server:
            self.server.stop()

    # plumbing -------------------------------------------------------------------------------------
    def _url(self) -> str:
        return self.server.wait_ready()

    def _post(self, path: str, body: dict) -> dict:
        response = post_retrying(self._client, lambda: self._url() + path, body, f"llama-server at {self.server.url}")
        if response.status_code != 200:
            raise EngineError(f"llama-server refused {path} ({response.status_code}): {server_message(response.text)}")
        return response.json()

    # the engine interface ---------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        # add_special: the BOS the in-process engine adds too; parse_special: "<start_of_turn>" is one token
        return self._post("/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]

    def detokenize(self, ids: list[int]) -> str:
        # llama-server writes control tokens out ("<eos>"); the in-process engine leaves them out,
        # and the answer service expects that, so they are dropped here first.
        hidden = self._control_ids()
        ids = [i for i in ids if i not in hidden]
        return self._post("/detokenize", {"tokens": ids})["content"] if ids else ""

    def _control_ids(self) -> frozenset[int]:
        if self._control is None:
            self._control = hidden_token_ids(getattr(self.server, "gguf_path", None), self.prompt_format)
        return self._control

    def load_adapter(self, adapter) -> None:
        self._lora(adapter)  # only checks: llama-server loads its adapters when it starts

    def unload_adapter(self, key: str) -> None:
        pass  # nothing to free: requests simply stop naming it; the next restart leaves it out

    def _lora(self, adapter) -> list[dict]:
        if adapter is None:
            # Every adapter at scale 0, said explicitly: at this llama.cpp version a request with no
            # "lora" gets the adapters' start-up scales (1.0 each, all at once), even with
            # --lora-init-without-apply; a non-empty list sets every adapter it leaves out to 0.
            return [{"id": lora_id, "scale": 0.0} for lora_id in sorted(self.server.lora_ids.values())]
        lora_id = self.server.lora_ids.get(adapter.key)
        if lora_id is None and hasattr(self.server, "add_adapters"):  # ours: published since it started
            self.server.add_adapters([adapter])
            lora_id = self.server.lora_ids.get(adapter.key)
        if lora_id is None:
            raise EngineError(f"llama-server was started without adapter {adapter.key}; it loads adapters only "
                              "when it starts, so restart it to serve this one")
        return [{"id": lora_id, "scale": 1.0}]

    def generate_ids(self, prompt_ids: list[int], adapter, settings: GenerationSettings) -> Iterator[int]:
        if not prompt_ids:
            raise EngineError("an empty prompt has nothing to continue")
        lora = self._lora(adapter)  # an unknown adapter fails now, not at the first token
        return self._stream(list(prompt_ids), lora, settings)

    def _stream(self, prompt: list[int], lora: list[dict], settings: GenerationSettings) -> Iterator[int]:
        # closing() in resuming(): a reader that closes this generator closes the HTTP stream at
        # once, and llama-server then cancels the task and frees its slot.
        return resuming(lambda given: self._request(self._body(prompt + given, lora, settings,
                                                               settings.max_tokens - len(given))),
                        settings.max_tokens, "llama-server")

    def _body(self, prompt: list[int], lora: list[dict], settings: GenerationSettings, n_predict: int) -> dict:
        greedy = settings.temperature <= 0
        return {"prompt": prompt, "stream": True, "return_tokens": True, "n_predict": n_predict,
                "temperature": 0.0 if greedy else settings.temperature, "top_k": settings.top_k,
                "top_p": settings.top_p, "min_p": 0.0, "seed": settings.seed, "samplers": SAMPLERS,
                "cache_prompt": self.cache_prompt, "lora": lora}

    def _request(self, body: dict) -> Iterator[int]:
        url = self._url()
        with self._client.stream("POST", url + "/completion", json=body) as response:
            if response.status_code != 200:
                raise EngineError(f"llama-server refused the request ({response.status_code}): "
                                  f"{server_message(response.read().decode(errors='replace'))}")
            seen = 0
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue  # blank separators, pings
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise EngineError(f"llama-server failed: {server_message(json.dumps(chunk))}")
                tokens = chunk.get("tokens") or []
                predicted = chunk.get("tokens_predicted", seen + len(tokens))
                if predicted > seen + len(tokens):
                    # llama-server holds back a token that ends inside a UTF-8 character and sends
                    # only the one that completes it; its id is lost, so the answer would be wrong.
                    missing = self._recover(chunk, predicted - seen - len(tokens))
                    tokens = missing + tokens
                for token in tokens:
                    seen += 1
                    yield token
                if chunk.get("stop"):
                    return
        raise Truncated("the stream ended before its last chunk")

    def _recover(self, chunk: dict, count: int) -> list[int]:
        """The ids of `count` held-back byte tokens before the chunk's token, if its text gives them."""
        text = chunk.get("content", "")
        ids = self._post("/tokenize", {"content": text, "add_special": False, "parse_special": False})["tokens"]
        if len(ids) == count + 1 and ids[-1:] == chunk.get("tokens", [])[-1:]:
            return ids[:-1]
        raise EngineError(f"llama-server's stream lost {count} token(s) inside a character ({text!r})")


def post_retrying(client: httpx.Client, url: Callable[[], str], body: dict, who: str) -> httpx.Response:
    """POST `body` to `url()` (asked again each try: a restarted server may move), tried again on a
    connection failure while a restart may be under way; EngineError once `who` stays unreachable."""
    for attempt in range(RESUMES + 1):
        try:
            return client.post(url(), json=body)
        except httpx.TransportError as exc:
            if attempt == RESUMES:
                raise EngineError(f"{who} is unreachable: {exc}") from exc
            time.sleep(RETRY_PAUSE_S)
    raise AssertionError("the loop returns or raises")


def hidden_token_ids(gguf_path, prompt_format) -> frozenset[int]:
    """The ids detokenize leaves out, as the in-process engine does: the GGUF's control tokens when
    its file is readable here, else the prompt format's stops and BOS (the control tokens an
    answer can hold) for a server whose GGUF is not ours to read."""
    return control_token_ids(gguf_path) if gguf_path else frozenset({*prompt_format.stop_token_ids, BOS_ID})


def control_token_ids(gguf_path) -> frozenset[int]:
    """The ids a GGUF's vocabulary marks as control tokens (<bos>, <eos>, <end_of_turn>, ...)."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True  # the vocabulary only: no weights read
    with suppress_stdout_stderr(disable=False):
        model = llama_cpp.llama_model_load_from_file(str(gguf_path).encode(), params)
    if not model:
        raise EngineError(f"cannot read the vocabulary of {gguf_path}")
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        return frozenset(i for i in range(llama_cpp.llama_vocab_n_tokens(vocab))
                         if llama_cpp.llama_vocab_get_attr(vocab, i) & control)
    finally:
        llama_cpp.llama_model_free(model)


class Truncated(Exception):
    """The stream ended without its final chunk: the server went away mid-answer."""


def resuming(open_stream: Callable[[list[int]], Iterator[int]], max_tokens: int, who: str) -> Iterator[int]:
    """The tokens of `open_stream(given)`, sent again for what remains (prompt + the tokens already
    given) when the server dies under it and comes back, so the reader sees one unbroken answer."""
    given: list[int] = []
    for attempt in range(RESUMES + 1):
        try:
            with closing(open_stream(given)) as tokens:
                for token in tokens:
                    given.append(token)
                    yield token
            return
        except (httpx.TransportError, Truncated) as exc:
            if attempt == RESUMES:
                raise EngineError(f"{who} stopped answering: {exc}") from exc
            if len(given) >= max_tokens:
                return
            time.sleep(RETRY_PAUSE_S)


def server_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    error = data.get("error", data) if isinstance(data, dict) else data
    return str(error.get("message", error) if isinstance(error, dict) else error)[:300]
