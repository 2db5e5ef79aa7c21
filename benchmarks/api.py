"""API overhead benchmark: an answer through `POST /v1/chat/completions` (HTTP, server-sent events)
against the same answer from the answer service called in-process, same run, same questions, same
adapter, same greedy settings.

What it measures, on the real embedded Gemma 3 270M Q4_K_M (`Assistant.open()`'s default; a few
seconds a run, so no need for the tiny model), answering with the bare base in both modes (`--adapter
NAME` for another: an adapter whose answers are checked against its Q&A is decoded in full and
shown at once, or withheld, so its "first token" is not one; the base streams as it decodes):
- TTFT: call (or request sent) to the first piece of answer text (in the stream: the first chunk
  with content, not the role chunk that comes before decoding);
- decode tok/s: completion tokens after the first / time after the first piece;
- whether both answers are the same text (the API adds transport, never a different answer).

Why the TTFT target is measured inside each API request, not between separate runs: the engine's
own time to a first token varies from run to run far more than the API adds (measured here: 64 to
123 ms for the same 14-token prompt, in-process, on an idle machine; the API adds ~3 ms), so a
ratio of two medians of 15 runs swung between 0.88 and 0.96 from one run of this benchmark to the
next. The API server here calls the service through `_Timed`, which notes when `answer()` was
called and when its first piece came out, exactly what the in-process mode measures; the client's
TTFT of the same request less that is the API's overhead (HTTP, parsing, the hand-over to the
answer thread and back to the event loop, the SSE write, the client's read), free of the engine's
noise. The inner time is a fair stand-in for the in-process one: over 90 alternating pairs the
service's own TTFT inside an API request and in-process were the same (medians 78.4 and 80.5 ms;
the role chunk the API sends meanwhile does not slow the prompt's evaluation). Decode is compared
between separate runs (the API's per-token work competes with decoding for the cores, so an inner
measurement would hide it), as the median of each adjacent pair's ratio (same question, run one
after the other), which cancels the machine's drift.

The API runs in this process, over the same `Assistant`, served by uvicorn in a thread through
`api.app.Dispatch` exactly as `serve()` mounts it (in front of a placeholder instead of Gradio:
Gradio's own routes are never on the /v1 path). Runs alternate in-process/API, the order flipped
each repetition, to cancel drift (targets, issue 13: TTFT ratio in-process / API >= 0.95, decode
ratio API / in-process >= 0.95). The ratio of plain medians of separate runs is printed too, as
context.

Usage: python benchmarks/api.py [--quick] [--base SPEC]. Prints a table and writes
benchmarks/results/api.json; exits 0 when a target is missed (the row says MISSED).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs this as a file

from api import notes  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BUSY,
    cpu_snapshot,
    environment,
    median,
    others_cpu_share,
    print_table,
    row,
    write_json,
)

QUESTIONS = ["At what depth should maize be sown?", "How often should tomatoes be watered?",
             "Why do farmers rotate their crops?"]


def in_process(assistant, question: str, adapter, settings) -> dict:
    t0 = time.perf_counter()
    answer = assistant.answer([{"role": "user", "content": question}], adapter, settings)
    first, text = None, ""
    for piece in answer:
        first = first or time.perf_counter()
        text += piece  # as streamed (the service may shorten answer.text at the end: a loop cut)
    end = time.perf_counter()
    text += notes.tail(answer)  # what the API adds after it: the trust note of an unchecked answer
    return _result(t0, first, end, answer.completion_tokens, text)


def through_api(http, url: str, question: str, adapter, settings) -> dict:
    body = {"model": adapter or "base", "messages": [{"role": "user", "content": question}],
            "max_tokens": settings.max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, text, tokens = None, "", 0
    with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            for choice in event.get("choices", []):
                piece = choice["delta"].get("content")
                if piece:
                    first = first or time.perf_counter()
                    text += piece
    end = time.perf_counter()
    return _result(t0, first, end, tokens, text)


class _Timed:
    """The service as the API server sees it, with every answer's own TTFT noted: from the call of
    `answer()` to its first piece, the span the in-process mode measures. `inner_ttft_ms` holds the
    last request's (the benchmark asks one question at a time)."""

    def __init__(self, assistant):
        self._assistant, self.inner_ttft_ms = assistant, None

    def __getattr__(self, name):  # base, engine, registry, adapters(): the service's own
        return getattr(self._assistant, name)

    def answer(self, messages, adapter, settings=None, ground=False, stop=(), user=None):
        called, self.inner_ttft_ms = time.perf_counter(), None
        return _TimedAnswer(self._assistant.answer(messages, adapter, settings, ground, stop, user), called, self)


class _TimedAnswer:
    def __init__(self, answer, called: float, timed: _Timed):
        self._answer, self._called, self._timed = answer, called, timed

    def __getattr__(self, name):  # text, label, usage, close(), cancel(), ...
        return getattr(self._answer, name)

    def __iter__(self):
        for piece in self._answer:
            if self._timed.inner_ttft_ms is None:
                self._timed.inner_ttft_ms = (time.perf_counter() - self._called) * 1e3
            yield piece


