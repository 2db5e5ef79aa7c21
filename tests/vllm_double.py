"""A stand-in for vLLM's OpenAI-compatible server, for the vLLM dialect's tests on machines without a GPU.

vLLM needs a GPU; scripts/vllm_gpu_check.sh runs the same tests against the real one. This speaks
the part of vLLM's HTTP API the app uses, in vLLM's shapes (vllm/entrypoints/openai: the model
cards of /v1/models with `parent` and `root`, /tokenize, /detokenize, streamed /v1/completions with
`return_token_ids`, /v1/load_lora_adapter and its errors), and answers with the app's own
in-process llama.cpp engine, so an answer is the real model's. Where real vLLM reads a LoRA
directory's PEFT safetensors, this reads the `adapter.gguf` the registry keeps beside them.

    python tests/vllm_double.py --gguf BASE.gguf --root SERVED_DIR --port N [--lora NAME=DIR ...]
                                [--served-model-name NAME] [--no-runtime-lora]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

EOS_ID = 1


def build_app(engine, base_name: str, root: str, loras: dict[str, str], runtime_lora: bool):
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    from assistant.engines import GenerationSettings

    def error(message: str, kind: str, code: int, param: str | None = None):
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, code)

    def adapter_of(model):
        """None for the base, an engine adapter for a LoRA, or False when the model is not served."""
        if not model or model == base_name:
            return None
        if model in loras:
            return SimpleNamespace(key=model, gguf_path=Path(loras[model]) / "adapter.gguf")
        return False

    def missing(model):
        return error(f"The model `{model}` does not exist.", "NotFoundError", 404, "model")

    async def health(request):
        return PlainTextResponse("")

    async def models(request):
        cards = [{"id": base_name, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                  "root": root, "parent": None, "max_model_len": 2048, "permission": []}]
        cards += [{"id": name, "object": "model", "created": int(time.time()), "owned_by": "vllm", "root": path,
                   "parent": base_name, "permission": []} for name, path in loras.items()]
        return JSONResponse({"object": "list", "data": cards})

    async def tokenize(request):
        body = await request.json()
        if adapter_of(body.get("model")) is False:
            return missing(body.get("model"))
        ids = engine.tokenize(body["prompt"])
        if not body.get("add_special_tokens", True) and ids[:1] == [EOS_ID + 1]:
            ids = ids[1:]
        return JSONResponse({"count": len(ids), "max_model_len": 2048, "tokens": ids, "token_strs": None})

    async def detokenize(request):
        body = await request.json()
        if adapter_of(body.get("model")) is False:
            return missing(body.get("model"))
        return JSONResponse({"prompt": engine.detokenize(body["tokens"])})

    async def completions(request):
        body = await request.json()
        adapter = adapter_of(body.get("model"))
        if adapter is False:
            return missing(body.get("model"))
        prompt = body.get("prompt")
        if not (isinstance(prompt, list) and prompt and all(isinstance(i, int) and i >= 0 for i in prompt)):
            return error("this stand-in takes a prompt of token ids only", "BadRequestError", 400, "prompt")
        if not body.get("stream"):
            return error("this stand-in streams only", "BadRequestError", 400, "stream")
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 1.0)
        top_k = int(body.get("top_k") or 0)
        settings = GenerationSettings(max_tokens=int(body.get("max_tokens") or 16), temperature=temperature,
                                      top_p=float(body.get("top_p") or 1.0), top_k=top_k if top_k > 0 else 64,
                                      seed=int(body.get("seed") or 0))
        stops = {EOS_ID, *(body.get("stop_token_ids") or [])}
        want_ids = bool(body.get("return_token_ids"))
        request_id, model = f"cmpl-{uuid.uuid4().hex}", body.get("model") or base_name

        def chunk(text, ids, finish):
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                      "token_ids": ids if want_ids else None}
            return "data: " + json.dumps({"id": request_id, "object": "text_completion", "created": int(time.time()),
                                          "model": model, "choices": [choice]}) + "\n\n"

        async def events():
            tokens = engine.generate_ids(prompt, adapter, settings)
            given, shown = [], ""
            try:
                while True:
                    token = await anyio.to_thread.run_sync(next, tokens, None)
                    if token is None:
                        yield chunk("", [], "length")
                        break
                    given.append(token)
                    if token in stops:  # vLLM keeps the stop token's id and leaves its text out
                        yield chunk("", [token], "stop")
                        break
                    text = engine.detokenize(given)
                    yield chunk(text[len(shown):], [token], None)
                    shown = text
                yield "data: [DONE]\n\n"
            finally:  # the client left: free the engine's slot now, as vLLM aborts the request
                await anyio.to_thread.run_sync(tokens.close)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def load_lora_adapter(request):
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return error("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)
        if name in loras:
            return error(f"The lora adapter '{name}' has already been loaded. If you want to load the adapter "
                         "in place, set 'load_inplace' to True.", "InvalidUserInput", 400)
        if not (Path(path) / "adapter_config.json").is_file():
            return error(f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError", 404)
        engine.load_adapter(SimpleNamespace(key=name, gguf_path=Path(path) / "adapter.gguf"))
        loras[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    routes = [Route("/health", health), Route("/v1/models", models), Route("/tokenize", tokenize, methods=["POST"]),
              Route("/detokenize", detokenize, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"])]
    if runtime_lora:  # vLLM adds this route only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
        routes.append(Route("/v1/load_lora_adapter", load_lora_adapter, methods=["POST"]))
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--root", required=True, help="the directory the base card says is served")
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--lora", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-runtime-lora", action="store_true")
    args = parser.parse_args()
    import uvicorn

    from assistant.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(Path(args.gguf), n_threads=1)
    loras = dict(spec.split("=", 1) for spec in args.lora)
    app = build_app(engine, args.served_model_name or args.root, args.root, loras, not args.no_runtime_lora)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
