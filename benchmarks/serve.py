"""Serving many users at once: aggregate decode rate and time to first token at 1, 4 and 8
concurrent users, all on one adapter and spread over three choices, for each engine (issue 16).

Engines, each on the embedded base (Gemma 3 270M Q4_K_M) and the shipped adapters:
- "one chat per slot": the llama.cpp engine as it was before batching (assistant.engines.llamacpp
  with batch=1 and ggml's repacked weights): one decode per slot, a slot per core; the baseline;
- "batched" (the default): the same engine as the app runs it: chats on one adapter decoded
  together, up to BATCH_ROWS a batch, a lane per core;
- "llama-server": llama.cpp's own server, built by `make llama-server` and started by the app's
  manager (assistant.engines.llama_server) with every shipped adapter, 8 parallel slots, reached
  through assistant.engines.server (the same token-level calls the answer service makes).
An engine that is not there (no llama-server binary) gets a row saying so.

Each user asks ROUNDS questions one after another (each user its own questions, greedy,
TOKENS new tokens at most); all users start together. Reported per engine and configuration:
aggregate decode rate (every token of every answer / wall time of the whole configuration), time
to first token p50 and p95 over every request, and the targets of issue 16: 8 users on one adapter
at >= 2.5x the single-user aggregate rate; spread over three >= 1.5x; TTFT p95 at 8 users <= 1.5 s;
single-user speed >= 0.95x the in-process engine's. "Spread over three" is xylandia, agriculture and
the bare base, users taking them in turn.

Usage: python benchmarks/serve.py [--quick] [--skip-server]. Prints tables and writes
benchmarks/results/serve.json. Exits 0 when a target is missed (the row says MISSED); non-zero only
when the benchmark itself fails. Timings mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs this as a file

from assistant.engines import GenerationSettings  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BUSY,
    cpu_snapshot,
    environment,
    others_cpu_share,
    print_table,
    row,
    write_json,
)

USERS = (1, 4, 8)
TOKENS = 48
QUESTIONS = [
    "How do farmers keep soil healthy?", "What is crop rotation?", "Why do leaves turn yellow?",
    "How often should tomatoes be watered?", "What is the capital of Xylandia?", "How is compost made?",
    "What pests attack maize?", "When should potatoes be planted?", "How deep should wheat be sown?",
    "What does mulch do?", "How can a farmer save water?", "What is a cover crop?",
    "Why test soil pH?", "How are seeds stored?", "What is integrated pest management?",
    "How do bees help crops?",
]


def others_share_now() -> float:
    """Other processes' CPU share over one second before an engine starts (a server is itself another
    process, so the share is not measured while it runs)."""
    before = cpu_snapshot()
    time.sleep(1.0)
    return others_cpu_share(before, cpu_snapshot())


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_users(engine, adapters: list, users: int, rounds: int) -> dict:
    """`users` threads at once, user i on adapters[i % len(adapters)], each asking `rounds` questions."""
    settings = GenerationSettings(max_tokens=TOKENS)
    ttfts: list[float] = []
    tokens = [0] * users
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(users + 1)

    def user(i: int) -> None:
        adapter = adapters[i % len(adapters)]
        start.wait()
        for r in range(rounds):
            question = QUESTIONS[(i * rounds + r) % len(QUESTIONS)]
            ids = engine.tokenize(engine.prompt_format.render([{"role": "user", "content": question}]))
            t0 = time.perf_counter()
            try:
                for n, _ in enumerate(engine.generate_ids(ids, adapter, settings)):
                    if n == 0:
                        with lock:
                            ttfts.append(time.perf_counter() - t0)
                    tokens[i] += 1
            except Exception as exc:  # a failed request is a finding, not the benchmark's end
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return {"users": users, "tokens": sum(tokens), "wall_s": wall, "aggregate_tps": sum(tokens) / wall,
            "ttft_p50_s": statistics.median(ttfts) if ttfts else None, "ttft_p95_s": percentile(ttfts, 0.95),
            "requests": len(ttfts), "errors": errors}


def measure(engine, choices: dict[str, list], rounds: int) -> dict:
    out = {}
    run_users(engine, choices["one adapter"], 1, 1)  # warm-up: first uses pay one-off setup
    for spread, adapters in choices.items():
        for users in USERS:
            out[f"{spread}, {users} users"] = run_users(engine, adapters, users, rounds)
    return out


def rows_for(name: str, results: dict, reference_single: float | None) -> list:
    rows = []
    for label, r in results.items():
        rows.append(row(f"{name}, {label}: aggregate decode", round(r["aggregate_tps"], 1), "tok/s"))
        rows.append(row("  TTFT p50 / p95", f"{r['ttft_p50_s']:.2f} / {r['ttft_p95_s']:.2f}"
                        if r["ttft_p95_s"] is not None else "none", "s"))
        if r["errors"]:
            rows.append(row("  failed requests", len(r["errors"]), "", "==", 0))
    single = results["one adapter, 1 users"]["aggregate_tps"]
    rows.append(row(f"{name}: 8 users on one adapter / 1 user",
                    round(results["one adapter, 8 users"]["aggregate_tps"] / single, 2), "x", ">=", 2.5))
    rows.append(row(f"{name}: 8 users over three / 1 user",
                    round(results["three choices, 8 users"]["aggregate_tps"] / single, 2), "x", ">=", 1.5))
    rows.append(row(f"{name}: TTFT p95 at 8 users on one adapter",
                    round(results["one adapter, 8 users"]["ttft_p95_s"] or 0, 2), "s", "<=", 1.5))
    if reference_single:
        rows.append(row(f"{name}: single user / in-process single user", round(single / reference_single, 2), "x",
                        ">=", 0.95))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one question per user instead of two")
    parser.add_argument("--skip-server", action="store_true", help="leave out llama-server")
    args = parser.parse_args(argv)
    from assistant.base import resolve_base
    from assistant.engines.llamacpp import BATCH_ROWS, LlamaCppEngine
    from assistant.paths import SHIPPED_ADAPTERS
    from assistant.registry import Registry

    rounds = 1 if args.quick else 2
    started = time.perf_counter()
    base = resolve_base()
    import tempfile

    sections, details = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as data_dir:
        registry = Registry(base.sha256, Path(data_dir), SHIPPED_ADAPTERS)
        xylandia, agriculture = registry.get("xylandia"), registry.get("agriculture")
        choices = {"one adapter": [xylandia], "three choices": [xylandia, agriculture, None]}
        reference = None
        for name, title, options in (
                ("in-process", "one chat per slot (before batching: a slot per core)", {"batch": 1, "repack": True}),
                ("batched", f"batched in-process decoding (the default: up to {BATCH_ROWS} chats a batch)", {})):
            busy = others_share_now()
            engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format, **options)
            details[name] = measure(engine, choices, rounds)
            engine.close()
            del engine
            details[name][BUSY] = busy
            reference = reference or details[name]["one adapter, 1 users"]["aggregate_tps"]
            rows = rows_for(name, {k: v for k, v in details[name].items() if k != BUSY},
                            None if name == "in-process" else reference)
            sections[title] = rows + [row(BUSY, round(busy, 2))]
        if not args.skip_server:
            sections["llama-server (8 parallel slots, every shipped adapter)"] = server_section(
                base, [xylandia, agriculture], choices, rounds, reference, details)
    for title, rows in sections.items():
        print_table(rows, title)
    missed = [r.measure for rows in sections.values() for r in rows if r.status in ("MISSED", "ERROR")]
    elapsed = time.perf_counter() - started
    path = write_json("serve", {"environment": environment(), "tokens": TOKENS, "rounds": rounds,
                                "seconds": round(elapsed, 1), "sections": sections, "details": details,
                                "missed": missed})
    print(f"\n{'MISSED: ' + '; '.join(missed) if missed else 'all targets met'}  ({elapsed:.0f} s, {path})")
    return 0


def server_section(base, adapters, choices, rounds: int, reference: float, details: dict) -> list:
    from assistant.engines.llama_server import LlamaServer, ServerError, default_binary
    from assistant.engines.server import ServerEngine

    if not default_binary().exists():
        return [row("llama-server", f"not built: run `make llama-server` ({default_binary()})")]
    busy = others_share_now()
    try:
        server = LlamaServer(base.gguf_path, adapters, parallel=8).start()
    except ServerError as exc:
        return [row("llama-server", f"error: {exc}")]
    try:
        engine = ServerEngine(server, prompt_format=base.prompt_format)
        details["llama-server"] = measure(engine, choices, rounds)
        engine.close()
    finally:
        server.stop()
    return rows_for("llama-server", details["llama-server"], reference) + [row(BUSY, round(busy, 2))]


if __name__ == "__main__":
    sys.exit(main())
