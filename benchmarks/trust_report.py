"""The trust benchmark's report: the rows it prints and writes, each with its target, from the answers
benchmarks/trust.py collected."""

from __future__ import annotations

import statistics
from collections import Counter

from assistant.scoring import normalise
from benchmarks.common import row
from benchmarks.trust_judge import asks_back, contradiction, correct, is_loop, percentile, share
from benchmarks.trust_sets import dataset_rows

LATENCY_RATIO = 1.20


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
                row("out of scope marked checked (a pair taken for a question it does not answer)",
                    sum(r["service"]["checked"] for r in oos_results), "", "==", 0),
                row("  grounded on a pair (sources shown)", sum(bool(r["service"]["sources"]) for r in oos_results)),
                row("  policy reported", ", ".join(f"{k}: {v}" for k, v in sorted(policies.items())))]
    for category in sorted({r["category"] for r in oos_results}):
        in_cat = [r for r in oos_results if r["category"] == category]
        oos_rows.append(row(f"  unchecked facts, {category}", f"{sum(r['invented'] for r in in_cat)}/{len(in_cat)}"))
    sections["Out of scope (datasets/trust/out_of_scope.jsonl, near misses: near_miss.jsonl)"] = oos_rows

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


def decoded_ratio(results: list[dict]) -> float | None:
    """Service/plain median seconds over the questions the service answered (a withheld answer decodes
    nothing, so it is faster than the plain one and would flatter the overall ratio)."""
    decoded = [r for r in results if not r["service"]["withheld"]]
    if not decoded:
        return None
    return statistics.median(r["service"]["seconds"] for r in decoded) / statistics.median(
        r["plain"]["seconds"] for r in decoded)
