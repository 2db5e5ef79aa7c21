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
   under the adapter's *checked only* policy; an answer that is neither checked nor withheld states
   an unchecked fact. Target 0. Out-of-scope answers marked checked are listed too (a pair matched a
   question it does not answer).
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
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `make bench` runs this as a file

from assistant.answer import stream_text  # noqa: E402
from assistant.engines import GenerationSettings  # noqa: E402
from assistant.paths import DATASETS, SHIPPED_ADAPTERS  # noqa: E402
from assistant.training.evaluate import Probe, is_correct, normalise  # noqa: E402
from benchmarks.common import (  # noqa: E402
    cpu_snapshot,
    environment,
    others_cpu_share,
    print_table,
    row,
    write_json,
)

ADAPTER = "agriculture"
TRUST = DATASETS / "trust"
SETTINGS = GenerationSettings(max_tokens=96)
FIELDS = {"checked": False, "withheld": False, "suggestions": [], "policy": None, "sources": [],
          "finish_reason": None, "completion_tokens": None}
INDEX_WAIT_S = 300.0
LATENCY_RATIO = 1.20


# --- question sets -----------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dataset_rows() -> list[dict]:
    return read_jsonl(SHIPPED_ADAPTERS / ADAPTER / "dataset.jsonl")


def heldout_set() -> list[dict]:
    """The adapter's held-out paraphrases (split "test", never trained on nor indexed)."""
    return [{"question": r["question"], "pair_question": r["paraphrase_of"], "keywords": r["keywords"]}
            for r in dataset_rows() if r.get("split") == "test" and r.get("paraphrase_of")]


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


# --- verdicts ------------------------------------------------------------------------------------

def correct(text: str, keywords: list[str]) -> bool:
    return bool(keywords) and is_correct(text, Probe("", "", list(keywords)))


def max_4gram(text: str) -> int:
    words = re.findall(r"\w+", text.lower())
    grams = Counter(tuple(words[i:i + 4]) for i in range(len(words) - 3))
    return max(grams.values(), default=0)


def is_loop(text: str, hit_limit: bool) -> bool:
    top = max_4gram(text)
    return top >= 3 or (hit_limit and top >= 2)


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_NAME = re.compile(r"[A-Z][\w'’-]{2,}")


def numbers(text: str) -> set[str]:
    return set(_NUMBER.findall(normalise(text)))


def names(answer: str, question: str) -> list[str]:
    """Capitalised words of a pair's answer that do not begin a sentence and that its question does
    not already name ("In Kenya, ... Napier grass" -> Napier)."""
    asked = set(normalise(question).split())
    found = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", answer):
        for i, match in enumerate(_NAME.finditer(sentence)):
            if match.start() == 0 or (i == 0 and not sentence[:match.start()].strip()):
                continue
            word = normalise(re.sub(r"['’]s$", "", match.group(0)))
            if word and not (set(word.split()) <= asked) and word not in found:
                found.append(word)
    return found


def _stem(word: str) -> str:
    for suffix in ("oes", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)]
    return word


# The crops and pests the Q&A is about: an answer that names one its pair does not has swapped subject.
SUBJECTS = frozenset(_stem(w) for w in """maize corn wheat rice potato tomato bean cassava sorghum coffee tea cocoa
groundnut peanut onion banana sugarcane soybean millet teff enset yam taro cotton apple barley cowpea squash canola
olive pepper melon aphid locust armyworm whitefly weevil nematode bollworm""".split())


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in normalise(text).split()}


