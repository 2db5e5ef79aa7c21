"""Grounding benchmark: what the knowledge index adds, how well `auto` routes, and how fast it looks up.

1. Held-out recall on datasets/counterfactual (18 deliberately false facts the base contradicts;
   36 held-out paraphrases, never trained on nor indexed), greedy, on the embedded base with the
   llama.cpp engine: the bare base, grounding alone (the counterfactual pairs indexed, the nearest
   ones above the threshold that name the same things put into the prompt as facts, as the chat
   does), LoRA alone (an adapter trained with the `fast` recipe, as benchmarks/train.py does) and
   both; then the same for an adapter trained with "Prepare for grounded chat" (fast plus pairs shown
   with their answer as a fact). Target for both, with that adapter: >= 90%. Also retention under
   grounding: the general probes (datasets/probes/general.jsonl) asked with grounding over the
   counterfactual pairs, where questions like "capital of Austria" pull in "capital of Australia".
2. Routing accuracy of `auto` on datasets/routing/routing.jsonl (question -> xylandia,
   agriculture or none) over the shipped adapters' Q&A (the adapter's stored dataset when shipped,
   else the file in datasets/). Target: >= 95%.
3. Retrieval latency per question (embedding + nearest-neighbour query over every collection)
   with 10,000 indexed pairs: the real sets plus generated farming questions. Target: p95 <= 30 ms.

Usage:
  python benchmarks/grounding.py [--skip-lora] [--threads N]
Prints tables and writes benchmarks/results/grounding.json. LoRA training (the LoRA-alone and both
rows) takes a few minutes of CPU; --skip-lora leaves those rows out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `make bench` runs this as a file

from assistant.answer import stream_text  # noqa: E402
from assistant.data import load_qa_file  # noqa: E402
from assistant.grounding.index import Knowledge, Pair  # noqa: E402
from assistant.grounding.plan import (  # noqa: E402
    GROUND_THRESHOLD,
    ROUTE_THRESHOLD,
    decide_route,
    ground_question,
    with_facts,
)
from assistant.paths import DATASETS, SHIPPED_ADAPTERS  # noqa: E402
from assistant.training.config import GROUNDED_PER_STEP  # noqa: E402
from assistant.training.evaluate import EVAL_SETTINGS, Probe, is_correct, load_probes  # noqa: E402
from benchmarks.common import environment, print_table, row, write_json  # noqa: E402

COUNTERFACTUAL = DATASETS / "counterfactual" / "counterfactual.jsonl"
ROUTING = DATASETS / "routing" / "routing.jsonl"
SHIPPED = ("xylandia", "agriculture")
TOTAL_PAIRS = 10_000


def shipped_pairs(name: str) -> list[Pair]:
    """The shipped adapter's stored dataset when it is there, else the set in datasets/."""
    stored = SHIPPED_ADAPTERS / name / "dataset.jsonl"
    path = stored if stored.is_file() else DATASETS / name / f"{name}.jsonl"
    return [Pair(r.question, r.answer, r.row) for r in load_qa_file(path).train]


def filler_pairs(n: int) -> list[Pair]:
    """n distinct farming questions, to bring the index to the size being measured."""
    crops = ["maize", "wheat", "rice", "sorghum", "millet", "cassava", "potato", "tomato", "onion", "cabbage",
             "beans", "cowpea", "groundnut", "soybean", "coffee", "tea", "cocoa", "banana", "mango", "avocado",
             "sugarcane", "cotton", "sunflower", "barley", "oats", "chickpea", "lentil", "pepper", "carrot", "yam"]
    aspects = ["seed rate", "planting depth", "row spacing", "fertiliser rate", "irrigation interval",
               "harvest time", "main pest", "main disease", "storage method", "ideal soil pH",
               "germination temperature", "days to maturity", "weeding schedule", "yield per hectare"]
    regions = ["Kenya", "Uganda", "Tanzania", "Ethiopia", "Nigeria", "Ghana", "Malawi", "Zambia", "India",
               "Bangladesh", "Vietnam", "Peru", "Bolivia", "Mexico", "Brazil", "Morocco", "Egypt", "Spain",
               "Turkey", "Nepal", "the Sahel", "the Andes", "Java", "Punjab", "Rwanda"]
    out = []
    for crop in crops:
        for aspect in aspects:
            for region in regions:
                out.append(Pair(f"What is the {aspect} for {crop} in {region}?",
                                f"The {aspect} for {crop} in {region} is listed in the regional guide.", len(out)))
                if len(out) == n:
                    return out
    raise ValueError(f"only {len(out)} filler questions can be generated")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- sections --------------------------------------------------------------------------------------

