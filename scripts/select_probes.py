"""Split datasets/probes/general_candidates.jsonl by what the bare embedded base knows.

general.jsonl: questions the bare base answers correctly (greedy, llama.cpp engine) - the retention
probes of the report card. replay.jsonl: the remaining questions it also answers correctly - answered
by the base itself at training time, they are mixed into training (retention replay). Keeping the
two apart means retention is never measured on questions the adapter was trained to keep. Questions
the base gets wrong are in neither: replaying its wrong answers ("Italy is the capital of Italy.")
taught adapters to echo questions, which cost retention (measured).

replay_candidates.jsonl holds more easy questions, none about what general.jsonl asks; those the
base answers correctly are added to replay.jsonl too (a larger, more varied replay kept more).

Usage: python scripts/select_probes.py [--min-general 40]
"""

from __future__ import annotations

import argparse
import json

from assistant.base import resolve_base
from assistant.engines.llamacpp import LlamaCppEngine
from assistant.paths import DATASETS
from assistant.training.evaluate import engine_answerer, is_correct, load_probes


def pick_general(known: list[int], n: int) -> set[int]:
    """Every other known question first, so both sets span all topics; then fill up to n."""
    chosen = known[::2][:n]
    chosen += [k for k in known if k not in chosen][: max(0, n - len(chosen))]
    return set(chosen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-general", type=int, default=40)
    parser.add_argument("--general-share", type=float, default=0.6)
    args = parser.parse_args()
    folder = DATASETS / "probes"
    rows = [json.loads(line) for line in (folder / "general_candidates.jsonl").read_text().splitlines() if line.strip()]
    base = resolve_base()
    answer = engine_answerer(LlamaCppEngine(base.gguf_path, prompt_format=base.prompt_format), None)
    probes = load_probes(folder / "general_candidates.jsonl")
    known = [i for i, p in enumerate(probes) if is_correct(answer(p.question), p)]
    n_general = max(args.min_general, int(len(known) * args.general_share))
    general = pick_general(known, n_general)
    with (folder / "general.jsonl").open("w") as fh:
        for i in sorted(general):
            fh.write(json.dumps(rows[i], ensure_ascii=False) + "\n")
    extra = load_probes(folder / "replay_candidates.jsonl")
    replay = [rows[i]["question"] for i in known if i not in general]
    replay += [p.question for p in extra if is_correct(answer(p.question), p)]
    with (folder / "replay.jsonl").open("w") as fh:
        for question in replay:
            fh.write(json.dumps({"question": question}, ensure_ascii=False) + "\n")
    print(f"{len(probes)} candidates; base answers {len(known)} correctly; general.jsonl: {len(general)}; "
          f"replay.jsonl: {len(replay)} (of {len(known) - len(general) + len(extra)} candidates)")


if __name__ == "__main__":
    main()