def contradiction(text: str, source: dict, question: str, keywords_of: dict[str, list[str]],
                  subject_words: frozenset[str] = SUBJECTS, complete: bool = True) -> str:
    """Why a checked answer does not say what its source pair says ("" when it does). complete=False
    asks only that it states nothing the pair does not (no other number, no other subject)."""
    got = f" {normalise(text)} "
    pair_q, pair_a = source.get("question") or "", source.get("answer") or ""
    if complete:
        missing = [k for k in keywords_of.get(pair_q, []) if not correct(text, [k])]
        missing += [n for n in sorted(numbers(pair_a)) if not correct(text, [n])]
        if missing:
            return f"misses {', '.join(missing)}"
        pair_names = names(pair_a, pair_q)
        if pair_names and not any(f" {n} " in got for n in pair_names):
            return f"names none of {', '.join(pair_names)}"
        # a name the pair does not have ("In Vietnam, Arabica coffee is grown" shown with the Colombia pair)
        foreign = [n for n in names(text, "") if not {_stem(w) for w in n.split()} <= _stems(f"{pair_q} {pair_a}")]
        if foreign:
            return f"names {', '.join(foreign)}, which the pair does not"
    extra = numbers(text) - numbers(pair_a) - numbers(pair_q) - numbers(question)
    if extra:
        return f"states {', '.join(sorted(extra))}, which the pair does not"
    # a subject swapped ("Wheat is usually planted about 10 cm deep" shown with the seed-potato pair)
    other = (_stems(text) & subject_words) - _stems(f"{pair_q} {pair_a}") - _stems(question)
    if other:
        return f"is about {', '.join(sorted(other))}, which the pair is not"
    return ""


def asks_back(answer: dict) -> bool:
    text = answer["text"].lower()
    return answer["withheld"] or "did you mean" in text or text.rstrip().endswith("?") or (
        bool(answer["suggestions"]) and not answer["checked"])


