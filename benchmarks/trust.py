"""Trust benchmark: can a farmer act on what the `agriculture` adapter says?

Every question goes through the answer service exactly as the app asks it (the real embedded base,
the shipped `agriculture` adapter, grounding on, greedy, 96 new tokens at most), and the same
question also goes to today's plain answer (`stream_text`: the adapter alone, no grounding, no
checking) in the same run, for the baseline and the latency comparison. The question sets are in
datasets/trust/ (written by hand for this benchmark; see its README) plus the adapter's own 52
held-out paraphrases.

What it reports, each row with its target (issue 14):
1. In scope: paraphrases of facts the adapter's Q&A holds (datasets/trust/in_scope.jsonl, and the
   held-out rows of adapters/agriculture/dataset.jsonl). Answered-and-correct: not withheld and
   containing the expected keywords (assistant.training.evaluate.is_correct, as the report card
   scores). Target >= 90%.
2. Contradictions: answers marked checked whose text misses a key fact of the source pair it shows
   (`sources[0]`): that pair's keywords in the adapter's dataset, every number of its answer, and at
   least one of its answer's capitalised names (those its question does not already name); or that
   name (capitalised, not opening a sentence) what the pair does not ("In Vietnam, Arabica coffee is
   grown" shown with the Colombia pair), state a number neither the pair nor the question states, or
   name a subject of the Q&A (a crop, a
   pest) that neither the pair nor the question names ("Wheat is
   planted about 10 cm deep" shown with the seed-potato pair). Over every answer. Target 0.
3. Out of scope: farming questions the Q&A does not cover (datasets/trust/out_of_scope.jsonl) asked
   under the adapter's *checked only* policy, and near misses (datasets/trust/near_miss.jsonl: the
   subject of a pair, another ask: "when should i plant maize" beside the row-spacing pair); an
   answer that is neither checked nor withheld states an unchecked fact. Target 0. Answers marked
   checked there took a pair for a question it does not answer, shown as verified. Target 0.
4. Loops: an answer in which some 4-word sequence occurs 3 or more times, or that ended at the token
   limit with some 4-word sequence occurring twice. Target 0 (the plain answer's count is context).
5. Follow-ups (datasets/trust/followups.jsonl): the first turn, the service's answer to it, then the
   follow-up; resolved-correct when the expected pair's keywords are in a non-withheld answer that
   names no crop or number the pair and the follow-up do not (the seed-potato pair's "10 cm deep" said
   of wheat is not resolved); asked back when the answer is withheld, asks a question or offers
   suggestions where the set expects it.
6. Latency: seconds per answer, service vs plain, median and p90 over the same questions (the order
   alternates per question, to cancel drift); target: service median <= 1.20 x plain median, over
   every answer and over the answers the service decoded (a withheld answer decodes nothing, so it
   is faster than the plain one: over every answer the ratio flatters the checking path).
7. Retrieval on the in-scope sets: recall@1 of the service's sources (`sources[0].question` is the
   paraphrased pair) and of the index's own nearest neighbour, with the distribution of the nearest
   similarity (min, p10, median).

The answer fields this reads (`checked`, `withheld`, `suggestions`, `policy`, `sources`,
`finish_reason`, `completion_tokens`) are read with defaults, so the benchmark also runs on a service
that lacks some of them; it says which were missing and what it assumed.

Usage:
  python benchmarks/trust.py [--limit N] [--skip-heldout] [--threads N] [--rescore results/trust.json]
--limit N asks N questions of each set, spread over it (development); --rescore scores the answers of
a saved run again without asking anything (after a change to the verdicts). Prints tables and writes
benchmarks/results/trust.json (every answer, with its verdicts). Exits 0 when a target is missed
(the row says MISSED); non-zero only when the benchmark itself fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `make bench` runs this as a file

from assistant.answer import stream_text  # noqa: E402
from assistant.engines import GenerationSettings  # noqa: E402
from benchmarks.common import (  # noqa: E402
    cpu_snapshot,
    environment,
    others_cpu_share,
    print_table,
    write_json,
)
from benchmarks.trust_judge import (  # noqa: E402
    spread,
)
from benchmarks.trust_report import score  # noqa: E402
from benchmarks.trust_sets import ADAPTER, TRUST, heldout_set, read_jsonl  # noqa: E402

SETTINGS = GenerationSettings(max_tokens=96)
FIELDS = {"checked": False, "withheld": False, "suggestions": [], "policy": None, "sources": [],
          "finish_reason": None, "completion_tokens": None}
INDEX_WAIT_S = 300.0


# --- question sets -----------------------------------------------------------------------------

# --- what an answer is ---------------------------------------------------------------------------

def source_dict(match) -> dict:
    return {k: getattr(match, k, None) for k in ("adapter", "version", "question", "answer", "similarity")}


def ask_service(assistant, messages: list[dict], missing: set) -> dict:
    started = time.perf_counter()
    answer = assistant.answer(messages, ADAPTER, SETTINGS, ground=True)
    text = answer.read()
    seconds = time.perf_counter() - started
    got = {}
    for name, default in FIELDS.items():
        if not hasattr(answer, name):
            missing.add(name)
        got[name] = getattr(answer, name, default)
    got["sources"] = [source_dict(m) for m in (got["sources"] or [])]
    got["suggestions"] = [str(s) for s in (got["suggestions"] or [])]
    return {"text": text, "seconds": seconds, "label": getattr(answer, "label", ""), **got,
            "checked": bool(got["checked"]), "withheld": bool(got["withheld"])}


def ask_plain(assistant, adapter, messages: list[dict]) -> dict:
    started = time.perf_counter()
    text = "".join(stream_text(assistant.engine, messages, adapter, SETTINGS)).strip()
    seconds = time.perf_counter() - started
    tokens = len(assistant.engine.tokenize(text)) if text else 0
    return {"text": text, "seconds": seconds, "tokens": tokens, "hit_limit": tokens >= SETTINGS.max_tokens - 1}


def ask_both(assistant, adapter, messages: list[dict], turn: int, missing: set) -> tuple[dict, dict]:
    """The service's answer and the plain one; which goes first alternates with `turn`."""
    if turn % 2:
        plain = ask_plain(assistant, adapter, messages)
        return ask_service(assistant, messages, missing), plain
    service = ask_service(assistant, messages, missing)
    return service, ask_plain(assistant, adapter, messages)