def build_index(knowledge: Knowledge) -> dict:
    counts = {}
    for name in SHIPPED:
        pairs = shipped_pairs(name)
        knowledge.index(name, 1, pairs)
        counts[name] = len(pairs)
    counterfactual = load_qa_file(COUNTERFACTUAL)
    knowledge.index("counterfactual", 1, [Pair(r.question, r.answer, r.row) for r in counterfactual.train])
    counts["counterfactual"] = len(counterfactual.train)
    filler = TOTAL_PAIRS - sum(counts.values())
    started = time.perf_counter()
    knowledge.index("filler", 1, filler_pairs(filler))
    counts["filler"] = filler
    counts["index_seconds_filler"] = round(time.perf_counter() - started, 1)
    return counts


def routing_section(knowledge: Knowledge) -> tuple[list, dict]:
    labelled = [json.loads(line) for line in ROUTING.read_text().splitlines() if line.strip()]
    scope = [(name, 1) for name in SHIPPED]
    results = []
    for item in labelled:
        found = knowledge.search(item["question"], scope, k=1)
        route = decide_route(found[0] if found else None)
        results.append({"question": item["question"], "expected": item["expected"], "got": route.adapter,
                        "similarity": found[0].similarity if found else None, "reason": route.reason})
    accuracy = sum(r["expected"] == r["got"] for r in results) / len(results)
    rows = [row("routing accuracy (labelled questions)", accuracy, "", ">=", 0.95),
            row("routing questions", len(results)), row("route threshold", ROUTE_THRESHOLD)]
    return rows, {"results": results, "misses": [r for r in results if r["expected"] != r["got"]]}


def latency_section(knowledge: Knowledge, questions: list[str], rounds: int = 2) -> tuple[list, dict]:
    knowledge.search("warm-up question", None, k=3)
    total, embed = [], []
    for _ in range(rounds):
        for question in questions:
            t0 = time.perf_counter()
            vector = knowledge.embedder.encode([question])
            t1 = time.perf_counter()
            knowledge.search_vector(vector, None, k=3)  # every collection, as routing plus grounding would
            total.append((time.perf_counter() - t0) * 1e3)
            embed.append((t1 - t0) * 1e3)
    p95 = percentile(total, 0.95)
    rows = [row("retrieval p50 (embed + query, 10k pairs)", percentile(total, 0.5), "ms"),
            row("retrieval p95 (embed + query, 10k pairs)", p95, "ms", "<=", 30),
            row("  of which embedding, p50", statistics.median(embed), "ms"),
            row("indexed pairs", sum(knowledge.indexed().values()))]
    return rows, {"total_ms": total, "embed_ms": embed}