def spread(items: list, n: int) -> list:
    """n items spread evenly over the set (every category, both kinds of follow-up), for --limit."""
    return items if len(items) <= n else [items[i * len(items) // n] for i in range(n)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def share(hits: int, total: int) -> float | None:
    return hits / total if total else None


# --- sections ------------------------------------------------------------------------------------

def in_scope_section(label: str, items: list[dict], results: list[dict], nearest: list) -> list:
    n = len(items)
    ok = sum(r["correct"] for r in results)
    rows = [row(f"{label}: answered and correct", share(ok, n), "", ">=", 0.9),
            row(f"  {label}: questions", n),
            row(f"  {label}: withheld", sum(r["service"]["withheld"] for r in results)),
            row(f"  {label}: checked", sum(r["service"]["checked"] for r in results)),
            row(f"  {label}: correct but withheld", sum(r["correct_text"] and r["service"]["withheld"]
                                                         for r in results)),
            row(f"  {label}: withheld, first suggestion right",
                sum(r["service"]["withheld"] and r["service"]["suggestions"][:1] == [r["pair_question"]]
                    for r in results)),
            row(f"  {label}: plain answer (today) correct", share(sum(r["plain_correct"] for r in results), n))]
    with_sources = [r for r in results if r["service"]["sources"]]
    top1 = sum(r["service"]["sources"][0]["question"] == r["pair_question"] for r in with_sources)
    rows += [row(f"  {label}: recall@1, service's first source (all questions)", share(top1, n)),
             row(f"  {label}: recall@1 where sources exist", share(top1, len(with_sources))),
             row(f"  {label}: questions with sources", len(with_sources))]
    if nearest and all(m is not None for m in nearest):
        sims = [m["similarity"] for m in nearest]
        hits = sum(m["question"] == item["pair_question"] for m, item in zip(nearest, items, strict=True))
        rows += [row(f"  {label}: recall@1, the index's nearest pair", share(hits, n)),
                 row(f"  {label}: nearest similarity, min / p10 / median",
                     f"{min(sims):.2f} / {percentile(sims, 0.1):.2f} / {statistics.median(sims):.2f}")]
        right = [m["similarity"] for m, item in zip(nearest, items, strict=True) if m["question"] == item["pair_question"]]
        if right:
            rows.append(row(f"  {label}: nearest similarity when right, min", min(right)))
    return rows


def run(args) -> dict:
    from assistant.service import Assistant

    in_scope = read_jsonl(TRUST / "in_scope.jsonl")
    out_of_scope = read_jsonl(TRUST / "out_of_scope.jsonl")
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


def score(out: dict) -> dict:
    """The verdicts on every answer and the tables, from what `run` asked (also a saved run: --rescore)."""
    train_rows = [r for r in dataset_rows() if r.get("split") == "train"]
    keywords_of = {r["question"]: list(r.get("keywords") or []) for r in train_rows}
    answer_of = {r["question"]: r["answer"] for r in train_rows}
    sets, oos_results, fu_results = out["sets"], out["out_of_scope"], out["followups"]
    for results in sets.values():
        for r in results:
            r["correct_text"] = correct(r["service"]["text"], r["keywords"])
            r["correct"] = r["correct_text"] and not r["service"]["withheld"]
            r["plain_correct"] = correct(r["plain"]["text"], r["keywords"])
    for r in oos_results:
        r["invented"] = not r["service"]["checked"] and not r["service"]["withheld"]
    for r in fu_results:
        expect, service = r["expect"], r["service"]
        if expect.get("pair_question"):
            # the keywords, and nothing of another subject: "Wheat is planted 10 cm deep" for "and potatoes?"
            # has the potato pair's number but is not its answer
            pair = {"question": expect["pair_question"], "answer": answer_of.get(expect["pair_question"], "")}
            r["swapped"] = "" if service["withheld"] else contradiction(service["text"], pair, r["followup"], {},
                                                                         complete=False)
            r["resolved_correct"] = correct(service["text"], expect["keywords"]) and not service["withheld"] \
                and not r["swapped"]
            r["plain_correct"] = correct(r["plain"]["text"], expect["keywords"]) and not contradiction(
                r["plain"]["text"], pair, r["followup"], {}, complete=False)
            r["right_source"] = bool(service["sources"]) and service["sources"][0]["question"] == expect["pair_question"]
        else:
            r["asked_back"] = asks_back(service)

    every = [r for results in sets.values() for r in results] + oos_results + fu_results
    for r in every:
        r["service"]["loop"] = is_loop(r["service"]["text"], r["service"]["finish_reason"] == "length")
        r["plain"]["loop"] = is_loop(r["plain"]["text"], r["plain"]["hit_limit"])
        source = r["service"]["sources"][0] if r["service"]["sources"] else None
        question = r.get("question") or r.get("followup", "")
        r["contradiction"] = contradiction(r["service"]["text"], source, question, keywords_of) \
            if r["service"]["checked"] and source else ""
        if r["service"]["checked"] and not source:
            r["contradiction"] = "checked without a source"

    sections: dict = {}
    scope_rows = []
    for label, results in sets.items():
        if results:
            scope_rows += in_scope_section(label, results, results, [r.get("nearest") for r in results])
    sections["In scope: paraphrases of the adapter's Q&A (trust set: datasets/trust/in_scope.jsonl; held-out: its 52 held-out rows)"] = scope_rows

    checked = [r for r in every if r["service"]["checked"]]
    contradicting = [r for r in checked if r["contradiction"]]
    verbatim = [r for r in checked if r["service"]["sources"]
                and normalise(r["service"]["text"]) == normalise(r["service"]["sources"][0]["answer"] or "")]
    sections["Checked answers"] = [
        row("checked answers that contradict their source", len(contradicting), "", "==", 0),
        row("  checked answers (all sets)", len(checked)),
        row("  checked answers that are the pair's own answer word for word", len(verbatim)),
        row("  checked answers in the model's own words", len(checked) - len(verbatim))]

    policies = Counter(str(r["service"]["policy"]) for r in oos_results)
    invented = [r for r in oos_results if r["invented"]]
    oos_rows = [row("out of scope answered with an unchecked fact (checked-only policy)", len(invented), "", "==", 0),
                row("  out-of-scope questions", len(oos_results)),
                row("  withheld (no checked answer yet)", sum(r["service"]["withheld"] for r in oos_results)),
                row("  withheld with suggestions", sum(r["service"]["withheld"] and bool(r["service"]["suggestions"])
                                                       for r in oos_results)),
                row("  marked checked (a pair taken for a question it does not answer)",
                    sum(r["service"]["checked"] for r in oos_results)),
                row("  grounded on a pair (sources shown)", sum(bool(r["service"]["sources"]) for r in oos_results)),
                row("  policy reported", ", ".join(f"{k}: {v}" for k, v in sorted(policies.items())))]
    for category in sorted({r["category"] for r in oos_results}):
        in_cat = [r for r in oos_results if r["category"] == category]
        oos_rows.append(row(f"  unchecked facts, {category}", f"{sum(r['invented'] for r in in_cat)}/{len(in_cat)}"))
    sections["Out of scope (datasets/trust/out_of_scope.jsonl)"] = oos_rows

    sections["Loops"] = [
        row("answers that loop (4-word sequence 3+ times, or repeats at the limit)",
            sum(r["service"]["loop"] for r in every), "", "==", 0),
        row("  answers", len(every)),
        row("  answers that ended at the token limit", sum(r["service"]["finish_reason"] == "length" for r in every)),
        row("  plain answer (today): answers that loop", sum(r["plain"]["loop"] for r in every))]

    resolvable = [r for r in fu_results if r["expect"].get("pair_question")]
    ambiguous = [r for r in fu_results if not r["expect"].get("pair_question")]
    sections["Follow-ups (datasets/trust/followups.jsonl)"] = [
        row("follow-ups resolved and correct", f"{sum(r['resolved_correct'] for r in resolvable)}/{len(resolvable)}"),
        row("  resolved follow-ups grounded on the expected pair",
            f"{sum(r['right_source'] for r in resolvable)}/{len(resolvable)}"),
        row("  resolvable follow-ups with the keywords but another subject", sum(bool(r["swapped"]) and correct(
            r["service"]["text"], r["expect"]["keywords"]) for r in resolvable)),
        row("  resolvable follow-ups checked against another pair",
            sum(r["service"]["checked"] and not r["right_source"] for r in resolvable)),
        row("  resolvable follow-ups withheld", sum(r["service"]["withheld"] for r in resolvable)),
        row("  plain answer (today): follow-ups correct",
            f"{sum(r['plain_correct'] for r in resolvable)}/{len(resolvable)}"),
        row("follow-ups asked back (or withheld) as expected",
            f"{sum(r['asked_back'] for r in ambiguous)}/{len(ambiguous)}"),
        row("  ambiguous follow-ups answered with an unchecked fact",
            sum(not r["asked_back"] and not r["service"]["checked"] for r in ambiguous)),
        row("  ambiguous follow-ups marked checked", sum(r["service"]["checked"] for r in ambiguous))]

    service_s = [r["service"]["seconds"] for r in every]
    plain_s = [r["plain"]["seconds"] for r in every]
    ratio = statistics.median(service_s) / statistics.median(plain_s) if every else None
    tokens = [r["service"]["completion_tokens"] for r in every if r["service"]["completion_tokens"] is not None]
    sections["Latency per answer (same questions, same run)"] = [
        row("service / plain median, every answer", ratio, "x", "<=", LATENCY_RATIO),
        row("  service median", statistics.median(service_s) if every else None, "s"),
        row("  service p90", percentile(service_s, 0.9), "s"),
        row("  plain answer (today) median", statistics.median(plain_s) if every else None, "s"),
        row("  plain answer (today) p90", percentile(plain_s, 0.9), "s"),
        row("service / plain median, answers the service decoded", decoded_ratio(every), "x",
            "<=", LATENCY_RATIO),
        row("  p90 ratio", (percentile(service_s, 0.9) / percentile(plain_s, 0.9)) if every else None, "x"),
        row("  service completion tokens, median", statistics.median(tokens) if tokens else None),
        row("  plain completion tokens, median", statistics.median([r["plain"]["tokens"] for r in every]) if every else None),
        row("  answers timed (each path)", len(every)),
        row("  other processes' CPU share", out["load"]["others_cpu_share"]),
        row("  wall time of the questions", out["load"]["wall_s"], "s")]

    out.update(sections=sections,
               contradictions=[{"question": r.get("question") or r.get("followup"), "answer": r["service"]["text"],
                                "why": r["contradiction"], "source": (r["service"]["sources"] or [None])[0]}
                               for r in contradicting],
               followups_swapped=[{"first": r["first"], "followup": r["followup"], "answer": r["service"]["text"],
                                   "why": r["swapped"]} for r in resolvable if r.get("swapped")])
    return out


def decoded_ratio(results: list[dict]) -> float | None:
    """Service/plain median seconds over the questions the service answered (a withheld answer decodes
    nothing, so it is faster than the plain one and would flatter the overall ratio)."""
    decoded = [r for r in results if not r["service"]["withheld"]]
    if not decoded:
        return None
    return statistics.median(r["service"]["seconds"] for r in decoded) / statistics.median(
        r["plain"]["seconds"] for r in decoded)


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