# --- sections ------------------------------------------------------------------------------------


def run(args) -> dict:
    from assistant.service import Assistant

    in_scope = read_jsonl(TRUST / "in_scope.jsonl")
    # Near misses are out of scope too: the same crop or pest as a pair, another ask (when, how far apart).
    out_of_scope = read_jsonl(TRUST / "out_of_scope.jsonl") + read_jsonl(TRUST / "near_miss.jsonl")
    followups = read_jsonl(TRUST / "followups.jsonl")
    heldout = [] if args.skip_heldout else heldout_set()
    if args.limit:
        in_scope, out_of_scope, followups, heldout = (spread(s, args.limit)
                                                      for s in (in_scope, out_of_scope, followups, heldout))
    out: dict = {"environment": environment(), "settings": SETTINGS.__dict__, "notes": []}
    missing: set = set()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    options = {"n_threads": args.threads} if args.threads else {}
    assistant = Assistant.open(data_dir=data_dir, **options)
    try:
        assistant.open_knowledge(owner=True)
        deadline = time.monotonic() + INDEX_WAIT_S
        while not any(k.startswith(f"{ADAPTER}@") for k in (assistant.indexed() or {})):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ADAPTER} was not indexed after {INDEX_WAIT_S:.0f} s "
                                   f"({assistant.knowledge_problem or assistant.indexed()})")
            time.sleep(1.0)
            assistant.sync_knowledge()
        adapter = assistant.registry.get(ADAPTER)
        policy = getattr(adapter, "answer_policy", None)
        if policy != "checked" and hasattr(assistant.registry, "set_answer_policy"):
            # the measure is of the checked-only policy; the temporary data directory holds the change
            adapter = assistant.registry.set_answer_policy(ADAPTER, "checked")
            out["notes"].append(f"{ADAPTER}'s answer policy was {policy!r}; set to 'checked' for this run")
        elif policy is None:
            out["notes"].append("the registry has no answer policy: the out-of-scope row measures the default")
        out["adapter"] = {"name": adapter.name, "version": adapter.version, "indexed": assistant.indexed()}
        warm = [{"role": "user", "content": "What is crop rotation?"}]
        ask_both(assistant, adapter, warm, 0, missing)  # loads the adapter and the embedder; not timed
        ask_both(assistant, adapter, warm, 1, missing)

        def nearest_pair(question: str):
            try:
                found = assistant.knowledge.search(question, [(adapter.name, adapter.version)], k=1)
            except Exception as exc:  # the index's API may change under it; the row then says so
                note = f"index search failed: {type(exc).__name__}: {exc}"
                if note not in out["notes"]:
                    out["notes"].append(note)
                return None
            return {"question": found[0].question, "similarity": float(found[0].similarity)} if found else None

        turn = 0
        before = cpu_snapshot()
        started = time.perf_counter()
        sets: dict = {}
        for label, items in (("trust set", in_scope), ("held-out", heldout)):
            results = []
            for item in items:
                service, plain = ask_both(assistant, adapter, [{"role": "user", "content": item["question"]}], turn,
                                          missing)
                turn += 1
                results.append({**item, "service": service, "plain": plain, "nearest": nearest_pair(item["question"])})
                progress(label, len(results), len(items), started)
            sets[label] = results
        oos_results = []
        for item in out_of_scope:
            service, plain = ask_both(assistant, adapter, [{"role": "user", "content": item["question"]}], turn, missing)
            turn += 1
            oos_results.append({**item, "service": service, "plain": plain})
            progress("out of scope", len(oos_results), len(out_of_scope), started)
        fu_results = []
        for item in followups:
            first = assistant.answer([{"role": "user", "content": item["first"]}], ADAPTER, SETTINGS, ground=True).read()
            messages = [{"role": "user", "content": item["first"]}, {"role": "assistant", "content": first},
                        {"role": "user", "content": item["followup"]}]
            service, plain = ask_both(assistant, adapter, messages, turn, missing)
            turn += 1
            fu_results.append({**item, "first_answer": first, "service": service, "plain": plain})
            progress("follow-ups", len(fu_results), len(followups), started)
        after = cpu_snapshot()
    finally:
        assistant.close()
        shutil.rmtree(data_dir, ignore_errors=True)

    if missing:
        out["notes"].append("the Answer lacks " + ", ".join(f"`{m}` (read as {FIELDS[m]!r})" for m in sorted(missing)))
    out.update(missing_fields=sorted(missing), sets=sets, out_of_scope=oos_results, followups=fu_results,
               load={"others_cpu_share": others_cpu_share(before, after), "wall_s": after[0] - before[0]},
               limit=args.limit)
    return out


def progress(label: str, done: int, total: int, started: float) -> None:
    if done == total or done % 10 == 0:
        print(f"  {label}: {done}/{total} ({time.perf_counter() - started:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="ask N questions of each set, spread over it")
    parser.add_argument("--skip-heldout", action="store_true", help="leave out the adapter's held-out paraphrases")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: every core)")
    parser.add_argument("--rescore", metavar="JSON", help="score the answers of a saved run again, asking nothing")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = score(json.loads(Path(args.rescore).read_text()) if args.rescore else run(args))
    for title, rows in out["sections"].items():
        print_table(rows, title)
    for note in out["notes"]:
        print(f"\nnote: {note}")
    if out["missing_fields"]:
        print("note: until the service sets them, answers count as not checked and not withheld")
    missed = [r.measure for rows in out["sections"].values() for r in rows if r.status in ("MISSED", "ERROR")]
    out["missed"] = missed
    if not args.rescore:
        out["seconds"] = round(time.perf_counter() - started, 1)
    path = write_json("trust", out)
    print(f"\n{'MISSED: ' + '; '.join(missed) if missed else 'all targets met'}  ({out.get('seconds', 0):.0f} s, {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