def recall_section(knowledge: Knowledge, engine, base, skip_lora: bool) -> tuple[list, dict]:
    report = load_qa_file(COUNTERFACTUAL)
    heldout = [Probe(r.question, r.answer, r.keywords) for r in report.test]
    probes = load_probes()

    counterfactual = SimpleNamespace(name="counterfactual", version=1)

    def answer(question: str, adapter, ground: bool, scope=counterfactual):
        messages = [{"role": "user", "content": question}]
        found = ground_question(knowledge, question, scope)[0] if ground else []  # as the chat grounds
        if found:
            messages = with_facts(messages, found)
        return "".join(stream_text(engine, messages, adapter, EVAL_SETTINGS)).strip(), len(found)

    def score(items, adapter, ground, **scope) -> tuple[float, list]:
        details = []
        for probe in items:
            text, used = answer(probe.question, adapter, ground, **scope)
            details.append({"question": probe.question, "answer": text, "sources": used,
                            "correct": is_correct(text, probe)})
        return sum(d["correct"] for d in details) / len(details), details

    details, rows = {}, []
    runs = [("base alone", None, False), ("grounding alone", None, True)]
    if not skip_lora:
        for recipe, grounded in (("fast", 0), ("fast, prepared for grounding", GROUNDED_PER_STEP)):
            adapter = train_counterfactual(base, engine, grounded)
            runs += [(f"LoRA alone ({recipe})", adapter, False), (f"LoRA + grounding ({recipe})", adapter, True)]
    for label, target, ground in runs:
        share, details[label] = score(heldout, target, ground)
        limit = 0.9 if label == "LoRA + grounding (fast, prepared for grounding)" else None
        rows.append(row(f"held-out recall, {label}", share, "", ">=" if limit else None, limit))
    # The shipped agriculture adapter on its own held-out paraphrases, without and with grounding in
    # its Q&A (the index holds the shipped adapter's pairs as version 1).
    from assistant.registry import Registry

    shipped = Registry(base.sha256, Path(tempfile.mkdtemp(prefix="bench-grounding-")), SHIPPED_ADAPTERS)
    agriculture = next((a for a in shipped.list() if a.name == "agriculture" and a.usable), None)
    if agriculture is not None:
        farm = [Probe(r.question, r.answer, r.keywords) for r in load_qa_file(SHIPPED_ADAPTERS / "agriculture" / "dataset.jsonl").test]
        for label, ground in (("agriculture adapter alone", False), ("agriculture adapter + grounding", True)):
            share, details[label] = score(farm, agriculture, ground, scope=SimpleNamespace(name="agriculture", version=1))
            rows.append(row(f"held-out recall, {label}", share))
    base_probe, details["probes, base"] = score(probes, None, False)
    grounded_probe, details["probes, grounded"] = score(probes, None, True)
    known = [i for i, d in enumerate(details["probes, base"]) if d["correct"]]
    kept = sum(details["probes, grounded"][i]["correct"] for i in known) / len(known) if known else None
    rows += [row("retention under grounding (general probes)", kept),
             row("  probes that pulled in a counterfactual pair",
                 sum(d["sources"] > 0 for d in details["probes, grounded"])),
             row("ground threshold", GROUND_THRESHOLD)]
    if skip_lora:
        rows.append(row("LoRA rows", "skipped (--skip-lora)"))
    return rows, details


def train_counterfactual(base, engine, grounded_per_step: int):
    """The counterfactual adapter with the fast recipe (plus `grounded_per_step` pairs a step shown
    with their answer as a fact: the Train tab's "Prepare for grounded chat"), published into a
    temporary data directory."""
    from assistant.registry import Registry
    from assistant.training.config import preset
    from assistant.training.recipe import train

    data_dir = Path(tempfile.mkdtemp(prefix="bench-grounding-"))
    registry = Registry(base.sha256, data_dir)
    print(f"training the counterfactual adapter (fast recipe, grounded_per_step={grounded_per_step})…", flush=True)
    # Distinct names: the engine keeps loaded adapters by name and version.
    name = "counterfactual-grounded" if grounded_per_step else "counterfactual"
    result = train(preset("fast", grounded_per_step=grounded_per_step), base, registry, load_qa_file(COUNTERFACTUAL),
                   name, evaluator=engine, data_bytes=COUNTERFACTUAL.read_bytes())
    card = result.report_card.get("after", {})
    print(f"  {result.steps} steps, {result.train_seconds:.0f} s; its own retention {card.get('retention', 0):.0%}",
          flush=True)
    return result.adapter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-lora", action="store_true", help="do not train the counterfactual LoRA adapter")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: every core)")
    args = parser.parse_args(argv)

    from assistant.base import resolve_base
    from assistant.engines.llamacpp import LlamaCppEngine

    base = resolve_base()
    if not args.skip_lora:
        base.ensure_hf_dir()
    out: dict = {"environment": environment()}
    with Knowledge.temporary() as knowledge:
        print(f"indexing {TOTAL_PAIRS} pairs…", flush=True)
        out["index"] = build_index(knowledge)
        route_rows, out["routing"] = routing_section(knowledge)
        print_table(route_rows, "Automatic adapter (routing)")
        questions = [json.loads(line)["question"] for line in ROUTING.read_text().splitlines() if line.strip()]
        questions += [r.question for r in load_qa_file(COUNTERFACTUAL).test]
        latency_rows, out["latency"] = latency_section(knowledge, questions)
        print_table(latency_rows, "Retrieval latency")
        engine = LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format, n_threads=args.threads)
        recall_rows, out["recall"] = recall_section(knowledge, engine, base, args.skip_lora)
        print_table(recall_rows, "Counterfactual held-out recall")
    out["rows"] = route_rows + latency_rows + recall_rows
    print(f"\nwrote {write_json('grounding', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
