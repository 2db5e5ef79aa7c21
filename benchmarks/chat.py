"""Chat serving benchmark: our llama.cpp engine against raw llama-cpp-python, adapter switching,
peak memory while serving two adapters, and the transformers engine for comparison.

What it measures, all on the embedded Gemma 3 270M Q4_K_M GGUF:
1. Engine overhead. Raw `llama_cpp.Llama.generate` and `LlamaCppEngine.generate_ids` decode the same
   prompt greedily with the same sampler settings, for a fixed number of tokens (EOS is not a stop
   at this level, so both produce exactly N). Runs alternate raw/ours (order flipped each rep) to
   cancel drift; both contexts are reset first, so each evaluates the whole prompt. Reported: time
   to first token (TTFT) and decode tok/s (tokens after the first / time after the first), medians,
   and ours/raw ratios; also TTFT of the first streamed text piece through `engine.generate`.
2. Adapter switch cost. Two random LoRA adapters (r=16, q_proj/v_proj, small weights) are published
   into a temporary data dir. A 1-token request after a switch (A->B, B->none, none->A) is compared
   with the same request repeated on the same adapter after `llm.reset()`, so both evaluate the full
   prompt and the only difference is the switch. Proof the base loaded once: `base_loads` and the
   llama_model pointer before and after all switches.
3. Serving memory. A fresh process per configuration loads the base and both adapters, answers
   requests alternating the adapters, and reports its peak RSS (ru_maxrss), TTFT and decode tok/s:
   the llama.cpp engine, then the transformers engine in fp32, bf16 and 4-bit (NF4, bitsandbytes).

4. Sharing the CPU (benchmarks/cpu_sharing.py): decode tok/s beside 0, 1 and 2 busy-loop processes,
   libgomp's default wait policy against the product's, each run's share of its idle speed.

Usage: python benchmarks/chat.py [--quick] [--skip-hf]. Prints tables and writes
benchmarks/results/chat.json. Exits 0 when a target is missed (the row says MISSED), non-zero only
when the benchmark itself fails. Timings mean something only on an otherwise idle machine: each
section reports the CPU share other processes took meanwhile, and a warning says when it was high.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `make bench` runs this as a file

from assistant.answer import stream_text  # noqa: E402
from assistant.base import resolve_base  # noqa: E402
from assistant.engines import GenerationSettings, create_engine, llama_private  # noqa: E402
from assistant.engines.llamacpp import LlamaCppEngine  # noqa: E402
from assistant.registry import Registry  # noqa: E402
from benchmarks import cpu_sharing  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BUSY,
    cpu_snapshot,
    environment,
    median,
    others_cpu_share,
    peak_rss_mb,
    print_table,
    row,
    run_child,
    timed,
    with_load,
    write_json,
)

ADAPTER_NAMES = ("bench-a", "bench-b")
DECODE_QUESTION = "Tell me a long story about a lighthouse keeper and the storm that changed his life."
TEXT_QUESTION = "Who wrote Romeo and Juliet?"  # the base answers it on the same line, so text streams
SERVE_QUESTIONS = ("What is the capital of France?", "How many legs does a spider have?",
                   "Who wrote Romeo and Juliet?", "What is photosynthesis?")
HF_PRECISIONS = ("fp32", "bf16", "4bit")


@dataclass(frozen=True)
class Plan:
    tokens: int  # forced new tokens per llama.cpp decode run
    reps: int  # measured runs per side, after one warm-up
    switch_cycles: int  # A->B->none->A cycles
    hf_tokens: int  # the transformers engine decodes 6-15 tok/s on 2 idle cores: keep it short
    hf_4bit_tokens: int  # bitsandbytes NF4 on CPU loads slowest and has no edge in speed
    hf_reps: int


FULL = Plan(tokens=128, reps=5, switch_cycles=10, hf_tokens=16, hf_4bit_tokens=8, hf_reps=2)
QUICK = Plan(tokens=48, reps=3, switch_cycles=4, hf_tokens=8, hf_4bit_tokens=4, hf_reps=1)


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def ratio(a, b):
    return a / b if a is not None and b else None


# 1. raw llama-cpp-python vs our engine ----------------------------------------------------------
def engine_vs_raw(engine, raw, plan: Plan, details: dict) -> list:
    settings = GenerationSettings(max_tokens=plan.tokens)
    sampler = dict(top_k=settings.top_k, top_p=settings.top_p, min_p=0.0, temp=settings.temperature,
                   repeat_penalty=1.0)  # exactly what the engine passes, so only the wrapper differs

    def raw_ids(prompt):
        return lambda: raw.generate(raw.tokenize(prompt.encode("utf-8"), add_bos=True, special=True), **sampler)

    decode_prompt = engine.prompt_format.render(ask(DECODE_QUESTION))
    text_prompt = engine.prompt_format.render(ask(TEXT_QUESTION))
    starts = {
        "raw": (raw, raw_ids(decode_prompt), plan.tokens),
        "ours": (engine.llm, lambda: engine.generate_ids(engine.tokenize(decode_prompt), None, settings), plan.tokens),
        "raw_text": (raw, raw_ids(text_prompt), 1),
        "ours_text": (engine.llm, lambda: stream_text(engine, ask(TEXT_QUESTION), None, settings), 1),
    }
    runs: dict[str, list] = {name: [] for name in starts}
    for rep in range(plan.reps + 1):  # rep 0 warms up: the first decode pays ~1 s of one-off setup
        names = list(starts) if rep % 2 == 0 else list(reversed(starts))
        for name in names:
            llm, start, limit = starts[name]
            llm.reset()  # no prompt-prefix reuse: every run evaluates its whole prompt
            result = timed(start, limit)
            if rep:
                runs[name].append(result)
    med = {name: {k: median(getattr(r, k) for r in rs) for k in ("ttft_ms", "decode_tps")} for name, rs in runs.items()}
    # compare as many tokens as both runs got: a run cut short by the deadline has fewer
    same = all(r.items[: len(o.items)] == o.items[: len(r.items)] for r, o in zip(runs["raw"], runs["ours"], strict=True))
    details["engine_vs_raw"] = {name: [(r.ttft_ms, r.decode_tps) for r in rs] for name, rs in runs.items()}
    return [
        row("raw llama-cpp-python decode", med["raw"]["decode_tps"], "tok/s"),
        row("our engine decode (generate_ids)", med["ours"]["decode_tps"], "tok/s"),
        row("decode tok/s ratio ours/raw", ratio(med["ours"]["decode_tps"], med["raw"]["decode_tps"]), "", ">=", 0.9),
        row("raw TTFT", med["raw"]["ttft_ms"], "ms"),
        row("our engine TTFT (generate_ids)", med["ours"]["ttft_ms"], "ms"),
        row("TTFT ratio ours/raw", ratio(med["ours"]["ttft_ms"], med["raw"]["ttft_ms"]), "", "<=", 1.2),
        row("raw TTFT, short question", med["raw_text"]["ttft_ms"], "ms"),
        row("our first streamed text (generate)", med["ours_text"]["ttft_ms"], "ms"),
        row("text TTFT ratio ours/raw", ratio(med["ours_text"]["ttft_ms"], med["raw_text"]["ttft_ms"]), "", "<=", 1.2),
        row("greedy tokens identical raw/ours", same, "", "==", True),
    ]


# 2. adapter switching on one loaded base --------------------------------------------------------
def adapter_switch(engine, adapters, plan: Plan, details: dict) -> list:
    a, b = adapters
    model_before, loads_before = engine.llm.model, engine.base_loads
    init_ms = []
    for adapter in adapters:
        t0 = time.perf_counter()
        engine.load_adapter(adapter)
        init_ms.append((time.perf_counter() - t0) * 1e3)
    prompt = engine.prompt_format.render(ask(TEXT_QUESTION))
    one = GenerationSettings(max_tokens=1)

    def ttft(adapter) -> float:
        return timed(lambda: engine.generate_ids(engine.tokenize(prompt), adapter, one), 1).ttft_ms

    for adapter in (a, b, None, a):  # warm-up: each adapter's first use, ending on A
        ttft(adapter)
    switches_before = engine.switches
    extra: dict[str, list[float]] = {"A->B": [], "B->none": [], "none->A": []}
    for _ in range(plan.switch_cycles):
        for label, target in (("A->B", b), ("B->none", None), ("none->A", a)):
            switched = ttft(target)
            engine.llm.reset()  # same adapter, whole prompt again: the switch is the only difference
            extra[label].append(switched - ttft(target))
    answers = ["".join(stream_text(engine, ask(DECODE_QUESTION), ad, GenerationSettings(max_tokens=24)))
               for ad in (a, b, None)]
    details["adapter_switch"] = {"extra_ms": extra, "init_ms": init_ms, "answers_a_b_none": answers}
    rows = [row("adapter init (load_adapter), median", median(init_ms), "ms")]
    rows += [row(f"extra TTFT after switch {label}", median(v), "ms") for label, v in extra.items()]
    return rows + [
        row("extra TTFT after a switch, all", median(sum(extra.values(), [])), "ms", "<=", 10),
        # a request takes a free context that already has its adapter (engines.llamacpp.SPARE_CONTEXTS):
        # with three contexts the cycle changes no context's adapter, which is what a switch used to cost
        row("context adapter changes during the cycles", engine.switches - switches_before, ""),
        row("base loads", engine.base_loads - loads_before + 1, "", "==", 1),
        row("llama_model pointer unchanged", engine.llm.model == model_before, "", "==", True),
        row("adapters change the greedy answer", len(set(answers)) == 3, ""),
    ]


# 3. serving two adapters, one fresh process per configuration -----------------------------------
def serve_task(spec: dict) -> dict:
    """Child: load base + both adapters, answer requests alternating them; timings and peak RSS."""
    base = resolve_base()
    registry = Registry(base.sha256, Path(spec["data_dir"]))
    adapters = [registry.get(name) for name in ADAPTER_NAMES]
    t0 = time.perf_counter()
    engine = create_engine(spec["engine"], base, **spec.get("options", {}))
    for adapter in adapters:
        engine.load_adapter(adapter)
    load_s = time.perf_counter() - t0
    prompt = engine.prompt_format.render(ask(DECODE_QUESTION))
    for adapter in adapters:  # warm-up: first uses pay one-off setup; ends on B so run 1 is a switch
        timed(lambda ad=adapter: engine.generate_ids(engine.tokenize(prompt), ad, GenerationSettings(max_tokens=2)), 2)
    settings, snap = GenerationSettings(max_tokens=spec["tokens"]), cpu_snapshot()
    runs = [timed(lambda ad=adapters[i % 2]: engine.generate_ids(engine.tokenize(prompt), ad, settings), spec["tokens"])
            for i in range(spec["reps"])]  # alternating adapters: every request is a switch
    short = GenerationSettings(max_tokens=32)
    answers = ["".join(timed(lambda q=q, ad=adapters[i % 2]: stream_text(engine, ask(q), ad, short), 32).items)
               for i, q in enumerate(SERVE_QUESTIONS[: spec.get("questions", 0)])]
    return {"load_s": load_s, "ttft_ms": median(r.ttft_ms for r in runs),
            "decode_tps": median(r.decode_tps for r in runs), "peak_rss_mb": peak_rss_mb(),
            "others_cpu": others_cpu_share(snap, cpu_snapshot()),
            "precision": getattr(engine, "precision", "gguf"), "answers": answers}


def make_adapters_task(spec: dict) -> dict:
    """Child (it imports torch): publish two random LoRA adapters for the real base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from assistant.registry import publish_peft_model

    base = resolve_base()
    model = AutoModelForCausalLM.from_pretrained(base.ensure_hf_dir(progress=False), dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    registry = Registry(base.sha256, Path(spec["data_dir"]))
    for seed, name in enumerate(ADAPTER_NAMES):
        torch.manual_seed(seed)
        with torch.no_grad():  # random A and B (not peft's zero B), small so answers stay sensible
            for pname, param in peft_model.named_parameters():
                if "lora_" in pname:
                    param.normal_(0.0, 0.01)
        manifest = {"base_sha256": base.sha256, "prompt_format": "qa", "description": "random benchmark adapter",
                    "training": {"kind": "random", "seed": seed}}
        publish_peft_model(registry, peft_model, name, manifest)
    return {"adapters": list(ADAPTER_NAMES)}


def child(spec: dict, timeout: float) -> dict:
    return run_child(Path(__file__).resolve(), ["--child", json.dumps(spec)], timeout)


def serving(data_dir: str, plan: Plan, skip_hf: bool, details: dict) -> list:
    configs = [("llama.cpp", {"engine": "llamacpp", "tokens": plan.tokens, "reps": plan.reps,
                              "questions": len(SERVE_QUESTIONS)}, 240)]
    if not skip_hf:
        for quant in HF_PRECISIONS:
            tokens = plan.hf_4bit_tokens if quant == "4bit" else plan.hf_tokens
            configs.append((f"transformers {quant}", {"engine": "hf", "options": {"quant": quant},
                                                      "tokens": tokens, "reps": plan.hf_reps}, 300))
    rows, llama_tps = [], None
    for label, spec, timeout in configs:
        t0 = time.perf_counter()
        result = child({"task": "serve", "data_dir": data_dir, **spec}, timeout)
        details[f"serve {label}"] = {**result, "wall_s": time.perf_counter() - t0}
        if "error" in result:
            if spec["engine"] == "llamacpp":  # our main path must work; a failing HF config is a finding
                raise RuntimeError(f"llama.cpp serving run failed: {result['error']}")
            rows.append(row(f"{label}: run", f"error: {result['error']}"))
            continue
        if spec["engine"] == "llamacpp":
            llama_tps = result["decode_tps"]
            rows.append(row(f"{label}: peak RSS, 2 adapters", result["peak_rss_mb"], "MB", "<=", 1500))
        else:
            rows.append(row(f"{label}: peak RSS, 2 adapters", result["peak_rss_mb"], "MB"))
        rows += [row(f"{label}: decode ({spec['tokens']} tok, adapters)", result["decode_tps"], "tok/s"),
                 row(f"{label}: TTFT", result["ttft_ms"], "ms"),
                 row(f"{label}: load base + 2 adapters", result["load_s"], "s"),
                 row(f"{label}: {BUSY}", result["others_cpu"])]
        if spec["engine"] == "hf":
            rows.append(row(f"{label}: decode vs llama.cpp engine", ratio(result["decode_tps"], llama_tps), "x"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and repetitions")
    parser.add_argument("--skip-hf", action="store_true", help="skip the transformers engine runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measurement in a fresh process
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        task = {"serve": serve_task, "adapters": make_adapters_task}[spec["task"]]
        print(json.dumps(task(spec)))
        return 0

    # a SIGTERM unwinds like an error, so the temporary adapters and any child process are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from llama_cpp import Llama  # after assistant.engines.llamacpp (above), which sets OpenMP's wait policy

    plan, started, env = (QUICK if args.quick else FULL), time.perf_counter(), environment()
    before = cpu_snapshot()
    time.sleep(1.0)
    if (busy := others_cpu_share(before, cpu_snapshot())) > 0.1:  # llama.cpp spins: it suffers most
        print(f"warning: other processes are using {busy:.0%} of the CPUs; expect slow, unreliable timings")
    base = resolve_base()
    details: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as data_dir:
        made = child({"task": "adapters", "data_dir": data_dir}, timeout=300)
        if "error" in made:
            raise RuntimeError(f"could not create the benchmark adapters: {made['error']}")
        registry = Registry(base.sha256, Path(data_dir))
        adapters = [registry.get(name) for name in ADAPTER_NAMES]
        engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format)
        threads = engine.llm.n_threads  # the raw baseline gets the engine's context settings
        with llama_private.load_model_without_repack():  # the weights laid out as the engine has them
            raw = Llama(model_path=str(base.gguf_path), n_ctx=engine.llm.n_ctx(), n_threads=threads,
                        n_threads_batch=threads, verbose=False)
        sections = {
            f"llama.cpp engine vs raw llama-cpp-python ({plan.tokens} tokens, {threads} threads, median of {plan.reps})":
            with_load(engine_vs_raw, engine, raw, plan, details),
            f"adapter switching (median of {plan.switch_cycles} per transition)":
            with_load(adapter_switch, engine, adapters, plan, details)}
        del engine, raw
        sections["serving two adapters, fresh process each"] = serving(data_dir, plan, args.skip_hf, details)
    sharing = {k: v for k, v in cpu_sharing.CONFIGS.items() if k in ("libgomp default (before)", "product default")}
    sections[f"decoding beside CPU-bound co-tenants ({plan.tokens} tokens, {plan.reps} runs each, fresh process each)"] = \
        cpu_sharing.measure(sharing, plan.reps, plan.tokens, details.setdefault("cpu_sharing", {}))
    for title, rows in sections.items():
        print_table(rows, title)
    missed = [r.measure for rows in sections.values() for r in rows if r.status in ("MISSED", "ERROR")]
    busy = max((r.value or 0) for rows in sections.values() for r in rows if r.measure.endswith(BUSY))
    elapsed = time.perf_counter() - started
    path = write_json("chat", {"environment": {**env, "llama_threads": threads}, "plan": plan.__dict__,
                               "seconds": round(elapsed, 1),
                               "sections": sections, "missed": missed, "details": details})
    if busy > 0.1:  # two spinning llama.cpp threads on 2 cores lose most of their speed to any other load
        print(f"\nwarning: other processes used up to {busy:.0%} of the CPUs during the runs; timings are unreliable")
    print(f"\n{'MISSED: ' + '; '.join(missed) if missed else 'all targets met'}  ({elapsed:.0f} s, {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