def _result(t0, first, end, tokens: int, text: str) -> dict:
    ttft = (first - t0) * 1e3 if first else None
    tps = (tokens - 1) / (end - first) if first and tokens > 1 and end > first else None
    return {"ttft_ms": ttft, "decode_tps": tps, "tokens": tokens, "text": text}


class _Server:
    """The API over `assistant`, mounted as serve() mounts it, on a free loopback port."""

    def __init__(self, assistant):
        import uvicorn

        from api.app import Dispatch, create_api
        from assistant.auth import Access
        from ui.clients import Clients

        async def placeholder(scope, receive, send):  # where Gradio sits in the app
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        self.timed = _Timed(assistant)
        app = Dispatch(placeholder, api=create_api(self.timed, Access(None), Clients()))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def main(argv: list[str] | None = None) -> int:
    import httpx

    from assistant.engines import GenerationSettings
    from assistant.service import Assistant

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions instead of 8")
    parser.add_argument("--base", default=None, help="base spec (default: the embedded Gemma 3 270M)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--adapter", default=None, help="adapter both modes answer with (default: the base)")
    args = parser.parse_args(argv)
    reps, env = (2 if args.quick else 8), environment()
    settings = GenerationSettings(max_tokens=args.max_tokens)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as data_dir:
        assistant = Assistant.open(args.base, data_dir=Path(data_dir))
        adapter = args.adapter
        runs = {"in_process": [], "api": []}
        same = 0  # runs whose two answers are the same text
        pairs = []  # (in-process, API) of the same question, one right after the other
        try:
            with _Server(assistant) as server, httpx.Client(timeout=300) as http:
                url = server.url
                for question in QUESTIONS:  # warm-up: adapter loaded, prompt paths and the HTTP client hot
                    in_process(assistant, question, adapter, settings)
                    through_api(http, url, question, adapter, settings)
                before = cpu_snapshot()
                for rep in range(reps):
                    for question in QUESTIONS:
                        order = ("in_process", "api") if rep % 2 == 0 else ("api", "in_process")
                        got = {}
                        for mode in order:
                            if mode == "in_process":
                                got[mode] = in_process(assistant, question, adapter, settings)
                            else:
                                got[mode] = through_api(http, url, question, adapter, settings)
                                got[mode]["inner_ttft_ms"] = server.timed.inner_ttft_ms
                            runs[mode].append(got[mode])
                        same += got["api"]["text"] == got["in_process"]["text"]
                        pairs.append((got["in_process"], got["api"]))
                after = cpu_snapshot()
        finally:
            assistant.close()
    med = {mode: {k: median(r[k] for r in results) for k in ("ttft_ms", "decode_tps")}
           for mode, results in runs.items()}

    def ratio(a, b):
        return a / b if a and b else None

    # TTFT: the API's overhead within each request (its client's TTFT less the service's own inside).
    overhead = median(r["ttft_ms"] - r["inner_ttft_ms"] for r in runs["api"]
                      if r["ttft_ms"] is not None and r["inner_ttft_ms"] is not None)
    inner = median(r["inner_ttft_ms"] for r in runs["api"] if r["inner_ttft_ms"] is not None)
    same_request = median(r["inner_ttft_ms"] / r["ttft_ms"] for r in runs["api"] if r["ttft_ms"] and r["inner_ttft_ms"])
    paired_decode = median(api["decode_tps"] / local["decode_tps"] for local, api in pairs
                           if api["decode_tps"] and local["decode_tps"])

    rows = [row("model", f"{assistant.base.name} + {adapter or 'no adapter'}"),
            row("in-process TTFT", med["in_process"]["ttft_ms"], "ms"),
            row("API TTFT (SSE, first content chunk)", med["api"]["ttft_ms"], "ms"),
            row("  of it, the service's own (inside the same request)", inner, "ms"),
            row("  of it, the API's overhead (per request)", overhead, "ms"),
            row("TTFT ratio in-process/API (same request)", same_request, "", ">=", 0.95),
            row("in-process decode", med["in_process"]["decode_tps"], "tok/s"),
            row("API decode", med["api"]["decode_tps"], "tok/s"),
            row("decode ratio API/in-process (adjacent pairs)", paired_decode, "", ">=", 0.95),
            # Context, not targets: the engine's own run-to-run spread dominates these (see the docstring).
            row("TTFT ratio of separate runs' medians", ratio(med["in_process"]["ttft_ms"], med["api"]["ttft_ms"])),
            row("decode ratio of separate runs' medians",
                ratio(med["api"]["decode_tps"], med["in_process"]["decode_tps"])),
            row("same answer text in-process and through the API", f"{same} of {len(runs['api'])} runs"),
            row("runs per mode", len(runs["api"])),
            row(BUSY, others_cpu_share(before, after))]
    print_table(rows, "API overhead: POST /v1/chat/completions (stream) vs Assistant.answer in-process")
    path = write_json("api", {"environment": env, "max_tokens": args.max_tokens, "rows": rows,
                              "runs": {m: [{k: v for k, v in r.items() if k != "text"} for r in rs]
                                       for m, rs in runs.items()}})
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
